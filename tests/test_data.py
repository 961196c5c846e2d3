"""Tests for swiftvr_jax.data: sources, splits, camera paths, augmentation, pairs, loader."""

import json
import logging
import math
import os

import av
import cv2
import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from PIL import Image
from scipy import ndimage

from swiftvr_jax import data as D
from swiftvr_jax.config import ConfigError
from swiftvr_jax.degrade import degrade_named
from swiftvr_jax.video_io import open_writer, read_video

H, W = 48, 64  # source frame size


def coded_frames(n: int, h: int = H, w: int = W, offset: int = 0) -> np.ndarray:
    """uint8 [n, h, w, 3]: red = 10 * frame number (+offset), green = 3 * x, blue = 3 * y."""
    t = (offset + np.arange(n, dtype=np.int32) * 10)[:, None, None]
    x = np.broadcast_to(np.arange(w) * 3, (n, h, w))
    y = np.broadcast_to((np.arange(h) * 3)[:, None], (n, h, w))
    return np.stack([np.broadcast_to(t, (n, h, w)), x, y], axis=-1).astype(np.uint8)


def write_pngs(folder, frames, pattern="{:08d}.png"):
    os.makedirs(folder, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(os.path.join(folder, pattern.format(i)))


def write_video(path, frames, fps=10.0):
    with open_writer(path, fps, quality=10, preset="ultrafast") as w:
        w.write(frames)


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 [h, w, 3] smooth random texture in 100..200, no flat areas."""
    x = np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)
    x = cv2.GaussianBlur(x, (0, 0), 1.5)
    return (100 + 100 * (x - x.min()) / (x.max() - x.min())).astype(np.uint8)


def cfg(**kw) -> D.DataConfig:
    base = dict(degradation="none", num_workers=0, reverse_prob=0.0, hflip_prob=0.0, max_stride=1)
    return D.DataConfig(**{**base, **kw})


# ----------------------------------------------------------------------------- sources


def test_reds_style_frame_folders(tmp_path):
    root = tmp_path / "REDS" / "train_sharp"
    for i, name in enumerate(["000", "001", "010", "002"]):
        write_pngs(root / name, coded_frames(6 + i))
    clips, failures = D.scan_sources([f"videos:{root}"])
    assert failures == []
    assert [c.name for c in clips] == ["000", "001", "002", "010"]  # natural order, names relative to the root
    assert all(c.kind == "frames" and c.size == (H, W) for c in clips)
    assert [c.num_frames for c in clips] == [6, 7, 9, 8]
    got = D.read_frames(clips[0], [1, 3, 5])
    np.testing.assert_array_equal(got, coded_frames(6)[[1, 3, 5]])


def test_nested_folders_and_one_video_per_file(tmp_path):
    write_video(tmp_path / "vids" / "a.mp4", coded_frames(8))
    write_video(tmp_path / "vids" / "b.mkv", coded_frames(5))
    write_pngs(tmp_path / "vids" / "seq" / "0001", coded_frames(4))  # Vimeo-style depth 2
    (tmp_path / "vids" / "notes.txt").write_text("ignored")
    clips, failures = D.scan_sources([str(tmp_path / "vids")])  # a bare folder means videos
    assert failures == []
    assert [(c.name, c.kind, c.num_frames) for c in clips] == [
        ("a.mp4", "video", 8), ("b.mkv", "video", 5), ("seq/0001", "frames", 4)]
    ref, _ = read_video(tmp_path / "vids" / "b.mkv")  # mkv has no frame count: counted from packets
    np.testing.assert_array_equal(D.read_frames(clips[1], [0, 2, 4]), ref[[0, 2, 4]])


def test_video_seek_matches_sequential_decode(tmp_path):
    path = str(tmp_path / "gop.mp4")  # keyframe every 3 frames, so reads really seek
    frames = texture(32, 48)[None].repeat(12, 0)
    frames = np.stack([np.roll(f, 2 * i, axis=1) for i, f in enumerate(frames)])
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt, s.gop_size = 48, 32, "yuv420p", 3
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    with av.open(path) as c:
        assert sum(p.is_keyframe for p in c.demux(c.streams.video[0]) if p.size) >= 4
    ref, _ = read_video(path)
    (clip,), _ = D.scan_sources([path])
    for want in ([7, 8, 9], [10], [0, 5, 11]):
        np.testing.assert_array_equal(D.read_frames(clip, want), ref[want])


def test_manifest_text_and_json(tmp_path):
    write_pngs(tmp_path / "clips" / "x", coded_frames(5))
    write_video(tmp_path / "clips" / "y.mp4", coded_frames(6))
    Image.fromarray(texture(80, 90)).save(tmp_path / "still.png")
    (tmp_path / "list.txt").write_text("# comment\nclips/x\n\nclips/y.mp4\nstill.png\n")
    clips, failures = D.scan_sources([str(tmp_path / "list.txt")])
    assert failures == []
    assert [(c.name, c.kind) for c in clips] == [
        ("clips/x", "frames"), ("clips/y.mp4", "video"), ("still.png", "image")]
    items = [{"path": "clips/x", "split": "eval", "start": 1, "stop": 4}, "clips/y.mp4", {"path": "gone.mp4"}]
    (tmp_path / "list.json").write_text(json.dumps(items))
    clips, failures = D.scan_sources([f"manifest:{tmp_path / 'list.json'}"])
    assert [(c.name, c.split, c.start, c.num_frames) for c in clips] == [("clips/x", "eval", 1, 3),
                                                                         ("clips/y.mp4", None, 0, 6)]
    assert len(failures) == 1 and failures[0][0].endswith("gone.mp4") and "does not exist" in failures[0][1]
    np.testing.assert_array_equal(D.read_frames(clips[0], [0, 2]), coded_frames(5)[[1, 3]])


def test_images_source(tmp_path):
    for i in range(3):
        Image.fromarray(texture(70 + i, 80)).save(tmp_path / f"im{i}.jpg")
    (tmp_path / "sub").mkdir()
    Image.fromarray(texture(70, 80)[..., 0], "L").save(tmp_path / "sub" / "g.png")
    clips, failures = D.scan_sources([f"images:{tmp_path}"])
    assert failures == []
    assert [(c.name, c.kind, c.size) for c in clips] == [
        ("im0.jpg", "image", (70, 80)), ("im1.jpg", "image", (71, 80)), ("im2.jpg", "image", (72, 80)),
        ("sub/g.png", "image", (70, 80))]
    ds = D.ClipDataset(clips, clip_frames=4, hq_size=32, scale=4, seed=0, cfg=cfg())
    ex = ds.example(0)
    assert ex["hq"].shape == (4, 32, 32, 3) and ex["params"]["kind"] == "image" and "camera" in ex["params"]
    assert ex["hq"].min() >= 90 / 255  # texture values only: no fill


def test_bundled_sources_and_licences():
    sources = D.bundled_sources()
    assert all(os.path.isfile(p) for p, _, _, _ in sources)
    assert all(("CC0" in lic) or ("public domain" in lic) for p, lic, _, _ in sources if not p.endswith(".mp4"))
    clips, failures = D.scan_sources(["bundled"])
    assert failures == [] and len(clips) == len(D.BUNDLED)
    bbb = [c for c in clips if c.kind == "video"]
    assert [(c.split, c.start, c.num_frames) for c in bbb] == [("train", 0, 96), ("eval", 104, 28)]
    assert {c.split for c in clips if c.kind == "image"} == {"train", "eval"}


def test_heldout_clips_are_real_footage_never_in_training():
    clips = D.heldout_clips(["bikes_fence", "carphone"])
    assert [v.shape for v in clips.values()] == [(30, 272, 640, 3), (30, 144, 176, 3)]
    assert all(v.dtype == np.uint8 and v.std() > 10 for v in clips.values())
    # each held-out shot lies between two scene cuts of bikes.mp4: no frame differs wildly from the next
    jumps = np.abs(np.diff(clips["bikes_fence"].astype(np.float32), axis=0)).mean((1, 2, 3))
    assert jumps.max() < 20
    trained = {os.path.basename(p) for p, _, _, _ in D.bundled_sources()}
    assert not trained & {os.path.basename(rel) for _, rel, _, _ in D.HELDOUT}
    with pytest.raises(D.DataError, match="unknown held-out"):
        D.heldout_clips(["nope"])


@pytest.mark.parametrize("make, spec, message", [
    (lambda p: None, "videos:{p}/missing", "no such file or folder"),
    (lambda p: os.makedirs(p / "empty"), "videos:{p}/empty", "holds no video files or frame folders"),
    (lambda p: os.makedirs(p / "none"), "images:{p}/none", "holds no images"),
    (lambda p: (p / "m.txt").write_text("# nothing\n"), "{p}/m.txt", "lists no clips"),
    (lambda p: (p / "m.json").write_text("{bad"), "{p}/m.json", "not valid JSON"),
    (lambda p: (p / "m.json").write_text('[{"path": "a", "split": "test"}]'), "{p}/m.json", "split 'test'"),
])
def test_source_errors_are_one_line(tmp_path, make, spec, message):
    make(tmp_path)
    with pytest.raises(D.DataError, match=message) as e:
        D.scan_sources([spec.format(p=tmp_path)])
    assert "\n" not in str(e.value)


def test_mixed_sizes_and_corrupt_files_are_failures_not_crashes(tmp_path):
    write_pngs(tmp_path / "v" / "good", coded_frames(4))
    write_pngs(tmp_path / "v" / "mixed", coded_frames(3))
    Image.fromarray(coded_frames(1, 40, 40)[0]).save(tmp_path / "v" / "mixed" / "00000009.png")
    (tmp_path / "v" / "bad.mp4").write_bytes(b"not a video")
    clips, failures = D.scan_sources([str(tmp_path / "v")])
    assert [c.name for c in clips] == ["good"]
    reasons = dict(failures)
    assert "differ in size" in reasons[str(tmp_path / "v" / "mixed")]
    assert "cannot read" in reasons[str(tmp_path / "v" / "bad.mp4")]
    assert all("\n" not in r for r in reasons.values())
    with pytest.raises(D.DataError, match="no usable train clips.*differ in size") as e:
        D.load_clips(cfg(sources=(str(tmp_path / "v" / "mixed"),), eval_fraction=0.0), split="train",
                     clip_frames=2, hq_size=16)
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- splits


def test_held_out_split_is_disjoint_stable_and_sized(tmp_path):
    for i in range(40):
        write_pngs(tmp_path / "root" / f"{i:03d}", coded_frames(2, 8, 8))
    clips, _ = D.scan_sources([str(tmp_path / "root")])
    kw = dict(eval_fraction=0.25, clip_frames=2, hq_size=8)
    train, _ = D.select_clips(clips, split="train", **kw)
    held, _ = D.select_clips(clips, split="eval", **kw)
    assert {c.name for c in train}.isdisjoint(c.name for c in held)
    assert len(train) + len(held) == 40 and 4 <= len(held) <= 16
    # Stable under a move of the data root: names are relative.
    os.rename(tmp_path / "root", tmp_path / "moved")
    moved, _ = D.scan_sources([str(tmp_path / "moved")])
    assert [c.name for c in D.select_clips(moved, split="eval", **kw)[0]] == [c.name for c in held]
    bundled, _ = D.scan_sources(["bundled"])
    b_train = {(c.path, c.start) for c in D.select_clips(bundled, split="train", **kw)[0]}
    b_eval = {(c.path, c.start) for c in D.select_clips(bundled, split="eval", **kw)[0]}
    assert b_train and b_eval and b_train.isdisjoint(b_eval)


def test_too_short_and_too_small_clips_are_reported(tmp_path):
    write_pngs(tmp_path / "r" / "short", coded_frames(3))
    write_pngs(tmp_path / "r" / "small", coded_frames(8, 20, 20))
    write_pngs(tmp_path / "r" / "ok", coded_frames(8))
    clips, _ = D.scan_sources([str(tmp_path / "r")])
    kept, unusable = D.select_clips(clips, split="train", eval_fraction=0.0, clip_frames=4, hq_size=32)
    assert [c.name for c in kept] == ["ok"]
    assert sorted(os.path.basename(p) for p, _ in unusable) == ["short", "small"]
    with pytest.raises(D.DataError, match="2 of 3 clips are unreadable or unusable"):
        D.load_clips(cfg(sources=(str(tmp_path / "r"),), eval_fraction=0.0), split="train", clip_frames=4,
                     hq_size=32)


# ----------------------------------------------------------------------------- camera paths


def corners(path, size):
    a = size - 1
    pts = np.array([[0, 0, 1], [a, 0, 1], [0, a, 1], [a, a, 1]], float)
    return np.einsum("tij,kj->tki", D.camera_matrices(path, size), pts)  # [T, 4, (x, y)]


def test_camera_path_stays_inside_the_image():
    image = texture(90, 120)
    image[0, :] = image[-1, :] = image[:, 0] = image[:, -1] = 0  # a black frame around the picture
    c = D.DataConfig(camera_speed=30.0, camera_zoom=1.5, camera_rotation=20.0, image_downscale=1.0)
    closest = np.inf
    for seed in range(60):
        path = D.sample_camera_path(np.random.default_rng(seed), image.shape[:2], 8, 64, c)
        h, w = path["image_size"]
        xy = corners(path, 64)
        assert xy.min() >= 2 - 1e-6 and (xy[..., 0].max() <= w - 3 + 1e-6) and (xy[..., 1].max() <= h - 3 + 1e-6)
        closest = min(closest, xy.min(), w - 3 - xy[..., 0].max(), h - 3 - xy[..., 1].max())
        frames = D.render_camera_path(image, path, 64)
        assert frames.shape == (8, 64, 64, 3) and frames.min() >= 90  # the black frame never shows
    assert closest < 1.0  # the paths do reach the border, so the check above is not vacuous


def test_camera_frames_match_an_independent_resampler_and_move_smoothly():
    image = texture(200, 220, seed=1)
    c = D.DataConfig(camera_speed=3.0, camera_zoom=1.3, camera_rotation=5.0, image_downscale=1.0)
    yy, xx = np.mgrid[0:64, 0:64] - 63 / 2
    moved = 0.0
    for seed in range(4):
        path = D.sample_camera_path(np.random.default_rng(seed), image.shape[:2], 8, 64, c)
        frames = D.render_camera_path(image, path, 64).astype(np.float64)
        for t, ((cx, cy), z, th) in enumerate(zip(path["center"], path["zoom"], path["rotation"])):
            # scipy's cubic spline at the path's sample points; out-of-image samples would read 0.
            sx = cx + z * (np.cos(th) * xx - np.sin(th) * yy)
            sy = cy + z * (np.sin(th) * xx + np.cos(th) * yy)
            ref = np.stack([ndimage.map_coordinates(image[..., ch].astype(np.float64), [sy, sx], order=3,
                                                    mode="constant", cval=0.0) for ch in range(3)], axis=-1)
            assert np.abs(ref - frames[t]).max() < 3.0  # grey levels; cubic kernels differ slightly
        xy = corners(path, 64)  # [T, 4, 2] image pixels
        step = np.diff(np.array(path["center"]), axis=0)
        assert np.linalg.norm(step, axis=1).max() <= 1.5 * c.camera_speed * max(path["zoom"]) + 1e-9
        assert np.abs(np.diff(xy, 2, axis=0)).max() < 0.5  # continuous: steps change little frame to frame
        moved += np.linalg.norm(step, axis=1).sum()
    assert moved > 4.0  # the camera does move


def test_camera_path_zooms_and_rotates_within_limits():
    c = D.DataConfig(camera_zoom=1.3, camera_rotation=5.0, image_downscale=2.0)
    for seed in range(30):
        path = D.sample_camera_path(np.random.default_rng(seed), (400, 500), 6, 64, c)
        z, r = np.array(path["zoom"]), np.degrees(path["rotation"])
        assert z.min() >= 1.0 and z.max() / z.min() <= 1.3 + 1e-9 and np.abs(r).max() <= 5.0 + 1e-9
        assert np.all(np.abs(np.diff(z)) < 0.1) and np.all(np.abs(np.diff(r)) < 2.0)
        h, w = path["image_size"]
        assert 200 <= h <= 400 and abs(w / h - 500 / 400) < 0.01


# ----------------------------------------------------------------------------- examples


def frames_dataset(tmp_path, n=12, **kw):
    write_pngs(tmp_path / "v" / "clip", coded_frames(n))
    clips, _ = D.scan_sources([str(tmp_path / "v")])
    return D.ClipDataset(clips, clip_frames=4, hq_size=32, scale=4, seed=kw.pop("seed", 3), cfg=cfg(**kw))


def test_augmentation_params_describe_the_frames(tmp_path):
    ds = frames_dataset(tmp_path, max_stride=3, reverse_prob=0.5, hflip_prob=0.5, vflip_prob=0.5)
    seen = set()
    for i in range(40):
        ex = ds.example(i)
        p, hq = ex["params"], np.round(ex["hq"] * 255).astype(int)
        times = list(range(p["start"], p["start"] + 4 * p["stride"], p["stride"]))
        times = times[::-1] if p["reverse"] else times
        y, x = p["crop"]
        green = 3 * (x + np.arange(32))
        blue = 3 * (y + np.arange(32))
        np.testing.assert_array_equal(hq[:, 0, 0, 0] if not (p["hflip"] or p["vflip"]) else hq[:, 5, 5, 0],
                                      10 * np.array(times))
        np.testing.assert_array_equal(hq[0, 0, :, 1], green[::-1] if p["hflip"] else green)
        np.testing.assert_array_equal(hq[0, :, 0, 2], blue[::-1] if p["vflip"] else blue)
        seen.update([("stride", p["stride"]), ("reverse", p["reverse"]), ("hflip", p["hflip"]), ("vflip", p["vflip"])])
    assert seen >= {("stride", 1), ("stride", 3), ("reverse", True), ("reverse", False), ("hflip", True),
                    ("hflip", False), ("vflip", True)}


def test_transpose_swaps_height_and_width_and_is_drawn_only_when_asked(tmp_path):
    plain = frames_dataset(tmp_path / "a", hflip_prob=0.5, vflip_prob=0.5)
    swapped = frames_dataset(tmp_path / "b", hflip_prob=0.5, vflip_prob=0.5, transpose_prob=0.5)
    seen = set()
    for i in range(30):
        ex, ref = swapped.example(i), plain.example(i)
        p, hq = ex["params"], np.round(ex["hq"] * 255).astype(int)
        assert "transpose" not in ref["params"]
        y, x = p["crop"]
        green, blue = 3 * (x + np.arange(32)), 3 * (y + np.arange(32))
        green, blue = green[::-1] if p["hflip"] else green, blue[::-1] if p["vflip"] else blue
        t = p["transpose"]  # green runs along the width and blue along the height, swapped when transposed
        np.testing.assert_array_equal(hq[0, :, 0, 1] if t else hq[0, 0, :, 1], green)
        np.testing.assert_array_equal(hq[0, 0, :, 2] if t else hq[0, :, 0, 2], blue)
        seen.add(p["transpose"])
    assert seen == {True, False}
    # it is drawn after the window, crop and flips, so those stay what a run without it draws
    keep = ("start", "stride", "crop", "reverse", "hflip", "vflip")
    assert [swapped.example(0)["params"][k] for k in keep] == [plain.example(0)["params"][k] for k in keep]


def test_video_zoom_area_resizes_a_larger_crop_and_is_drawn_only_when_asked(tmp_path):
    zoomed = frames_dataset(tmp_path / "a", video_zoom=1.5)
    plain = frames_dataset(tmp_path / "b")
    sizes = set()
    for i in range(30):
        p, hq = zoomed.example(i)["params"], zoomed.example(i)["hq"] * 255
        assert "crop_size" not in plain.example(i)["params"]
        c, (y, x) = p["crop_size"], p["crop"]
        assert 32 <= c <= 48 and y + c <= H and x + c <= W  # at most 1.5x, and the frame (48 px tall) bounds it
        centres = (np.arange(32) + 0.5) * c / 32 - 0.5  # where each output pixel's centre falls in the crop
        np.testing.assert_allclose(hq[0, 0, :, 1], 3 * (x + centres), atol=1.0)  # a ramp stays a ramp
        np.testing.assert_allclose(hq[0, :, 0, 2], 3 * (y + centres), atol=1.0)
        sizes.add(c)
    assert min(sizes) < 36 and max(sizes) > 44


def test_example_is_a_function_of_seed_and_index(tmp_path):
    ds = frames_dataset(tmp_path, degradation="realbasicvsr", max_stride=2, reverse_prob=0.5, hflip_prob=0.5)
    a, b = ds.example(5), ds.example(5)
    np.testing.assert_array_equal(a["hq"], b["hq"])
    np.testing.assert_array_equal(a["lq"], b["lq"])
    assert json.dumps(a["params"]) == json.dumps(b["params"])
    c = ds.example(6)
    assert not np.array_equal(a["lq"], c["lq"])
    other = D.ClipDataset(ds.clips, clip_frames=4, hq_size=32, scale=4, seed=4, cfg=ds.cfg)
    assert not np.array_equal(a["lq"], other.example(5)["lq"])


def test_lq_is_the_degraded_hq_at_one_over_scale(tmp_path):
    ds = frames_dataset(tmp_path)  # degradation "none": antialiased bicubic, as degrade_named("bicubic4")
    ex = ds.example(0)
    assert ex["hq"].dtype == ex["lq"].dtype == np.float32
    assert ex["hq"].shape == (4, 32, 32, 3) and ex["lq"].shape == (4, 8, 8, 3)
    np.testing.assert_allclose(ex["lq"], degrade_named(ex["hq"], "bicubic4")[0], atol=1 / 255 + 1e-6)
    full = frames_dataset(tmp_path / "b", degradation="realbasicvsr").example(0)
    assert full["lq"].shape == (4, 8, 8, 3) and 0 <= full["lq"].min() and full["lq"].max() <= 1
    assert {"stage1", "stage2", "scale"} <= set(full["params"]["degradation"])


def test_epochs_visit_every_clip_once_in_new_orders(tmp_path):
    for i in range(5):
        write_pngs(tmp_path / "v" / f"c{i}", coded_frames(4, 32, 32))
    clips, _ = D.scan_sources([str(tmp_path / "v")])
    ds = D.ClipDataset(clips, clip_frames=4, hq_size=32, scale=4, seed=0, cfg=cfg())
    order = [ds.example(i)["params"]["name"] for i in range(15)]
    assert all(sorted(order[e * 5:(e + 1) * 5]) == [f"c{i}" for i in range(5)] for e in range(3))
    assert len({tuple(order[e * 5:(e + 1) * 5]) for e in range(3)}) > 1


def test_unreadable_clip_is_replaced_logged_and_counted(tmp_path, caplog):
    for i in range(3):
        write_pngs(tmp_path / "v" / f"c{i}", coded_frames(4, 32, 32))
    clips, _ = D.scan_sources([str(tmp_path / "v")])
    broken = tmp_path / "v" / "c1" / "00000002.png"
    broken.write_bytes(broken.read_bytes()[:60])  # header intact, pixels cut: scan passes, reading fails
    ds = D.ClipDataset(clips, clip_frames=4, hq_size=32, scale=4, seed=0, cfg=cfg())
    with caplog.at_level(logging.WARNING, logger="swiftvr_jax.data"), \
            D.ClipLoader(ds, batch_size=3, max_bad_fraction=0.5) as loader:
        batches = [next(loader) for _ in range(2)]
    assert all(p["name"] != "c1" for _, params in batches for p in params)
    assert loader.get_state()["bad_clips"].keys() == {str(tmp_path / "v" / "c1")}
    assert sum(str(tmp_path / "v" / "c1") in r.message for r in caplog.records) == 1  # logged once
    with D.ClipLoader(ds, batch_size=3, max_bad_fraction=0.2) as strict, pytest.raises(D.DataError,
                                                                                      match="1 of 3 clips failed"):
        next(strict)


# ----------------------------------------------------------------------------- loader


def loader_dataset(tmp_path, degradation="realbasicvsr"):
    for i in range(3):
        write_pngs(tmp_path / "v" / f"c{i}", coded_frames(8, 40, 40, offset=i))
    Image.fromarray(texture(60, 70)).save(tmp_path / "still.png")
    clips, _ = D.scan_sources([str(tmp_path / "v"), f"images:{tmp_path / 'still.png'}"])
    c = D.DataConfig(degradation=degradation, max_stride=2)
    return D.ClipDataset(clips, clip_frames=4, hq_size=32, scale=4, seed=7, cfg=c)


def take(loader, n):
    out = [next(loader) for _ in range(n)]
    return [({k: np.asarray(v) for k, v in b.items()}, p) for b, p in out]


def assert_same(xs, ys):
    assert len(xs) == len(ys)
    for (a, pa), (b, pb) in zip(xs, ys):
        for k in ("hq", "lq", "index"):
            np.testing.assert_array_equal(a[k], b[k])
        assert json.dumps(pa, sort_keys=True) == json.dumps(pb, sort_keys=True)


def test_batches_identical_for_0_and_2_workers_and_resume_exactly(tmp_path):
    ds = loader_dataset(tmp_path)
    with D.ClipLoader(ds, batch_size=2, num_workers=0) as loader:
        first = take(loader, 2)
        state = json.loads(json.dumps(loader.get_state()))  # the state survives a JSON checkpoint
        rest = take(loader, 3)
    assert [b["index"].tolist() for b, _ in first + rest] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    # One spawn checks both claims: 2 workers give the 0-worker batches, and a state saved under
    # 0 workers resumes under 2 (batches 2, 3, 4 go to workers 0, 1, 0).
    with D.ClipLoader(ds, batch_size=2, num_workers=2) as resumed:
        resumed.set_state(state)
        assert_same(take(resumed, 3), rest)
    with D.ClipLoader(ds, batch_size=2) as resumed:
        resumed.set_state(state)
        assert_same(take(resumed, 3), rest)
        resumed.set_state({**state, "next_batch": 0})
        assert_same(take(resumed, 2), first)
    with pytest.raises(D.DataError, match="batch_size=2"):
        D.ClipLoader(ds, batch_size=4).set_state(state)


def test_finite_loader_stops(tmp_path):
    with D.ClipLoader(loader_dataset(tmp_path, "none"), batch_size=2, num_batches=2) as loader:
        assert len(list(loader)) == 2


@pytest.mark.parametrize("shape, names, spec", [
    ((8,), ("data",), P("data")),
    ((4, 2), ("data", "tensor"), P("data")),  # rows replicated over the tensor axis
    ((2, 4), ("data", "fsdp"), P(("data", "fsdp"), None, None)),  # trailing dims of the spec are dropped
])
def test_sharded_global_batch_equals_unsharded(tmp_path, shape, names, spec):
    assert jax.device_count() == 8
    ds = loader_dataset(tmp_path, "none")
    mesh = jax.make_mesh(shape, names)
    with D.ClipLoader(ds, batch_size=8, sharding=NamedSharding(mesh, spec)) as loader:
        batch, params = next(loader)
    with D.ClipLoader(ds, batch_size=8) as plain:
        ref, ref_params = next(plain)
    shards = 8 if "fsdp" in names else shape[0]
    for k, v in batch.items():
        assert isinstance(v, jax.Array) and v.shape == ref[k].shape
        assert v.sharding == NamedSharding(mesh, P(spec[0]))
        assert {s.data.shape[0] for s in v.addressable_shards} == {8 // shards}
        assert len({s.index[0].start for s in v.addressable_shards}) == shards
        np.testing.assert_array_equal(np.asarray(v), ref[k])
    assert batch["hq"].shape == (8, 4, 32, 32, 3) and batch["lq"].shape == (8, 4, 8, 8, 3)
    assert json.dumps(params) == json.dumps(ref_params)


def test_batch_must_divide_over_the_data_shards():
    mesh = jax.make_mesh((8,), ("data",))
    assert D.process_rows(NamedSharding(mesh, P("data")), 16) == (0, 16)  # one process holds every row
    assert D.process_rows(None, 5) == (0, 5)
    with pytest.raises(D.DataError, match="batch_size=6 is not divisible by the 8 batch shards"):
        D.process_rows(NamedSharding(mesh, P("data")), 6)
    with pytest.raises(D.DataError, match="batch_size=6"):
        D.ClipLoader(None, batch_size=6, sharding=NamedSharding(mesh, P("data")))


def test_make_loader_on_bundled_data():
    with D.make_loader(D.DataConfig(num_workers=0, degradation="none"), split="eval", clip_frames=4, hq_size=64,
                       batch_size=2, scale=4, seed=0, num_batches=1) as loader:
        (batch, params), = list(loader)
    assert batch["hq"].shape == (2, 4, 64, 64, 3) and batch["lq"].shape == (2, 4, 16, 16, 3)
    assert {p["name"] for p in params} <= {"chelsea.png", "gravel.png", "bigbuckbunny.mp4[104:132]"}


def test_data_config_validates():
    with pytest.raises(ConfigError, match="data.degradation"):
        D.DataConfig(degradation="heavy")
    with pytest.raises(ConfigError, match="eval_fraction"):
        D.DataConfig(eval_fraction=1.5)
    with pytest.raises(ConfigError, match="video_zoom >= 1"):
        D.DataConfig(video_zoom=0.5)
    assert math.isclose(D.DataConfig().eval_fraction, 0.1)

"""infer/demo.py end to end: a tiny random model exported to a folder, 5 frames of carphone (GT 144x176)."""

import json

import numpy as np
import pytest
from PIL import Image

from infer import demo, evaluate
from swiftvr_jax import baselines, data, metrics, pipeline, video_io
from swiftvr_jax.degrade import degrade_named

FRAMES, SEED = 5, 3


def _independent_lq(gt, seed):
    """The demo's LQ rebuilt from the degradation alone: uint8 [T, 36, 44, 3]."""
    lq, _ = degrade_named(gt.astype(np.float32) / 255.0, "light", seed)
    return np.clip(np.round(lq * 255.0), 0, 255).astype(np.uint8)


def test_demo_end_to_end(tiny_weights, tmp_path, capsys):
    out = tmp_path / "demo_out"
    rc = demo.main(["--checkpoint", tiny_weights, "--clip", "carphone", "--frames", str(FRAMES), "--seed", str(SEED),
                    "--metrics", "psnr", "ssim", "vmaf", "ewarp_dis", "--compare-frames", "2", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "not redistributed" in printed
    summary = json.loads((out / "demo.json").read_text())
    assert summary["clip"]["frames"] == FRAMES and summary["clip"]["size"] == [144, 176]
    seed = summary["degradation"]["seed"]
    assert seed == evaluate.clip_seed(SEED, "carphone") and summary["degradation"]["name"] == "light"
    assert summary["model"]["config"]["preset"] == "tiny" and summary["outputs"]["restored"] == "restored.mp4"
    assert set(summary["results"]) == {"bicubic", "lanczos", "swiftvr"}

    # Every number recomputed independently of the demo from the same arrays.
    gt = data.heldout_clips(["carphone"])["carphone"][:FRAMES]
    lq = _independent_lq(gt, seed)
    bicubic = baselines.resize_upscale(lq, 4, "bicubic")
    lanczos = baselines.resize_upscale(lq, 4, "lanczos")
    restored = pipeline.SwiftVRPipeline.from_pretrained(tiny_weights).restore_frames(lq, upscale=4)
    res = summary["results"]
    assert res["bicubic"]["metrics"]["psnr"] == metrics.psnr(bicubic, gt)
    assert res["lanczos"]["metrics"]["ssim"] == metrics.ssim(lanczos, gt)
    assert res["swiftvr"]["metrics"]["psnr"] == metrics.psnr(restored, gt)
    assert res["bicubic"]["metrics"]["ewarp_dis"] == metrics.ewarp_dis(bicubic)
    assert summary["ground_truth"]["ewarp_dis"] == metrics.ewarp_dis(gt)
    for r in res.values():
        assert r["fps"] > 0 and r["fps_with_compile"] > 0
        assert r["metrics"]["vmaf"] is None or 0 <= r["metrics"]["vmaf"] <= 100
    # The printed table shows the same numbers.
    rows = {line.split()[0]: line.split() for line in printed.splitlines() if line.split()[:1] in
            (["bicubic"], ["lanczos"], ["swiftvr"])}
    assert rows["bicubic"][1] == f"{metrics.psnr(bicubic, gt):.2f}"
    assert rows["swiftvr"][2] == f"{metrics.ssim(restored, gt):.4f}"

    # restored.mp4 is the model's output (H.264, so close but not exact); lq.mp4 the input.
    video, fps = video_io.read_video(str(out / "restored.mp4"))
    assert video.shape == restored.shape and fps == pytest.approx(summary["clip"]["fps"], rel=1e-3)
    assert metrics.psnr(video, restored) > max(metrics.psnr(video, gt), metrics.psnr(video, bicubic)) + 3
    lq_video, _ = video_io.read_video(str(out / "lq.mp4"))
    assert lq_video.shape == lq.shape

    # compare.png: per frame a row of whole frames, then a row of x3 crops (LQ bicubic | restored | GT).
    img = np.asarray(Image.open(out / "compare.png"))
    index = summary["compare_frames"]
    assert index == [0, FRAMES - 1]
    bar, gap, crop = 16, 4, 96 * demo.ZOOM
    assert img.shape == (2 * (bar + 144) + 2 * (bar + crop) + 3 * 8, 3 * crop + 2 * gap, 3)
    t, lft, h, w = evaluate.detail_box(gt[0], 96)
    crops_top = bar + 144 + 8 + bar

    def zoom(frame):
        return np.repeat(np.repeat(frame[t:t + h, lft:lft + w], demo.ZOOM, 0), demo.ZOOM, 1)

    np.testing.assert_array_equal(img[crops_top:crops_top + crop, :crop], zoom(bicubic[0]))
    np.testing.assert_array_equal(img[crops_top:crops_top + crop, 2 * (crop + gap):], zoom(gt[0]))


def test_missing_default_weights(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(pipeline, "DEFAULT_WEIGHTS", str(tmp_path / "weights" / "default"))
    assert demo.main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no trained default weights" in err and "--checkpoint" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["--frames", "0"], "--frames 0"),
    (["--clip", "carphone", "--frames", "31"], "has only 30 frames"),
    (["--metrics", "psnr,bogus"], "unknown metric"),
    (["--checkpoint", "/no/such/folder"], "not a folder"),
])
def test_usage_errors(tiny_weights, tmp_path, capsys, argv, message):
    argv = ["--checkpoint", tiny_weights, *argv] if "--checkpoint" not in argv else argv
    assert demo.main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err

"""End-to-end tests of infer/evaluate.py on a tiny generated dataset (2 clips x 6 frames, 64x64 GT)."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save_file
from skimage import data
from skimage.metrics import peak_signal_noise_ratio

from infer import evaluate
from swiftvr_jax import baselines, dists, lpips, metrics
from swiftvr_jax.degrade import degrade_named

SOURCES = {"astro": data.astronaut(), "coffee": data.coffee()}


def _write_clip(folder, frames):
    os.makedirs(folder)
    for t, f in enumerate(frames):
        Image.fromarray(f).save(os.path.join(folder, f"{t:08d}.png"))


def _read(folder):
    return np.stack([np.asarray(Image.open(os.path.join(folder, n))) for n in sorted(os.listdir(folder))])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """GT/<clip>/ (64x64, a small pan per frame) and LQ/<clip>/ (Pillow bicubic x1/4, so unlike --degrade)."""
    root = tmp_path_factory.mktemp("ds")
    for name, img in SOURCES.items():
        gt = np.stack([img[100 + 2 * t:164 + 2 * t, 150 + t:214 + t] for t in range(6)])
        lq = np.stack([np.asarray(Image.fromarray(f).resize((16, 16), Image.BICUBIC)) for f in gt])
        _write_clip(root / "GT" / name, gt)
        _write_clip(root / "LQ" / name, lq)
    return root


def _csv(path):
    with open(path) as f:
        return {row["clip"]: row for row in csv.DictReader(f)}


def test_bicubic_with_named_degradation(dataset, tmp_path):
    out = tmp_path / "out"
    rc = evaluate.main(["--method", "bicubic", "--data", str(dataset / "GT"), "--degrade", "bicubic4",
                        "--out", str(out), "--baseline", "lanczos"])
    assert rc == 0
    rows = _csv(out / "metrics.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert set(rows) == set(SOURCES) and summary["dataset"]["frames"] == 12 and summary["failed"] == []
    assert summary["args"]["degrade"] == "bicubic4" and summary["method"]["kernel"] == "cubic"
    for name in SOURCES:
        gt = _read(dataset / "GT" / name)
        lq, _ = degrade_named(gt.astype(np.float32) / 255, "bicubic4", seed=evaluate.clip_seed(0, name))
        up = baselines.resize_upscale(np.round(lq * 255).astype(np.uint8), 4, "bicubic")
        want = np.mean([peak_signal_noise_ratio(g, u, data_range=255) for g, u in zip(gt, up)])
        assert float(rows[name]["psnr"]) == pytest.approx(want, abs=1e-9)
        assert float(rows[name]["psnr"]) == pytest.approx(metrics.psnr(up, gt), abs=1e-9)
        assert float(rows[name]["ssim_y"]) == pytest.approx(metrics.ssim(up, gt, y_channel=True), abs=1e-9)
        assert 20 < want < 35
    mean_psnr = np.mean([float(r["psnr"]) for r in rows.values()])
    assert summary["mean_over_clips"]["psnr"] == pytest.approx(mean_psnr, abs=1e-9)
    assert f"| **mean** | 12 | {mean_psnr:.2f} |" in (out / "results.md").read_text()
    # no weight files: lpips and dists are unavailable in every output, never 0
    assert all(rows[name]["lpips"] == "" and rows[name]["dists"] == "" for name in SOURCES)
    assert summary["mean_over_clips"]["lpips"] is None and summary["clips"][0]["metrics"]["dists"] is None
    assert set(summary["unavailable"]) == {"lpips", "dists"}
    md = (out / "results.md").read_text()
    assert "| n/a | n/a |" in md and "- lpips: n/a, no LPIPS weights file given" in md
    images = sorted(os.listdir(out / "compare"))
    assert images == [f"{c}_{i:06d}.png" for c in ("astro", "coffee") for i in (0, 2, 5)]
    panel = np.asarray(Image.open(out / "compare" / images[0]))
    assert panel.shape == (16 + 64, 4 * 64 + 3 * 4, 3)  # label bar; LQ | baseline | method | GT, 4-px gaps
    gt0 = _read(dataset / "GT" / "astro")[0]
    np.testing.assert_array_equal(panel[16:, -64:], gt0)  # the 64x64 frame fits the crop whole


def test_swiftvr_tiny_preset_with_lq_folder(dataset, tmp_path):
    out = tmp_path / "out"
    rc = evaluate.main(["--method", "swiftvr", "--preset", "tiny", "--data", str(dataset / "GT"),
                        "--lq", str(dataset / "LQ"), "--out", str(out), "--baseline", "bicubic",
                        "--metrics", "psnr,ssim", "ewarp_dis", "--save-frames", "--compare-frames", "1"])
    assert rc == 0
    rows = _csv(out / "metrics.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"]["config"]["preset"] == "tiny"
    assert summary["args"]["metrics"] == ["psnr", "ssim", "ewarp_dis"]
    for name in SOURCES:
        restored = _read(out / "frames" / name)  # lossless PNG of what was scored
        gt = _read(dataset / "GT" / name)
        assert restored.shape == gt.shape
        assert float(rows[name]["psnr"]) == pytest.approx(metrics.psnr(restored, gt), abs=1e-9)
        assert float(rows[name]["ewarp_dis"]) == pytest.approx(metrics.ewarp_dis(restored), abs=1e-9)
        assert int(rows[name]["lq_h"]) == 16 and int(rows[name]["out_h"]) == 64
    assert sorted(os.listdir(out / "compare")) == ["astro_000000.png", "coffee_000000.png"]


def test_unpaired_clips_get_no_reference_metrics(dataset, tmp_path):
    out = tmp_path / "out"
    rc = evaluate.main(["--method", "bicubic", "--data", str(dataset / "GT"), "--out", str(out),
                        "--clips", "coffee", "--max-frames", "3", "--baseline", "none"])
    assert rc == 0
    row = _csv(out / "metrics.csv")["coffee"]
    up = baselines.resize_upscale(_read(dataset / "GT" / "coffee")[:3], 4, "bicubic")
    assert row["frames"] == "3"
    assert float(row["niqe"]) == pytest.approx(metrics.niqe(up), abs=1e-9)
    assert float(row["ewarp_dis"]) == pytest.approx(metrics.ewarp_dis(up), abs=1e-9)
    panel = np.asarray(Image.open(out / "compare" / "coffee_000000.png"))
    assert panel.shape == (16 + 192, 2 * 192 + 4, 3)  # LQ | method: no baseline, no GT; 192-px crops


def _random_weight_file(path, shapes, metadata=None):
    """A safetensors file of He-scaled random convs and non-negative heads (lin*, alpha, beta)."""
    rng = np.random.default_rng(0)
    tensors = {}
    for k, shape in shapes.items():
        if k.startswith("features."):
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else 1
            tensors[k] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        else:
            tensors[k] = rng.uniform(0.01, 1.0, shape).astype(np.float32)
    save_file(tensors, str(path), metadata=metadata)
    return str(path)


def test_lpips_and_dists_with_weight_files(dataset, tmp_path):
    lpips_file = _random_weight_file(tmp_path / "lpips.safetensors", lpips.expected_shapes("alex"), {"net": "alex"})
    dists_file = _random_weight_file(tmp_path / "dists.safetensors", dists.expected_shapes())
    out = tmp_path / "out"
    rc = evaluate.main(["--method", "bicubic", "--data", str(dataset / "GT"), "--degrade", "bicubic4",
                        "--out", str(out), "--clips", "astro", "--max-frames", "2", "--compare-frames", "0",
                        "--metrics", "psnr,lpips,dists", "--lpips-weights", lpips_file, "--dists-weights", dists_file])
    assert rc == 0
    row = _csv(out / "metrics.csv")["astro"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unavailable"] == {} and summary["args"]["lpips_weights"] == lpips_file
    gt = _read(dataset / "GT" / "astro")[:2]
    lq, _ = degrade_named(gt.astype(np.float32) / 255, "bicubic4", seed=evaluate.clip_seed(0, "astro"))
    up = baselines.resize_upscale(np.round(lq * 255).astype(np.uint8), 4, "bicubic")
    want_lpips = metrics.lpips(up, gt, lpips.load_lpips(lpips_file))
    want_dists = metrics.dists(up, gt, dists.load_dists(dists_file))
    assert float(row["lpips"]) == pytest.approx(want_lpips, rel=1e-6) and want_lpips > 0
    assert float(row["dists"]) == pytest.approx(want_dists, rel=1e-6) and want_dists > 0
    assert summary["mean_over_clips"]["dists"] == pytest.approx(want_dists, rel=1e-6)
    assert f"| {want_lpips:.4f} | {want_dists:.4f} |" in (out / "results.md").read_text()


def test_failing_clip_is_reported_and_skipped(dataset, tmp_path, capsys):
    lq = tmp_path / "LQ"
    _write_clip(lq / "astro", _read(dataset / "LQ" / "astro"))
    _write_clip(lq / "coffee", _read(dataset / "LQ" / "coffee")[:5])  # one frame short
    out = tmp_path / "out"
    rc = evaluate.main(["--method", "lanczos", "--data", str(dataset / "GT"), "--lq", str(lq), "--out", str(out)])
    assert rc == 1
    assert list(_csv(out / "metrics.csv")) == ["astro"]
    failed = json.loads((out / "summary.json").read_text())["failed"]
    assert failed == [{"clip": "coffee", "error": "ValueError: GT has 6 frames but LQ has 5"}]
    assert "clip coffee failed and is skipped" in capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--data", "/nonexistent/ds"], "no such file or folder"),
    (["--method", "swiftvr"], "needs --checkpoint DIR"),
    (["--preset", "tiny"], "apply to --method swiftvr only"),
    (["--degrade", "bicubic4", "--scale", "2"], "pass --scale 4"),
    (["--metrics", "psnr"], "need a reference"),
    (["--metrics", "lpips_vgg"], "unknown metric"),
    (["--degrade", "bicubic4", "--lpips-weights", "/nonexistent/lpips.safetensors"], "no such LPIPS weights file"),
    (["--degrade", "bicubic4", "--dists-weights", "/nonexistent/dists.safetensors"], "no such DISTS weights file"),
    (["--clips", "nope"], "--clips nope not found"),
    (["--method", "realesrgan-x4plus", "--scale", "2"], "upscales by 4, not 2"),
])
def test_usage_errors_are_one_line(dataset, tmp_path, capsys, extra, message):
    argv = ["--method", "bicubic", "--data", str(dataset / "GT"), "--out", str(tmp_path / "out")]
    for flag, value in zip(extra[::2], extra[1::2]):  # later flags override the defaults above
        argv += [flag, value]
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("swiftvr-eval: error:") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_refuses_a_non_empty_output_folder(dataset, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    argv = ["--method", "bicubic", "--data", str(dataset / "GT"), "--degrade", "bicubic4",
            "--out", str(tmp_path / "out")]
    assert evaluate.main(argv) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert evaluate.main(argv + ["--overwrite", "--compare-frames", "0"]) == 0


def test_detail_box_finds_the_textured_region():
    frame = np.full((120, 200, 3), 128, np.uint8)
    frame[:, :40] = 255  # one strong edge: the largest variance, but little gradient energy
    frame[64:112, 140:188] = np.random.default_rng(0).integers(100, 157, (48, 48, 3), dtype=np.uint8)  # faint
    top, left, h, w = evaluate.detail_box(frame, 48)
    assert (h, w) == (48, 48) and abs(top - 64) <= 12 and abs(left - 140) <= 12
    assert evaluate.detail_box(frame[:30, :30], 48) == (0, 0, 30, 30)  # crop larger than the frame


def test_find_clips_layouts(dataset, tmp_path):
    assert list(evaluate.find_clips(str(dataset / "GT"))) == ["astro", "coffee"]  # folder of clip folders
    assert evaluate.find_clips(str(dataset / "GT" / "astro")) == {"astro": str(dataset / "GT" / "astro")}
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    assert evaluate.find_clips(str(video)) == {"clip": str(video)}
    (tmp_path / "empty").mkdir()
    with pytest.raises(evaluate.UsageError, match="holds no clips"):
        evaluate.find_clips(str(tmp_path / "empty"))

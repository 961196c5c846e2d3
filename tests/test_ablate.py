"""train/ablate.py: the plan, the outputs, resuming, and identical metrics when run twice."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
from flax import nnx

from swiftvr_jax import video_io
from swiftvr_jax.config import config_from_dict, get_config
from swiftvr_jax.data import heldout_clips
from swiftvr_jax.models.swiftvr import SwiftVR, read_config, save_pretrained
from train import ablate

# 8 simulated devices (conftest): batches of 8. Window 2x2 so that MFSWA differs from full attention
# on the 128 px eval clip (4x4 tokens), which shows that each variant is evaluated with its own attention.
TINY = ["--base", "tiny", "--set", "train.batch_size=8", "--set", "train.clip_frames=4", "--set", "train.hq_size=32",
        "--set", "train.warmup_steps=1", "--set", "model.window=2,2", "--time-size", "64x64", "--time-repeats", "1"]


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory):
    """One real 4-frame 128x128 clip (a crop of the held-out carphone clip)."""
    root = tmp_path_factory.mktemp("eval_data")
    frames = heldout_clips(["carphone"])["carphone"][:4, 8:136, 24:152]
    with video_io.open_writer(str(root / "carphone"), 24.0) as writer:
        writer.write(frames)
    return str(root)


@pytest.fixture(scope="module")
def init_dir(tmp_path_factory):
    """Random tiny weights to start a one-stage ablation from."""
    path = str(tmp_path_factory.mktemp("init") / "weights")
    cfg = get_config("tiny", ["model.window=2,2"])
    save_pretrained(SwiftVR(cfg, rngs=nnx.Rngs(0)), cfg, path)
    return path


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("extra, message", [
    (["--grid", "model.atention=full,mfswa"], "unknown key 'model.atention'"),
    (["--grid", "model.attention=full,flash"], "model.attention='flash' is not valid"),
    (["--grid", "model.attention=full,full"], "repeats a value"),
    (["--grid", "train.seed=0,1"], "use --seeds"),
    (["--grid", "model.window=4", "--base", "huge"], "unknown preset 'huge'"),
    (["--grid", "model.window=4", "--stages", "distill"], "need --init"),
    (["--grid", "model.window=4", "--steps", "ten"], "--steps 'ten'"),
    (["--grid", "model.window=4", "--eval-data", "/no/such/folder"], "no such file or folder"),
    (["--grid", "model.window=4", "--metrics", "psnr,sharpness"], "--metrics"),
])
def test_user_errors_exit_2_before_anything_runs(tmp_path, capsys, extra, message):
    out = tmp_path / "abl"
    assert ablate.main(["--base", "tiny", *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ablate: error:") and message in err and "\n" not in err
    assert not out.exists()


def test_grid_values_and_names():
    cfg = get_config("tiny")
    assert ablate.parse_grid_axis(cfg, "model.window=4,8") == ("model.window", [(4, 4), (8, 8)])
    assert ablate.parse_grid_axis(cfg, "model.window=(4,8), (8,8)") == ("model.window", [(4, 8), (8, 8)])
    assert ablate.parse_grid_axis(cfg, "train.lr=1e-4,3e-4") == ("train.lr", [1e-4, 3e-4])
    assert ablate.variant_name({"model.attention": "swin", "model.window": (4, 8)}) == "attention-swin_window-4x8"


def test_stage_sharing_plan(tmp_path):
    """ReAE and teacher shared per seed across attention x window; the last stage is each variant's own."""
    args = ablate.build_parser().parse_args(["--base", "tiny", "--grid", "model.attention=full,swin,mfswa",
                                             "--grid", "model.window=2,4", "--seeds", "0,1", "--steps", "3",
                                             "--out", str(tmp_path)])
    args.out = str(tmp_path)
    runs = ablate.plan_runs(args)
    assert len(runs) == 12 and [r["seed"] for r in runs] == [0] * 6 + [1] * 6
    assert runs[0]["name"] == "attention-full_window-2x2-seed0"
    workdirs = {stage: {st["workdir"] for r in runs for st in r["stages"] if st["stage"] == stage}
                for stage in ("reae", "teacher", "distill")}
    assert len(workdirs["reae"]) == len(workdirs["teacher"]) == 2  # one per seed, in OUT/shared
    assert all("/shared/" in w for w in workdirs["reae"] | workdirs["teacher"])
    assert len(workdirs["distill"]) == 12 and all(w.startswith(r["dir"]) for r in runs
                                                  for st in r["stages"] if st["stage"] == "distill"
                                                  for w in [st["workdir"]])
    assert runs[0]["stages"][1]["init"] == runs[0]["stages"][0]["workdir"] + "/export"
    assert all("train.steps=3" in st["overrides"] for r in runs for st in r["stages"])


def test_heldout_clips_are_written_once(tmp_path):
    args = ablate.build_parser().parse_args(["--grid", "model.window=4", "--eval-clips", "carphone",
                                             "--out", str(tmp_path)])
    spec = ablate.eval_plan(args)
    assert spec["heldout"] and spec["clips"] == ["carphone"] and spec["data"] == str(tmp_path / "heldout")
    ablate.prepare_heldout(spec)
    frames = sorted((tmp_path / "heldout" / "carphone").iterdir())
    assert len(frames) == 30 and frames[0].suffix == ".png"
    mtime = frames[0].stat().st_mtime_ns
    ablate.prepare_heldout(spec)  # already there: left alone
    assert frames[0].stat().st_mtime_ns == mtime


def test_ablation_outputs_and_rerun(tmp_path, init_dir, eval_data, monkeypatch):
    """Plan, evaluation, DiT timing, tables, plot and resuming, with training replaced by a copy of
    the init weights under each variant's config (real training: the slow test below)."""
    def copy_init(run):
        export = os.path.join(run["stages"][-1]["workdir"], "export")
        os.makedirs(export)
        shutil.copy(os.path.join(init_dir, "model.safetensors"), export)
        with open(os.path.join(export, "config.json"), "w") as f:
            f.write(config_from_dict(run["config"]).to_json())
        return 0

    monkeypatch.setattr(ablate, "train_run", copy_init)
    out = tmp_path / "abl"
    argv = [*TINY, "--grid", "model.attention=full,mfswa", "--init", init_dir, "--stages", "teacher",
            "--steps", "1", "--eval-data", eval_data, "--out", str(out)]
    assert ablate.main(argv) == 0
    names = ["attention-full-seed0", "attention-mfswa-seed0"]
    rows = _csv(out / "ablation.csv")
    assert [r["run"] for r in rows] == names and [r["model.attention"] for r in rows] == ["full", "mfswa"]
    assert all(r["status"] == "ok" and float(r["dit_ms"]) > 0 and np.isfinite(float(r["psnr"])) for r in rows)
    assert rows[0]["psnr"] != rows[1]["psnr"]  # each variant ran its own attention
    for name, mode in zip(names, ["full", "mfswa"]):
        run = out / "runs" / name
        assert json.loads((run / "config.json").read_text())["config"]["model"]["attention"] == mode
        assert json.loads((run / "timing.json").read_text())["attention"] == mode
        assert json.loads((run / "eval" / "summary.json").read_text())["dataset"]["evaluated"] == 1
    summary = json.loads((out / "ablation.json").read_text())
    assert [g["point"] for g in summary["groups"]] == ["attention-full", "attention-mfswa"]
    assert summary["groups"][0]["psnr"]["n"] == 1 and summary["environment"]["backend"] == "cpu"
    table = (out / "ablation.md").read_text()
    assert "| full | 1 |" in table and "| attention-mfswa-seed0 | mfswa | 0 |" in table
    assert (out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    metrics = {n: (out / "runs" / n / "metrics.json").read_text() for n in names}

    def no_training(run):
        raise AssertionError(f"{run['name']} was trained again")

    monkeypatch.setattr(ablate, "train_run", no_training)
    assert ablate.main(argv) == 0  # finished variants are skipped
    assert _csv(out / "ablation.csv") == rows
    assert {n: (out / "runs" / n / "metrics.json").read_text() for n in names} == metrics
    assert ablate.main([*argv[:-2], "--eval-frames", "2", "--out", str(out)]) == 2  # other arguments: refused


@pytest.mark.slow
def test_same_ablation_twice_gives_identical_metrics(tmp_path, eval_data):
    """The whole recipe (shared ReAE and teacher, a student per variant) twice: identical metrics files."""
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert ablate.main([*TINY, "--grid", "model.attention=full,mfswa", "--steps", "2",
                            "--eval-data", eval_data, "--out", str(out)]) == 0
    psnr = []
    for name, mode in [("attention-full-seed0", "full"), ("attention-mfswa-seed0", "mfswa")]:
        a, b = ((out / "runs" / name / "metrics.json").read_text() for out in outs)
        assert a == b
        psnr.append(json.loads(a)["metrics"]["psnr"])
        assert read_config(str(outs[0] / "runs" / name / "distill" / "export")).model.attention == mode
    assert psnr[0] != psnr[1]  # students of one teacher, each trained and evaluated with its own attention
    assert sorted(p.name.split("-")[0] for p in (outs[0] / "shared").iterdir()) == ["reae", "teacher"]
    metric_cols = ["run", "psnr", "ssim", "ewarp_dis"]
    a, b = ([{k: r[k] for k in metric_cols} for r in _csv(out / "ablation.csv")] for out in outs)
    assert a == b

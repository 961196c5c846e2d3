"""Training benchmark: step time, clips/s and tokens/s of every stage on this machine.

For each stage (reae, teacher, distill) the step is compiled ahead of time (compile time
reported on its own), run for warm-up steps, then timed over repeats (median); the state is
threaded from step to step exactly as in training (donated). The batch is synthetic:
`train.batch_size` clips of `train.clip_frames` x `train.hq_size`^2 HQ frames and their
box-downscaled LQ partners. Tokens are the DiT's latent tokens per clip (latent frames x
H/32 x W/32 at the default 16x ReAE and 2x2 patch), the same unit for every stage.

    python -m infer.bench_train --preset small
    python -m infer.bench_train --preset small --stages teacher --set train.batch_size=2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax
import numpy as np

from infer.benchmark import _fmt_table, _machine
from swiftvr_jax.config import ConfigError, MeshConfig, get_config

STAGES = ("reae", "teacher", "distill")  # the default; finetune too once its trainer exists


def synthetic_batch(cfg, seed: int = 0) -> dict[str, np.ndarray]:
    """{'hq': [B, T, S, S, 3], 'lq': [B, T, S/scale, S/scale, 3]} float32 in [0, 1], S = train.hq_size."""
    t = cfg.train
    rng = np.random.default_rng(seed)
    s, r = t.hq_size, t.scale
    hq = rng.random((t.batch_size, t.clip_frames, s, s, 3), np.float32)
    lq = hq.reshape(t.batch_size, t.clip_frames, s // r, r, s // r, r, 3).mean((3, 5))
    return {"hq": hq, "lq": lq}


def dit_tokens(cfg) -> int:
    """DiT tokens of one training clip."""
    m, t = cfg.model, cfg.train
    side = t.hq_size // cfg.reae.space_factor
    return (t.clip_frames // cfg.reae.time_factor // m.patch[0]) * (side // m.patch[1]) * (side // m.patch[2])


def bench_stage(cfg, stage: str, warmup: int, repeats: int) -> dict:
    """Compile and time one stage's optimizer step on a one-device mesh."""
    from swiftvr_jax import sharding as shd
    from train.plan import make_trainer, matmul_flops

    mesh = shd.make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1])
    trainer = make_trainer(cfg, stage, mesh)
    state, frozen = trainer.init(trainer.random_groups(cfg.train.seed))
    batch = trainer.shard_batch(synthetic_batch(cfg))
    # The same jit as Trainer.step, compiled ahead of time so compilation is timed on its own.
    step = jax.jit(trainer._train_step,
                   in_shardings=(trainer.state_shardings, trainer.frozen_shardings,
                                 {k: shd.batch_sharding(mesh, v.ndim) for k, v in batch.items()}),
                   out_shardings=(trainer.state_shardings, shd.replicated(mesh)), donate_argnums=(0,))
    with jax.set_mesh(mesh):
        traced = step.trace(state, frozen, batch)
    flops = matmul_flops(traced.jaxpr)
    t0 = time.perf_counter()
    compiled = traced.lower().compile()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        state, metrics = compiled(state, frozen, batch)
        jax.block_until_ready((state, metrics))
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    b, tr = cfg.train.batch_size, cfg.train
    return {"stage": stage, "batch": b, "clip": f"{tr.clip_frames}x{tr.hq_size}x{tr.hq_size}",
            "step_ms": 1e3 * step_s, "min_ms": 1e3 * min(times), "clips_per_s": b / step_s,
            "tokens_per_s": b * dit_tokens(cfg) / step_s,
            "mpix_per_s": b * tr.clip_frames * tr.hq_size ** 2 / step_s / 1e6,
            "gflops_per_step": flops / 1e9, "gflops_per_s": flops / step_s / 1e9,
            "compile_s": compile_s, "repeats": repeats, "warmup": warmup, "loss": float(metrics["loss"]),
            "finite": bool(metrics["finite"])}  # a skipped (non-finite) step would time the wrong path


def bench_train(cfg, args) -> list[dict]:
    """One row per stage in `args.stages` (warm-up `args.warmup`, median of `args.repeats` steps)."""
    rows = []
    for stage in args.stages:
        print(f"  {stage}: compiling and timing ...", file=sys.stderr, flush=True)
        row = bench_stage(cfg, stage, args.warmup, args.repeats)
        print(f"  {stage}: {row['step_ms']:.0f} ms per step (compiled in {row['compile_s']:.0f} s)",
              file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. train.batch_size=2 (repeatable)")
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="bench_out")
    args = p.parse_args(argv)
    try:
        cfg = get_config(args.preset, args.overrides)
        args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
        from train.plan import available_stages

        bad = [s for s in args.stages if s not in available_stages()]
        if bad:
            raise ConfigError(f"unknown stage(s) {bad}; choose from {', '.join(available_stages())}")
        t = cfg.train
        if t.hq_size % (cfg.reae.space_factor * cfg.model.patch[1]) or t.hq_size % t.scale:
            raise ConfigError(f"train.hq_size={t.hq_size} must be a multiple of "
                              f"{cfg.reae.space_factor * cfg.model.patch[1]} and of train.scale={t.scale}")
        if args.repeats < 1 or args.warmup < 0:
            raise ConfigError("--repeats must be >= 1 and --warmup >= 0")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    rows = bench_train(cfg, args)
    m = cfg.model
    note = (f"preset {cfg.preset}: DiT dim {m.dim}, {m.num_layers} layers, {m.attention} attention, {m.dtype}, "
            f"remat {m.remat}; batch {cfg.train.batch_size} clips of {rows[0]['clip']}, "
            f"{dit_tokens(cfg)} DiT tokens per clip; one device; overrides {args.overrides or 'none'}")
    cols = [("stage   ", "stage", ""), ("step ms", "step_ms", ".0f"), ("clips/s", "clips_per_s", ".2f"),
            ("tokens/s", "tokens_per_s", ".0f"), ("Mpix/s", "mpix_per_s", ".2f"),
            ("GFLOP/step", "gflops_per_step", ".1f"), ("GFLOP/s", "gflops_per_s", ".1f"),
            ("compile s", "compile_s", ".1f")]
    print(f"\ntraining benchmark on {jax.devices()[0].device_kind} ({jax.default_backend()}); {note}")
    print(f"median of {args.repeats} steps after {args.warmup} warm-up; GFLOP = matmul+conv FLOPs of the step\n")
    print(_fmt_table(rows, cols))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "benchmark_train.json")
    with open(path, "w") as f:
        json.dump({"benchmark": "train", "config": cfg.to_dict(), "args": vars(args), "machine": _machine(),
                   "rows": rows, "note": note}, f, indent=2)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

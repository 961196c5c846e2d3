"""Planning numbers before renting a cluster: per-device memory and FLOPs of one training step.

Compiles a stage's step ahead of time (`jax.jit(...).trace(...).lower().compile()`) on ABSTRACT
inputs (ShapeDtypeStructs carrying their shardings: no parameter is ever allocated) for a mesh
of N devices, then reads XLA's memory analysis and counts the step's FLOPs. Each mesh runs in
its own process with N simulated CPU devices, so 64 devices need no cluster:

    python -m train.plan                       # swiftvr-5b distill/teacher/finetune; 8 and 64 devices
    python -m train.plan --meshes 1x8x1,8x8x1,8x4x2 --stages distill
    python -m train.plan --preset small --frames 8 --size 128x128 --meshes 1x8x1

Meshes are DATAxFSDPxTENSOR (the device count is their product); batch = `--per-device-batch`
clips per device. Defaults: remat on, bfloat16 compute (`--set` overrides them).
Default clip 28 x 704 x 1280: sizes must be multiples of 32 (ReAE 16x times the 2x2 patch) and
720 is not, so 704 rows is the largest crop inside a 720p frame; 25 frames (a 4a+1 clip) are
padded to 28, the next multiple of the ReAE's 4, giving 7 latent frames (the FIRST chunk at
clip_len 24, and what Wan's causal VAE makes of 25 frames).

How to read the numbers: they come from XLA's CPU backend compiling the SPMD program that every
device runs. The argument bytes (parameters, optimizer state, EMA, frozen models, the batch
shard) follow from the shardings alone and hold on any backend. Temp bytes (activations and
scratch) are the CPU compiler's buffer plan: a GPU build fuses differently and uses flash
attention (cuDNN) instead of materialising attention scores, so expect its temp memory to be
LOWER for the full-attention teacher and of the same order elsewhere; treat temp as an upper
guide, not a promise. FLOPs are the matmul and convolution FLOPs of the step's jaxpr (scanned
layers counted once per layer, rematerialised forwards included), divided by the devices;
XLA's own cost analysis counts a loop body once, so it is kept in the JSON for reference only.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

DEFAULT_OVERRIDES = ("model.remat=true", "model.dtype=bfloat16")
DEFAULT_STAGES = ("distill", "teacher", "finetune")  # finetune only where the trainer exists
GIB = 2.0 ** 30


def parse_mesh(text: str) -> tuple[int, int, int]:
    """'8x8x1' -> (data, fsdp, tensor) = (8, 8, 1)."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"mesh {text!r} must look like DATAxFSDPxTENSOR with positive sizes, e.g. 8x8x1")
    return tuple(int(p) for p in parts)


def parse_size(text: str) -> tuple[int, int]:
    """'704x1280' -> (704, 1280)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"size {text!r} must look like HEIGHTxWIDTH, e.g. 704x1280")
    return int(parts[0]), int(parts[1])


# -- FLOPs -----------------------------------------------------------------------------------
def _sub_jaxprs(value):
    """Jaxprs held in one equation parameter (a jaxpr, a closed jaxpr or a tuple of them)."""
    if hasattr(value, "eqns"):
        return [value]
    if hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        return [value.jaxpr]
    if isinstance(value, (tuple, list)):
        return [j for v in value for j in _sub_jaxprs(v)]
    return []


def matmul_flops(jaxpr) -> float:
    """Multiply-add FLOPs (x2) of every dot_general and convolution in a (closed) jaxpr.

    Scan bodies count `length` times, cond takes its most expensive branch, while bodies
    (trip count unknown) count once. Convolutions count densely (dilated zeros included).
    """
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[i] for i in contract)
        elif name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            out_features = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
            total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(rhs) / out_features
        elif name == "cond":
            total += max(matmul_flops(b) for b in eqn.params["branches"])
        else:
            times = eqn.params["length"] if name == "scan" else 1
            total += times * sum(matmul_flops(j) for v in eqn.params.values() for j in _sub_jaxprs(v))
    return total


# -- abstract inputs ---------------------------------------------------------------------------
def _abstract(tree, shardings):
    import jax

    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, shardings)


def available_stages() -> tuple[str, ...]:
    """Stages this checkout can plan: reae, teacher, distill, and finetune once its trainer exists."""
    from swiftvr_jax.training.trainer import STAGES

    has_finetune = importlib.util.find_spec("swiftvr_jax.training.finetune") is not None
    return (*STAGES, "finetune") if has_finetune else STAGES


def make_trainer(cfg, stage: str, mesh):
    """The trainer of `stage`: `Trainer` for reae/teacher/distill, `FinetuneTrainer` for finetune."""
    from swiftvr_jax.config import ConfigError
    from swiftvr_jax.training.trainer import STAGES, Trainer

    if stage == "finetune":
        try:
            from swiftvr_jax.training.finetune import FinetuneTrainer
        except ImportError:
            raise ConfigError("stage finetune is not implemented yet") from None
        return FinetuneTrainer(cfg, mesh)
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}, finetune")
    return Trainer(cfg, stage, mesh)


def abstract_inputs(trainer, batch: int, frames: int, height: int, width: int):
    """(state, frozen, batch) of `trainer`'s step as ShapeDtypeStructs with their shardings.

    The trainer's own `init` runs under `jax.eval_shape` on abstract parameter groups, so the
    structure is exactly what training builds and nothing is allocated.
    """
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from swiftvr_jax import sharding as shd
    from swiftvr_jax.models.swiftvr import SwiftVR
    from swiftvr_jax.training.trainer import param_groups

    groups = param_groups(nnx.eval_shape(lambda: SwiftVR(trainer.cfg, rngs=nnx.Rngs(0))))
    state, frozen = jax.eval_shape(trainer.init, groups)
    scale = trainer.cfg.train.scale
    shapes = {"hq": (batch, frames, height, width, 3), "lq": (batch, frames, height // scale, width // scale, 3)}
    batch_in = {k: jax.ShapeDtypeStruct(s, jnp.float32, sharding=shd.batch_sharding(trainer.mesh, 5))
                for k, s in shapes.items()}
    return _abstract(state, trainer.state_shardings), _abstract(frozen, trainer.frozen_shardings), batch_in


def shard_bytes(tree) -> int:
    """Bytes one device holds of a tree of sharded ShapeDtypeStructs."""
    import jax

    return sum(math.prod(a.sharding.shard_shape(a.shape)) * a.dtype.itemsize for a in jax.tree.leaves(tree))


def plan_step(cfg, stage: str, mesh, frames: int, height: int, width: int, per_device_batch: int = 1) -> dict:
    """Compile one `stage` step for `mesh` on abstract inputs; memory and FLOP numbers per device.

    `frames` x `height` x `width` is the HQ clip (LQ is `cfg.train.scale` times smaller);
    the global batch is `per_device_batch` x devices. Sizes in bytes, FLOPs per step.
    """
    import jax

    from swiftvr_jax import sharding as shd

    t0 = time.perf_counter()
    trainer = make_trainer(cfg, stage, mesh)
    n = mesh.devices.size
    state, frozen, batch = abstract_inputs(trainer, per_device_batch * n, frames, height, width)
    # The same jit as Trainer.step: state donated, shardings in and out.
    step = jax.jit(trainer._train_step,
                   in_shardings=(trainer.state_shardings, trainer.frozen_shardings,
                                 {k: v.sharding for k, v in batch.items()}),
                   out_shardings=(trainer.state_shardings, shd.replicated(mesh)), donate_argnums=(0,))
    with jax.set_mesh(mesh):  # activation sharding constraints, if the model has any, read this mesh
        traced = step.trace(state, frozen, batch)
    flops = matmul_flops(traced.jaxpr)
    lowered = traced.lower()
    t1 = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t1
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    m, sf, tf = cfg.model, cfg.reae.space_factor, cfg.reae.time_factor
    tokens = (frames // tf // m.patch[0]) * (height // sf // m.patch[1]) * (width // sf // m.patch[2])

    def params(tree):
        return sum(math.prod(a.shape) for a in jax.tree.leaves(tree))

    row = {
        "stage": stage, "mesh": "x".join(str(mesh.shape[a]) for a in shd.AXES), "devices": n,
        "global_batch": per_device_batch * n, "clip": f"{frames}x{height}x{width}", "dit_tokens": tokens,
        "trained_params": params(state["params"]), "frozen_params": params(frozen),
        "state_bytes": shard_bytes(state), "frozen_bytes": shard_bytes(frozen), "batch_bytes": shard_bytes(batch),
        "argument_bytes": mem.argument_size_in_bytes, "output_bytes": mem.output_size_in_bytes,
        "alias_bytes": mem.alias_size_in_bytes, "temp_bytes": mem.temp_size_in_bytes,
        "generated_code_bytes": mem.generated_code_size_in_bytes,
        "flops_per_device": flops / n, "xla_flops_loop_bodies_once": cost.get("flops"),
        "compile_s": compile_s, "total_s": time.perf_counter() - t0,
    }
    # Inputs stay resident even where XLA drops ones the step never reads from `argument_bytes`
    # (the frozen DiT of the reae stage); the donated state aliases its update, so counts once.
    resident = max(row["argument_bytes"], row["state_bytes"] + row["frozen_bytes"] + row["batch_bytes"])
    row["peak_bytes"] = resident + row["output_bytes"] - row["alias_bytes"] + row["temp_bytes"]
    return row


def replication_warnings(rows: list[dict], factor: float = 1.5) -> list[str]:
    """Rows whose per-device compute grows with the mesh at the same per-device batch.

    XLA's loop-once FLOP count is still a fair per-device measure across meshes of one stage;
    if it grows, the partitioner is gathering the batch and every device repeats others' work.
    """
    out = []
    for stage in dict.fromkeys(r["stage"] for r in rows):
        mine = [r for r in rows if r["stage"] == stage and r.get("xla_flops_loop_bodies_once")]
        if not mine:
            continue
        least = min(r["xla_flops_loop_bodies_once"] for r in mine)
        for r in mine:
            if r["xla_flops_loop_bodies_once"] > factor * least:
                out.append(f"{stage} on {r['mesh']}: XLA plans {r['xla_flops_loop_bodies_once'] / least:.1f}x the "
                           f"per-device compute of the cheapest mesh: the batch is gathered, not sharded")
    return out


# -- command line -------------------------------------------------------------------------------
def _worker(args) -> int:
    """One mesh, in a process whose CPU backend simulates that many devices."""
    n = math.prod(parse_mesh(args.mesh))
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    jax.config.update("jax_num_cpu_devices", n)  # before any other jax use

    from swiftvr_jax import sharding as shd
    from swiftvr_jax.config import MeshConfig, get_config

    data, fsdp, tensor = parse_mesh(args.mesh)
    cfg = get_config(args.preset, [*DEFAULT_OVERRIDES, *args.overrides,
                                   f"train.batch_size={args.per_device_batch * n}",
                                   f"train.clip_frames={args.frames}"])
    mesh = shd.make_mesh(MeshConfig(data, fsdp, tensor))
    rows = []
    for stage in args.stages:
        print(f"  {args.mesh} {stage}: compiling ...", file=sys.stderr, flush=True)
        h, w = parse_size(args.size)
        row = plan_step(cfg, stage, mesh, args.frames, h, w, args.per_device_batch)
        row["host_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"  {args.mesh} {stage}: compiled in {row['compile_s']:.0f} s, "
              f"{row['peak_bytes'] / GIB:.1f} GiB per device", file=sys.stderr, flush=True)
        rows.append(row)
    with open(args.worker_out, "w") as f:
        json.dump({"rows": rows, "config": cfg.to_dict()}, f)
    return 0


def _check(args) -> str | None:
    """A one-line problem with the arguments, or None (checked before any process starts)."""
    from swiftvr_jax.config import ConfigError, get_config

    try:
        for m in args.meshes:
            parse_mesh(m)
        h, w = parse_size(args.size)
        cfg = get_config(args.preset, [*DEFAULT_OVERRIDES, *args.overrides, f"train.clip_frames={args.frames}"])
    except (ValueError, ConfigError) as e:
        return str(e)
    stages = available_stages()
    bad = [s for s in args.stages if s not in stages]
    if bad:
        extra = " (finetune is not implemented yet)" if "finetune" in bad else ""
        return f"unknown stage(s) {bad}; choose from {', '.join(stages)}{extra}"
    sf = cfg.reae.space_factor * max(cfg.model.patch[1:])
    if h % sf or w % sf:
        return f"--size {args.size}: height and width must be multiples of {sf} (ReAE x patch)"
    if h % cfg.train.scale or w % cfg.train.scale:
        return f"--size {args.size}: must be divisible by train.scale={cfg.train.scale}"
    if args.per_device_batch < 1:
        return "--per-device-batch must be >= 1"
    return None


NOTE = ("Per device. From XLA's CPU backend compiling the per-device SPMD program; no parameter is allocated. "
        "state, frozen and args follow from the shardings and hold on GPU/TPU too; temp is the CPU compiler's "
        "activation/scratch plan (a GPU build fuses differently and uses flash attention, so expect less temp "
        "where attention is dense); peak = resident inputs + outputs not aliased to the donated state + temp. The CPU "
        "backend reports no generated-code size. TFLOP/step: matmul+conv FLOPs of the step's jaxpr divided by "
        "the devices (XLA's cost analysis counts a scanned layer loop once; kept in the JSON for reference).")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="swiftvr-5b")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override applied after the defaults " + " ".join(DEFAULT_OVERRIDES))
    p.add_argument("--stages", default=",".join(DEFAULT_STAGES), help="comma list of reae, teacher, distill, finetune")
    p.add_argument("--meshes", default="1x8x1,8x8x1,1x64x1", help="comma list of DATAxFSDPxTENSOR")
    p.add_argument("--frames", type=int, default=28, help="HQ frames per clip (a multiple of 4)")
    p.add_argument("--size", default="704x1280", help="HQ crop HEIGHTxWIDTH (multiples of 32)")
    p.add_argument("--per-device-batch", type=int, default=1)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per mesh before giving up")
    p.add_argument("--out", default="bench_out")
    p.add_argument("--mesh", help=argparse.SUPPRESS)  # worker mode: one mesh, this process
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if args.stages == list(DEFAULT_STAGES):
        args.stages = [s for s in DEFAULT_STAGES if s in available_stages()]
    if args.mesh:
        return _worker(args)
    args.meshes = [m.strip() for m in args.meshes.split(",") if m.strip()]
    problem = _check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    rows, config = [], None
    for mesh in args.meshes:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "rows.json")
            cmd = [sys.executable, "-m", "train.plan", "--mesh", mesh, "--worker-out", out, "--preset", args.preset,
                   "--stages", ",".join(args.stages), "--frames", str(args.frames), "--size", args.size,
                   "--per-device-batch", str(args.per_device_batch)]
            cmd += [a for o in args.overrides for a in ("--set", o)]
            try:
                done = subprocess.run(cmd, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                print(f"error: mesh {mesh} did not compile within --timeout {args.timeout:.0f} s", file=sys.stderr)
                return 1
            if done.returncode:
                print(f"error: mesh {mesh} failed (exit {done.returncode}); see the messages above", file=sys.stderr)
                return 1
            with open(out) as f:
                got = json.load(f)
        rows += got["rows"]
        config = got["config"]

    from infer.benchmark import _fmt_table

    table_rows = [{**r, **{k.replace("_bytes", "_gib"): r[k] / GIB for k in r if k.endswith("_bytes")},
                   "tflops": r["flops_per_device"] / 1e12} for r in rows]
    cols = [("stage   ", "stage", ""), ("mesh DxFxT", "mesh", ""), ("batch", "global_batch", "d"),
            ("state GiB", "state_gib", ".2f"), ("frozen GiB", "frozen_gib", ".2f"), ("args GiB", "argument_gib", ".2f"),
            ("temp GiB", "temp_gib", ".2f"), ("peak GiB", "peak_gib", ".2f"), ("TFLOP/step", "tflops", ".1f"),
            ("compile s", "compile_s", ".0f")]
    m = config["model"]
    print(f"\ntraining-step plan: preset {args.preset} (dim {m['dim']}, {m['num_layers']} layers, "
          f"remat {m['remat']}, {m['dtype']} compute), clip {args.frames}x{args.size} "
          f"({rows[0]['dit_tokens']} DiT tokens), {args.per_device_batch} clip(s) per device; "
          f"overrides {args.overrides or 'none'}; per device\n")
    print(_fmt_table(table_rows, cols))
    print(f"\n{NOTE}")
    for line in replication_warnings(rows):
        print(f"warning: {line}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "plan.json")
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
               "backend": "cpu (simulated devices)", "jax": importlib.metadata.version("jax")}
    with open(path, "w") as f:
        json.dump({"benchmark": "plan", "config": config, "args": vars(args), "machine": machine,
                   "note": NOTE, "rows": rows}, f, indent=2)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

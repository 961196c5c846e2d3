"""swiftvr-train: one flat trainer for the stages reae -> teacher -> distill -> finetune.

    swiftvr-train --stage reae    --preset small --workdir runs/reae
    swiftvr-train --stage teacher --preset small --workdir runs/teacher --init runs/reae/export
    swiftvr-train --stage distill --preset small --workdir runs/distill --init runs/teacher/export
    swiftvr-train --stage finetune --preset small --workdir runs/finetune --init runs/distill/export \
        [--set train.lpips_weights=lpips_alex.safetensors]

Reads the config, builds the mesh, creates the state already sharded, restores the newest
good checkpoint of `--workdir` (so a run can span sessions), trains with a progress bar,
logs metrics to `workdir/metrics.jsonl` (and TensorBoard event files in `workdir/tb`),
checkpoints every `train.checkpoint_every` steps and exports the EMA weights to
`workdir/export` (the project's weight format) at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np
from flax import nnx


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="swiftvr-train", description=__doc__.split("\n")[0])
    p.add_argument("--stage", required=True, choices=["reae", "teacher", "distill", "finetune"])
    p.add_argument("--preset", default="small")
    p.add_argument("--workdir", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--init", help="weight directory to start from (the previous stage's export)")
    p.add_argument("--init-base", metavar="FILE",
                   help="with --init: load the ReAE's LQNet base (reae.base_blocks) from an lqnet.safetensors "
                        "written by `python -m train.probe --save`")
    p.add_argument("--steps", type=int, help="shorthand for --set train.steps=N")
    p.add_argument("--stop-after", type=int, help="stop (with a checkpoint) after this many steps in this run")
    p.add_argument("--export", help="where to write the EMA inference weights (default WORKDIR/export)")
    p.add_argument("--export-dtype", default="float32", choices=["float32", "float16"],
                   help="storage dtype of the exported weights (float16 halves the file)")
    return p


def model_from_groups(cfg, groups):
    """A SwiftVR model holding the given parameter groups (used to export weights)."""
    from swiftvr_jax.models.swiftvr import SwiftVR

    model = nnx.eval_shape(lambda: SwiftVR(cfg, rngs=nnx.Rngs(0)))
    nnx.update(model.reae, groups["reae"])
    nnx.update(model.dit, groups["dit"])
    model.text.set_value(groups["text"])
    return model


def to_host(x) -> np.ndarray:
    """The whole of a (possibly sharded) array on this host; on several hosts every process gathers."""
    from jax.experimental import multihost_utils

    return np.asarray(x) if x.is_fully_addressable else np.asarray(multihost_utils.process_allgather(x, tiled=True))


# Fields that change what the weights mean without changing their shapes.
_SAME_SHAPE_FIELDS = {"reae": ("time_strides", "spatial_strides", "pixel_shuffle"), "model": ("patch", "rope_theta")}


def check_init_matches(init_cfg, cfg, path: str) -> None:
    """Refuse --init weights trained with a different ReAE compression or patching (same shapes, other meaning)."""
    from swiftvr_jax.config import ConfigError

    for section, names in _SAME_SHAPE_FIELDS.items():
        for name in names:
            a, b = getattr(getattr(init_cfg, section), name), getattr(getattr(cfg, section), name)
            if a != b:  # config_from_dict gives tuples, so tuples compare with tuples
                text = ",".join(map(str, a)) if isinstance(a, tuple) else a
                raise ConfigError(f"--init {path} was trained with {section}.{name}={text} but this run has "
                                  f"{b}; pass --set {section}.{name}={text}")


def make_residual(init_model, init_cfg, cfg, path: str) -> bool:
    """Turn a plain ReAE from --init into a residual one (zero correction: the last conv zeroed).

    Returns whether it did; a residual ReAE cannot go back to being a plain one.
    """
    from swiftvr_jax.config import ConfigError

    if init_cfg.reae.residual == cfg.reae.residual:
        return False
    if init_cfg.reae.residual:
        raise ConfigError(f"--init {path} has a residual ReAE (reae.residual=true) but this run has a plain one; "
                          f"pass --set reae.residual=true")
    conv = init_model.reae.dec_out
    conv.kernel[...] = 0.0 * conv.kernel[...]
    conv.bias[...] = 0.0 * conv.bias[...]
    return True


# Decoder extensions that --init may grow: config field -> (input/output modules, MemBlock list).
_GROWABLE = {"cond_blocks": (("dec_cond",), "dec_refine"), "lq_blocks": (("lq_in", "lq_out"), "lq_branch")}


def grow_decoder(init_model, init_cfg, cfg, path: str, new_base: bool = False) -> list[str]:
    """Give a residual ReAE from --init the run's `reae.cond_blocks` and `reae.lq_blocks`: missing
    blocks (and, from none, their zero-initialised join convs) come from a fresh ReAE, so the output
    is unchanged until they train (blocks appended to existing ones get their last conv zeroed: an
    identity, since a block's input is already a ReLU output). Returns the fields it grew; blocks
    are never removed. The LQNet base gets the run's settings when --init has none or when
    `new_base` (an --init-base file will replace it); an --init base with other settings is refused."""
    from swiftvr_jax.config import ConfigError
    from swiftvr_jax.models.reae import ReAE

    grown, fresh, reae = [], None, init_model.reae
    for name, (joins, blocks) in _GROWABLE.items():
        have, want = getattr(init_cfg.reae, name), getattr(cfg.reae, name)
        if want < have:
            raise ConfigError(f"--init {path} has reae.{name}={have} but this run has {want}; "
                              f"pass --set reae.{name}={have} or more")
        if want == have:
            continue
        fresh = fresh or ReAE(cfg.reae, dtype=reae.dtype, rngs=nnx.Rngs(cfg.train.seed))
        added = getattr(fresh, blocks)[have:]
        for block in added if have else ():
            block.conv3.kernel[...] = 0.0 * block.conv3.kernel[...]
        setattr(reae, blocks, nnx.List([*(getattr(reae, blocks) if have else []), *added]))
        if not have:
            for join in joins:
                setattr(reae, join, getattr(fresh, join))
        grown.append(name)
    base = tuple(getattr(init_cfg.reae, k) for k in _BASE_FIELDS)
    if base != tuple(getattr(cfg.reae, k) for k in _BASE_FIELDS):
        if init_cfg.reae.base_blocks and not new_base:
            have = ", ".join(f"reae.{k}={v}" for k, v in zip(_BASE_FIELDS, base))
            raise ConfigError(f"--init {path} has an LQNet base ({have}); pass the same settings, or "
                              "--init-base with a file of the new ones")
        fresh = fresh or ReAE(cfg.reae, dtype=reae.dtype, rngs=nnx.Rngs(cfg.train.seed))
        reae.base_net = fresh.base_net  # zero-initialised output: the base is still the plain resize
        grown.append("base_blocks")
    reae.cfg = cfg.reae
    return grown


_BASE_FIELDS = ("base_blocks", "base_channels", "base_scale", "base_frames")


def load_base(init_model, path: str) -> None:
    """Copy an `lqnet.safetensors` (keys as in `LQNet`) into the ReAE's base network."""
    from swiftvr_jax.config import ConfigError
    from swiftvr_jax.models import lqnet

    if not init_model.reae.cfg.base_blocks:
        raise ConfigError("--init-base needs reae.base_blocks > 0 (and the same reae.base_channels and reae.base_scale "
                          "as the file)")
    lqnet.load(init_model.reae.base_net, path)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from tensorboardX import SummaryWriter
    from tqdm import tqdm

    from swiftvr_jax import sharding as shd
    from swiftvr_jax.checkpoint import Checkpointer, NonFiniteError
    from swiftvr_jax.config import ConfigError, get_config
    from swiftvr_jax.data import DataError, make_loader
    from swiftvr_jax.convert import ConvertError
    from swiftvr_jax.models.swiftvr import WeightsError, load_pretrained, save_pretrained
    from swiftvr_jax.training.finetune import FinetuneTrainer
    from swiftvr_jax.training.trainer import Trainer, param_groups

    shd.maybe_initialize_distributed()
    try:
        overrides = args.overrides + ([f"train.steps={args.steps}"] if args.steps else [])
        cfg = get_config(args.preset, overrides)
        if args.stage != "reae" and not args.init:
            raise ConfigError(f"--stage {args.stage} needs --init DIR (the previous stage's export)")
        mesh = shd.make_mesh(cfg.mesh)
        trainer = FinetuneTrainer(cfg, mesh) if args.stage == "finetune" else Trainer(cfg, args.stage, mesh)
        if args.stage == "finetune":
            print(f"swiftvr-train: {trainer.perceptual_note}", file=sys.stderr)
        if args.init:
            init_model, init_cfg = load_pretrained(args.init, mesh=mesh)
            check_init_matches(init_cfg, cfg, args.init)
            if make_residual(init_model, init_cfg, cfg, args.init):
                print("swiftvr-train: --init has a plain ReAE; its decoder now adds a zero correction to the "
                      "upsampled input (reae.residual=true)", file=sys.stderr)
            for name in grow_decoder(init_model, init_cfg, cfg, args.init, new_base=bool(args.init_base)):
                if name == "base_blocks" and args.init_base:
                    continue  # not zero-initialised: the --init-base file replaces it just below
                print(f"swiftvr-train: --init's decoder grows to reae.{name}={getattr(cfg.reae, name)} "
                      "(zero-initialised: same output until they train)", file=sys.stderr)
            if args.init_base:
                load_base(init_model, args.init_base)
                print(f"swiftvr-train: the ReAE's LQNet base starts from {args.init_base}", file=sys.stderr)
            groups = param_groups(init_model)
        else:
            if args.init_base:
                raise ConfigError("--init-base needs --init (the weights the base joins)")
            groups = trainer.random_groups(cfg.train.seed)
        state, frozen = trainer.init(groups)
        loader = make_loader(cfg.data, split="train", clip_frames=cfg.train.clip_frames, hq_size=cfg.train.hq_size,
                             batch_size=cfg.train.batch_size,
                             scale=cfg.train.scale, seed=cfg.train.seed,
                             sharding=shd.batch_sharding(mesh, 5))
    except (ConfigError, ConvertError, WeightsError, DataError, FileNotFoundError) as e:
        print(f"swiftvr-train: error: {e}", file=sys.stderr)
        return 2

    os.makedirs(args.workdir, exist_ok=True)
    lead = jax.process_index() == 0  # on several hosts one process writes the logs and the export
    if lead:
        with open(os.path.join(args.workdir, "config.json"), "w") as f:
            json.dump({"stage": args.stage, "init": args.init, "config": trainer.cfg.to_dict()}, f, indent=2)
    ckpt = Checkpointer(args.workdir, keep=cfg.train.keep_checkpoints)
    abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state,
                            trainer.state_shardings)
    restored = ckpt.restore(abstract)
    wall_before, t_run = 0.0, time.perf_counter()  # training wall time summed over every resumed run
    if restored is not None:
        start, state, meta = restored
        loader.set_state(meta["data"])
        wall_before = float(meta.get("wall_s", 0.0))
        print(f"resumed from step {start} in {args.workdir}", file=sys.stderr)
    start = int(state["step"])
    end = cfg.train.steps if args.stop_after is None else min(cfg.train.steps, start + args.stop_after)

    def save(step):
        meta = {"stage": args.stage, "data": loader.get_state(), "config": trainer.cfg.to_dict(),
                "wall_s": wall_before + time.perf_counter() - t_run}
        try:
            ckpt.save(step, state, meta, force=True)
        except NonFiniteError as e:
            print(f"swiftvr-train: not saving step {step}: {e}", file=sys.stderr)

    log = open(os.path.join(args.workdir, "metrics.jsonl"), "a") if lead else None
    tb = SummaryWriter(os.path.join(args.workdir, "tb")) if lead else None
    bad_in_row, t_last, status = 0, time.perf_counter(), 0
    clips = cfg.train.batch_size
    it = iter(loader)
    with tqdm(total=cfg.train.steps, initial=start, desc=f"{args.stage}", unit="step", dynamic_ncols=True) as bar:
        for step in range(start, end):
            batch, _ = next(it)
            state, metrics = trainer.step(state, frozen, {k: batch[k] for k in ("hq", "lq")})
            m = {k: float(v) for k, v in jax.device_get(metrics).items()}
            bad_in_row = 0 if m["finite"] else bad_in_row + 1
            if bad_in_row >= cfg.train.max_bad_steps:
                terms = ", ".join(f"{k}={v:.4g}" for k, v in m.items())
                print(f"swiftvr-train: stopping: {bad_in_row} non-finite steps in a row at step {step + 1} ({terms})",
                      file=sys.stderr)
                status = 3
                break
            if (step + 1) % cfg.train.log_every == 0 or step + 1 == end:
                now = time.perf_counter()
                rate = cfg.train.log_every * clips / max(now - t_last, 1e-9)
                t_last = now
                row = {"step": step + 1, "wall_s": round(wall_before + now - t_run, 1), "clips_per_s": rate,
                       "skipped": int(state["skipped"]),
                       "clips": to_host(batch["index"]).tolist(), **m}  # clip indices: resumes are checkable
                if lead:
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    for k, v in row.items():
                        if k not in ("step", "clips"):
                            tb.add_scalar(f"{args.stage}/{k}", v, step + 1)
                    tb.flush()
                bar.set_postfix(loss=f"{m['loss']:.4f}", clips_s=f"{rate:.2f}", skipped=int(state["skipped"]))
            bar.update(1)
            if (step + 1) % cfg.train.checkpoint_every == 0:
                save(step + 1)
    final = int(state["step"])
    if ckpt.latest_step() != final:
        save(final)
    ckpt.wait()
    ckpt.close()
    loader.close()
    if lead:
        log.close()
        tb.close()
    if (status == 0 and final >= cfg.train.steps) or args.export:
        export = args.export or os.path.join(args.workdir, "export")
        groups = {**{k: v for k, v in frozen.items() if not k.startswith("teacher_")}, **state["ema"]}
        groups = jax.tree.map(to_host, groups)
        if lead:
            save_pretrained(model_from_groups(trainer.cfg if args.stage != "teacher" else cfg, groups), cfg, export,
                            dtype=args.export_dtype)
            print(f"exported EMA weights to {export}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())

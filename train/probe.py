"""train.probe: how much a plain CNN learns from the training data, in-domain and on the held-out clips.

    python -m train.probe --steps 1500 --frames 1 --out runs/probe/k1
    python -m train.probe --steps 1500 --frames 3 --out runs/probe/k3 --set data.sources=my_clips/

A diagnostic for the data, not a restorer: an EDSR-style x4 network (conv head, residual blocks,
pixel shuffle, zero-initialised output on a bicubic base, so it starts as bicubic exactly) sees
`--frames` causal LQ frames, trains with L1 (or `--loss l2`) on the project's own loader (the same sources,
degradation and example order as `swiftvr-train`), then reports PSNR against bicubic and Lanczos
on fresh training-content batches (a different loader seed) and on the held-out real clips
degraded as `infer.quality` degrades them, with the mean detail of their HQ frames (`detail`:
mean absolute neighbour difference). A large in-domain gain with a small held-out gain says
the data, not the model or the steps, limits held-out quality. Writes OUT/probe.json (resolved
config and results) and prints a table. Training checkpoints to OUT/checkpoints every
`--checkpoint-every` steps; rerunning the same command resumes there (same batches, same result).

`--save` also writes the trained network (`lqnet.safetensors`, keys as in `LQNet`): the learned
base of a residual ReAE with `reae.base_blocks` and `reae.base_frames=--frames` (see `swiftvr-train
--init-base`); `--init` starts from such a file (with more `--blocks` than it has, the extra blocks
start as identities; with more `--frames`, the older frames' head weights start at zero). `--cosine`
decays the learning rate to zero over the steps (constant otherwise).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from swiftvr_jax.models import lqnet
from swiftvr_jax.models.lqnet import LQNet, stack_causal


class ProbeSR(nnx.Module):
    """x4 on `frames` causal LQ frames: bicubic(newest frame) + an `LQNet` residual (`.net`)."""

    def __init__(self, frames: int, *, scale: int = 4, channels: int = 64, blocks: int = 8, rngs: nnx.Rngs):
        self.net = LQNet(frames, scale=scale, channels=channels, blocks=blocks, rngs=rngs)

    def __call__(self, lq):  # lq [N, h, w, 3 * frames] in [0, 1], newest frame last -> [N, h*s, w*s, 3]
        n, h, w, _ = lq.shape
        s = self.net.scale
        return jax.image.resize(lq[..., -3:], (n, h * s, w * s, 3), "cubic") + self.net(lq)


def _resume_args(args) -> dict:
    """The settings a resumed run must share with the checkpointed one (everything that shapes training)."""
    keep = ("steps", "frames", "preset", "overrides", "batch_size", "clip_frames", "hq_size", "lr", "cosine",
            "channels", "blocks", "seed", "init")
    kept = {k: getattr(args, k) for k in keep}
    return kept if args.loss == "l1" else {**kept, "loss": args.loss}  # l1 runs resume as before --loss


def pixel_loss(pred, target, kind: str = "l1"):
    """Mean absolute ("l1") or mean squared ("l2") error."""
    err = pred - target
    return (jnp.square(err) if kind == "l2" else jnp.abs(err)).mean()


def flat(x):
    """[B, T, ...] -> [B*T, ...]."""
    return x.reshape(-1, *x.shape[2:])


def detail(frames: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (right and down) of the RGB mean, in [0, 1].

    frames: uint8 [..., H, W, 3]. How much fine structure a crop holds: a flat sky scores near 0.
    """
    g = frames.astype(np.float64).mean(-1) / 255.0
    return float(np.abs(np.diff(g, axis=-1)).mean() + np.abs(np.diff(g, axis=-2)).mean())


def to_uint8(x) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, np.float32) * 255.0), 0, 255).astype(np.uint8)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.probe", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output folder (probe.json)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--frames", type=int, default=1, help="causal LQ frames the network sees")
    p.add_argument("--preset", default="small", help="config preset whose data section is used")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override (default data.degradation=light, as the default model)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--clip-frames", type=int, default=8)
    p.add_argument("--hq-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--loss", choices=("l1", "l2"), default="l1",
                   help="pixel loss: l1 (mean absolute error) or l2 (mean squared error, what PSNR scores)")
    p.add_argument("--cosine", action="store_true", help="cosine-decay the learning rate to 0 over --steps")
    p.add_argument("--save", action="store_true", help="also write OUT/lqnet.safetensors")
    p.add_argument("--init", help="start the network from an lqnet.safetensors (a longer schedule in parts; with "
                   "more --blocks than it has, the extra blocks start as identities)")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--blocks", type=int, default=8)
    p.add_argument("--seed", type=int, default=0, help="init and training-data seed")
    p.add_argument("--checkpoint-every", type=int, default=250,
                   help="steps between checkpoints in OUT/checkpoints (the same command resumes from the newest)")
    p.add_argument("--check-batches", type=int, default=15, help="training-content batches scored (loader seed 7)")
    p.add_argument("--clips", nargs="+", help="held-out clips to score (default all)")
    p.add_argument("--heldout-frames", type=int, help="frames per held-out clip (default all 30)")
    p.add_argument("--degrade", default="light", help="held-out degradation, as infer.quality --degrade")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from swiftvr_jax import config, data
    from swiftvr_jax.convert import ConvertError
    from swiftvr_jax.models.swiftvr import WeightsError

    if args.frames < 1 or args.steps < 0 or args.checkpoint_every < 1:
        print("error: --frames and --checkpoint-every must be >= 1, --steps >= 0", file=sys.stderr)
        return 2
    try:  # bad overrides, sources or clip names: one line, not a traceback
        return run(args)
    except (config.ConfigError, data.DataError, ConvertError, WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run(args) -> int:
    """Train the probe, score it, write OUT/probe.json and print the table."""
    from infer import evaluate
    from swiftvr_jax import baselines, config, data, metrics
    from swiftvr_jax.checkpoint import Checkpointer

    cfg = config.get_config(args.preset, ["data.degradation=light", *args.overrides])
    heldout = data.heldout_clips(args.clips)
    os.makedirs(args.out, exist_ok=True)
    s = cfg.stream.upscale
    model = ProbeSR(args.frames, scale=s, channels=args.channels, blocks=args.blocks, rngs=nnx.Rngs(args.seed))
    if args.init:
        lqnet.load(model.net, args.init, grow=True)  # more --blocks than the file: identity blocks after its own
    lr = optax.cosine_decay_schedule(args.lr, max(args.steps, 1)) if args.cosine else args.lr
    opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
    graph, state = nnx.split((model, opt))

    @jax.jit
    def step(state, lq, hq):  # lq [B, T, h, w, 3], hq [B, T, H, W, 3]
        model, opt = nnx.merge(graph, state)

        def loss_fn(m):
            return pixel_loss(m(flat(stack_causal(lq, args.frames))), flat(hq), args.loss)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return nnx.state((model, opt)), loss

    loader_kw = dict(split="train", clip_frames=args.clip_frames, hq_size=args.hq_size, batch_size=args.batch_size,
                     scale=s)
    t0, losses, wall_before = time.time(), [], 0.0
    if args.steps:
        with (data.make_loader(cfg.data, seed=args.seed, num_batches=args.steps, **loader_kw) as loader,
              Checkpointer(args.out, keep=2) as ckpt):
            # OUT/checkpoints: network, optimiser and loader position; a rerun of the same command resumes.
            abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                                    nnx.to_pure_dict(state))
            restored = ckpt.restore(abstract)
            if restored is not None:
                start, pure, meta = restored
                if meta["args"] != _resume_args(args):
                    raise config.ConfigError(f"{args.out} holds a probe run with other settings "
                                             f"({meta['args']}); use another --out")
                nnx.replace_by_pure_dict(state, pure)
                loader.set_state(meta["data"])
                losses, wall_before = meta["losses"], meta["wall_s"]
                print(f"resumed from step {start} in {args.out}", file=sys.stderr)
            for batch, _ in tqdm(loader, total=args.steps, initial=len(losses), desc="probe train", file=sys.stderr):
                state, loss = step(state, jnp.asarray(batch["lq"]), jnp.asarray(batch["hq"]))
                losses.append(float(loss))
                if len(losses) % args.checkpoint_every == 0 or len(losses) == args.steps:
                    meta = {"args": _resume_args(args), "data": loader.get_state(),
                            "losses": list(losses),  # a copy: the save is asynchronous
                            "wall_s": wall_before + time.time() - t0}
                    ckpt.save(len(losses), nnx.to_pure_dict(state), meta, force=True)
    train_s = wall_before + time.time() - t0
    model, _ = nnx.merge(graph, state)
    if args.save:
        lqnet.save(model.net, os.path.join(args.out, lqnet.FILE))
    graph_m, state_m = nnx.split(model)
    forward = jax.jit(lambda st, x: nnx.merge(graph_m, st)(x))

    def restore(lq_u8):  # uint8 [T, h, w, 3] -> uint8 [T, h*s, w*s, 3], a few frames per call
        x = flat(stack_causal(jnp.asarray(lq_u8[None], jnp.float32) / 255.0, args.frames))
        return np.concatenate([to_uint8(forward(state_m, x[i:i + 6])) for i in range(0, len(x), 6)])

    def score(lq, gt):  # uint8 LQ and GT clips -> {"probe", "bicubic", "lanczos": PSNR, "detail": of gt}
        return {"probe": metrics.psnr(restore(lq), gt), "detail": detail(gt),
                **{m: metrics.psnr(baselines.resize_upscale(lq, s, m), gt) for m in ("bicubic", "lanczos")}}

    def mean(scores):
        return {m: float(np.mean([v[m] for v in scores])) for m in ("probe", "bicubic", "lanczos", "detail")}

    rows = {}
    if args.check_batches:
        scores = []
        with data.make_loader(cfg.data, seed=7, num_batches=args.check_batches, **loader_kw) as loader:
            for batch, _ in loader:
                scores += [score(lq, hq) for lq, hq in zip(to_uint8(batch["lq"]), to_uint8(batch["hq"]))]
        rows["training content (loader seed 7)"] = mean(scores)
    per_clip = {}
    for name, gt in tqdm(heldout.items(), desc="held-out", file=sys.stderr):
        gt = evaluate.mod_crop(gt[:args.heldout_frames], s)
        lq, _ = evaluate.make_lq(gt, args.degrade, evaluate.clip_seed(0, name))
        per_clip[name] = score(lq, gt)
    rows["held-out clips (mean)"] = mean(per_clip.values())
    result = {"args": vars(args), "config": {"data": dataclasses.asdict(cfg.data)}, "train_seconds": train_s,
              "steps": len(losses), "final_loss_mean_50": float(np.mean(losses[-50:])) if losses else None,
              "psnr": rows, "heldout": per_clip}
    with open(os.path.join(args.out, "probe.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    print(f"\nPSNR (dB), {len(losses)} steps, {args.frames} frame(s), {train_s:.0f} s of training")
    print(f"{'':34s} {'probe':>7s} {'bicubic':>8s} {'lanczos':>8s} {'gain vs bicubic':>16s} {'HQ detail':>10s}")
    for label, r in rows.items():
        print(f"{label:34s} {r['probe']:7.2f} {r['bicubic']:8.2f} {r['lanczos']:8.2f} "
              f"{r['probe'] - r['bicubic']:+16.2f} {r['detail']:10.4f}")
    print(f"wrote {os.path.join(args.out, 'probe.json')}" + (f" and {lqnet.FILE}" if args.save else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

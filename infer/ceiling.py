"""Where the model's PSNR goes on the held-out clips, stage by stage, and what caps it.

    python -m infer.ceiling --out ceiling_out                       # the shipped default model
    python -m infer.ceiling --checkpoint DIR --out DIR --clips carphone --frames 12

Every held-out clip of `swiftvr_jax.data.HELDOUT` is degraded as `infer.quality` degrades it (the
same `--degrade`, `--seed` and clip seed, from all `--frames` frames), then scored (PSNR against
the ground truth, mean over frames) as:

  base        the upsampled LQ frames a residual ReAE adds its output to (`reae.residual_resize`;
              "cubic" is the bicubic baseline exactly; plus its LQNet with `reae.base_blocks`);
              bilinear for a plain ReAE
  no_dit      the ReAE decoding the latents of the LQ clip itself: the DiT skipped
  model       the whole streaming restorer (`SwiftVRPipeline.restore_frames`)
  hq_latents  the ReAE decoding the latents of the ground truth, with the same LQ input to its
              residual and cond blocks: its ceiling, what a perfect DiT would reach

All rows cover the same frames: the first T - lag of the T frames (T the largest multiple of the
ReAE's time factor, lag its decoder's delay), so the whole-clip decodes of no_dit and hq_latents
line up with the streamed output. Writes OUT/ceiling.json (arguments, model config, per-clip rows,
means) and prints a Markdown table. Exit status: 0 done, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from infer import demo, evaluate
from swiftvr_jax import data, metrics, pipeline
from swiftvr_jax.models.reae import upsample

ROWS = ("base", "no_dit", "model", "hq_latents")


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m infer.ceiling", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="swiftvr weight directory (default: the shipped default model)")
    p.add_argument("--out", required=True, help="output folder (ceiling.json)")
    p.add_argument("--clips", nargs="+", choices=[name for name, *_ in data.HELDOUT],
                   help="held-out clips (default all)")
    p.add_argument("--frames", type=int, help="first N frames of every clip (default all)")
    p.add_argument("--degrade", default="light", choices=evaluate.EVAL_DEGRADATIONS)
    p.add_argument("--seed", type=int, default=0, help="degradation seed base, as infer.quality")
    return p.parse_args(argv)


def _to_uint8(x) -> np.ndarray:
    return np.asarray(jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0)).astype(np.uint8)


def stage_psnrs(pipe: pipeline.SwiftVRPipeline, gt: np.ndarray, lq: np.ndarray) -> dict[str, float]:
    """PSNR (dB) of each row of ROWS for one uint8 clip: GT [n, H, W, 3], LQ [n, H/s, W/s, 3]."""
    reae, rc = pipe.model.reae, pipe.cfg.reae
    n, (h, w) = len(gt), gt.shape[1:3]
    t, lag = n - n % reae.time_factor, reae.frames_to_trim
    if t <= lag:
        raise ValueError(f"a clip of {n} frames is too short: the ReAE needs more than {lag} "
                         f"after rounding down to a multiple of {reae.time_factor}")
    ph, pw = pipeline.padded_size(h, w, pipe.pad_multiple)
    pad = lambda v: jnp.pad(v, ((0, 0), (0, 0), (0, ph - h), (0, pw - w), (0, 0)))
    lq_f = jnp.asarray(lq[:t], jnp.float32)[None] / 255.0
    x_lin = pad(upsample(lq_f, (h, w)))  # what the encoder sees, as in the pipeline
    x_base = pad(reae.residual_base(lq_f, (h, w), one_frame_at_a_time=True)) if rc.residual else x_lin
    target = gt[: t - lag]

    def decode(x):  # whole-clip causal encode + decode from zero memory; frame i of the result is input i
        z = reae.encode(x, reae.init_encoder_state(1, ph, pw))[0]
        out, _ = reae.decode(z, reae.init_decoder_state(1, *z.shape[2:4]), x_base if rc.residual else None)
        return _to_uint8(out[0, lag:, :h, :w])

    restored = pipe.restore_frames(lq)[: t - lag]
    rows = {"base": _to_uint8(x_base[0, : t - lag, :h, :w]), "no_dit": decode(x_lin), "model": restored,
            "hq_latents": decode(pad(jnp.asarray(gt[:t], jnp.float32)[None] / 255.0))}
    return {name: metrics.psnr(rows[name], target) for name in ROWS}


def table(results: dict[str, dict[str, float]]) -> str:
    lines = ["| clip | " + " | ".join(ROWS) + " |", "|---|" + "---:|" * len(ROWS)]
    lines += [f"| {clip} | " + " | ".join(f"{row[k]:.2f}" for k in ROWS) + " |" for clip, row in results.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = _parse(argv)
    try:
        pipe = pipeline.SwiftVRPipeline.from_pretrained(args.checkpoint)
    except (FileNotFoundError, ValueError) as e:
        print(f"ceiling: error: {e}", file=sys.stderr)
        return 2
    names = args.clips or [name for name, *_ in data.HELDOUT]
    per_clip = {}
    for name in tqdm(names, desc="held-out clips"):
        try:
            gt, _ = demo.load_clip(name, args.frames)
            lq, _ = evaluate.make_lq(gt, args.degrade, evaluate.clip_seed(args.seed, name))
            per_clip[name] = stage_psnrs(pipe, gt, lq)
        except (evaluate.UsageError, ValueError) as e:
            print(f"ceiling: error: {e}", file=sys.stderr)
            return 2
    results = {**per_clip, "mean": {k: float(np.mean([r[k] for r in per_clip.values()])) for k in ROWS}}
    print(table(results))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "ceiling.json"), "w") as f:
        json.dump({"args": vars(args), "checkpoint": args.checkpoint or pipeline.DEFAULT_WEIGHTS,
                   "config": pipe.cfg.to_dict(), "rows": list(ROWS), "psnr": results,
                   "backend": jax.default_backend()}, f, indent=1)
    print(f"wrote {os.path.join(args.out, 'ceiling.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

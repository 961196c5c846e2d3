"""train.soup: average the weights of fine-tunings of one model (a "model soup", Wortsman et al. 2022).

    python -m train.soup --out runs/default/soup runs/default/finetune-photos/export runs/default/finetune-ds6/export
    python -m train.soup --out soup/ A/ B/ --weights 0.25 0.75

Every input is a weight directory of the same architecture (`model`, `reae` and `stream` sections of
config.json equal), loaded and written as `load_pretrained` / `save_pretrained` do; each tensor of the
output is the weighted mean of the inputs' tensors, computed in float64 and stored in the first
input's dtype. The output's config is the first input's; the inputs and weights go to OUT/soup.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np

from swiftvr_jax.models.swiftvr import (WEIGHTS_NAME, WeightsError, flat_params, load_flat_params, load_pretrained,
                                        read_config, save_pretrained)

ARCH_SECTIONS = ("model", "reae", "stream")


def _stored_dtype(path: str) -> str:
    from safetensors import safe_open

    with safe_open(os.path.join(path, WEIGHTS_NAME), "np") as f:
        return str(f.get_tensor(next(iter(f.keys()))).dtype)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def soup(inputs: list[str], weights: list[float], out: str) -> dict:
    """Write the weighted mean of `inputs` to `out`; returns the soup.json record."""
    if len(inputs) < 2 or len(weights) != len(inputs):
        raise WeightsError(f"give at least two inputs and one weight per input (got {len(inputs)} and {len(weights)})")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise WeightsError(f"weights {weights} must be >= 0 with a positive sum")
    w = np.asarray(weights, np.float64) / sum(weights)
    cfgs = [read_config(p) for p in inputs]
    first = cfgs[0].to_dict()
    for p, c in zip(inputs[1:], cfgs[1:]):
        diff = [s for s in ARCH_SECTIONS if c.to_dict()[s] != first[s]]
        if diff:
            raise WeightsError(f"{p}: its config differs from {inputs[0]}'s in {', '.join(diff)}; "
                               "only fine-tunings of one architecture can be averaged")
    dtype = _stored_dtype(inputs[0])
    if dtype not in ("float32", "float16"):
        raise WeightsError(f"{inputs[0]}: stored as {dtype}; only float32 and float16 weights can be averaged")
    models = [load_pretrained(p)[0] for p in inputs]  # each checked strictly against its config
    params = [flat_params(m) for m in models]
    mean = {k: sum(wi * np.asarray(p[k], np.float64) for wi, p in zip(w, params)) for k in params[0]}
    load_flat_params(models[0], mean, what="soup")
    save_pretrained(models[0], cfgs[0], out, dtype=dtype)
    sha = [_sha256(os.path.join(p, WEIGHTS_NAME)) for p in inputs]
    record = {"inputs": inputs, "weights": w.tolist(), "sha256": sha, "tensors": len(mean)}
    with open(os.path.join(out, "soup.json"), "w") as f:
        json.dump(record, f, indent=1)
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="train.soup", description=__doc__.split("\n")[0])
    p.add_argument("inputs", nargs="+", help="weight directories (config.json + model.safetensors)")
    p.add_argument("--out", required=True, help="output weight directory")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per input (default: equal)")
    args = p.parse_args(argv)
    try:
        record = soup(args.inputs, args.weights or [1.0] * len(args.inputs), args.out)
    except WeightsError as e:
        print(f"train.soup: error: {e}", file=sys.stderr)
        return 2
    print(f"averaged {record['tensors']} tensors of {len(args.inputs)} inputs (weights {record['weights']}) "
          f"into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""train.soup: average the weights of fine-tunings of one model (a "model soup", Wortsman et al. 2022).

    python -m train.soup --out runs/default/soup runs/default/finetune-photos/export runs/default/finetune-ds6/export
    python -m train.soup --out soup/ A/ B/ --weights 0.25 0.75

Every input is a weight directory of the same architecture (`model`, `reae` and `stream` sections of
config.json equal); each tensor of the output is the weighted mean of the inputs' tensors, computed in
float64 and stored in the first input's dtype. The output's config.json is the first input's; the
inputs and weights go to OUT/soup.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np

from swiftvr_jax.models.swiftvr import CONFIG_NAME, WEIGHTS_NAME, WeightsError, read_config

ARCH_SECTIONS = ("model", "reae", "stream")


def soup(inputs: list[str], weights: list[float], out: str) -> dict:
    """Write the weighted mean of `inputs` to `out`; returns the soup.json record."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    if len(inputs) < 2 or len(weights) != len(inputs):
        raise WeightsError(f"give at least two inputs and one weight per input (got {len(inputs)} and {len(weights)})")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise WeightsError(f"weights {weights} must be >= 0 with a positive sum")
    w = np.asarray(weights, np.float64) / sum(weights)
    cfgs = [read_config(p).to_dict() for p in inputs]
    for p, c in zip(inputs[1:], cfgs[1:]):
        diff = [s for s in ARCH_SECTIONS if c[s] != cfgs[0][s]]
        if diff:
            raise WeightsError(f"{p}: its config differs from {inputs[0]}'s in {', '.join(diff)}; "
                               "only fine-tunings of one architecture can be averaged")
    files = [os.path.join(p, WEIGHTS_NAME) for p in inputs]
    for f in files:
        if not os.path.isfile(f):
            raise WeightsError(f"{os.path.dirname(f)}: no {WEIGHTS_NAME}")
    handles = [safe_open(f, "np") for f in files]
    keys = sorted(handles[0].keys())
    for f, h in zip(files[1:], handles[1:]):
        if sorted(h.keys()) != keys:
            raise WeightsError(f"{f}: holds other tensors than {files[0]}")
    arrays = {}
    for k in keys:
        parts = [h.get_tensor(k) for h in handles]
        if any(x.shape != parts[0].shape for x in parts):
            raise WeightsError(f"{k}: shapes {[x.shape for x in parts]} differ")
        arrays[k] = np.ascontiguousarray(sum(wi * x.astype(np.float64) for wi, x in zip(w, parts)).astype(parts[0].dtype))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(inputs[0], CONFIG_NAME)) as f:
        config = f.read()
    with open(os.path.join(out, CONFIG_NAME), "w") as f:
        f.write(config)
    tmp = os.path.join(out, WEIGHTS_NAME + ".partial")
    save_file(arrays, tmp, metadata=handles[0].metadata())
    os.replace(tmp, os.path.join(out, WEIGHTS_NAME))
    sha = [hashlib.sha256(open(f, "rb").read()).hexdigest() for f in files]
    record = {"inputs": inputs, "weights": w.tolist(), "sha256": sha, "tensors": len(keys)}
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

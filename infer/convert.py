"""Convert weights between the official SwiftVR (PyTorch) checkpoint and this project's format.

    swiftvr-convert checkpoints/ weights/                      # official -> project
    swiftvr-convert --to-official weights/ exported/           # project -> official
    swiftvr-convert --to-official weights/ exported/ --dtype bfloat16 --max-shard-size 5GB
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from swiftvr_jax.convert import DEFAULT_MAX_SHARD_BYTES, DTYPE_TAGS, export_official, import_official
from swiftvr_jax.models.swiftvr import WeightsError

_UNITS = {"KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "KIB": 2 ** 10, "MIB": 2 ** 20, "GIB": 2 ** 30, "B": 1}


def parse_size(text: str) -> int:
    """Bytes in a size like `10GB`, `500MiB` or `123456`."""
    t = text.strip().upper()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if t.endswith(unit):
            number, scale = t[: -len(unit)], _UNITS[unit]
            break
    else:
        number, scale = t, 1
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read {text!r} as a size such as 10GB or 500MiB") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return value


def _size_of(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("src", help="official checkpoint directory (or, with --to-official, a project weight directory)")
    p.add_argument("dst", help="directory to write")
    p.add_argument("--to-official", action="store_true",
                   help="export a project weight directory to the official layout")
    p.add_argument("--dtype", choices=list(DTYPE_TAGS), default=None,
                   help="--to-official: dtype of every tensor (default: the dtypes it was imported with, else float32)")
    p.add_argument("--max-shard-size", type=parse_size, default=DEFAULT_MAX_SHARD_BYTES,
                   help="--to-official: largest transformer shard, e.g. 5GB (default 10GB)")
    p.add_argument("--overwrite", action="store_true", help="replace weights already in DST")
    args = p.parse_args(argv)
    if not args.to_official and args.dtype is not None:
        p.error("--dtype applies to --to-official only (the project format is float32)")

    t0 = time.perf_counter()
    try:
        if args.to_official:
            export_official(args.src, args.dst, dtype=args.dtype, max_shard_bytes=args.max_shard_size,
                            overwrite=args.overwrite)
            what = "official checkpoint"
        else:
            cfg = import_official(args.src, args.dst, overwrite=args.overwrite)
            m = cfg.model
            what = (f"project weights (DiT dim {m.dim}, {m.num_layers} layers, {m.num_heads} heads; "
                    f"ReAE latent {cfg.reae.latent_channels} ch)")
    except (WeightsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {what} to {args.dst} ({_size_of(args.dst) / 1e9:.2f} GB) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

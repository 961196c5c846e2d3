"""swiftvr-restore: restore a video (file or frame folder) with the streaming SwiftVR pipeline.

    swiftvr-restore input.mp4 -o restored.mp4 --upscale 4 --checkpoint weights/
    swiftvr-restore frames/ -o out_frames/ --png --preset tiny     # random weights: plumbing only

Writes the output atomically (never a partial file) and `<output>.json` with the resolved
configuration and the run's numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from swiftvr_jax.config import ConfigError, StreamConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="swiftvr-restore", description=__doc__.split("\n")[0])
    p.add_argument("input", help="video file (mp4/mkv/avi/webm/gif) or folder of png/jpg frames")
    p.add_argument("-o", "--output", required=True, help="output .mp4 (or a folder with --png)")
    p.add_argument("--upscale", type=int, default=4, help="1..4 (default 4)")
    p.add_argument("--clip-len", type=int, default=24, help="frames per MIDDLE chunk, a multiple of 4 (default 24)")
    p.add_argument("--checkpoint", help="weight directory (config.json + model.safetensors)")
    p.add_argument("--preset", help="run this preset with RANDOM weights (tests the plumbing only)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None, help="DiT compute dtype")
    p.add_argument("--png", action="store_true", help="write a folder of png frames instead of mp4")
    p.add_argument("--codec", choices=["h264", "h265"], default="h264")
    p.add_argument("--quality", type=int, default=18, help="CRF 0 (best) .. 51 (default 18)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return p


def _output_path(args) -> str:
    out = args.output
    if args.png:
        return out if out.endswith(os.sep) else out + os.sep
    if os.path.splitext(out)[1].lower() not in (".mp4", ".mkv", ".mov"):
        raise ConfigError(f"output {out!r} needs an .mp4/.mkv/.mov extension (or pass --png for a frame folder)")
    return out


def _check_output_location(path: str, overwrite: bool) -> None:
    from swiftvr_jax.video_io import VideoIOError

    target = path.rstrip(os.sep) or path
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise VideoIOError(f"cannot write {target}: folder {parent} does not exist or is not writable")
    if os.path.exists(target) and not overwrite and not (os.path.isdir(target) and not os.listdir(target)):
        raise VideoIOError(f"{target} already exists; pass --overwrite to replace it")


def _load_pipeline(args):
    from swiftvr_jax.pipeline import DEFAULT_WEIGHTS, SwiftVRPipeline

    if args.checkpoint:
        if not os.path.isdir(args.checkpoint):
            raise FileNotFoundError(f"checkpoint {args.checkpoint} is not a directory")
        return SwiftVRPipeline.from_pretrained(args.checkpoint, dtype=args.dtype)
    if args.preset:
        warnings.warn(f"running preset {args.preset!r} with RANDOM weights: the output shows the plumbing, "
                      f"not restoration", stacklevel=1)
        return SwiftVRPipeline.from_config(args.preset, dtype=args.dtype)
    if not os.path.isdir(DEFAULT_WEIGHTS):
        raise FileNotFoundError(f"no trained default weights at {DEFAULT_WEIGHTS} (`make train-default` exports "
                                "them); pass --checkpoint DIR, or --preset NAME to test the plumbing with random weights")
    return SwiftVRPipeline.from_pretrained(None, dtype=args.dtype)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from swiftvr_jax.models.swiftvr import WeightsError
    from swiftvr_jax.video_io import VideoIOError, open_video

    try:
        StreamConfig(clip_len=args.clip_len, upscale=args.upscale)  # validates both
        out = _output_path(args)
        _check_output_location(out, args.overwrite)
        with open_video(args.input) as probe:  # fail fast on a missing/unreadable/empty input
            total = probe.num_frames
        pipe = _load_pipeline(args)
        with tqdm(total=total, unit="frame", desc="restoring", dynamic_ncols=True) as bar:
            result = pipe.restore_video(args.input, out, upscale=args.upscale, clip_len=args.clip_len,
                                        codec=args.codec, quality=args.quality, overwrite=args.overwrite,
                                        progress=bar.update)
    except (ConfigError, VideoIOError, WeightsError, FileNotFoundError, ValueError) as e:
        print(f"swiftvr-restore: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("swiftvr-restore: interrupted; no output written", file=sys.stderr)
        return 130
    if result["truncated"]:
        print(f"swiftvr-restore: warning: input is truncated; restored the {result['frames']} frames that decoded"
              + (f" (header says {result['expected_frames']})" if result["expected_frames"] else ""), file=sys.stderr)
    result["config"] = pipe.cfg.to_dict()
    result["args"] = vars(args)
    summary = out.rstrip(os.sep) + ".json"
    with open(summary, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {out.rstrip(os.sep)} ({result['frames']} frames, {result['restore_fps']:.2f} frames/s) "
          f"and {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

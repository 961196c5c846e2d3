"""Evaluate a restorer (SwiftVR or a baseline) on a folder dataset: metrics, tables, comparison images.

    swiftvr-eval --method bicubic --data REDS/val_sharp --lq REDS/val_sharp_bicubic/X4 --out eval_out
    swiftvr-eval --method swiftvr --checkpoint weights/ --data UDM10/GT --degrade bicubic4 --out eval_out
    swiftvr-eval --method realesrgan-x4plus --data my_videos/ --out eval_out      # unpaired: niqe

Datasets. `--data` is a folder of clips (each clip a sub-folder of frames or a video file), a
single frame folder, or a single video. Paired data: `--lq` names the matching folder of LQ clips
(REDS: `val_sharp` + `val_sharp_bicubic/X4`; UDM10: `GT` + `BDx4`; SPMCS: `GT` + `BIx4`), or
`--degrade NAME` makes LQ from the GT with `degrade_named` and a per-clip seed derived from
`--seed` and the clip name (the same clip always gets the same LQ). Neither: the clips are LQ
themselves and only no-reference metrics apply.

Outputs in `--out`: metrics.csv (one row per clip), summary.json (resolved arguments, the
method's config, per-clip results and means over clips, failed clips), results.md (a Markdown
table) and compare/<clip>_<frame>.png (crops: LQ bicubic-upscaled | baseline | method | GT).
Metrics are means over frames per clip and means over clips in the summary; fps counts the
method alone and includes JIT compilation (the first clip of each frame size). lpips and dists
need weight files (`--lpips-weights`, `--dists-weights`; README, section Evaluation); without one,
the metric is reported as unavailable (n/a in results.md, empty in metrics.csv, null and a reason
in summary.json), never as a number.
Exit status: 0 all clips evaluated, 1 some clips failed (reported and skipped), 2 usage error.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import math
import os
import platform
import sys
import time
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from swiftvr_jax import baselines, metrics, video_io
from swiftvr_jax.degrade import EVAL_DEGRADATIONS, degrade_named

METHODS = ("swiftvr", *baselines.BASELINES)
PAIRED_METRICS = ("psnr", "ssim", "psnr_y", "ssim_y", "lpips", "dists", "ewarp_dis")
UNPAIRED_METRICS = ("niqe", "ewarp_dis")
NO_REFERENCE = ("niqe", "ewarp_dis")
METRIC_FORMAT = {"psnr": ".2f", "psnr_y": ".2f", "ssim": ".4f", "ssim_y": ".4f", "vmaf": ".2f",
                 "lpips": ".4f", "dists": ".4f", "ewarp_dis": ".3f", "niqe": ".3f"}


class UsageError(ValueError):
    """A mistake in the command line or the dataset layout; the message says what to do."""


# ----------------------------------------------------------------------------- datasets


def find_clips(path: str) -> dict[str, str]:
    """Clip name -> path: a video file, a single frame folder, or a folder of clip folders/videos."""
    if not os.path.exists(path):
        raise UsageError(f"no such file or folder: {path}; check the path")
    if os.path.isfile(path):
        return {os.path.splitext(os.path.basename(path))[0]: path}
    entries = sorted(os.listdir(path), key=video_io._natural_key)
    if any(e.lower().endswith(video_io.FRAME_EXTS) for e in entries):
        return {os.path.basename(os.path.normpath(path)): path}
    clips = {}
    for e in entries:
        full = os.path.join(path, e)
        if os.path.isdir(full) or e.lower().endswith((".mp4", ".mkv", ".mov", ".avi", ".webm", ".gif")):
            clips[os.path.splitext(e)[0] if os.path.isfile(full) else e] = full
    if not clips:
        raise UsageError(f"{path} holds no clips (sub-folders of frames or video files) and no frames")
    return clips


def read_clip(path: str, max_frames: int | None) -> np.ndarray:
    """uint8 [T, H, W, 3] of the first `max_frames` frames (all when None)."""
    with video_io.open_video(path) as reader:
        frames = list(itertools.islice(reader, max_frames))
    return np.stack(frames)


def clip_seed(seed: int, name: str) -> int:
    """The degradation seed of one clip: fixed by `--seed` and the clip name alone."""
    return (seed + zlib.crc32(name.encode())) % 2**31


def make_lq(gt: np.ndarray, name: str, seed: int) -> tuple[np.ndarray, dict]:
    """Degrade uint8 GT [T, H, W, 3] with `degrade_named`; returns uint8 LQ and its parameters."""
    lq, params = degrade_named(gt.astype(np.float32) / 255.0, name, seed)
    return np.clip(np.round(lq * 255.0), 0, 255).astype(np.uint8), params


def mod_crop(frames: np.ndarray, scale: int) -> np.ndarray:
    h, w = frames.shape[1:3]
    return frames[:, : h - h % scale, : w - w % scale]


# ----------------------------------------------------------------------------- methods


def load_method(args) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    """(restore: uint8 LQ [T, h, w, 3] -> uint8 [T, h*s, w*s, 3], config dict) for `--method`."""
    if args.method != "swiftvr":
        up = baselines.load_baseline(args.method, args.scale)
        info = getattr(up, "info", {"name": args.method, "kernel": baselines.RESIZE_METHODS.get(args.method)})
        return up, {**info, "scale": args.scale}
    from swiftvr_jax.config import get_config
    from swiftvr_jax.pipeline import SwiftVRPipeline

    if args.checkpoint:
        if not os.path.isdir(args.checkpoint):
            raise UsageError(f"--checkpoint {args.checkpoint} is not a folder; pass a weight directory")
        pipe = SwiftVRPipeline.from_pretrained(args.checkpoint)
    elif args.preset:
        tqdm.write(f"note: --preset {args.preset} has random weights (tests the plumbing, not the model)",
                   file=sys.stderr)
        pipe = SwiftVRPipeline.from_config(get_config(args.preset, args.overrides), seed=args.seed)
    else:
        raise UsageError("--method swiftvr needs --checkpoint DIR (trained weights) or --preset NAME (random weights)")
    pipe.stream(upscale=args.scale, clip_len=args.clip_len)  # validates scale and clip_len now

    def restore(lq):
        return pipe.restore_frames(lq, upscale=args.scale, clip_len=args.clip_len)

    return restore, {"name": "swiftvr", "checkpoint": args.checkpoint, "scale": args.scale,
                     "clip_len": args.clip_len or pipe.cfg.stream.clip_len, "config": pipe.cfg.to_dict()}


# ----------------------------------------------------------------------------- metrics


def load_networks(args) -> dict:
    """{'lpips': LPIPS or None, 'dists': DISTS or None}: the weight files of the requested learned metrics."""
    nets = {"lpips": None, "dists": None}
    if "lpips" in args.metrics and args.lpips_weights:
        from swiftvr_jax.lpips import load_lpips

        nets["lpips"] = load_lpips(args.lpips_weights)
    if "dists" in args.metrics and args.dists_weights:
        from swiftvr_jax.dists import load_dists

        nets["dists"] = load_dists(args.dists_weights)
    return nets


def score(out: np.ndarray, gt: np.ndarray | None, names, crop_border: int, networks: dict,
          unavailable: dict) -> dict:
    """{metric: value or None}; an unavailable or inapplicable metric is None with a warning.

    networks: from `load_networks`. unavailable: {metric: reason}, filled in (and warned about) once.
    """
    result = {}
    for n in names:
        try:
            result[n] = metrics.compute_metrics(out, gt, names=[n], crop_border=crop_border,
                                                lpips_model=networks["lpips"], dists_model=networks["dists"])[n]
        except metrics.MetricUnavailable as e:
            if n not in unavailable:
                tqdm.write(f"warning: {n} unavailable: {e}", file=sys.stderr)
                unavailable[n] = str(e)
            result[n] = None
        except ValueError as e:  # e.g. frames too small for NIQE's patches
            tqdm.write(f"warning: {n} skipped: {e}", file=sys.stderr)
            result[n] = None
    return result


def _mean(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


# ----------------------------------------------------------------------------- comparison images


def detail_box(frame: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the size x size window with the most luma gradient (stride size/4).

    Gradient energy, not variance: variance picks one strong edge, gradients pick texture.
    """
    h, w = frame.shape[:2]
    ch, cw = min(size, h), min(size, w)
    y = frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    grad = np.zeros_like(y)
    grad[:, 1:] += np.abs(np.diff(y, axis=1))
    grad[1:] += np.abs(np.diff(y, axis=0))
    s = np.pad(grad.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # integral image
    stride = max(1, size // 4)
    tops = np.array(sorted({*range(0, h - ch + 1, stride), h - ch}))[:, None]
    lefts = np.array(sorted({*range(0, w - cw + 1, stride), w - cw}))[None, :]
    energy = s[tops + ch, lefts + cw] - s[tops, lefts + cw] - s[tops + ch, lefts] + s[tops, lefts]
    i, j = np.unravel_index(np.argmax(energy), energy.shape)
    return int(tops[i, 0]), int(lefts[0, j]), ch, cw


def comparison_image(panels: list[tuple[str, np.ndarray]], box: tuple[int, int, int, int]) -> np.ndarray:
    """Side-by-side crops uint8 [label + h, n * (w + gap), 3] of same-size frames, each labelled."""
    t, lft, h, w = box
    gap, bar = 4, 16
    canvas = Image.new("RGB", (len(panels) * (w + gap) - gap, h + bar), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (label, frame) in enumerate(panels):
        canvas.paste(Image.fromarray(np.ascontiguousarray(frame[t:t + h, lft:lft + w])), (i * (w + gap), bar))
        while len(label) > 1 and draw.textlength(label) > w - 4:  # clip labels to their panel
            label = label[:-1]
        draw.text((i * (w + gap) + 2, 2), label, fill=(0, 0, 0))
    return np.asarray(canvas)


# ----------------------------------------------------------------------------- the run


def _parse(argv):
    p = argparse.ArgumentParser(prog="swiftvr-eval", description=__doc__.split("\n")[0])
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--data", required=True, help="GT clips (or LQ clips for unpaired data): folder or video")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--degrade", choices=EVAL_DEGRADATIONS, help="make LQ from the GT with this degradation")
    src.add_argument("--lq", help="folder of LQ clips with the same names as the GT clips")
    p.add_argument("--out", required=True, help="output folder (must be new or empty unless --overwrite)")
    p.add_argument("--checkpoint", help="swiftvr: weight directory (config.json + model.safetensors)")
    p.add_argument("--preset", help="swiftvr: random weights of this config preset (plumbing tests)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="swiftvr --preset: config override (repeatable)")
    p.add_argument("--clip-len", type=int, help="swiftvr: frames per streamed chunk (default: the config's)")
    p.add_argument("--scale", type=int, default=4, help="upscaling factor (default 4)")
    p.add_argument("--metrics", nargs="+", help="metric names, space or comma separated "
                   f"(default paired: {','.join(PAIRED_METRICS)}; unpaired: {','.join(UNPAIRED_METRICS)})")
    p.add_argument("--lpips-weights", metavar="FILE", help="LPIPS safetensors file (alex or vgg; see "
                   "swiftvr_jax/lpips.py); without it lpips is n/a")
    p.add_argument("--dists-weights", metavar="FILE", help="DISTS safetensors file (see README, Evaluation); "
                   "without it dists is n/a")
    p.add_argument("--crop-border", type=int, default=0, help="pixels removed on each side before metrics")
    p.add_argument("--max-frames", type=int, help="evaluate only the first N frames of each clip")
    p.add_argument("--clips", help="comma-separated clip names to evaluate (default: all)")
    p.add_argument("--seed", type=int, default=0, help="--degrade seed base and --preset weight seed")
    p.add_argument("--baseline", default="lanczos", choices=(*baselines.BASELINES, "none"),
                   help="method shown beside ours in the comparison images (default lanczos)")
    p.add_argument("--compare-frames", type=int, default=3, help="comparison images per clip (0: none)")
    p.add_argument("--crop-size", type=int, default=192, help="comparison crop size in output pixels")
    p.add_argument("--save-frames", action="store_true", help="also write the restored frames as PNG")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out folder")
    return p.parse_args(argv)


def _resolve(args) -> None:
    """Check and normalise the arguments in place; raises UsageError."""
    if args.method != "swiftvr" and (args.checkpoint or args.preset or args.overrides or args.clip_len):
        raise UsageError("--checkpoint, --preset, --set and --clip-len apply to --method swiftvr only")
    if args.checkpoint and args.preset:
        raise UsageError("pass either --checkpoint or --preset, not both")
    if args.scale < 1:
        raise UsageError(f"--scale {args.scale} must be a positive integer")
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames {args.max_frames} must be at least 1")
    if args.degrade:
        deg_scale = int(args.degrade[len("bicubic"):]) if args.degrade.startswith("bicubic") else 4
        if deg_scale != args.scale:
            raise UsageError(f"--degrade {args.degrade} downscales by {deg_scale}; pass --scale {deg_scale}")
    args.paired = bool(args.degrade or args.lq)
    names = [m.strip() for spec in (args.metrics or []) for m in spec.split(",") if m.strip()]
    names = names or list(PAIRED_METRICS if args.paired else UNPAIRED_METRICS)
    unknown = [m for m in names if m not in METRIC_FORMAT]
    if unknown:
        raise UsageError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRIC_FORMAT)}")
    if not args.paired and set(names) - set(NO_REFERENCE):
        raise UsageError(f"metric(s) {', '.join(sorted(set(names) - set(NO_REFERENCE)))} need a reference; "
                         "pass --lq or --degrade, or use niqe/ewarp_dis")
    args.metrics = names
    for key in ("data", "lq", "out", "checkpoint", "lpips_weights", "dists_weights"):
        if getattr(args, key):
            setattr(args, key, os.path.abspath(getattr(args, key)))
    if os.path.isfile(args.out) or (os.path.isdir(args.out) and os.listdir(args.out) and not args.overwrite):
        raise UsageError(f"--out {args.out} exists and is not empty; choose a new folder or pass --overwrite")


def _clip_pairs(args) -> list[tuple[str, str, str | None]]:
    gt = find_clips(args.data)
    if args.clips:
        wanted = [c.strip() for c in args.clips.split(",") if c.strip()]
        missing = [c for c in wanted if c not in gt]
        if missing:
            raise UsageError(f"--clips {', '.join(missing)} not found in {args.data}")
        gt = {c: gt[c] for c in wanted}
    if not args.lq:
        return [(name, path, None) for name, path in gt.items()]
    lq = find_clips(args.lq)
    if len(gt) == 1 and len(lq) == 1:  # a single clip on each side: names may differ
        return [(next(iter(gt)), next(iter(gt.values())), next(iter(lq.values())))]
    missing = [c for c in gt if c not in lq]
    if missing:
        raise UsageError(f"--lq {args.lq} lacks clip(s) {', '.join(missing[:5])}; "
                         "it needs the same clip names as --data")
    return [(name, path, lq[name]) for name, path in gt.items()]


def evaluate_clip(args, name, gt_path, lq_path, restore, score_clip) -> tuple[dict, dict]:
    """Restore and score one clip (`score_clip(out, gt) -> {metric: value or None}`);
    returns (result row, frames for the comparison images)."""
    frames = read_clip(gt_path, args.max_frames)
    gt, degradation, seed = None, None, None
    if args.degrade:
        gt = mod_crop(frames, args.scale)
        seed = clip_seed(args.seed, name)
        lq, degradation = make_lq(gt, args.degrade, seed)
    elif args.lq:
        gt, lq = frames, read_clip(lq_path, args.max_frames)
        if len(lq) != len(gt):
            raise ValueError(f"GT has {len(gt)} frames but LQ has {len(lq)}")
        want = (lq.shape[1] * args.scale, lq.shape[2] * args.scale)
        if gt.shape[1] < want[0] or gt.shape[2] < want[1] or gt.shape[1] - want[0] >= args.scale \
                or gt.shape[2] - want[1] >= args.scale:
            raise ValueError(f"GT {gt.shape[1]}x{gt.shape[2]} is not LQ {lq.shape[1]}x{lq.shape[2]} x {args.scale}; "
                             "check --scale and --lq")
        gt = gt[:, : want[0], : want[1]]
    else:
        lq = frames
    t0 = time.perf_counter()
    out = restore(lq)
    seconds = time.perf_counter() - t0
    assert out.shape == (lq.shape[0], lq.shape[1] * args.scale, lq.shape[2] * args.scale, 3), out.shape
    row = {"clip": name, "frames": int(len(lq)), "lq_size": list(lq.shape[1:3]), "out_size": list(out.shape[1:3]),
           "seconds": seconds, "fps": len(lq) / seconds,
           "metrics": score_clip(out, gt)}
    if args.degrade:
        row.update(seed=seed, degradation=degradation)
    if args.save_frames:
        with video_io.open_writer(os.path.join(args.out, "frames", name), 24.0) as writer:
            writer.write(out)
    return row, {"lq": lq, "out": out, "gt": gt}


def write_comparisons(args, name, clip, baseline) -> list[str]:
    """Comparison PNGs for `--compare-frames` evenly spaced frames; returns their paths."""
    n = len(clip["out"])
    if args.compare_frames <= 0:
        return []
    index = sorted({int(round(i)) for i in np.linspace(0, n - 1, min(args.compare_frames, n))})
    lq = clip["lq"][index]
    panels = [("LQ (bicubic)", baselines.resize_upscale(lq, args.scale, "bicubic"))]
    if baseline is not None:
        panels.append((args.baseline, baseline(lq)))
    panels.append((args.method, clip["out"][index]))
    if clip["gt"] is not None:
        panels.append(("GT", clip["gt"][index]))
    os.makedirs(os.path.join(args.out, "compare"), exist_ok=True)
    paths = []
    for k, i in enumerate(index):
        ref = clip["gt"][i] if clip["gt"] is not None else clip["out"][i]
        img = comparison_image([(label, frames[k]) for label, frames in panels], detail_box(ref, args.crop_size))
        path = os.path.join(args.out, "compare", f"{name}_{i:06d}.png")
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def format_metric(value, metric) -> str:
    return "n/a" if value is None else format(value, METRIC_FORMAT[metric])


def markdown_table(args, rows: list[dict], means: dict, unavailable: dict) -> str:
    """Per-clip rows and the mean over clips as a Markdown table, then one line per unavailable metric."""
    cols = ["clip", "frames", *args.metrics, "fps"]
    lines = [f"**{args.method}** on `{os.path.basename(args.data)}`"
             f" ({'--degrade ' + args.degrade if args.degrade else '--lq' if args.lq else 'unpaired'}, x{args.scale})",
             "", "| " + " | ".join(cols) + " |", "|" + "|".join("---" if c == "clip" else "---:" for c in cols) + "|"]
    for r in rows:
        cells = [r["clip"], str(r["frames"]), *(format_metric(r["metrics"][m], m) for m in args.metrics),
                 f"{r['fps']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    frames, seconds = sum(r["frames"] for r in rows), sum(r["seconds"] for r in rows)
    cells = ["**mean**", str(frames), *(format_metric(means[m], m) for m in args.metrics),
             f"{frames / seconds:.2f}" if rows else "n/a"]
    lines.append("| " + " | ".join(cells) + " |")
    if unavailable:
        lines += ["", *(f"- {m}: n/a, {reason}" for m, reason in unavailable.items())]
    return "\n".join(lines) + "\n"


def environment() -> dict:
    import jax

    return {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def main(argv=None) -> int:
    """Run the evaluation command; returns 0 (all clips done), 1 (some clips failed) or 2 (usage error)."""
    args = _parse(argv)
    try:
        _resolve(args)
        pairs = _clip_pairs(args)
        networks = load_networks(args)  # a bad weight file is a usage error (WeightsError is a ValueError)
        restore, method_info = load_method(args)
        baseline = None if args.baseline == "none" else baselines.load_baseline(args.baseline, args.scale)
    except (UsageError, ValueError, FileNotFoundError, baselines.BaselineUnavailable) as e:
        print(f"swiftvr-eval: error: {e}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)

    rows, failed, images, unavailable = [], [], [], {}

    def score_clip(out, gt):
        return score(out, gt, args.metrics, args.crop_border, networks, unavailable)

    bar = tqdm(pairs, desc=args.method, unit="clip", file=sys.stderr)
    for name, gt_path, lq_path in bar:
        try:
            row, clip = evaluate_clip(args, name, gt_path, lq_path, restore, score_clip)
            images += write_comparisons(args, name, clip, baseline)
        except Exception as e:  # noqa: BLE001 - any failure of one clip is reported and the run goes on
            msg = f"{type(e).__name__}: {e}".splitlines()[0]
            tqdm.write(f"clip {name} failed and is skipped: {msg}", file=sys.stderr)
            failed.append({"clip": name, "error": msg})
            continue
        rows.append(row)
        first = args.metrics[0]
        bar.set_postfix({first: format_metric(row["metrics"][first], first), "fps": f"{row['fps']:.1f}"})
    bar.close()

    means = {m: _mean([r["metrics"][m] for r in rows]) for m in args.metrics}
    with open(os.path.join(args.out, "metrics.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["clip", "frames", "lq_h", "lq_w", "out_h", "out_w", "seconds", "fps", *args.metrics])
        for r in rows:
            writer.writerow([r["clip"], r["frames"], *r["lq_size"], *r["out_size"], repr(r["seconds"]),
                             repr(r["fps"]), *("" if r["metrics"][m] is None else repr(r["metrics"][m])
                                               for m in args.metrics)])
    summary = {"args": vars(args), "method": method_info, "baseline": args.baseline,
               "dataset": {"kind": "degrade" if args.degrade else "lq" if args.lq else "unpaired",
                           "clips": len(pairs), "evaluated": len(rows), "frames": sum(r["frames"] for r in rows)},
               "mean_over_clips": means, "unavailable": unavailable, "clips": rows, "failed": failed,
               "comparison_images": [os.path.relpath(p, args.out) for p in images], "environment": environment()}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=json_default)
    table = markdown_table(args, rows, means, unavailable)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table)
    print(table)
    if failed:
        print(f"swiftvr-eval: {len(failed)} of {len(pairs)} clip(s) failed: "
              + ", ".join(f["clip"] for f in failed), file=sys.stderr)
        return 1
    return 0


def json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


if __name__ == "__main__":
    sys.exit(main())

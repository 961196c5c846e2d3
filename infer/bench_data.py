"""Data benchmark: loader clips/s with full degradation, time per degradation step, the train
step's consumption rate, and a picture grid of the degradation steps.

Measures on this machine, in order: (1) clips per second from the real loader (`make_loader`,
bundled sources, `--clip-frames` x `--hq-size`^2 HQ, the `data.degradation` preset) with each worker
count of `--workers`; (2) the seconds each `degrade.STEPS` step takes per clip, from
`degrade_clip(..., timings=)` on the same HQ clips; (3) the `teacher` train step of the preset
on one device, for a batch of `train.batch_size` loader clips (cut to a multiple of 4 frames, as
training requires); (4) the step again while a loader with the most workers of `--workers` feeds
it, with the time spent waiting for data. Writes a PNG grid (rows: clips; columns: HQ, LQ, the
clip after each step), JSON (config, results, machine) and prints tables. The machine may be
shared: each row reports how many cores other processes kept busy while it was measured, and
the CPU seconds per clip, which do not depend on them.

    python -m infer.bench_data --preset small
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import sys
import time
from typing import Any

import jax
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from infer.benchmark import _fmt_table, _machine, time_call
from swiftvr_jax.config import ConfigError, get_config
from swiftvr_jax.data import ClipDataset, DataError, load_clips, make_loader
from swiftvr_jax.degrade import STEPS, degrade_clip

_TILE_LABEL_H = 34  # pixels above each grid tile for its two label lines


class _CPU:
    """CPU seconds of this process and its waited-for children (loader workers, once closed), and of
    everything else on the machine (Linux /proc/stat), over a `with` block.

    The machine may be shared: `other_cores` (other processes' average busy cores) says how much
    the wall-clock rates measured in the block were slowed by them.
    """

    @staticmethod
    def _own() -> float:
        r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime

    @staticmethod
    def _machine() -> float:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> _CPU:
        self._t, self._own0, self._all0 = time.perf_counter(), self._own(), self._machine()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._t
        self.own = self._own() - self._own0
        self.other_cores = max(self._machine() - self._all0 - self.own, 0.0) / self.wall


def add_data_args(p: argparse.ArgumentParser) -> None:
    """The options `bench_data` reads (all have defaults)."""
    p.add_argument("--clip-frames", type=int, default=25, help="data: HQ frames per loader clip")
    p.add_argument("--hq-size", type=int, default=256, help="data: HQ crop side in pixels")
    p.add_argument("--workers", default="0,2", help="data: loader worker counts to time, comma separated")
    p.add_argument("--batches", type=int, default=6, help="data: loader batches per worker count")
    p.add_argument("--stage-clips", type=int, default=12, help="data: clips for the per-step degradation times")
    p.add_argument("--steps", type=int, default=2, help="data: timed train steps (alone and with the loader)")
    p.add_argument("--grid-rows", type=int, default=4, help="data: clips (rows) in the picture grid")
    p.add_argument("--no-step", action="store_true", help="data: skip the train-step measurements")


def _loader_rate(cfg, args, workers: int, clip_frames: int) -> tuple[dict, dict]:
    """Steady clips/s of the loader with `workers` processes, and its last batch.

    With w workers batch j is ready about (j // w + 1) batch-times after start, so the steady
    window starts at batch max(w, 1) - 1: earlier batches were built during start-up.
    cpu_s_per_clip counts the main process and the workers, start-up included.
    """
    data_cfg = dataclasses.replace(cfg.data, num_workers=workers)
    b, n = cfg.train.batch_size, args.batches
    with _CPU() as cpu:
        t0 = time.perf_counter()
        with make_loader(data_cfg, split="train", clip_frames=clip_frames, hq_size=args.hq_size, batch_size=b,
                         scale=cfg.train.scale, seed=cfg.train.seed, num_batches=n) as loader:
            arrivals = []
            for batch, _ in loader:
                arrivals.append(time.perf_counter())
                batch = {k: np.array(batch[k]) for k in ("hq", "lq")}  # own copies, off Grain's shared memory
    k0 = max(workers, 1) - 1
    steady = (n - 1 - k0) * b / (arrivals[-1] - arrivals[k0])
    row = {"what": f"loader, {workers} workers", "workers": workers, "clips_per_s": steady,
           "frames_per_s": steady * clip_frames, "first_batch_s": arrivals[0] - t0,
           "overall_clips_per_s": n * b / (arrivals[-1] - t0), "clips": n * b,
           "cpu_s_per_clip": cpu.own / (n * b), "other_cores": cpu.other_cores}
    return row, batch


def _hq_clips(dataset: ClipDataset, count: int, seed: int) -> list[tuple[str, np.ndarray, float]]:
    """(source name, float32 HQ clip, CPU seconds to make it) for `count` clips spread over the sources."""
    picks = np.linspace(0, len(dataset.clips) - 1, count).round().astype(int)
    out = []
    for i, k in enumerate(picks):
        clip = dataset.clips[k]
        t0 = time.process_time()
        hq, _ = dataset.hq_clip(clip, np.random.default_rng([seed, i]))
        hq = hq.astype(np.float32) / 255.0
        out.append((clip.name, hq, time.process_time() - t0))
    return out


def _applied(step: str, params: dict[str, Any]) -> bool:
    """Whether `step` changed the clip in a run with these `degrade_clip` params."""
    group, _, key = step.partition(".")
    if step == "final" or key == "final_resize":
        return True
    value = params.get(group, {}).get(key)
    return value is not None and not (key == "resize" and value["updown"] == "keep")


def _stage_times(dataset: ClipDataset, clips, seed: int) -> list[dict]:
    """Mean wall milliseconds per clip of each degradation step (0 counted when a step is skipped),
    and CPU milliseconds per clip of the whole degradation and of making the HQ clip."""
    totals = dict.fromkeys(STEPS, 0.0)
    applied = dict.fromkeys(STEPS, 0)
    cpu_s = 0.0
    for i, (_, hq, _) in enumerate(clips):
        timings: dict[str, float] = {}
        t0 = time.process_time()
        _, params = degrade_clip(hq, np.random.default_rng([seed, i, 1]), dataset.degradation, dataset.scale,
                                 timings=timings)
        cpu_s += time.process_time() - t0
        for name, seconds in timings.items():
            totals[name] += seconds
            applied[name] += _applied(name, params)
    n = len(clips)
    total = sum(totals.values())
    rows = [{"step": s, "ms_per_clip": 1e3 * totals[s] / n, "share": totals[s] / total, "applied": applied[s] / n}
            for s in STEPS]
    hq_s = statistics.mean(t for _, _, t in clips)
    rows.append({"step": "degradation total", "ms_per_clip": 1e3 * total / n, "share": 1.0,
                 "cpu_ms_per_clip": 1e3 * cpu_s / n})
    rows.append({"step": "HQ clip (read, crop, camera path)", "cpu_ms_per_clip": 1e3 * hq_s})
    return rows


# ----------------------------------------------------------------------------- picture grid


def _label(name: str, params: dict[str, Any]) -> str:
    """A short description of what `name` did in this clip's `params`."""
    group, _, key = name.partition(".")
    p = params.get(group, {})
    if key in ("blur", "final_sinc"):
        b = p.get(key)
        if b is None:
            return "off"
        shape = f"w={b['omega'][0]:.2f}" if b["kernel"] == "sinc" else f"s={b['sigma_x'][0]:.1f},{b['sigma_y'][0]:.1f}"
        return f"{b['kernel'].replace('generalized', 'gen')} {b['size']} {shape}"
    if key == "resize":
        r = p["resize"]
        return "keep" if r["updown"] == "keep" else f"x{r['factor']:.2f} {r['mode']}"
    if key == "noise":
        q = p["noise"]
        return "off" if q is None else f"{q['type']}{' gray' if q['gray'] else ''} {q['level'][0]:.1f}"
    if key == "jpeg":
        return "off" if p["jpeg"] is None else f"q={p['jpeg']['quality'][0]}"
    if key == "video":
        v = p["video"]
        return "off" if v is None else f"{v['codec']} {v['bitrate'] // 1000}k"
    if key == "final_resize":
        return p["final_resize_mode"]
    return ""


def _tile(frame: np.ndarray, size: tuple[int, int], title: str, note: str, font) -> Image.Image:
    """A labelled tile: `frame` float [h, w, 3] shown at `size` (h, w) with nearest neighbours."""
    img = Image.fromarray(np.round(np.clip(frame, 0, 1) * 255).astype(np.uint8))
    img = img.resize((size[1], size[0]), Image.NEAREST)
    tile = Image.new("RGB", (size[1], size[0] + _TILE_LABEL_H), "white")
    tile.paste(img, (0, _TILE_LABEL_H))
    draw = ImageDraw.Draw(tile)
    draw.text((3, 1), title, fill="black", font=font)
    draw.text((3, 17), note, fill=(60, 60, 160), font=font)
    return tile


def degradation_grid(dataset: ClipDataset, clips, seed: int, path: str) -> list[list[str]]:
    """Write the grid PNG: per clip (row), the middle frame as HQ, LQ and after each step in the
    order the steps ran (stage 2's video step runs before or after its final resize + sinc).
    Returns each row's column names."""
    font = ImageFont.load_default(size=13)
    rows, names = [], []
    for i, (name, hq, _) in enumerate(clips):
        mid = hq.shape[0] // 2
        seen: dict[str, np.ndarray] = {}  # in the order the steps ran
        lq, params = degrade_clip(hq, np.random.default_rng([seed, i, 1]), dataset.degradation, dataset.scale,
                                  on_stage=lambda step, clip: seen.__setitem__(step, clip[mid].copy()))
        size = hq.shape[1:3]
        tiles = [_tile(hq[mid], size, "HQ", name[:30], font),
                 _tile(lq[mid], size, "LQ", f"{lq.shape[2]}x{lq.shape[1]} (nearest)", font)]
        steps = [s for s in seen if s != "final"]  # "final" is the LQ
        for step in steps:
            h, w = seen[step].shape[:2]
            tiles.append(_tile(seen[step], size, step, f"{_label(step, params)}  {w}x{h}", font))
        rows.append(tiles)
        names.append(["HQ", "LQ"] + steps)
    th, tw = rows[0][0].height, rows[0][0].width
    grid = Image.new("RGB", (max(map(len, rows)) * (tw + 2), len(rows) * (th + 2)), "white")
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            grid.paste(tile, (c * (tw + 2), r * (th + 2)))
    grid.save(path, optimize=True)
    return names


# ----------------------------------------------------------------------------- train step


def _step_rates(cfg, args, batch: dict, workers: int) -> list[dict]:
    """Clips/s of the `teacher` step on one device: alone, then fed by a loader with `workers`."""
    from swiftvr_jax.config import MeshConfig
    from swiftvr_jax.sharding import make_mesh
    from swiftvr_jax.training.trainer import Trainer

    t_frames, b = cfg.train.clip_frames, cfg.train.batch_size
    mesh = make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1])
    t0 = time.perf_counter()
    trainer = Trainer(cfg, "teacher", mesh)
    state, frozen = trainer.init(trainer.random_groups(cfg.train.seed))
    init_s = time.perf_counter() - t0
    box = {"state": state}

    def one(host):  # the step donates its state: thread it through
        box["state"], metrics = trainer.step(box["state"], frozen,
                                             trainer.shard_batch({k: host[k][:, :t_frames] for k in ("hq", "lq")}))
        return metrics

    t0 = time.perf_counter()
    jax.block_until_ready(one(batch))
    first_s = time.perf_counter() - t0  # compiles
    with _CPU() as cpu:
        t = time_call(one, batch, warmup=0, repeats=args.steps)
    alone = b / t["median_s"]
    rows = [{"what": f"train step alone (teacher, B={b}, {t_frames} frames)", "clips_per_s": alone,
             "frames_per_s": alone * t_frames, "step_s": t["median_s"], "init_s": init_s, "first_step_s": first_s,
             "cpu_s_per_clip": cpu.own / (args.steps * b), "other_cores": cpu.other_cores}]
    print(f"  step alone: {t['median_s']:.2f} s per step", file=sys.stderr, flush=True)

    # The real arrangement: loader workers and the step share this machine.
    data_cfg = dataclasses.replace(cfg.data, num_workers=workers)
    waits, steps = [], []
    with _CPU() as cpu, make_loader(data_cfg, split="train", clip_frames=args.clip_frames, hq_size=args.hq_size,
                                    batch_size=b, scale=cfg.train.scale, seed=cfg.train.seed + 1,
                                    num_batches=args.steps + 1) as loader:
        it = iter(loader)
        jax.block_until_ready(one(next(it)[0]))  # start-up: workers spawn while this step runs
        for _ in range(args.steps):
            t0 = time.perf_counter()
            host, _ = next(it)
            t1 = time.perf_counter()
            jax.block_until_ready(one(host))
            waits.append(t1 - t0)
            steps.append(time.perf_counter() - t1)
    per_step = statistics.mean(w + s for w, s in zip(waits, steps))
    rows.append({"what": f"train step fed by loader ({workers} workers)", "workers": workers,
                 "clips_per_s": b / per_step, "frames_per_s": b / per_step * t_frames,
                 "step_s": statistics.mean(steps), "wait_s": statistics.mean(waits),
                 "step_times_s": steps, "wait_times_s": waits, "other_cores": cpu.other_cores})
    print(f"  step with loader: {statistics.mean(steps):.2f} s compute + {statistics.mean(waits):.2f} s waiting",
          file=sys.stderr, flush=True)
    return rows


def bench_data(cfg, args) -> dict:
    """Run the data benchmark (see the module docstring); writes the grid PNG under `args.out`.

    Returns {"config": the step's resolved config (dict), "loader": rows, "stages": rows,
    "step": rows, "grid_png": path, "grid_columns": names}; rates in clips/s, times in seconds.
    """
    try:
        workers = sorted({int(w) for w in str(args.workers).split(",")})
    except ValueError:
        raise ConfigError(f"--workers {args.workers!r} must be worker counts separated by commas, e.g. 0,2") from None
    if args.clip_frames < 4 or args.hq_size % cfg.train.scale or min(workers) < 0:
        raise ConfigError(f"--clip-frames {args.clip_frames} must be >= 4, --hq-size {args.hq_size} a multiple of the scale "
                          f"{cfg.train.scale}, --workers >= 0")
    most = max(max(workers), 1)
    if args.batches < most + 1:  # the steady window of `_loader_rate` needs two batches
        raise ConfigError(f"--batches {args.batches} is too few for {max(workers)} workers; use at least {most + 1}")
    # Training clips are a multiple of 4 frames: the step gets the loader's first 4k frames.
    step_frames = args.clip_frames - args.clip_frames % 4
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, clip_frames=step_frames, hq_size=args.hq_size))
    os.makedirs(args.out, exist_ok=True)

    loader_rows, batch = [], None
    for w in workers:
        print(f"  loader with {w} workers ...", file=sys.stderr, flush=True)
        row, batch = _loader_rate(cfg, args, w, args.clip_frames)
        loader_rows.append(row)
        print(f"    {row['clips_per_s']:.2f} clips/s", file=sys.stderr, flush=True)

    print("  degradation steps ...", file=sys.stderr, flush=True)
    dataset = ClipDataset(load_clips(cfg.data, split="train", clip_frames=args.clip_frames, hq_size=args.hq_size),
                          clip_frames=args.clip_frames, hq_size=args.hq_size, scale=cfg.train.scale, seed=cfg.train.seed,
                          cfg=cfg.data)
    clips = _hq_clips(dataset, max(args.stage_clips, args.grid_rows), cfg.train.seed)
    stage_rows = _stage_times(dataset, clips[:args.stage_clips], cfg.train.seed)
    grid_png = os.path.join(args.out, "bench_data_grid.png")
    grid_clips = [clips[i] for i in np.linspace(0, len(clips) - 1, args.grid_rows).round().astype(int)]
    columns = degradation_grid(dataset, grid_clips, cfg.train.seed, grid_png)

    step_rows, summary = [], {}
    if not args.no_step:
        print("  train step ...", file=sys.stderr, flush=True)
        step_rows = _step_rates(cfg, args, batch, max(workers))
        alone = step_rows[0]
        for row in loader_rows:  # > 1: the loader outruns the step
            row["loader_over_step"] = row["clips_per_s"] / alone["clips_per_s"]
        # CPU seconds are what the loader and the step split between them on a CPU-only machine,
        # and unlike wall rates they do not depend on what else the machine is running.
        make_cpu_s = sum(r.get("cpu_ms_per_clip", 0.0) for r in stage_rows) / 1e3
        summary = {"loader_over_step": {r["workers"]: r["loader_over_step"] for r in loader_rows},
                   "step_cpu_s_per_clip": alone["cpu_s_per_clip"], "loader_cpu_s_per_clip": make_cpu_s,
                   "step_over_loader_cpu": alone["cpu_s_per_clip"] / make_cpu_s}
    return {"config": cfg.to_dict(), "loader": loader_rows, "stages": stage_rows, "step": step_rows,
            "summary": summary, "grid_png": grid_png, "grid_columns": columns}


def data_tables(result: dict) -> str:
    """The printed tables of a `bench_data` result."""
    rates = _fmt_table(result["loader"] + result["step"], [
        ("what", "what", ""), ("clips/s", "clips_per_s", ".2f"), ("frames/s", "frames_per_s", ".1f"),
        ("loader/step", "loader_over_step", ".2f"), ("first batch s", "first_batch_s", ".1f"),
        ("step s", "step_s", ".2f"), ("wait s", "wait_s", ".2f"), ("first step s", "first_step_s", ".1f"),
        ("CPU s/clip", "cpu_s_per_clip", ".2f"), ("other cores", "other_cores", ".2f")])
    stages = _fmt_table(result["stages"], [("step", "step", ""), ("ms/clip", "ms_per_clip", ".1f"),
                                          ("share", "share", ".2f"), ("applied", "applied", ".2f"),
                                          ("CPU ms/clip", "cpu_ms_per_clip", ".1f")])
    lines = [rates, "", stages]
    s = result["summary"]
    if s:
        lines += ["", "loader/step (clips/s): " + ", ".join(f"{w} workers {r:.2f}" for w, r in
                                                            s["loader_over_step"].items()),
                  f"CPU per clip: step {s['step_cpu_s_per_clip']:.2f} s, making a clip (HQ + degradation) "
                  f"{s['loader_cpu_s_per_clip']:.2f} s; step/loader {s['step_over_loader_cpu']:.2f}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. data.degradation=light (repeatable)")
    p.add_argument("--out", default="bench_out")
    add_data_args(p)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        cfg = get_config(args.preset, args.overrides)
        result = bench_data(cfg, args)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t = cfg.train
    print(f"\ndata benchmark on {os.cpu_count()} CPU cores, step on {jax.devices()[0].device_kind} "
          f"({jax.default_backend()}); preset {cfg.preset}, batch {t.batch_size}, loader clips "
          f"{args.clip_frames}x{args.hq_size}x{args.hq_size} (x{t.scale}, {cfg.data.degradation}), overrides "
          f"{args.overrides or 'none'}\n")
    print(data_tables(result))
    path = os.path.join(args.out, "bench_data.json")
    with open(path, "w") as f:
        json.dump({"benchmark": "data", "args": vars(args), "machine": _machine(),
                   "seconds": time.perf_counter() - t0, **result}, f, indent=2)
    print(f"\nwrote {path} and {result['grid_png']} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmarks: `attention` (full / swin / mfswa self-attention) and `dit` (whole DiT forward).

Every run times all modes in the same process, reports medians over repeats after
warm-up, ratios against MFSWA, achieved GFLOP/s and the machine's dense-matmul GFLOP/s
(the ceiling), prints a table and writes JSON (resolved config + results).

    python -m infer.benchmark attention --preset small
    python -m infer.benchmark dit --preset small --set model.num_layers=2
    python -m infer.benchmark stream --preset small --size 128x224
    python -m infer.benchmark data --preset small     (infer/bench_data.py)
    python -m infer.benchmark train --preset small    (infer/bench_train.py)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from swiftvr_jax.attention import ATTENTION_MODES, attention, attention_flops
from swiftvr_jax.config import ConfigError, get_config

# Output resolution -> latent token grid (h, w) after ReAE (16x) and patchify (2x), 4K padded.
RESOLUTIONS = {"1080p": (34, 60), "1440p": (45, 80), "4k": (68, 120)}


def time_call(fn, *args, warmup: int = 1, repeats: int = 3) -> dict:
    """Median/min wall time (s) of `fn(*args)` after warm-up; blocks on the result."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats}


def matmul_gflops(n: int | None = None, dtype=jnp.float32, repeats: int = 5) -> float:
    """Measured dense n x n matmul throughput in GFLOP/s: the reference ceiling.

    n defaults to 2048 on CPU and 8192 on accelerators (smaller products leave a GPU idle)."""
    n = n or (2048 if jax.default_backend() == "cpu" else 8192)
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
    f = jax.jit(lambda a: a @ a)
    t = time_call(f, a, warmup=2, repeats=repeats)["median_s"]
    return 2 * n ** 3 / t / 1e9


def full_attention_bytes(tokens: int, heads: int, batch: int = 1) -> float:
    """Bytes of the float32 score matrix a dense (non-flash) attention materialises."""
    return 4.0 * batch * heads * tokens * tokens


def _machine() -> dict:
    return {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
            "device_kind": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "jax": jax.__version__}


def _fmt_table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    head = " | ".join(h for h, _, _ in cols)
    lines = [head, " | ".join("-" * len(h) for h, _, _ in cols)]
    for r in rows:
        cells = []
        for h, key, fmt in cols:
            v = r.get(key)
            cells.append(("-" if v is None else format(v, fmt)).rjust(len(h)))
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def _skip_reason(mode, tokens, heads, max_mem_gb):
    need = full_attention_bytes(tokens, heads) / 2 ** 30
    if mode == "full" and jax.default_backend() == "cpu" and need > max_mem_gb:
        return f"skipped: dense scores need {need:.1f} GiB > --max-mem-gb {max_mem_gb}"
    return None


def _out_of_memory(e: Exception) -> bool:
    return "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower()


def bench_attention(cfg, args) -> list[dict]:
    from swiftvr_jax.models.dit import attention_implementation

    heads, hd = cfg.model.num_heads, cfg.model.head_dim
    dtype = jnp.dtype(cfg.model.dtype)
    impl = attention_implementation(cfg.model)
    rows = []
    for res in args.resolutions:
        h, w = RESOLUTIONS[res]
        grid = (args.frames, h, w)
        tokens = int(np.prod(grid))
        rng = np.random.default_rng(0)
        q, k, v = (jnp.asarray(rng.standard_normal((1, tokens, heads, hd)), dtype) for _ in range(3))
        per_mode = {}
        for mode in args.modes:
            row = {"resolution": res, "grid": f"{args.frames}x{h}x{w}", "mode": mode, "tokens": tokens,
                   "impl": impl or "xla"}
            reason = _skip_reason(mode, tokens, heads, args.max_mem_gb)
            if reason:
                row["note"] = reason
                rows.append(row)
                continue
            # Unshifted and shifted layers alternate in the DiT: time one of each.
            f = jax.jit(lambda q, k, v, mode=mode: (
                attention(q, k, v, mode=mode, grid=grid, window=cfg.model.window, shift=False, implementation=impl)
                + attention(q, k, v, mode=mode, grid=grid, window=cfg.model.window, shift=mode != "full",
                            implementation=impl)))
            try:
                t = time_call(f, q, k, v, warmup=args.warmup, repeats=args.repeats)
            except Exception as e:  # an accelerator's memory: record it and go on with the other modes
                if not _out_of_memory(e):
                    raise
                row["note"] = "out of device memory"
                rows.append(row)
                continue
            flops = sum(attention_flops(mode, grid, cfg.model.window, s and mode != "full", heads, hd) for s in (False, True))
            row.update(ms=1e3 * t["median_s"] / 2, gflops=flops / t["median_s"] / 1e9)
            per_mode[mode] = row
            rows.append(row)
            print(f"  {res} {mode}: {row['ms']:.1f} ms per call", file=sys.stderr, flush=True)
        for mode, row in per_mode.items():
            if "mfswa" in per_mode:
                row["ratio_vs_mfswa"] = row["ms"] / per_mode["mfswa"]["ms"]
    return rows


def dit_linear_flops(cfg, tokens: int) -> float:
    """Matmul FLOPs of one DiT forward outside self-attention (projections, FFN, head)."""
    m = cfg.model
    per_block = 2 * tokens * (6 * m.dim * m.dim + 2 * m.dim * m.ffn_dim)
    embed = 2 * tokens * m.dim * (m.in_channels * int(np.prod(m.patch))) * 2
    cross = 4 * tokens * m.text_len * m.dim
    return m.num_layers * (per_block + cross) + embed


def bench_dit(cfg, args) -> list[dict]:
    from flax import nnx

    from swiftvr_jax.models.dit import DiT, attention_implementation

    rows = []
    m = cfg.model
    for res in args.resolutions:
        h, w = RESOLUTIONS[res]
        grid = (args.frames, h, w)
        tokens = int(np.prod(grid))
        x = jnp.asarray(np.random.default_rng(0).standard_normal(
            (1, args.frames, h * m.patch[1], w * m.patch[2], m.in_channels)), jnp.float32)
        text = jnp.zeros((1, m.text_len, m.text_dim), jnp.float32)
        per_mode = {}
        for mode in args.modes:
            row = {"resolution": res, "grid": f"{args.frames}x{h}x{w}", "mode": mode, "tokens": tokens,
                   "impl": attention_implementation(m) or "xla"}
            reason = _skip_reason(mode, tokens, m.num_heads, args.max_mem_gb)
            if reason:
                row["note"] = reason
                rows.append(row)
                continue
            mcfg = dataclasses.replace(m, attention=mode)
            graphdef, state = nnx.split(DiT(mcfg, rngs=nnx.Rngs(0)))
            kv = jax.jit(lambda s, t: nnx.merge(graphdef, s).cross_kv(t))(state, text)
            f = jax.jit(lambda s, x, kv: nnx.merge(graphdef, s)(x, 1000.0, cross_kv=kv))
            try:
                t0 = time.perf_counter()
                f.lower(state, x, kv).compile()
                compile_s = time.perf_counter() - t0
                t = time_call(f, state, x, kv, warmup=args.warmup, repeats=args.repeats)
            except Exception as e:
                if not _out_of_memory(e):
                    raise
                row["note"] = "out of device memory"
                rows.append(row)
                del state, f
                continue
            attn = sum(attention_flops(mode, grid, m.window, i % 2 == 1 and mode != "full", m.num_heads, m.head_dim)
                       for i in range(m.num_layers))
            flops = attn + dit_linear_flops(cfg, tokens)
            row.update(ms=1e3 * t["median_s"], gflops=flops / t["median_s"] / 1e9, compile_s=compile_s,
                       attn_flop_share=attn / flops)
            per_mode[mode] = row
            rows.append(row)
            print(f"  {res} {mode}: {row['ms']:.1f} ms per forward", file=sys.stderr, flush=True)
            del state, f
        for mode, row in per_mode.items():
            if "mfswa" in per_mode:
                row["ratio_vs_mfswa"] = row["ms"] / per_mode["mfswa"]["ms"]
    return rows


class _PeakRSS:
    """Samples this process's resident memory (Linux /proc) in a thread; `.peak` in bytes."""

    def __init__(self, interval: float = 0.01):
        import threading

        self.peak, self._stop, self.interval = self.current(), threading.Event(), interval
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.current())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def _device_peak_bytes():
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def _run_stream(pipe, frames_lq: np.ndarray, n_chunks: int, clip_len: int, upscale: int, profile: bool):
    """Feed a synthetic stream of exactly `n_chunks` chunks; returns timing and memory numbers."""
    tf = pipe.time_factor
    # n frames such that the plan is FIRST + (n_chunks-2) MIDDLE + LAST(one 4-frame group).
    n = clip_len + tf + (n_chunks - 2) * clip_len + 1
    session = pipe.stream(upscale=upscale, clip_len=clip_len, profile=profile)
    io_s, t0 = 0.0, time.perf_counter()
    with _PeakRSS() as rss:
        for i in range(0, n, 4):
            idx = np.arange(i, min(i + 4, n)) % len(frames_lq)
            t_io = time.perf_counter()
            group = frames_lq[idx]
            io_s += time.perf_counter() - t_io
            for out in session.push(group):
                t_io = time.perf_counter()
                np.asarray(out)  # device -> host copy, as a writer would
                io_s += time.perf_counter() - t_io
        for out in session.finish():
            t_io = time.perf_counter()
            np.asarray(out)
            io_s += time.perf_counter() - t_io
    total = time.perf_counter() - t0
    assert len(session.chunk_kinds) == n_chunks, session.chunk_kinds
    return {"frames": session.frames_out, "seconds": total, "fps": session.frames_out / total, "io_s": io_s,
            "timings": session.timings, "chunks": session.chunk_kinds, "peak_rss_bytes": rss.peak}


def _compile_seconds(pipe, lq_hw, upscale: int, clip_len: int) -> float:
    """Ahead-of-time compile time of encode, DiT and decode for the FIRST and MIDDLE chunk shapes."""
    out_hw = (lq_hw[0] * upscale, lq_hw[1] * upscale)
    enc, dec = pipe.init_states(out_hw)
    total = 0.0
    for frames, trim in ((clip_len + pipe.time_factor, pipe.time_factor - 1), (clip_len, 0)):
        x = jax.ShapeDtypeStruct((1, frames, *lq_hw, 3), jnp.uint8)
        t0 = time.perf_counter()
        z, enc_next, x_up = jax.eval_shape(lambda p, s, x: pipe.encode_step(p, s, x, out_hw=out_hw),
                                           pipe.reae_state, enc, x)
        pipe.encode_step.lower(pipe.reae_state, enc, x, out_hw=out_hw).compile()
        pipe.dit_step.lower(pipe.dit_state, z, pipe.cross_kv, jnp.int32(0)).compile()
        pipe.decode_step.lower(pipe.reae_state, dec, z, x_up, out_hw=out_hw, trim=trim).compile()
        total += time.perf_counter() - t0
        enc = enc_next  # a MIDDLE chunk follows the FIRST one's state
    return total


def bench_stream(cfg, args) -> list[dict]:
    from swiftvr_jax.pipeline import SwiftVRPipeline

    h, w = (int(v) for v in args.size.lower().split("x"))
    up, clip_len = cfg.stream.upscale, cfg.stream.clip_len
    if h % up or w % up:
        raise ConfigError(f"--size {args.size} must be divisible by the upscale {up}")
    pipe = SwiftVRPipeline.from_config(cfg, seed=0)
    rng = np.random.default_rng(0)
    lq = rng.integers(0, 256, (clip_len + 8, h // up, w // up, 3), dtype=np.uint8)
    base_rss = _PeakRSS.current()
    compile_s = _compile_seconds(pipe, (h // up, w // up), up, clip_len)
    _run_stream(pipe, lq, args.chunks, clip_len, up, profile=True)  # warm-up: fills the jit caches
    steady = _run_stream(pipe, lq, args.chunks, clip_len, up, profile=True)
    compiles = pipe.compilations()
    mem = {}
    for n in (2, 20):
        r = _run_stream(pipe, lq, n, clip_len, up, profile=False)
        mem[n] = r["peak_rss_bytes"] - base_rss
    row = {"size": f"{h}x{w}", "upscale": up, "clip_len": clip_len, "chunks": args.chunks,
           "fps": steady["frames"] / steady["seconds"], "compile_s": compile_s,
           "io_ms_per_chunk": 1e3 * steady["io_s"] / args.chunks, "compilations": compiles,
           "rss_2_chunks_mb": mem[2] / 2 ** 20, "rss_20_chunks_mb": mem[20] / 2 ** 20,
           "rss_ratio_20_vs_2": mem[20] / max(mem[2], 1), "device_peak_bytes": _device_peak_bytes()}
    # Per chunk type: the MIDDLE chunks are the steady state that sets throughput.
    for stage in ("encode", "dit", "decode"):
        times = steady["timings"][stage]
        kinds = steady["chunks"]
        mids = [t for t, k in zip(times, kinds) if k == "middle"] or times
        row[f"{stage}_ms"] = 1e3 * statistics.median(mids)
    row["chunk_ms"] = row["encode_ms"] + row["dit_ms"] + row["decode_ms"]
    row["middle_chunk_fps"] = clip_len / (row["chunk_ms"] / 1e3)
    return [row]


# Benchmarks with their own options live in their own modules; `benchmark.py NAME ...` forwards to them.
SUBPROGRAMS = {"data": "infer.bench_data", "train": "infer.bench_train"}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBPROGRAMS:
        import importlib

        return importlib.import_module(SUBPROGRAMS[argv[0]]).main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["attention", "dit", "stream"])
    p.add_argument("--preset", default="small")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. model.num_layers=2 (repeatable)")
    p.add_argument("--resolutions", default="1080p,1440p,4k")
    p.add_argument("--modes", default=",".join(ATTENTION_MODES))
    p.add_argument("--frames", type=int, default=6, help="latent frames per chunk (6 = 24 video frames)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-mem-gb", type=float, default=6.0, help="CPU: skip dense attention needing more")
    p.add_argument("--size", default="128x224", help="stream: OUTPUT frame size HxW")
    p.add_argument("--chunks", type=int, default=10, help="stream: chunks in the timed stream")
    p.add_argument("--out", default="bench_out")
    args = p.parse_args(argv)
    try:
        cfg = get_config(args.preset, args.overrides)
        args.resolutions = [r.strip() for r in args.resolutions.split(",")]
        args.modes = [m.strip() for m in args.modes.split(",")]
        bad = [r for r in args.resolutions if r not in RESOLUTIONS] + [m for m in args.modes if m not in ATTENTION_MODES]
        if bad:
            raise ConfigError(f"unknown resolution/mode {bad}; choose from {list(RESOLUTIONS)} and {list(ATTENTION_MODES)}")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    print(f"measuring dense matmul throughput on {jax.default_backend()} ...", file=sys.stderr)
    ceiling = matmul_gflops(dtype=jnp.dtype(cfg.model.dtype))
    try:
        rows = {"attention": bench_attention, "dit": bench_dit, "stream": bench_stream}[args.what](cfg, args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    m = cfg.model
    note = (f"preset {cfg.preset}: dim {m.dim}, {m.num_layers} layers, {m.num_heads} heads x {m.head_dim}, "
            f"window {m.window}, {m.dtype}; overrides {args.overrides or 'none'}")
    cols = [("res", "resolution", ""), ("grid", "grid", ""), ("mode", "mode", ""), ("impl", "impl", ""),
            ("ms", "ms", ".1f"), ("x mfswa", "ratio_vs_mfswa", ".2f"), ("GFLOP/s", "gflops", ".1f")]
    if args.what == "dit":
        cols.append(("compile s", "compile_s", ".1f"))
    if args.what == "stream":
        cols = [("size", "size", ""), ("x", "upscale", "d"), ("encode ms", "encode_ms", ".0f"),
                ("DiT ms", "dit_ms", ".0f"), ("decode ms", "decode_ms", ".0f"), ("I/O ms", "io_ms_per_chunk", ".0f"),
                ("FPS", "fps", ".2f"), ("compile s", "compile_s", ".1f"), ("RSS 2ch MB", "rss_2_chunks_mb", ".0f"),
                ("RSS 20ch MB", "rss_20_chunks_mb", ".0f"), ("20/2", "rss_ratio_20_vs_2", ".2f")]
    print(f"\n{args.what} benchmark on {jax.devices()[0].device_kind} ({jax.default_backend()}); {note}")
    print(f"dense matmul ceiling: {ceiling:.1f} GFLOP/s\n")
    print(_fmt_table(rows, cols))
    for r in rows:
        if "compilations" in r:
            print(f"compilations after the streams: {r['compilations']} (one per chunk type: FIRST and MIDDLE/LAST)")
        if "note" in r:
            print(f"{r['resolution']} {r['mode']}: {r['note']}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"benchmark_{args.what}.json")
    with open(path, "w") as f:
        json.dump({"benchmark": args.what, "config": cfg.to_dict(), "args": vars(args), "machine": _machine(),
                   "matmul_gflops": ceiling, "rows": rows, "note": note}, f, indent=2)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

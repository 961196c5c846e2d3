"""Causal chunk-wise streaming restoration (DESIGN.md sections 1 and 5).

Per chunk: uint8 frames -> [0, 1] -> bilinear upsample by `upscale` -> zero-pad to a
multiple of the latent grid -> ReAE encode -> one DiT step `z_HQ = z_LQ - v(z_LQ, t=1)`
-> ReAE decode -> crop -> uint8. Encode, DiT and decode are jit-compiled with donated
state buffers; chunk shapes are fixed per chunk type, so a stream compiles once per
chunk type and resolution.

Chunk protocol for a stream of n >= 1 frames (every frame is kept): the stream is padded
at the end by repeating its last frame to N = 4*ceil((n+3)/4) frames, because the decoder
output lags its input by 3 frames (the first decode drops 3 warm-up frames). If N <=
clip_len+4 it is one SINGLE chunk; otherwise FIRST = clip_len+4 frames, MIDDLE chunks of
clip_len, and a LAST chunk of the remaining 4..clip_len frames. The LAST chunk's latents are
left-padded with the previous chunk's input latents so the DiT sees a full-size chunk; only
the new latents are kept. For the official t = 4a+1 frames this is exactly the official
schedule; other lengths just get a few more padded frames, whose outputs are dropped.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import os
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from swiftvr_jax.config import Config, StreamConfig, get_config
from swiftvr_jax.models import lqnet
from swiftvr_jax.models.reae import upsample
from swiftvr_jax.models.swiftvr import SwiftVR, load_pretrained

DEFAULT_WEIGHTS = os.path.join(os.path.dirname(__file__), "weights", "default")


class ChunkType(enum.Enum):
    SINGLE = "single"  # the whole (short) stream in one chunk
    FIRST = "first"
    MIDDLE = "middle"
    LAST = "last"


@dataclass(frozen=True)
class Chunk:
    kind: ChunkType
    frames: int  # padded frames the chunk covers (a multiple of 4)


def plan_chunks(n_frames: int, clip_len: int, first_done: bool = False, time_factor: int = 4) -> list[Chunk]:
    """Chunks for the last `n_frames` frames of a stream (all of it when not `first_done`).

    The frames are padded to a multiple of `time_factor` that leaves room for the decoder's
    `time_factor - 1` frames of lag; see the module docstring.
    """
    lag = time_factor - 1
    total = time_factor * -(-(n_frames + lag) // time_factor)
    if not first_done and total <= clip_len + time_factor:
        return [Chunk(ChunkType.SINGLE, total)]
    chunks, pos = [], 0
    if not first_done:
        chunks.append(Chunk(ChunkType.FIRST, clip_len + time_factor))
        pos = clip_len + time_factor
    while total - pos > clip_len:
        chunks.append(Chunk(ChunkType.MIDDLE, clip_len))
        pos += clip_len
    chunks.append(Chunk(ChunkType.LAST, total - pos))
    return chunks


def padded_size(h: int, w: int, multiple: int) -> tuple[int, int]:
    """(H, W) rounded up to a multiple of `multiple`."""
    return -(-h // multiple) * multiple, -(-w // multiple) * multiple


def _divisor(n: int, k: int) -> int:
    """The largest divisor of n that is at most k (0 stays 0: the whole chunk at once)."""
    return max((d for d in range(1, min(n, k) + 1) if n % d == 0), default=0)


class StreamSession:
    """One causal restoration stream: feed frames with `step`, finish with `flush`.

    `step(frames)` takes uint8 frames [T, h, w, 3] (or one [h, w, 3]) and returns the restored
    frames that became ready ([T', h*upscale, w*upscale, 3] uint8) or None; `flush()` pads the
    end, processes what is left and returns the remaining frames. Output frame i restores
    input frame i, and the total output count equals the input count.
    """

    def __init__(self, pipe: SwiftVRPipeline, upscale: int, clip_len: int, profile: bool = False):
        self.pipe = pipe
        self.upscale = upscale
        self.clip_len = clip_len
        self.profile = profile
        self.timings: dict[str, list[float]] = {"encode": [], "dit": [], "decode": []}
        self.chunk_kinds: list[str] = []
        self._buf: list[np.ndarray] = []
        self._size: tuple[int, int] | None = None
        self._first_done = False
        self._closed = False
        self._enc = self._dec = None
        self._prev_z = None  # previous chunk's input (LQ) latents, for the LAST chunk's left pad
        self._t_offset = 0  # global latent index of the next chunk
        self.frames_in = 0
        self.frames_out = 0
        self._to_trim = pipe.time_factor - 1

    # -- public ------------------------------------------------------------------------
    def step(self, frames) -> np.ndarray | None:
        """Add frames; return the restored frames that are ready (uint8) or None."""
        return _to_numpy(self.push(frames))

    def flush(self) -> np.ndarray | None:
        """End the stream: pad, restore what is buffered and return the last frames."""
        return _to_numpy(self.finish())

    # -- device-array variants (restore_video passes these to a background writer) -------
    def push(self, frames) -> list[jax.Array]:
        """Like `step`, but returns a list of device arrays without waiting for them."""
        if self._closed:
            raise RuntimeError("stream already flushed; open a new one with pipe.stream()")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [T, H, W, 3] (or [H, W, 3]); got {frames.dtype} {frames.shape}")
        if self._size is None:
            self._size = frames.shape[1:3]
        elif frames.shape[1:3] != self._size:
            raise ValueError(f"frame size changed from {self._size} to {frames.shape[1:3]} within one stream")
        self._buf.extend(frames)
        self._last_frame = frames[-1]
        self.frames_in += len(frames)
        out = []
        first = self.clip_len + self.pipe.time_factor
        if not self._first_done and len(self._buf) >= first:
            out += self._run(Chunk(ChunkType.FIRST, first), first)
        while self._first_done and len(self._buf) >= self.clip_len:
            out += self._run(Chunk(ChunkType.MIDDLE, self.clip_len), self.clip_len)
        return out

    def finish(self) -> list[jax.Array]:
        """Like `flush`, but returns device arrays."""
        if self._closed:
            return []
        self._closed = True
        if self.frames_in == 0:
            return []
        out = []
        for chunk in plan_chunks(len(self._buf), self.clip_len, self._first_done, self.pipe.time_factor):
            out += self._run(chunk, min(chunk.frames, len(self._buf)))
        # The padded tail produced a few surplus frames: keep exactly one output per input.
        surplus = self.frames_out - self.frames_in
        if surplus > 0:
            out[-1] = out[-1][: out[-1].shape[0] - surplus]
            self.frames_out -= surplus
        return [o for o in out if o.shape[0]]

    # -- one chunk ---------------------------------------------------------------------
    def _run(self, chunk: Chunk, n_real: int) -> list[jax.Array]:
        pipe, tf = self.pipe, self.pipe.time_factor
        real, self._buf = self._buf[:n_real], self._buf[n_real:]
        if chunk.kind == ChunkType.LAST:
            n_frames = self.clip_len  # fixed MIDDLE shapes: pad further; causality keeps the real part exact
        else:
            n_frames = chunk.frames
        pad = n_frames - len(real)
        x = np.stack(real + [self._last_frame] * pad)[None]  # [1, T, h, w, 3] uint8, end padded
        h, w = self._size
        out_hw = (h * self.upscale, w * self.upscale)
        if self._enc is None:
            self._enc, self._dec = pipe.init_states(out_hw)
        timer = _Timer(self.profile)

        z, self._enc, x_up = pipe.encode_step(pipe.reae_state, self._enc, x, out_hw=out_hw)
        timer.mark(z, self.timings["encode"])
        t_offset = self._t_offset
        if chunk.kind == ChunkType.LAST:
            k = chunk.frames // tf  # new latents in this chunk
            full = self.clip_len // tf
            z_in = jnp.concatenate([self._prev_z[:, self._prev_z.shape[1] - (full - k):], z[:, :k]], axis=1)
            t_offset -= full - k
        else:
            k, z_in = z.shape[1], z
        z_hq = pipe.dit_step(pipe.dit_state, z_in, pipe.cross_kv, jnp.int32(t_offset))
        timer.mark(z_hq, self.timings["dit"])
        if chunk.kind == ChunkType.LAST:
            z_hq = z_hq[:, z_hq.shape[1] - k:]
            z_hq = jnp.concatenate([z_hq, jnp.repeat(z_hq[:, -1:], z.shape[1] - k, axis=1)], axis=1)
        trim = self._to_trim
        frames, self._dec = pipe.decode_step(pipe.reae_state, self._dec, z_hq, x_up, out_hw=out_hw, trim=trim)
        timer.mark(frames, self.timings["decode"])
        self._to_trim = 0
        self._prev_z = z
        self._t_offset += k
        self._first_done = True
        self.chunk_kinds.append(chunk.kind.value)
        produced = k * tf - trim
        frames = frames[0, :produced] if produced != frames.shape[1] else frames[0]
        self.frames_out += produced
        return [frames]


class _Timer:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.t = time.perf_counter()

    def mark(self, value, into: list[float]) -> None:
        if self.enabled:
            jax.block_until_ready(value)
            now = time.perf_counter()
            into.append(now - self.t)
            self.t = now


def _to_numpy(arrays: list[jax.Array]) -> np.ndarray | None:
    if not arrays:
        return None
    return np.concatenate([np.asarray(a) for a in arrays], axis=0)


class SwiftVRPipeline:
    """Jit-compiled streaming restorer around a `SwiftVR` model.

    `SwiftVRPipeline.from_pretrained(path)` loads a weight directory; `restore_video(...)`
    restores a file or frame folder; `stream()` gives a `StreamSession` for frames you feed.
    """

    def __init__(self, model: SwiftVR, cfg: Config):
        self.cfg = cfg
        self.model = model
        self._dtype_views: dict[str, SwiftVRPipeline] = {}
        self.time_factor = cfg.reae.time_factor
        self.pad_multiple = cfg.reae.space_factor * cfg.model.patch[1]
        reae_graph, self.reae_state = nnx.split(model.reae)
        dit_graph, self.dit_state = nnx.split(model.dit)
        timestep = cfg.stream.timestep
        residual = cfg.reae.residual  # the decoder adds its output to the upsampled input (x_up)
        residual_resize = cfg.reae.residual_resize
        learned_base = cfg.reae.base_blocks > 0  # ReAE.residual_base adds its LQNet to the resize
        base_history = cfg.reae.base_frames - 1 if residual and learned_base else 0  # LQ frames kept between chunks
        per_step = cfg.stream.reae_latents_per_step

        @functools.partial(jax.jit, static_argnames=("out_hw",), donate_argnums=(1,))
        def encode_step(params, enc_state, frames, *, out_hw):
            # enc_state = (ReAE encoder memory, the last base_frames - 1 LQ frames seen or None)
            reae = nnx.merge(reae_graph, params)
            mem, history = enc_state
            x = frames.astype(jnp.float32) / 255.0  # [B, T, h, w, 3]
            ph, pw = padded_size(*out_hw, self.pad_multiple)
            pad = lambda v: jnp.pad(v, ((0, 0), (0, 0), (0, ph - out_hw[0]), (0, pw - out_hw[1]), (0, 0)))
            x_up = pad(upsample(x, out_hw))
            k = _divisor(x_up.shape[1] // self.time_factor, per_step)
            z, mem = reae.encode(x_up, mem, latents_per_step=k)
            if residual and (residual_resize != "bilinear" or learned_base):
                x_up = pad(reae.residual_base(x, out_hw, history=history, one_frame_at_a_time=per_step > 0))
            if base_history:  # the frames the next chunk's first frames see before them
                history = lqnet.causal_pad(x, base_history + 1, history)[:, -base_history:]
            return z, (mem, history), (x_up if residual else None)

        @jax.jit
        def dit_step(params, z, cross_kv, t_offset):
            dit = nnx.merge(dit_graph, params)
            return (z - dit(z, timestep, cross_kv=cross_kv, t_offset=t_offset)).astype(z.dtype)

        @functools.partial(jax.jit, static_argnames=("out_hw", "trim"), donate_argnums=(1,))
        def decode_step(params, dec_state, z, x_up, *, out_hw, trim):
            reae = nnx.merge(reae_graph, params)
            x, dec_state = reae.decode(z, dec_state, x_up, latents_per_step=_divisor(z.shape[1], per_step))
            x = x[:, trim:, : out_hw[0], : out_hw[1]]
            return jnp.round(x * 255.0).astype(jnp.uint8), dec_state

        self.encode_step, self.dit_step, self.decode_step = encode_step, dit_step, decode_step
        self.cross_kv = jax.jit(lambda p, text: nnx.merge(dit_graph, p).cross_kv(text))(
            self.dit_state, model.text[...])

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | None = None, *, dtype: str | None = None) -> SwiftVRPipeline:
        """Load a weight directory (config.json + model.safetensors); None = the shipped default."""
        if path is None:
            path = DEFAULT_WEIGHTS
            if not os.path.isdir(path):
                raise FileNotFoundError(f"no trained default weights at {path} (`make train-default` exports them); "
                                        "pass a checkpoint directory, or build random weights with from_config")
        model, cfg = load_pretrained(path, dtype=dtype)
        return cls(model, cfg)

    @classmethod
    def from_config(cls, cfg: Config | str, *, seed: int = 0, dtype: str | None = None) -> SwiftVRPipeline:
        """Random weights for a config or preset name (for testing the plumbing)."""
        cfg = get_config(cfg) if isinstance(cfg, str) else cfg
        if dtype is not None:
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dtype=dtype))
        return cls(SwiftVR(cfg, rngs=nnx.Rngs(seed)), cfg)

    def with_dtype(self, dtype: str | None) -> SwiftVRPipeline:
        """This pipeline with another DiT compute dtype, sharing the same parameters."""
        if dtype is None or dtype == self.cfg.model.dtype:
            return self
        if dtype not in self._dtype_views:
            cfg = dataclasses.replace(self.cfg, model=dataclasses.replace(self.cfg.model, dtype=dtype))
            graphdef, _ = nnx.split(nnx.eval_shape(lambda: SwiftVR(cfg, rngs=nnx.Rngs(0))))
            self._dtype_views[dtype] = SwiftVRPipeline(nnx.merge(graphdef, nnx.state(self.model)), cfg)
        return self._dtype_views[dtype]

    # -- streaming ---------------------------------------------------------------------
    def _stream_config(self, upscale, clip_len) -> StreamConfig:
        sc = dataclasses.replace(self.cfg.stream, **{k: v for k, v in
                                 dict(upscale=upscale, clip_len=clip_len).items() if v is not None})
        rc = self.cfg.reae
        if rc.residual and rc.base_blocks and sc.upscale != rc.base_scale:
            raise ValueError(f"these weights upscale x{rc.base_scale} only (their ReAE has a learned x{rc.base_scale} "
                             f"base, reae.base_blocks={rc.base_blocks}); got upscale={sc.upscale}")
        return sc

    def init_states(self, out_hw: tuple[int, int], batch: int = 1):
        """The states of a new stream for output frames of size `out_hw`: `(encoder, decoder)`, the
        encoder's being (zero ReAE encoder memory, None: no LQ frame seen yet for the learned base)."""
        ph, pw = padded_size(*out_hw, self.pad_multiple)
        s = self.cfg.reae.space_factor
        return ((self.model.reae.init_encoder_state(batch, ph, pw), None),
                self.model.reae.init_decoder_state(batch, ph // s, pw // s))

    def stream(self, *, upscale: int | None = None, clip_len: int | None = None, dtype: str | None = None,
               profile: bool = False) -> StreamSession:
        """A new causal stream. `dtype` sets the DiT compute dtype (float32 / bfloat16);
        `profile=True` records per-stage times (and waits for each)."""
        sc = self._stream_config(upscale, clip_len)
        return StreamSession(self.with_dtype(dtype), sc.upscale, sc.clip_len, profile)

    def restore_frames(self, frames, *, upscale: int | None = None, clip_len: int | None = None,
                       dtype: str | None = None) -> np.ndarray:
        """Restore uint8 frames [T, h, w, 3] -> [T, h*upscale, w*upscale, 3] in one call."""
        session = self.stream(upscale=upscale, clip_len=clip_len, dtype=dtype)
        parts = [session.step(frames), session.flush()]
        return np.concatenate([p for p in parts if p is not None], axis=0)

    def restore_video(self, input, output, *, upscale: int | None = None, clip_len: int | None = None,
                      dtype: str | None = None, codec: str = "h264", quality: int = 18, preset: str = "veryfast",
                      overwrite: bool = False, progress=None) -> dict:
        """Restore a video file or frame folder into `output` (mp4 or png folder).

        Reading, compute and encoding overlap: frames are decoded in a background thread,
        device work is dispatched asynchronously and a background writer copies results to
        the host and encodes them. The input's fps and audio are kept. `progress(n)` is
        called with the number of new output frames. Returns a summary dict.
        """
        from swiftvr_jax import video_io

        if os.path.exists(output) and not overwrite and not (os.path.isdir(output) and not os.listdir(output)):
            raise video_io.VideoIOError(f"{output} already exists; pass overwrite=True (--overwrite) to replace it")
        if os.path.exists(output) and overwrite:
            _remove_output(output)
        sc = self._stream_config(upscale, clip_len)
        session = self.stream(upscale=sc.upscale, clip_len=sc.clip_len, dtype=dtype)
        t0 = time.perf_counter()
        with video_io.open_video(input) as reader:
            writer = video_io.open_writer(output, reader.fps, codec=codec, quality=quality, preset=preset,
                                          audio_from=input if reader.has_audio else None)
            with video_io.BackgroundWriter(writer) as bg:
                group = []
                for frame in video_io.prefetch(reader, depth=2 * sc.clip_len):
                    group.append(frame)
                    if len(group) == 4:
                        for out in session.push(np.stack(group)):
                            bg.write(out)
                            progress and progress(out.shape[0])
                        group = []
                if group:
                    for out in session.push(np.stack(group)):
                        bg.write(out)
                        progress and progress(out.shape[0])
                for out in session.finish():
                    bg.write(out)
                    progress and progress(out.shape[0])
            truncated = reader.truncated
            expected = reader.num_frames
        seconds = time.perf_counter() - t0
        return {"input": os.fspath(input), "output": os.fspath(output), "frames": session.frames_out,
                "expected_frames": expected, "truncated": bool(truncated), "fps_in": reader.fps,
                "seconds": seconds, "restore_fps": session.frames_out / seconds,
                "upscale": sc.upscale, "clip_len": sc.clip_len, "chunks": session.chunk_kinds}

    def compilations(self) -> dict[str, int]:
        """How many distinct compilations each jitted step holds (one per chunk shape)."""
        return {"encode": self.encode_step._cache_size(), "dit": self.dit_step._cache_size(),
                "decode": self.decode_step._cache_size()}


def _remove_output(path: str) -> None:
    import shutil

    if os.path.isdir(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


__all__ = ["ChunkType", "Chunk", "plan_chunks", "StreamSession", "SwiftVRPipeline"]

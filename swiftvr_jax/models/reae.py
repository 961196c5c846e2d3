"""Restoration-aware autoencoder (ReAE): a causal, streaming video autoencoder.

Memory-block design after TAEHV (DESIGN.md section 4). Video tensors are channels-last
`[B, T, H, W, C]` with pixels in [0, 1]. The default `ReAEConfig` maps 4 frames x 16x16
pixels to one 48-channel latent and has exactly 40,946,364 parameters.

Streaming: every MemBlock remembers its input one frame earlier. That memory is an explicit
state pytree of fixed shapes (a tuple per stage of `[B, h, w, c]` arrays, zeros meaning
"no frame seen yet"), passed into `encode`/`decode` and returned updated, so any chunking
of a stream gives the same result as the whole clip and a jitted step never recompiles.

With `residual=True` (not in the official model) `decode` adds its output to the pixels the
latents came from, `inputs`, delayed by the decoder's lag of `frames_to_trim` frames; the
decoder state then also holds the last `frames_to_trim` input frames. With `cond_blocks > 0`
the decoder's last features also see those delayed pixels (pixel-unshuffled) and pass through
that many more MemBlocks, whose memories sit in the state before the delay line. With
`lq_blocks > 0` a branch of that many MemBlocks at a quarter of that resolution sees the same
pixels and adds its output to those features before the cond blocks; its memories come after
theirs in the state.

Channel orders follow the official PyTorch release so its checkpoint converts directly:
pixel (un)shuffle uses index `c*r*r + i*r + j`, TPool concatenates frames frame-major
(`k*C + c`), and a MemBlock's first conv sees `concat[x_t, x_{t-1}]`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from swiftvr_jax.config import ReAEConfig
from swiftvr_jax.models.lqnet import LQNet, stack_causal

# One tuple of `[B, h, w, c]` MemBlock memories per stage.
ReAEState = tuple[tuple[jax.Array, ...], ...]


def pixel_unshuffle(x: jax.Array, r: int) -> jax.Array:
    """Space-to-depth: `[..., H, W, C] -> [..., H/r, W/r, C*r*r]`, PyTorch channel order.

    Output channel `c*r*r + i*r + j` holds input pixel `(y*r + i, x*r + j)` of channel `c`.
    """
    *lead, h, w, c = x.shape
    x = x.reshape(*lead, h // r, r, w // r, r, c)  # [..., h, i, w, j, C]
    n = len(lead)
    x = jnp.moveaxis(x, (n + 1, n + 3), (n + 3, n + 4))  # [..., h, w, C, i, j]
    return x.reshape(*lead, h // r, w // r, c * r * r)


def pixel_shuffle(x: jax.Array, r: int) -> jax.Array:
    """Depth-to-space, the inverse of `pixel_unshuffle`: `[..., h, w, C*r*r] -> [..., h*r, w*r, C]`."""
    *lead, h, w, crr = x.shape
    c = crr // (r * r)
    n = len(lead)
    x = x.reshape(*lead, h, w, c, r, r)  # [..., h, w, C, i, j]
    x = jnp.moveaxis(x, (n + 3, n + 4), (n + 1, n + 3))  # [..., h, i, w, j, C]
    return x.reshape(*lead, h * r, w * r, c)


def _conv3x3(c_in: int, c_out: int, *, stride: int = 1, use_bias: bool = True,
             bias_init=nnx.initializers.zeros_init(), dtype, rngs: nnx.Rngs) -> nnx.Conv:
    # Symmetric padding 1 (not "SAME"): with stride 2 this matches PyTorch's Conv2d(padding=1).
    return nnx.Conv(c_in, c_out, kernel_size=(3, 3), strides=(stride, stride), padding=((1, 1), (1, 1)),
                    use_bias=use_bias, bias_init=bias_init, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)


def _conv1x1(c_in: int, c_out: int, *, dtype, rngs: nnx.Rngs) -> nnx.Conv:
    return nnx.Conv(c_in, c_out, kernel_size=(1, 1), padding="VALID", use_bias=False, dtype=dtype,
                    param_dtype=jnp.float32, rngs=rngs)


class MemBlock(nnx.Module):
    """Residual block fusing each frame with the previous one: `ReLU(convs(concat[x_t, x_{t-1}]) + x_t)`."""

    def __init__(self, channels: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.conv1 = _conv3x3(2 * channels, channels, dtype=dtype, rngs=rngs)
        self.conv2 = _conv3x3(channels, channels, dtype=dtype, rngs=rngs)
        self.conv3 = _conv3x3(channels, channels, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, past: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x `[B, T, H, W, C]`, past `[B, H, W, C]` (input frame before x[:, 0]) -> (y like x, new past)."""
        # Whole-chunk shift: frame t sees frame t-1, so all T frames run through each conv at once.
        prev = jnp.concatenate([past[:, None].astype(x.dtype), x[:, :-1]], axis=1)  # [B, T, H, W, C]
        h = jax.nn.relu(self.conv1(jnp.concatenate([x, prev], axis=-1)))
        h = jax.nn.relu(self.conv2(h))
        return jax.nn.relu(self.conv3(h) + x), x[:, -1]


def _run_blocks(blocks, x: jax.Array, pasts: tuple[jax.Array, ...]) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    """MemBlocks in sequence, each with its memory -> (output, their new memories)."""
    new_pasts = []
    for block, past in zip(blocks, pasts):
        x, past = block(x, past)
        new_pasts.append(past)
    return x, tuple(new_pasts)


def _scan_time_groups(step, state, arrays: tuple[jax.Array, ...], groups: int):
    """Run `step(state, *group) -> (out, state)` over `groups` equal time slices of `arrays`
    (each `[B, T, ...]`) one after another with `lax.scan`; returns (outs joined on time, state)."""
    def split(a):  # [B, T, ...] -> [groups, B, T/groups, ...]
        return jnp.moveaxis(a.reshape(a.shape[0], groups, a.shape[1] // groups, *a.shape[2:]), 1, 0)

    def body(carry, xs):
        out, carry = step(carry, *xs)
        return carry, out

    state, outs = jax.lax.scan(body, state, tuple(split(a) for a in arrays))
    outs = jnp.moveaxis(outs, 0, 1)
    return outs.reshape(outs.shape[0], -1, *outs.shape[3:]), state


def _groups(latents: int, latents_per_step: int, where: str) -> int:
    """How many sequential steps a chunk of `latents` latent frames takes (1 = all at once)."""
    if latents_per_step <= 0 or latents_per_step >= latents:
        return 1
    if latents % latents_per_step:
        raise ValueError(f"ReAE.{where}: latents_per_step={latents_per_step} must divide the chunk's "
                         f"{latents} latent frames")
    return latents // latents_per_step


class TPool(nnx.Module):
    """Temporal pooling: `stride` consecutive frames concatenated on channels, 1x1 conv back to C."""

    def __init__(self, channels: int, stride: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.stride = stride
        self.conv = _conv1x1(stride * channels, channels, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """`[B, T, H, W, C] -> [B, T/stride, H, W, C]`; T must be a multiple of stride."""
        b, t, h, w, c = x.shape
        # encode() only accepts T divisible by the product of all TPool strides, so no frame is
        # ever left over for the next chunk and TPool needs no streaming state.
        assert t % self.stride == 0, (t, self.stride)
        x = x.reshape(b, t // self.stride, self.stride, h, w, c)
        x = jnp.moveaxis(x, 2, 4).reshape(b, t // self.stride, h, w, self.stride * c)  # channel k*C + c
        return self.conv(x)


class TGrow(nnx.Module):
    """Temporal upsampling: stride 1 is a 1x1 conv; stride s repeats each frame s times and mixes
    those s copies with a (3,1,1) conv (zero temporal padding 1). Frames never mix with each other."""

    def __init__(self, channels: int, stride: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.stride = stride
        if stride == 1:
            self.conv = _conv1x1(channels, channels, dtype=dtype, rngs=rngs)
        else:
            self.conv = nnx.Conv(channels, channels, kernel_size=(3, 1, 1), padding=((1, 1), (0, 0), (0, 0)),
                                 use_bias=False, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """`[B, T, H, W, C] -> [B, T*stride, H, W, C]`."""
        if self.stride == 1:
            return self.conv(x)
        # The (3,1,1) conv over `stride` identical copies, zero-padded in time, is one matmul per
        # copy j with the sum of the taps that land inside: same weights, no 3D conv (slow on XLA CPU).
        k = self.conv.kernel[...][:, 0, 0]  # [3, C, C]
        s = self.stride
        taps = jnp.stack([sum(k[i] for i in range(3) if 0 <= j + i - 1 < s) for j in range(s)])  # [s, C, C]
        b, t, h, w, c = x.shape
        dtype = self.conv.dtype or x.dtype
        y = jnp.einsum("bthwc,jcd->btjhwd", x.astype(dtype), taps.astype(dtype))
        return y.reshape(b, t * s, h, w, -1)


class EncoderStage(nnx.Module):
    """TPool(time_stride) -> 3x3 conv with spatial stride (no bias) -> MemBlock x blocks."""

    def __init__(self, channels: int, time_stride: int, space_stride: int, blocks: int, *, dtype, rngs: nnx.Rngs):
        self.pool = TPool(channels, time_stride, dtype=dtype, rngs=rngs)
        self.down = _conv3x3(channels, channels, stride=space_stride, use_bias=False, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([MemBlock(channels, dtype=dtype, rngs=rngs) for _ in range(blocks)])

    def __call__(self, x: jax.Array, pasts: tuple[jax.Array, ...]) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        return _run_blocks(self.blocks, self.down(self.pool(x)), pasts)


class DecoderStage(nnx.Module):
    """MemBlock x blocks -> nearest spatial upsample -> TGrow(time_stride) -> 3x3 conv to next width (no bias)."""

    def __init__(self, c_in: int, c_out: int, time_stride: int, space_stride: int, blocks: int, *, dtype,
                 rngs: nnx.Rngs):
        self.space_stride = space_stride
        self.blocks = nnx.List([MemBlock(c_in, dtype=dtype, rngs=rngs) for _ in range(blocks)])
        self.grow = TGrow(c_in, time_stride, dtype=dtype, rngs=rngs)
        self.conv = _conv3x3(c_in, c_out, use_bias=False, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, pasts: tuple[jax.Array, ...]) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        x, new_pasts = _run_blocks(self.blocks, x, pasts)
        s = self.space_stride
        x = jnp.repeat(jnp.repeat(x, s, axis=2), s, axis=3)  # nearest upsample, [B, T, H*s, W*s, C]
        return self.conv(self.grow(x)), new_pasts


class ReAE(nnx.Module):
    """The ReAE encoder and decoder with explicit streaming state.

    Build with `ReAE(cfg.reae, rngs=nnx.Rngs(0))`; `dtype` is the compute dtype (parameters
    stay float32). Typical streaming use, jitted via `nnx.split`/`nnx.merge`:
    `enc = model.init_encoder_state(B, H, W)`, then per chunk `z, enc = model.encode(x, enc)`.
    """

    def __init__(self, cfg: ReAEConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.cfg = cfg
        self.dtype = dtype
        r, c, n = cfg.pixel_shuffle, cfg.enc_width, cfg.blocks_per_stage
        # Encoder: [B, T, H, W, 3] -> [B, T/4, H/16, W/16, latent].
        self.enc_in = _conv3x3(3 * r * r, c, dtype=dtype, rngs=rngs)
        self.enc_stages = nnx.List([
            EncoderStage(c, ts, ss, n, dtype=dtype, rngs=rngs)
            for ts, ss in zip(cfg.time_strides, cfg.spatial_strides)])
        self.enc_out = _conv3x3(c, cfg.latent_channels, dtype=dtype, rngs=rngs)
        # Decoder mirrors the encoder: strides reversed, widths widest first.
        w = cfg.dec_widths
        self.dec_in = _conv3x3(cfg.latent_channels, w[0], dtype=dtype, rngs=rngs)
        self.dec_stages = nnx.List([
            DecoderStage(w[i], w[i + 1], ts, ss, n, dtype=dtype, rngs=rngs)
            for i, (ts, ss) in enumerate(zip(cfg.time_strides[::-1], cfg.spatial_strides[::-1]))])
        # Mid-grey bias (zero for a residual decoder): an untrained decoder then sits inside the
        # [0, 1] clip and gets gradients.
        self.dec_out = _conv3x3(w[-1], 3 * r * r, bias_init=nnx.initializers.constant(0.0 if cfg.residual else 0.5),
                                dtype=dtype, rngs=rngs)
        if cfg.cond_blocks:  # the upsampled input joins the last features; zero-initialised: no change yet
            self.dec_cond = _conv3x3(3 * r * r, w[-1], dtype=dtype, rngs=rngs)
            self.dec_cond.kernel[...] = jnp.zeros_like(self.dec_cond.kernel[...])
            self.dec_refine = nnx.List([MemBlock(w[-1], dtype=dtype, rngs=rngs) for _ in range(cfg.cond_blocks)])
            for block in self.dec_refine:
                block.conv3.kernel[...] = jnp.zeros_like(block.conv3.kernel[...])
        if cfg.lq_blocks:  # a wide, cheap branch at 1/4 of the last resolution; zero-initialised join
            q = 2 * r
            self.lq_in = _conv3x3(3 * q * q, w[-1], dtype=dtype, rngs=rngs)
            self.lq_branch = nnx.List([MemBlock(w[-1], dtype=dtype, rngs=rngs) for _ in range(cfg.lq_blocks)])
            self.lq_out = _conv3x3(w[-1], 4 * w[-1], dtype=dtype, rngs=rngs)
            self.lq_out.kernel[...] = jnp.zeros_like(self.lq_out.kernel[...])
        if cfg.base_blocks:  # a learned upscale under the decoder's correction; zero output: no change yet
            self.base_net = LQNet(cfg.base_frames, scale=cfg.base_scale, channels=cfg.base_channels,
                                  blocks=cfg.base_blocks, dtype=dtype, rngs=rngs)

    @property
    def time_factor(self) -> int:
        """Frames per latent (4 by default)."""
        return self.cfg.time_factor

    @property
    def space_factor(self) -> int:
        """Pixels per latent along H and W (16 by default)."""
        return self.cfg.space_factor

    @property
    def frames_to_trim(self) -> int:
        """Leading frames of the FIRST decode that the pipeline drops (3 by default)."""
        return self.cfg.time_factor - 1

    def residual_base(self, lq: jax.Array, hw: tuple[int, int], *, history: jax.Array | None = None,
                      one_frame_at_a_time: bool = False) -> jax.Array:
        """What a residual decoder corrects (its `inputs`): `[B, T, h, w, 3]` LQ frames in [0, 1]
        resized to `hw` with `cfg.residual_resize`, plus, with `cfg.base_blocks`, the LQNet's
        residual (`hw` must then be `base_scale` times the LQ size).

        With `base_frames > 1` the LQNet sees each frame with the ones before it: `history`
        (`[B, base_frames - 1, h, w, 3]`, the previous chunk's last LQ frames) or, at a stream's
        start (None, as in training), copies of the first frame (`lqnet.stack_causal`).
        The LQNet sees all frames as one batch, or with `one_frame_at_a_time` one frame per
        `lax.map` step: the same result with one frame's activations (for inference; its gradient
        is over 15x slower on CPU than the batched one's, so training keeps the default)."""
        x = upsample(lq, hw, self.cfg.residual_resize)
        if not self.cfg.base_blocks:
            return x
        b, t, h, w, _ = lq.shape
        s = self.cfg.base_scale
        if tuple(hw) != (h * s, w * s):
            raise ValueError(f"ReAE.residual_base: reae.base_scale={s} maps {h}x{w} frames to {h * s}x{w * s}, "
                             f"not {hw[0]}x{hw[1]}")
        x_in = lq.astype(self.dtype)
        if self.cfg.base_frames > 1:
            x_in = stack_causal(x_in, self.cfg.base_frames, history)
        if one_frame_at_a_time:
            r = jnp.moveaxis(jax.lax.map(self.base_net, jnp.moveaxis(x_in, 1, 0)), 0, 1)
        else:
            r = self.base_net(x_in.reshape(b * t, *x_in.shape[2:])).reshape(b, t, h * s, w * s, 3)
        return x + r.astype(x.dtype)

    # ---- state -------------------------------------------------------------------------------

    def _encoder_state_shapes(self, batch: int, height: int, width: int) -> list[list[tuple[int, ...]]]:
        shapes, h, w = [], height // self.cfg.pixel_shuffle, width // self.cfg.pixel_shuffle
        for s in self.cfg.spatial_strides:
            h, w = h // s, w // s
            shapes.append([(batch, h, w, self.cfg.enc_width)] * self.cfg.blocks_per_stage)
        return shapes

    def _decoder_state_shapes(self, batch: int, latent_h: int, latent_w: int) -> list[list[tuple[int, ...]]]:
        shapes, h, w = [], latent_h, latent_w
        for c, s in zip(self.cfg.dec_widths, self.cfg.spatial_strides[::-1]):
            shapes.append([(batch, h, w, c)] * self.cfg.blocks_per_stage)
            h, w = h * s, w * s
        if self.cfg.cond_blocks:
            shapes.append([(batch, h, w, self.cfg.dec_widths[-1])] * self.cfg.cond_blocks)
        if self.cfg.lq_blocks:
            shapes.append([(batch, h // 2, w // 2, self.cfg.dec_widths[-1])] * self.cfg.lq_blocks)
        if self.cfg.residual:  # the last frames_to_trim input frames, for the delayed skip
            f = self.space_factor
            shapes.append([(batch, self.frames_to_trim, latent_h * f, latent_w * f, 3)])
        return shapes

    def _check_size(self, height: int, width: int) -> None:
        f = self.space_factor
        if height % f or width % f or height < 1 or width < 1:
            raise ValueError(f"ReAE: frame size {height}x{width} must be positive multiples of {f}; "
                             f"pad the frames first")

    def init_encoder_state(self, batch: int, height: int, width: int) -> ReAEState:
        """Zero encoder memory (no frame seen yet) for `[batch, T, height, width, 3]` pixel chunks."""
        self._check_size(height, width)
        return tuple(tuple(jnp.zeros(s, self.dtype) for s in stage)
                     for stage in self._encoder_state_shapes(batch, height, width))

    def init_decoder_state(self, batch: int, latent_h: int, latent_w: int) -> ReAEState:
        """Zero decoder memory (no latent seen yet) for `[batch, t, latent_h, latent_w, C]` latent chunks."""
        return tuple(tuple(jnp.zeros(s, self.dtype) for s in stage)
                     for stage in self._decoder_state_shapes(batch, latent_h, latent_w))

    @staticmethod
    def _check_state(state: ReAEState, expected: list[list[tuple[int, ...]]], where: str, init: str) -> None:
        got = [[tuple(a.shape) for a in stage] for stage in state]
        if got != expected:
            raise ValueError(f"ReAE.{where}: state shapes {got} do not match the input (expected {expected}); "
                             f"create the state with ReAE.{init} for this batch and frame size")

    # ---- encode / decode ---------------------------------------------------------------------

    def encode(self, x: jax.Array, state: ReAEState, *, latents_per_step: int = 0) -> tuple[jax.Array, ReAEState]:
        """Encode one chunk of pixels, carrying memory from the previous chunk.

        Args:
          x: `[B, T, H, W, 3]` pixels in [0, 1]; T a multiple of `time_factor`, H and W
             multiples of `space_factor`.
          state: from `init_encoder_state(B, H, W)` or the previous `encode`.
          latents_per_step: 0 runs the whole chunk through each layer at once; k > 0 runs it
             k latent frames (k * time_factor pixel frames) at a time through the memory, one
             after another. The result is the same (the memory is causal and TPool never pools
             across a group), and the smaller k, the less activation memory: large frames need it.
        Returns:
          z `[B, T/time_factor, H/space_factor, W/space_factor, latent_channels]` and the new state.
        """
        if x.ndim != 5 or x.shape[-1] != 3:
            raise ValueError(f"ReAE.encode: expected [B, T, H, W, 3] pixels, got shape {x.shape}")
        b, t, h, w, _ = x.shape
        if t < 1 or t % self.time_factor:
            raise ValueError(f"ReAE.encode: chunk has {t} frames; it must be a positive multiple of "
                             f"{self.time_factor} (pad the stream's end by repeating its last frame)")
        self._check_size(h, w)
        self._check_state(state, self._encoder_state_shapes(b, h, w), "encode", "init_encoder_state")
        groups = _groups(t // self.time_factor, latents_per_step, "encode")
        if groups > 1:
            return _scan_time_groups(lambda s, xg: self.encode(xg, s), state, (x,), groups)
        x = pixel_unshuffle(x.astype(self.dtype), self.cfg.pixel_shuffle)  # [B, T, H/2, W/2, 12]
        x = jax.nn.relu(self.enc_in(x))
        new_state = []
        for stage, pasts in zip(self.enc_stages, state):
            x, pasts = stage(x, pasts)
            new_state.append(pasts)
        return self.enc_out(x), tuple(new_state)

    def decode(self, z: jax.Array, state: ReAEState, inputs: jax.Array | None = None, *,
               latents_per_step: int = 0) -> tuple[jax.Array, ReAEState]:
        """Decode one chunk of latents, carrying memory from the previous chunk.

        Args:
          z: `[B, t, h, w, latent_channels]` latents.
          state: from `init_decoder_state(B, h, w)` or the previous `decode`.
          inputs: required by a residual ReAE, ignored by a plain one: `[B, t*time_factor, H, W, 3]`
             pixels in [0, 1] that this chunk's output corrects, frame-aligned with the encoder
             input the latents came from (the upsampled LQ in the pipeline); output frame i adds
             inputs frame i - frames_to_trim, continuing across chunks through the state.
          latents_per_step: as in `encode`: 0 decodes the whole chunk at once, k > 0 k latent
             frames at a time (same result, less activation memory).
        Returns:
          pixels `[B, t*time_factor, h*space_factor, w*space_factor, 3]` in [0, 1] (the first
          `frames_to_trim` frames of a stream's first decode are warm-up; the caller drops them)
          and the new state.
        """
        if z.ndim != 5 or z.shape[-1] != self.cfg.latent_channels:
            raise ValueError(f"ReAE.decode: expected [B, t, h, w, {self.cfg.latent_channels}] latents, "
                             f"got shape {z.shape}")
        b, t, h, w, _ = z.shape
        self._check_state(state, self._decoder_state_shapes(b, h, w), "decode", "init_decoder_state")
        if self.cfg.residual:
            expected = (b, t * self.time_factor, h * self.space_factor, w * self.space_factor, 3)
            if inputs is None or tuple(inputs.shape) != expected:
                raise ValueError(f"ReAE.decode: a residual ReAE needs `inputs` of shape {expected} (the pixels "
                                 f"the latents were encoded from), got "
                                 f"{None if inputs is None else tuple(inputs.shape)}")
        groups = _groups(t, latents_per_step, "decode")
        if groups > 1:
            if self.cfg.residual:
                return _scan_time_groups(lambda s, zg, ig: self.decode(zg, s, ig), state, (z, inputs), groups)
            return _scan_time_groups(lambda s, zg: self.decode(zg, s), state, (z,), groups)
        if self.cfg.residual:
            # The lag-frame delay line: skip frame i is inputs frame i - lag (from the state before 0).
            line = jnp.concatenate([state[-1][0], inputs.astype(self.dtype)], axis=1)
            skip, tail = line[:, :expected[1]], line[:, expected[1]:]
        x = 3.0 * jnp.tanh(z.astype(self.dtype) / 3.0)  # soft clamp to (-3, 3)
        x = jax.nn.relu(self.dec_in(x))
        new_state = []
        for stage, pasts in zip(self.dec_stages, state):
            x, pasts = stage(x, pasts)
            new_state.append(pasts)
        extra = iter(state[len(self.dec_stages):])  # cond, then lq block memories
        cond_pasts = next(extra) if self.cfg.cond_blocks else ()
        if self.cfg.lq_blocks:
            y = jax.nn.relu(self.lq_in(pixel_unshuffle(skip, 2 * self.cfg.pixel_shuffle)))
            y, lq_pasts = _run_blocks(self.lq_branch, y, next(extra))
            x = x + pixel_shuffle(self.lq_out(y), 2)
        if self.cfg.cond_blocks:
            x = x + self.dec_cond(pixel_unshuffle(skip, self.cfg.pixel_shuffle))
            x, pasts = _run_blocks(self.dec_refine, x, cond_pasts)
            new_state.append(pasts)
        if self.cfg.lq_blocks:
            new_state.append(lq_pasts)
        x = pixel_shuffle(self.dec_out(jax.nn.relu(x)), self.cfg.pixel_shuffle)
        if self.cfg.residual:
            x = x + skip
            new_state.append((tail,))
        return jnp.clip(x, 0.0, 1.0), tuple(new_state)


def upsample(frames: jax.Array, hw: tuple[int, int], method: str = "bilinear") -> jax.Array:
    """Resize `[B, T, h, w, C]` frames to `hw` with a `jax.image.resize` method (the encoder's
    input is the bilinear upsample; a residual ReAE's base uses `cfg.residual_resize`)."""
    b, t = frames.shape[:2]
    return jax.image.resize(frames, (b, t, *hw, frames.shape[-1]), method)


def param_count(model: nnx.Module) -> int:
    """Number of scalar parameters (works on abstract models from `nnx.eval_shape`)."""
    return sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))

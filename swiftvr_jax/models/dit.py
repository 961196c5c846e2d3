"""Wan2.2-style video DiT (TI2V-5B layout) with per-layer MFSWA / Swin / full self-attention.

Latents are channels-last [B, T, H, W, C]. Blocks are built as (unshifted, shifted)
pairs whose parameters are stacked on a leading axis and run with `jax.lax.scan`, so
compile time does not grow with depth. Parameters are float32; `cfg.dtype` sets the
compute dtype. Layer norms and the AdaLN modulation run in float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from swiftvr_jax.attention import attention
from swiftvr_jax.config import DiTConfig
from swiftvr_jax.rope import apply_rope, rope_angles
from swiftvr_jax.sharding import constrain_batch


def _dtype(name: str):
    return jnp.dtype(name)


def attention_implementation(cfg: DiTConfig) -> str | None:
    """The `implementation` passed to `jax.nn.dot_product_attention` (None lets XLA decide)."""
    if cfg.attn_impl == "auto":
        gpu = jax.default_backend() == "gpu"
        return "cudnn" if gpu and cfg.dtype in ("bfloat16", "float16") and cfg.head_dim <= 128 else None
    return None if cfg.attn_impl == "xla" else cfg.attn_impl


def _linear(din: int, dout: int, cfg: DiTConfig, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(din, dout, use_bias=True, dtype=_dtype(cfg.dtype), param_dtype=jnp.float32, rngs=rngs)


def layer_norm(x, eps: float):
    """LayerNorm without affine over the last axis, computed in float32."""
    xf = x.astype(jnp.float32)
    mean = xf.mean(-1, keepdims=True)
    var = jnp.square(xf - mean).mean(-1, keepdims=True)
    return (xf - mean) * jax.lax.rsqrt(var + eps)


def timestep_features(timestep, dim: int, max_period: float = 10000.0):
    """Sinusoidal features [B, dim] of timesteps [B] (cos half first, as Wan/diffusers)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(timestep, jnp.float32)[:, None] * freqs[None]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class RMSNorm(nnx.Module):
    """RMSNorm with a learned scale over the last axis (across all heads), float32 math."""

    def __init__(self, dim: int, eps: float):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))

    def __call__(self, x):
        xf = x.astype(jnp.float32)
        y = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), -1, keepdims=True) + self.eps)
        return (y * self.scale[...]).astype(x.dtype)


class AffineLayerNorm(nnx.Module):
    """LayerNorm with scale and bias (the cross-attention norm), float32 math."""

    def __init__(self, dim: int, eps: float):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((dim,), jnp.float32))

    def __call__(self, x):
        return (layer_norm(x, self.eps) * self.scale[...] + self.bias[...]).astype(x.dtype)


class Attention(nnx.Module):
    """Multi-head attention with biased projections and RMSNorm on q and k."""

    def __init__(self, cfg: DiTConfig, *, rngs: nnx.Rngs):
        d = cfg.dim
        self.heads = cfg.num_heads
        self.to_q = _linear(d, d, cfg, rngs)
        self.to_k = _linear(d, d, cfg, rngs)
        self.to_v = _linear(d, d, cfg, rngs)
        self.to_out = _linear(d, d, cfg, rngs)
        self.norm_q = RMSNorm(d, cfg.eps)
        self.norm_k = RMSNorm(d, cfg.eps)

    def _split(self, x):  # [B, L, dim] -> [B, L, heads, d]
        return x.reshape(*x.shape[:2], self.heads, -1)

    def kv(self, context):
        """Keys and values [B, S, heads, d] of a context [B, S, dim] (cacheable for fixed text)."""
        return self._split(self.norm_k(self.to_k(context))), self._split(self.to_v(context))

    def self_attention(self, x, angles, *, mode, grid, window, shift, implementation=None):
        q = apply_rope(self._split(self.norm_q(self.to_q(x))), angles)
        k, v = self.kv(x)
        k = apply_rope(k, angles)
        out = attention(q, k, v, mode=mode, grid=grid, window=window, shift=shift,
                        implementation=implementation)
        return self.to_out(out.reshape(x.shape))

    def cross_attention(self, x, kv, implementation=None):
        q = self._split(self.norm_q(self.to_q(x)))
        out = jax.nn.dot_product_attention(q, *kv, implementation=implementation)
        return self.to_out(out.reshape(x.shape))


class FeedForward(nnx.Module):
    def __init__(self, cfg: DiTConfig, *, rngs: nnx.Rngs):
        self.proj_in = _linear(cfg.dim, cfg.ffn_dim, cfg, rngs)
        self.proj_out = _linear(cfg.ffn_dim, cfg.dim, cfg, rngs)

    def __call__(self, x):
        return self.proj_out(jax.nn.gelu(self.proj_in(x), approximate=True))


class Block(nnx.Module):
    """Pre-norm DiT block with AdaLN: self-attn (gated), cross-attn (ungated), FFN (gated)."""

    def __init__(self, cfg: DiTConfig, *, rngs: nnx.Rngs):
        self.eps = cfg.eps
        self.attn1 = Attention(cfg, rngs=rngs)
        self.attn2 = Attention(cfg, rngs=rngs)
        self.norm2 = AffineLayerNorm(cfg.dim, cfg.eps) if cfg.cross_attn_norm else None
        self.ffn = FeedForward(cfg, rngs=rngs)
        self.scale_shift_table = nnx.Param(
            jax.random.normal(rngs.params(), (6, cfg.dim), jnp.float32) / cfg.dim ** 0.5)

    def __call__(self, x, tproj, kv, angles, **attn_kwargs):
        # tproj [B, 6, dim] float32; rows: shift, scale, gate (attn) then shift, scale, gate (ffn)
        mod = self.scale_shift_table[...][None] + tproj
        sh1, sc1, g1, sh2, sc2, g2 = (mod[:, i, None, :] for i in range(6))
        dt = x.dtype
        h = (layer_norm(x, self.eps) * (1 + sc1) + sh1).astype(dt)
        x = (x + self.attn1.self_attention(h, angles, **attn_kwargs) * g1).astype(dt)
        h = self.norm2(x) if self.norm2 is not None else x
        x = x + self.attn2.cross_attention(h, kv, attn_kwargs.get("implementation"))
        h = (layer_norm(x, self.eps) * (1 + sc2) + sh2).astype(dt)
        return (x + self.ffn(h) * g2).astype(dt)


class BlockPair(nnx.Module):
    """Two consecutive blocks: the even one unshifted, the odd one shifted."""

    def __init__(self, cfg: DiTConfig, *, rngs: nnx.Rngs):
        self.even = Block(cfg, rngs=rngs)
        self.odd = Block(cfg, rngs=rngs)


class DiT(nnx.Module):
    """Velocity network v(z_t, t | text) over latent chunks [B, T, H, W, in_channels]."""

    def __init__(self, cfg: DiTConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        dt = _dtype(cfg.dtype)
        self.patch_embedding = nnx.Conv(cfg.in_channels, cfg.dim, kernel_size=cfg.patch, strides=cfg.patch,
                                        padding="VALID", dtype=dt, param_dtype=jnp.float32, rngs=rngs)
        self.time_embedder_1 = _linear(cfg.freq_dim, cfg.dim, cfg, rngs)
        self.time_embedder_2 = _linear(cfg.dim, cfg.dim, cfg, rngs)
        self.time_proj = _linear(cfg.dim, 6 * cfg.dim, cfg, rngs)
        self.text_embedder_1 = _linear(cfg.text_dim, cfg.dim, cfg, rngs)
        self.text_embedder_2 = _linear(cfg.dim, cfg.dim, cfg, rngs)

        @nnx.split_rngs(splits=cfg.num_layers // 2)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make_pairs(rngs):
            return BlockPair(cfg, rngs=rngs)

        self.blocks = make_pairs(rngs)  # parameters stacked on a leading [num_layers/2] axis
        self.scale_shift_table = nnx.Param(
            jax.random.normal(rngs.params(), (2, cfg.dim), jnp.float32) / cfg.dim ** 0.5)
        self.proj_out = _linear(cfg.dim, cfg.out_channels * int(np.prod(cfg.patch)), cfg, rngs)

    # -- conditioning ------------------------------------------------------------------
    def time_embedding(self, timestep):
        """temb [B, dim] and its block projection [B, 6, dim] (float32) for timesteps [B]."""
        feats = timestep_features(timestep, self.cfg.freq_dim)
        temb = self.time_embedder_2(jax.nn.silu(self.time_embedder_1(feats))).astype(jnp.float32)
        tproj = self.time_proj(jax.nn.silu(temb)).astype(jnp.float32)
        return temb, tproj.reshape(-1, 6, self.cfg.dim)

    def cross_kv(self, text):
        """Per-layer cross-attention K/V for a text embedding [B, S, text_dim].

        Returns (k, v), each [num_layers/2, 2, B, S, heads, head_dim]; fixed text -> compute once.
        """
        ctx = self.text_embedder_2(jax.nn.gelu(self.text_embedder_1(text), approximate=True))
        graphdef, params = nnx.split(self.blocks)

        def one(p):
            pair = nnx.merge(graphdef, p)
            (ke, ve), (ko, vo) = pair.even.attn2.kv(ctx), pair.odd.attn2.kv(ctx)
            return jnp.stack([ke, ko]), jnp.stack([ve, vo])

        return jax.lax.map(one, params)

    # -- forward -----------------------------------------------------------------------
    def __call__(self, x, timestep, text=None, *, t_offset=0, cross_kv=None):
        """Predict the velocity for latents x [B, T, H, W, C] at `timestep` [B] (1000 = t=1).

        Give either `text` [B or 1, S, text_dim] or its precomputed `cross_kv`. `t_offset` is
        the global latent-frame index of x[:, 0] (RoPE). Returns [B, T, H, W, out_channels].
        """
        cfg = self.cfg
        b, t, h, w, _ = x.shape
        pt, ph, pw = cfg.patch
        assert t % pt == 0 and h % ph == 0 and w % pw == 0, f"latent grid {(t, h, w)} not divisible by {cfg.patch}"
        grid = (t // pt, h // ph, w // pw)
        if cross_kv is None:
            cross_kv = self.cross_kv(text)
        ks, vs = cross_kv
        if ks.shape[2] != b:  # one fixed text for the whole batch
            ks, vs = (jnp.broadcast_to(a, a.shape[:2] + (b,) + a.shape[3:]) for a in (ks, vs))
        temb, tproj = self.time_embedding(jnp.broadcast_to(jnp.asarray(timestep, jnp.float32), (b,)))

        tokens = self.patch_embedding(x.astype(_dtype(cfg.dtype))).reshape(b, -1, cfg.dim)  # [B, L, dim]
        angles = rope_angles(grid, cfg.head_dim, t_offset, cfg.rope_theta)
        common = dict(mode=cfg.attention, grid=grid, window=cfg.window, implementation=attention_implementation(cfg))
        graphdef, params = nnx.split(self.blocks)

        def body(carry, xs):
            p, k, v = xs
            pair = nnx.merge(graphdef, p)
            carry = constrain_batch(carry)  # keep the batch sharded through the scanned layers
            carry = pair.even(carry, tproj, (k[0], v[0]), angles, shift=False, **common)
            carry = pair.odd(carry, tproj, (k[1], v[1]), angles, shift=cfg.attention != "full", **common)
            return carry, None

        if cfg.remat:
            body = jax.checkpoint(body, prevent_cse=False)
        tokens, _ = jax.lax.scan(body, tokens, (params, ks, vs))

        shift, scale = self.scale_shift_table[...][None, 0] + temb, self.scale_shift_table[...][None, 1] + temb
        out = (layer_norm(tokens, cfg.eps) * (1 + scale[:, None]) + shift[:, None]).astype(tokens.dtype)
        out = self.proj_out(out)  # [B, L, pt*ph*pw*C] with (pt, ph, pw, C) order
        out = out.reshape(b, *grid, pt, ph, pw, cfg.out_channels)
        out = out.transpose(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, t, h, w, cfg.out_channels)
        return out


def count_params(module_or_state) -> int:
    """Number of scalar parameters in an NNX module or state (abstract shapes work)."""
    state = module_or_state if isinstance(module_or_state, nnx.State) else nnx.state(module_or_state, nnx.Param)
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(state)))


def abstract_dit(cfg: DiTConfig) -> DiT:
    """The DiT with abstract (ShapeDtypeStruct) parameters: no memory is allocated."""
    return nnx.eval_shape(lambda: DiT(cfg, rngs=nnx.Rngs(0)))

"""3D rotary position embedding (Wan layout) with a global temporal offset.

The head dimension splits into (t, h, w) parts with h = w = 2*(d//6) and t the rest;
adjacent channel pairs (2i, 2i+1) rotate together. Angles are computed from positions
directly, so the temporal position (the global latent frame index across a stream)
has no length limit.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """Channels given to the (t, h, w) axes: (44, 42, 42) at head_dim 128."""
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


def rope_frequencies(dim: int, theta: float = 10000.0) -> np.ndarray:
    """[dim/2] inverse frequencies theta^(-2i/dim), float64."""
    return 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64)[: dim // 2] / dim)


def rope_angles(grid: tuple[int, int, int], head_dim: int, t_offset=0, theta: float = 10000.0):
    """Rotation angles [t*h*w, head_dim/2] (float32) for tokens in (t, h, w) order.

    `t_offset` (int or traced int scalar) is the global latent index of the chunk's first frame.
    """
    t, h, w = grid
    dt, dh, dw = rope_split(head_dim)
    ft, fh, fw = (jnp.asarray(rope_frequencies(d, theta), jnp.float32) for d in (dt, dh, dw))
    pos_t = jnp.asarray(t_offset, jnp.float32) + jnp.arange(t, dtype=jnp.float32)
    at = pos_t[:, None] * ft  # [t, dt/2]
    ah = jnp.arange(h, dtype=jnp.float32)[:, None] * fh  # [h, dh/2]
    aw = jnp.arange(w, dtype=jnp.float32)[:, None] * fw  # [w, dw/2]
    angles = jnp.concatenate([
        jnp.broadcast_to(at[:, None, None], (t, h, w, at.shape[-1])),
        jnp.broadcast_to(ah[None, :, None], (t, h, w, ah.shape[-1])),
        jnp.broadcast_to(aw[None, None, :], (t, h, w, aw.shape[-1])),
    ], axis=-1)
    return angles.reshape(t * h * w, head_dim // 2)


def apply_rope(x, angles):
    """Rotate interleaved channel pairs of x [B, L, heads, d] by angles [L, d/2]; keeps dtype."""
    xf = x.astype(jnp.float32).reshape(*x.shape[:-1], -1, 2)
    cos = jnp.cos(angles)[None, :, None, :]
    sin = jnp.sin(angles)[None, :, None, :]
    x0, x1 = xf[..., 0], xf[..., 1]
    out = jnp.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1)
    return out.reshape(x.shape).astype(x.dtype)

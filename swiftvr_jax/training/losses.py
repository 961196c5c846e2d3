"""Loss terms of the training stages (float32 math, means over every element).

Videos are [B, T, H, W, 3] in [0, 1]; latents [B, t, h, w, C].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def l1(a, b):
    return jnp.mean(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)))


def mse(a, b):
    return jnp.mean(jnp.square(a.astype(jnp.float32) - b.astype(jnp.float32)))


def temporal_loss(pred, target):
    """L1 between consecutive-frame differences: penalises flicker the target does not have."""
    if pred.shape[1] < 2:
        return jnp.zeros((), jnp.float32)
    return l1(jnp.diff(pred, axis=1), jnp.diff(target, axis=1))


def gradient_loss(pred, target):
    """Substitute perceptual term when no LPIPS backbone is supplied: L1 of image gradients
    at full and half resolution (keeps edges and texture sharp, needs no weights)."""
    def grads(x):
        x = x.astype(jnp.float32)
        return jnp.diff(x, axis=2), jnp.diff(x, axis=3)

    total = jnp.zeros((), jnp.float32)
    for level in range(2):
        if level:
            b, t, h, w, c = pred.shape
            pred = pred[:, :, : h // 2 * 2, : w // 2 * 2].reshape(b, t, h // 2, 2, w // 2, 2, c).mean((3, 5))
            target = target[:, :, : h // 2 * 2, : w // 2 * 2].reshape(b, t, h // 2, 2, w // 2, 2, c).mean((3, 5))
        (pa, pb), (ta, tb) = grads(pred), grads(target)
        total = total + l1(pa, ta) + l1(pb, tb)
    return total


def sample_t(rng, batch: int, dist: str):
    """Flow times t in [0, 1]: `uniform` or `logit_normal` (sigmoid of a standard normal)."""
    if dist == "uniform":
        return jax.random.uniform(rng, (batch,))
    if dist == "logit_normal":
        return jax.nn.sigmoid(jax.random.normal(rng, (batch,)))
    raise ValueError(f"unknown t distribution {dist!r}; choose uniform or logit_normal")


def flow_pair(z_hq, z_lq, t):
    """The LQ->HQ bridge: z_t = (1-t) z_HQ + t z_LQ and its velocity target z_LQ - z_HQ."""
    tt = t.reshape(-1, *([1] * (z_hq.ndim - 1)))
    return (1.0 - tt) * z_hq + tt * z_lq, z_lq - z_hq

"""A light 3D-convolutional patch discriminator for the adversarial fine-tune, and hinge losses.

No spectral norm, no normalisation layers: 3D convs (temporal kernel 3, spatial stride 2) with
leaky ReLU, ending in a 1-channel conv that scores every space-time patch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class VideoDiscriminator(nnx.Module):
    """Patch logits of videos: [B, T, H, W, 3] in [0, 1] -> [B, T, H/2^n, W/2^n, 1], n = len(channels).

    Each of the `channels` stages is a (3, 4, 4) conv with spatial stride 2 and leaky ReLU(0.2);
    a (3, 3, 3) conv to one channel gives the logits. Time is kept (temporal stride 1, SAME pad).
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), *, rngs: nnx.Rngs):
        c_in, layers = 3, []
        for c in channels:
            layers.append(nnx.Conv(c_in, c, (3, 4, 4), strides=(1, 2, 2), padding="SAME", rngs=rngs))
            c_in = c
        self.layers = nnx.List(layers)
        self.head = nnx.Conv(c_in, 1, (3, 3, 3), padding="SAME", rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(jnp.float32) * 2.0 - 1.0
        for layer in self.layers:
            x = jax.nn.leaky_relu(layer(x), 0.2)
        return self.head(x)


def hinge_d_loss(real_logits, fake_logits):
    """Discriminator hinge loss: mean relu(1 - D(real)) + mean relu(1 + D(fake))."""
    return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def hinge_g_loss(fake_logits):
    """Generator hinge loss: -mean D(fake)."""
    return -jnp.mean(fake_logits)

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
            x = jax.nn.leaky_relu(conv3d_as_2d(x, layer), 0.2)
        return conv3d_as_2d(x, self.head)


def conv3d_as_2d(x: jax.Array, conv: nnx.Conv) -> jax.Array:
    """`conv(x)` for a SAME-padded 3D conv with temporal kernel 3 and temporal stride 1, computed as
    one 2D conv over the three time-shifted frames stacked on channels (XLA's CPU 3D conv is ~15x
    slower). x [B, T, H, W, C] -> [B, T, H', W', O]; same parameters as the 3D conv."""
    k = conv.kernel[...]  # [3, kh, kw, C, O]
    strides = (conv.strides,) * 3 if isinstance(conv.strides, int) else tuple(conv.strides)
    assert k.shape[0] == 3 and strides[0] == 1, (k.shape, strides)
    b, t = x.shape[:2]
    xp = jnp.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0), (0, 0)))
    stacked = jnp.concatenate([xp[:, i:i + t] for i in range(3)], axis=-1)  # [B, T, H, W, 3C], tap-major
    k2 = jnp.transpose(k, (1, 2, 0, 3, 4)).reshape(k.shape[1], k.shape[2], -1, k.shape[4])
    y = jax.lax.conv_general_dilated(stacked.reshape(b * t, *stacked.shape[2:]), k2, strides[1:], "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if conv.bias is not None:
        y = y + conv.bias[...]
    return y.reshape(b, t, *y.shape[1:])


def hinge_d_loss(real_logits, fake_logits):
    """Discriminator hinge loss: mean relu(1 - D(real)) + mean relu(1 + D(fake))."""
    return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def hinge_g_loss(fake_logits):
    """Generator hinge loss: -mean D(fake)."""
    return -jnp.mean(fake_logits)

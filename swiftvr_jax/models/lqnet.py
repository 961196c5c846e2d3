"""LQNet: an EDSR-style CNN at the LQ resolution that predicts an upscaled residual.

A conv head, `blocks` residual blocks (conv-ReLU-conv, second conv scaled by 0.1 at init so the
stack starts near identity without normalisation), a body conv with a long skip, and a
zero-initialised conv whose `3 * scale**2` channels are pixel-shuffled to `scale` times the
input size. The output is a residual: added to a resize of the newest LQ frame, an untrained
LQNet gives exactly that resize.

Used two ways: `train.probe` trains it alone as a data diagnostic, and a residual ReAE with
`reae.base_blocks > 0` adds it to the resized LQ frames its decoder corrects (`ReAE.residual_base`),
so the decoder refines a learned upscale instead of a fixed one. It sees `frames` causal LQ
frames stacked on channels (`stack_causal`): the newest and the ones before it; a stream keeps the
last `frames - 1` LQ frames between chunks.
`save`/`load` exchange its parameters as `lqnet.safetensors` (float32, flat `LQNet` keys).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

FILE = "lqnet.safetensors"


class LQNet(nnx.Module):
    """`[N, h, w, 3 * frames]` LQ in [0, 1] (newest frame last) -> `[N, h*scale, w*scale, 3]` residual."""

    def __init__(self, frames: int = 1, *, scale: int = 4, channels: int = 64, blocks: int = 8,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        conv = lambda cin, cout, **kw: nnx.Conv(cin, cout, (3, 3), dtype=dtype, rngs=rngs, **kw)  # noqa: E731
        self.scale = scale
        self.head = conv(3 * frames, channels)
        self.blocks = nnx.List([nnx.List([conv(channels, channels), conv(channels, channels)])
                                for _ in range(blocks)])
        for _, second in self.blocks:  # small residual branches: a stable start without normalisation
            second.kernel.set_value(second.kernel[...] * 0.1)
        self.body = conv(channels, channels)
        self.up = conv(channels, 3 * scale * scale, kernel_init=nnx.initializers.zeros)

    def __call__(self, lq: jax.Array) -> jax.Array:
        n, h, w, _ = lq.shape
        s = self.scale
        x = self.head(lq * 2.0 - 1.0)
        y = x
        for first, second in self.blocks:
            y = y + second(jax.nn.relu(first(y)))
        r = self.up(self.body(y) + x)  # [N, h, w, s*s*3], channel index (i*s + j)*3 + c
        return r.reshape(n, h, w, s, s, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * s, w * s, 3)


def causal_pad(lq: jax.Array, frames: int, history: jax.Array | None = None) -> jax.Array:
    """`[B, T, ...]` -> `[B, frames - 1 + T, ...]`: `lq` after the `frames - 1` frames before it, which are
    `history` (the previous frames of a stream) or, at a stream's start (None), copies of frame 0."""
    if history is None:
        history = jnp.repeat(lq[:, :1], frames - 1, axis=1)
    return jnp.concatenate([history.astype(lq.dtype), lq], axis=1)


def stack_causal(lq: jax.Array, frames: int, history: jax.Array | None = None) -> jax.Array:
    """`[B, T, h, w, C]` -> `[B, T, h, w, C * frames]`: frame t with frames t-frames+1 .. t on channels, oldest
    first; before frame 0 come the frames of `causal_pad`."""
    t = lq.shape[1]
    padded = causal_pad(lq, frames, history)
    return jnp.concatenate([padded[:, i:i + t] for i in range(frames)], axis=-1)


def save(net: LQNet, path: str) -> None:
    """Write `net`'s parameters to `path` as float32 safetensors with their flat `LQNet` keys."""
    from safetensors.numpy import save_file

    from swiftvr_jax.models.swiftvr import flat_params  # here: swiftvr imports this module

    save_file({k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in flat_params(net).items()}, path,
              metadata={"format": "swiftvr-jax-lqnet", "channels": str(net.head.out_features),
                        "blocks": str(len(net.blocks)), "scale": str(net.scale),
                        "frames": str(net.head.in_features // 3)})


def load(net: LQNet, path: str, *, grow: bool = False) -> None:
    """Copy a file written by `save` into `net` (the key set and every shape must match).

    With `grow`, a file with fewer residual blocks or input frames than `net` also loads, and the
    grown network computes exactly what the file's did: its blocks fill the first ones and each block
    after them keeps its first conv and gets a zero second conv, an identity (the body conv follows
    the last block); its head weights go to the newest frames' input channels (the last ones, see
    `stack_causal`) and the older frames' get zeros."""
    from swiftvr_jax.convert import SafetensorsFile
    from swiftvr_jax.models.swiftvr import WeightsError, flat_params, load_flat_params

    tensors = SafetensorsFile(path)
    if grow:
        have = {int(k.split(".")[1]) for k in tensors.keys() if k.startswith("blocks.")}
        if len(have) > len(net.blocks):
            raise WeightsError(f"{path}: {len(have)} residual blocks, more than the {len(net.blocks)} asked")
        own = flat_params(net)
        tensors = {k: tensors[k] for k in tensors.keys()}
        head, want = tensors.get("head.kernel"), own["head.kernel"].shape
        if head is not None and head.shape[2] < want[2] and (*head.shape[:2], head.shape[3]) == (*want[:2], want[3]):
            grown = np.zeros(want, np.float32)  # [3, 3, 3 * frames, channels]: the newest frames are last
            grown[:, :, want[2] - head.shape[2]:] = head
            tensors["head.kernel"] = grown
        for k, v in own.items():
            parts = k.split(".")
            if parts[0] == "blocks" and int(parts[1]) >= len(have):  # the blocks the file lacks
                tensors[k] = np.zeros(v.shape, np.float32) if parts[2] == "1" else np.asarray(v, np.float32)
    load_flat_params(net, tensors, what=path)

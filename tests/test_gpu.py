"""Accelerator checks: cuDNN flash attention against XLA's attention on the same inputs.

Skipped where JAX has no GPU. On a GPU machine: `JAX_PLATFORMS=cuda pytest tests/test_gpu.py`
(the conftest pins the CPU only when JAX_PLATFORMS is unset).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from swiftvr_jax.attention import ATTENTION_MODES, attention
from swiftvr_jax.config import get_config
from swiftvr_jax.models.dit import DiT, attention_implementation

pytestmark = pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU (JAX_PLATFORMS=cuda)")


def _qkv(grid, heads=4, head_dim=128, dtype=jnp.bfloat16):
    rng = np.random.default_rng(0)
    shape = (2, int(np.prod(grid)), heads, head_dim)
    return [jnp.asarray(rng.standard_normal(shape), dtype) for _ in range(3)]


@pytest.mark.parametrize("mode", ATTENTION_MODES)
@pytest.mark.parametrize("shift", [False, True])
def test_cudnn_attention_matches_float32_xla(mode, shift):
    grid, window = (2, 20, 36), (8, 8)  # partial windows on both axes: clamped (mfswa) and padded (swin)
    q, k, v = _qkv(grid)
    fast = attention(q, k, v, mode=mode, grid=grid, window=window, shift=shift, implementation="cudnn")
    ref = attention(*(a.astype(jnp.float32) for a in (q, k, v)), mode=mode, grid=grid, window=window,
                    shift=shift, implementation="xla")
    assert fast.dtype == jnp.bfloat16
    err = np.abs(np.asarray(fast, np.float32) - np.asarray(ref))
    scale = float(np.abs(np.asarray(ref)).mean())
    # bfloat16 output rounding is ~2^-9 relative; a wrong layout or window would be off by O(scale)
    assert err.max() < 0.05 * float(np.abs(np.asarray(ref)).max()) and err.mean() < 0.01 * scale, (err.max(), scale)


def test_auto_picks_cudnn_in_half_precision_only():
    cfg = get_config("small").model
    assert attention_implementation(dataclasses.replace(cfg, dtype="bfloat16")) == "cudnn"
    assert attention_implementation(dataclasses.replace(cfg, dtype="float32")) is None


@pytest.mark.parametrize("mode", ATTENTION_MODES)
def test_dit_bfloat16_cudnn_close_to_xla(mode):
    cfg = dataclasses.replace(get_config("small").model, dtype="bfloat16", attention=mode, num_layers=2)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((1, 2, 24, 40, cfg.in_channels)), jnp.float32)
    text = jnp.zeros((1, cfg.text_len, cfg.text_dim), jnp.float32)
    outs = {}
    for impl in ("cudnn", "xla"):
        graphdef, state = nnx.split(DiT(dataclasses.replace(cfg, attn_impl=impl), rngs=nnx.Rngs(0)))
        outs[impl] = np.asarray(jax.jit(lambda s: nnx.merge(graphdef, s)(x, 500.0, text))(state), np.float32)
    rel = np.linalg.norm(outs["cudnn"] - outs["xla"]) / np.linalg.norm(outs["xla"])
    assert rel < 0.02, rel

import jax.numpy as jnp
import numpy as np

from swiftvr_jax.rope import apply_rope, rope_angles, rope_frequencies, rope_split


def test_split_matches_wan():
    assert rope_split(128) == (44, 42, 42)
    assert rope_split(64) == (24, 20, 20)


def test_offset_chunk_equals_slice_of_longer_run():
    long = np.asarray(rope_angles((12, 3, 4), 64, t_offset=0))
    for k in (0, 5, 9):
        chunk = np.asarray(rope_angles((3, 3, 4), 64, t_offset=k))
        np.testing.assert_allclose(chunk, long.reshape(12, 12, 32)[k:k + 3].reshape(-1, 32), rtol=1e-6, atol=1e-5)


def test_apply_rope_is_complex_rotation_of_interleaved_pairs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2 * 3 * 5, 3, 32)).astype(np.float32)
    ang = np.asarray(rope_angles((2, 3, 5), 32, t_offset=7, theta=10000.0))
    # Independent reference: pairs as complex numbers times exp(i*angle), angles from the formula.
    dt, dh, _ = rope_split(32)
    t, h, w = np.meshgrid(np.arange(2) + 7, np.arange(3), np.arange(5), indexing="ij")
    ref_ang = np.concatenate([
        t.reshape(-1, 1) * 10000.0 ** (-np.arange(0, dt, 2) / dt),
        h.reshape(-1, 1) * 10000.0 ** (-np.arange(0, dh, 2) / dh),
        w.reshape(-1, 1) * 10000.0 ** (-np.arange(0, dh, 2) / dh)], axis=1)
    np.testing.assert_allclose(ang, ref_ang, rtol=1e-6, atol=1e-5)
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * np.exp(1j * ref_ang)[None, :, None, :]
    want = np.stack([z.real, z.imag], -1).reshape(x.shape)
    np.testing.assert_allclose(np.asarray(apply_rope(jnp.asarray(x), ang)), want, rtol=1e-5, atol=1e-5)


def test_rope_preserves_dtype_and_norm():
    x = jnp.ones((1, 6, 2, 16), jnp.bfloat16)
    y = apply_rope(x, rope_angles((1, 2, 3), 16))
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.linalg.norm(np.asarray(y, np.float32), axis=-1), 4.0, rtol=1e-2)
    assert rope_frequencies(44)[0] == 1.0 and len(rope_frequencies(44)) == 22

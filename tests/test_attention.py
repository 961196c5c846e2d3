import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from swiftvr_jax.attention import attention, window_plan, window_starts


@pytest.mark.parametrize("grid, n_unshifted, n_shifted", [((34, 60), 12, 15), ((45, 80), 15, 24), ((68, 120), 40, 40)])
def test_official_grid_counts(grid, n_unshifted, n_shifted):
    assert window_plan(6, *grid, (16, 16), False).n_windows == n_unshifted
    assert window_plan(6, *grid, (16, 16), True).n_windows == n_shifted


def test_official_row_starts_and_shrink():
    assert window_starts(34, 16, False) == [0, 16, 18]
    assert window_starts(5, 16, False) == [0] and window_starts(5, 16, True) == [0]
    assert window_starts(32, 16, False) == [0, 16]
    # the drop-covered rule removes the middle start: a 2-window axis is not shifted at all
    assert window_starts(32, 16, True) == [0, 16]
    assert window_starts(48, 16, True) == [0, 8, 24, 32]


@pytest.mark.parametrize("t,h,w,win", [(2, 34, 60, (16, 16)), (1, 7, 9, (4, 4)), (3, 3, 20, (4, 8)), (1, 16, 16, (16, 16))])
@pytest.mark.parametrize("shift", [False, True])
def test_windows_cover_and_own_once(t, h, w, win, shift):
    plan = window_plan(t, h, w, win, shift)
    wh, ww = min(win[0], h), min(win[1], w)
    assert plan.gather.shape == (plan.n_windows, t * wh * ww)  # identical window size
    assert set(np.unique(plan.gather)) == set(range(t * h * w))  # every token covered
    assert len(np.unique(plan.owner)) == t * h * w  # every token owned once
    flat = plan.gather.reshape(-1)
    np.testing.assert_array_equal(flat[plan.owner], np.arange(t * h * w))  # owner holds the token


def _softmax_attention(q, k, v):  # [L, H, D] numpy
    s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(q.shape[-1])
    s = np.exp(s - s.max(-1, keepdims=True))
    s /= s.sum(-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", s, v)


def _reference_mfswa(q, k, v, t, h, w, win, shift):
    """Per-window numpy loop; each token takes the first (unshifted) or last (shifted) window."""
    wh, ww = min(win[0], h), min(win[1], w)
    out = np.zeros_like(q)
    taken = np.zeros((t, h, w), bool)
    windows = [(a, c) for a in window_starts(h, win[0], shift) for c in window_starts(w, win[1], shift)]
    if shift:
        windows = windows[::-1]
    qs, ks, vs = (x.reshape(x.shape[0], t, h, w, *x.shape[2:]) for x in (q, k, v))
    o = out.reshape(qs.shape)
    for b in range(q.shape[0]):
        taken[:] = False
        for a, c in windows:
            sl = (b, slice(None), slice(a, a + wh), slice(c, c + ww))
            L = t * wh * ww
            res = _softmax_attention(*(x[sl].reshape(L, *x.shape[4:]) for x in (qs, ks, vs)))
            res = res.reshape(t, wh, ww, *res.shape[1:])
            free = ~taken[:, a:a + wh, c:c + ww]
            o[sl][free] = res[free]
            taken[:, a:a + wh, c:c + ww] = True
    return out


def _rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("t,h,w,win", [(2, 9, 13, (4, 4)), (1, 6, 20, (4, 8)), (3, 3, 5, (4, 4)), (1, 34, 60, (16, 16))])
@pytest.mark.parametrize("shift", [False, True])
def test_mfswa_matches_numpy_window_loop(t, h, w, win, shift):
    q, k, v = (_rand((2, t * h * w, 2, 8), s) for s in range(3))
    got = attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), mode="mfswa", grid=(t, h, w), window=win, shift=shift)
    want = _reference_mfswa(q, k, v, t, h, w, win, shift)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_divisible_unshifted_mfswa_equals_swin_equals_loop():
    t, h, w, win = 2, 8, 12, (4, 4)
    q, k, v = (_rand((1, t * h * w, 2, 8), s + 10) for s in range(3))
    args = dict(grid=(t, h, w), window=win, shift=False)
    m = attention(q, k, v, mode="mfswa", **args)
    s = attention(q, k, v, mode="swin", **args)
    np.testing.assert_allclose(np.asarray(m), np.asarray(s), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(m), _reference_mfswa(q, k, v, t, h, w, win, False), rtol=1e-5, atol=1e-5)


def test_swin_shifted_masks_wrapped_regions():
    """Shifted Swin on a divisible grid: each token attends within its rolled window and region."""
    t, h, w, win = 1, 8, 8, (4, 4)
    q, k, v = (_rand((1, t * h * w, 1, 4), s + 20) for s in range(3))
    got = np.asarray(attention(q, k, v, mode="swin", grid=(t, h, w), window=win, shift=True))
    # Reference: token (i, j) sees tokens whose rolled window matches and that are not wrapped apart.
    want = np.zeros_like(q)
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ri, rj = (ii - 2) % h, (jj - 2) % w  # rolled coordinates
    reg = lambda r, n: np.where(r < n - 4, 0, np.where(r < n - 2, 1, 2))
    key = (ri // 4) * 100 + (rj // 4) * 10 + reg(ri, h) * 3 + reg(rj, w)
    flat = key.reshape(-1)
    for n in range(h * w):
        sel = flat == flat[n]
        want[0, n] = _softmax_attention(q[0, n:n + 1], k[0, sel], v[0, sel])[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_full_is_dense():
    q, k, v = (_rand((1, 30, 2, 8), s + 30) for s in range(3))
    got = attention(q, k, v, mode="full", grid=(1, 5, 6))
    np.testing.assert_allclose(np.asarray(got), _softmax_attention(q[0], k[0], v[0])[None], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shift", [False, True])
def test_mfswa_gradients_match_finite_differences(shift):
    q, k, v = (jnp.asarray(_rand((1, 1 * 5 * 6, 1, 4), s + 40)) for s in range(3))
    f = lambda q, k, v: attention(q, k, v, mode="mfswa", grid=(1, 5, 6), window=(4, 4), shift=shift)
    check_grads(f, (q, k, v), order=1, modes=["rev"], atol=2e-2, rtol=2e-2)
    g = jax.grad(lambda q: jnp.sum(f(q, k, v) ** 2))(q)
    assert float(jnp.abs(g).sum()) > 0


def test_bad_mode():
    x = jnp.zeros((1, 4, 1, 2))
    with pytest.raises(ValueError, match="mfswa"):
        attention(x, x, x, mode="nope", grid=(1, 2, 2))

"""Self-attention over a latent video chunk: `full`, `swin` (masked) and `mfswa`.

MFSWA (mask-free shifted-window attention) gathers every window with one flat
index, runs ONE dense attention call with no mask, and scatters back through an
owner map. Windows are 2D over (h, w) and span every latent frame of the chunk;
edge windows are clamped inward, so every window has the same shape. Both index
tables depend only on shapes and are built once in numpy at trace time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

ATTENTION_MODES = ("full", "swin", "mfswa")


def window_starts(n: int, window: int, shift: bool) -> list[int]:
    """Start offsets of the windows covering an axis of length `n` (the official rule).

    The window shrinks to `n` when the axis is shorter. Candidates k*w - s are clamped to
    [0, n-w], deduplicated and sorted; then every middle start whose neighbours already
    cover it (next <= previous + w) is dropped, judged on the deduplicated list.
    """
    w = min(window, n)
    if n <= w:
        return [0]
    s = w // 2 if shift else 0
    starts = sorted({min(max(k * w - s, 0), n - w) for k in range(-(-n // w) + 2)})
    keep = [True] + [starts[i + 1] > starts[i - 1] + w for i in range(1, len(starts) - 1)] + [True]
    return [x for x, k in zip(starts, keep) if k]


@dataclass(frozen=True, eq=False)
class WindowPlan:
    """Static index tables for one (t, h, w, window, shift).

    gather: [n_windows, t*wh*ww] flat token indices of every window (t-major inside).
    owner:  [t*h*w] position in the flattened window outputs [n_windows*t*wh*ww] that
            each token takes its output from.
    """

    grid: tuple[int, int, int]
    window: tuple[int, int]  # effective (wh, ww) after shrinking to the grid
    shift: bool
    h_starts: tuple[int, ...]
    w_starts: tuple[int, ...]
    gather: np.ndarray
    owner: np.ndarray

    @property
    def n_windows(self) -> int:
        return self.gather.shape[0]

    @property
    def window_len(self) -> int:
        return self.gather.shape[1]


@functools.lru_cache(maxsize=256)
def window_plan(t: int, h: int, w: int, window: tuple[int, int] = (16, 16), shift: bool = False) -> WindowPlan:
    """Build (and cache by shape) the gather index and owner map for MFSWA.

    Unshifted plans give each token to the EARLIEST window (row-major) containing it,
    shifted plans to the LAST, as the official release does.
    """
    wh, ww = min(window[0], h), min(window[1], w)
    hs = np.asarray(window_starts(h, window[0], shift))
    ws = np.asarray(window_starts(w, window[1], shift))
    rows = hs[:, None] + np.arange(wh)  # [nh, wh]
    cols = ws[:, None] + np.arange(ww)  # [nw, ww]
    spatial = rows[:, None, :, None] * w + cols[None, :, None, :]  # [nh, nw, wh, ww]
    spatial = spatial.reshape(-1, wh * ww)  # [n_windows, wh*ww], windows row-major
    gather = (np.arange(t)[None, :, None] * (h * w) + spatial[:, None, :]).reshape(spatial.shape[0], -1)
    n_windows, window_len = gather.shape
    owner = np.full(t * h * w, -1, dtype=np.int64)
    order = range(n_windows) if shift else range(n_windows - 1, -1, -1)
    for i in order:  # later assignments win: shifted -> last window, unshifted -> earliest
        owner[gather[i]] = i * window_len + np.arange(window_len)
    assert (owner >= 0).all(), "windows must cover every token"
    return WindowPlan((t, h, w), (wh, ww), shift, tuple(hs.tolist()), tuple(ws.tolist()),
                      gather.astype(np.int32), owner.astype(np.int32))


def _dense(q, k, v, mask=None, implementation=None):
    return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation=implementation)


def mfswa_attention(q, k, v, plan: WindowPlan, implementation=None):
    """Mask-free shifted-window attention. q, k, v: [B, L, heads, d] -> [B, L, heads, d]."""
    b, l, nh, d = q.shape
    assert l == plan.owner.shape[0], f"sequence length {l} does not match plan grid {plan.grid}"
    idx = jnp.asarray(plan.gather.reshape(-1))

    def to_windows(x):  # [B, L, H, D] -> [B*n_windows, window_len, H, D]
        return jnp.take(x, idx, axis=1).reshape(b * plan.n_windows, plan.window_len, nh, d)

    out = _dense(to_windows(q), to_windows(k), to_windows(v), implementation=implementation)
    out = out.reshape(b, plan.n_windows * plan.window_len, nh, d)
    return jnp.take(out, jnp.asarray(plan.owner), axis=1)


@functools.lru_cache(maxsize=64)
def _swin_tables(t: int, h: int, w: int, window: tuple[int, int], shift: bool):
    """Padded sizes, shifts and the region mask [n_windows, Lw, Lw] of the Swin baseline."""
    wh, ww = min(window[0], h), min(window[1], w)
    hp, wp = -(-h // wh) * wh, -(-w // ww) * ww
    sh, sw = (wh // 2, ww // 2) if shift else (0, 0)
    # Region labels on the rolled grid, as Swin builds its img_mask: a window may only mix
    # tokens that were neighbours before the cyclic roll. Padding gets its own label.
    def labels(n, n_pad, win, s):
        lab = np.zeros(n_pad, np.int64)
        if s:
            lab[n_pad - win:n_pad - s] = 1
            lab[n_pad - s:] = 2
        valid = (np.arange(n_pad) + s) % n_pad < n  # rolled position -> original index < n
        return lab, valid
    lh, vh = labels(h, hp, wh, sh)
    lw, vw = labels(w, wp, ww, sw)
    region = (lh[:, None] * 3 + lw[None, :])  # [hp, wp]
    valid = vh[:, None] & vw[None, :]
    def part(a):  # [hp, wp] -> [n_windows, wh*ww]
        return a.reshape(hp // wh, wh, wp // ww, ww).transpose(0, 2, 1, 3).reshape(-1, wh * ww)
    reg = np.tile(part(region), (1, t))  # same spatial label for every frame
    val = np.tile(part(valid), (1, t))
    mask = (reg[:, :, None] == reg[:, None, :]) & val[:, None, :]
    return (wh, ww), (hp, wp), (sh, sw), mask


def swin_attention(q, k, v, grid: tuple[int, int, int], window: tuple[int, int], shift: bool,
                   implementation=None):
    """Classic Swin window attention: pad, cyclic roll, partition, masked dense call.

    q, k, v: [B, L, heads, d] with L = t*h*w -> [B, L, heads, d].
    """
    t, h, w = grid
    b, l, nh, d = q.shape
    (wh, ww), (hp, wp), (sh, sw), mask = _swin_tables(t, h, w, tuple(window), bool(shift))
    n_win = (hp // wh) * (wp // ww)

    def partition(x):  # [B, L, H, D] -> [B*n_win, t*wh*ww, H, D]
        x = x.reshape(b, t, h, w, nh, d)
        x = jnp.pad(x, ((0, 0), (0, 0), (0, hp - h), (0, wp - w), (0, 0), (0, 0)))
        x = jnp.roll(x, (-sh, -sw), axis=(2, 3))
        x = x.reshape(b, t, hp // wh, wh, wp // ww, ww, nh, d).transpose(0, 2, 4, 1, 3, 5, 6, 7)
        return x.reshape(b * n_win, t * wh * ww, nh, d)

    m = jnp.asarray(np.tile(mask[:, None], (b, 1, 1, 1)))  # [B*n_win, 1, Lw, Lw]
    out = _dense(partition(q), partition(k), partition(v), mask=m, implementation=implementation)
    out = out.reshape(b, hp // wh, wp // ww, t, wh, ww, nh, d).transpose(0, 3, 1, 4, 2, 5, 6, 7)
    out = jnp.roll(out.reshape(b, t, hp, wp, nh, d), (sh, sw), axis=(2, 3))
    return out[:, :, :h, :w].reshape(b, l, nh, d)


def attention(q, k, v, *, mode: str, grid: tuple[int, int, int], window: tuple[int, int] = (16, 16),
              shift: bool = False, implementation: str | None = None):
    """Self-attention over a chunk of t*h*w tokens in (t, h, w) row-major order.

    q, k, v: [B, L, heads, d]; returns [B, L, heads, d]. `mode` is `full` (dense over the
    chunk), `swin` (masked Swin baseline) or `mfswa`. `implementation` goes to
    `jax.nn.dot_product_attention` (None lets JAX choose; 'cudnn' on GPU).
    """
    if mode == "full":
        return _dense(q, k, v, implementation=implementation)
    if mode == "mfswa":
        return mfswa_attention(q, k, v, window_plan(*grid, tuple(window), bool(shift)), implementation)
    if mode == "swin":
        return swin_attention(q, k, v, grid, window, shift, implementation)
    raise ValueError(f"attention mode {mode!r} is not one of {ATTENTION_MODES}")


def attention_flops(mode: str, grid: tuple[int, int, int], window: tuple[int, int], shift: bool,
                    heads: int, head_dim: int, batch: int = 1) -> float:
    """Matmul FLOPs (QK^T and PV) one attention call performs, counting computed tokens."""
    t, h, w = grid
    if mode == "full":
        n_win, lw = 1, t * h * w
    elif mode == "mfswa":
        plan = window_plan(t, h, w, tuple(window), shift)
        n_win, lw = plan.n_windows, plan.window_len
    else:
        (wh, ww), (hp, wp), _, _ = _swin_tables(t, h, w, tuple(window), shift)
        n_win, lw = (hp // wh) * (wp // ww), t * wh * ww
    return 4.0 * batch * heads * n_win * lw * lw * head_dim


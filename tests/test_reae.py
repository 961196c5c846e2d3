"""ReAE: parameter count, shapes, streaming == whole clip, causality, and numpy references."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from swiftvr_jax.config import ReAEConfig, get_config
from swiftvr_jax.models.reae import MemBlock, ReAE, TGrow, TPool, param_count, pixel_shuffle, pixel_unshuffle

TINY = get_config("tiny").reae
B, H, W = 1, 32, 64  # 2x4 latents at 16x


# ---- helpers -----------------------------------------------------------------------------------

def _random(factory, seed: int, gain: float = 1.0, bias_std: float = 0.1):
    """Build `factory()` abstractly and fill every parameter with He-like numpy values.

    Numpy instead of the module's own init: no per-shape random kernels to compile, and
    weights far from the zero biases of the default init.
    """
    graphdef, state = nnx.split(nnx.eval_shape(factory))
    rng = np.random.default_rng(seed)

    def fill(p):
        if len(p.shape) == 1:  # bias
            return jnp.asarray(bias_std * rng.standard_normal(p.shape), jnp.float32)
        fan_in = np.prod(p.shape[:-1])  # kernel [..., in, out]
        return jnp.asarray(gain * rng.standard_normal(p.shape) / np.sqrt(fan_in), jnp.float32)

    return nnx.merge(graphdef, jax.tree.map(fill, state))


def _model(cfg: ReAEConfig = TINY, seed: int = 0) -> ReAE:
    model = _random(lambda: ReAE(cfg, rngs=nnx.Rngs(0)), seed)
    # Mid-grey with visible structure: pixels vary but mostly stay inside [0, 1].
    model.dec_out.bias[...] = jnp.full_like(model.dec_out.bias[...], 0.5)
    model.dec_out.kernel[...] = 5.0 * model.dec_out.kernel[...]
    return model


def _jitted(model: ReAE):
    """Pure jitted encode/decode over the split model (the way the pipeline runs them)."""
    graphdef, params = nnx.split(model)

    @jax.jit
    def encode(params, x, state):
        return nnx.merge(graphdef, params).encode(x, state)

    @jax.jit
    def decode(params, z, state):
        return nnx.merge(graphdef, params).decode(z, state)

    return (lambda x, s: encode(params, x, s)), (lambda z, s: decode(params, z, s))


@pytest.fixture(scope="module")
def tiny():
    model = _model()
    enc, dec = _jitted(model)
    x = jax.random.uniform(jax.random.key(42), (B, 16, H, W, 3))  # [B, T, H, W, 3]
    z, _ = enc(x, model.init_encoder_state(B, H, W))
    return model, enc, dec, x, z


def _shapes(tree):
    return jax.tree.map(lambda a: (a.shape, a.dtype), tree)


# ---- numpy references (float64, plain loops) ---------------------------------------------------

def np_conv2d(x, k, b=None, stride=1):
    """3x3 (padding 1) or 1x1 (padding 0) conv over [..., H, W, Ci] with kernel [kh, kw, Ci, Co]."""
    kh, kw = k.shape[:2]
    pad = kh // 2
    h, w = x.shape[-3:-1]
    xp = np.pad(x, [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)])
    ho, wo = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    out = np.zeros(x.shape[:-3] + (ho, wo, k.shape[-1]))
    for i in range(kh):
        for j in range(kw):
            out += xp[..., i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :] @ k[i, j]
    return out if b is None else out + b


def _w(conv):
    k = np.asarray(conv.kernel[...], np.float64)
    b = None if conv.bias is None else np.asarray(conv.bias[...], np.float64)
    return k, b


def np_memblock(block, x, past):
    """Frame-by-frame MemBlock over x [B, T, H, W, C]; returns (y, last input frame)."""
    relu = lambda a: np.maximum(a, 0)
    ys = []
    for t in range(x.shape[1]):
        h = relu(np_conv2d(np.concatenate([x[:, t], past], -1), *_w(block.conv1)))
        h = relu(np_conv2d(h, *_w(block.conv2)))
        ys.append(relu(np_conv2d(h, *_w(block.conv3)) + x[:, t]))
        past = x[:, t]
    return np.stack(ys, 1), past


def np_tpool(pool, x):
    """Group `stride` frames, concatenate frame-major on channels, 1x1 conv."""
    s = pool.stride
    k, _ = _w(pool.conv)
    groups = [np.concatenate([x[:, g * s + i] for i in range(s)], -1) for g in range(x.shape[1] // s)]
    return np.stack([gr @ k[0, 0] for gr in groups], 1)


def np_tgrow(grow, x):
    """Each frame -> `stride` copies mixed by a (3,1,1) kernel with zero padding inside the frame."""
    k, _ = _w(grow.conv)
    s = grow.stride
    if s == 1:
        return x @ k[0, 0]
    out = []
    for t in range(x.shape[1]):
        for j in range(s):
            acc = np.zeros(x.shape[:1] + x.shape[2:4] + (k.shape[-1],))
            for d in (-1, 0, 1):
                if 0 <= j + d < s:  # copy j+d exists (all copies equal frame t)
                    acc += x[:, t] @ k[d + 1, 0, 0]
            out.append(acc)
    return np.stack(out, 1)


def np_pixel_unshuffle(x, r):
    *lead, h, w, c = x.shape
    out = np.zeros((*lead, h // r, w // r, c * r * r), x.dtype)
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                out[..., ch * r * r + i * r + j] = x[..., i::r, j::r, ch]
    return out


def np_pixel_shuffle(x, r):
    *lead, h, w, crr = x.shape
    c = crr // (r * r)
    out = np.zeros((*lead, h * r, w * r, c), x.dtype)
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                out[..., i::r, j::r, ch] = x[..., ch * r * r + i * r + j]
    return out


def np_encode(model, x):
    relu = lambda a: np.maximum(a, 0)
    x = np_pixel_unshuffle(x, model.cfg.pixel_shuffle)
    x = relu(np_conv2d(x, *_w(model.enc_in)))
    for stage in model.enc_stages:
        x = np_tpool(stage.pool, x)
        k, _ = _w(stage.down)
        x = np_conv2d(x, k, stride=stage.down.strides[0])
        for block in stage.blocks:
            x, _ = np_memblock(block, x, np.zeros_like(x[:, 0]))
    return np_conv2d(x, *_w(model.enc_out))


def np_decode(model, z, inputs=None):
    """Whole-clip decode from zero memory; a residual model adds `inputs` delayed by its lag."""
    relu = lambda a: np.maximum(a, 0)
    x = relu(np_conv2d(3 * np.tanh(z / 3), *_w(model.dec_in)))
    for stage in model.dec_stages:
        for block in stage.blocks:
            x, _ = np_memblock(block, x, np.zeros_like(x[:, 0]))
        s = stage.space_stride
        x = np.repeat(np.repeat(x, s, 2), s, 3)
        x = np_conv2d(np_tgrow(stage.grow, x), *_w(stage.conv))
    if inputs is not None:  # output frame t corrects input frame t - lag (zeros before the stream)
        lag = model.frames_to_trim
        skip = np.zeros_like(inputs)
        skip[:, lag:] = inputs[:, :inputs.shape[1] - lag]
    if model.cfg.lq_blocks:
        y = relu(np_conv2d(np_pixel_unshuffle(skip, 2 * model.cfg.pixel_shuffle), *_w(model.lq_in)))
        for block in model.lq_branch:
            y, _ = np_memblock(block, y, np.zeros_like(y[:, 0]))
        x = x + np_pixel_shuffle(np_conv2d(y, *_w(model.lq_out)), 2)
    if model.cfg.cond_blocks:
        x = x + np_conv2d(np_pixel_unshuffle(skip, model.cfg.pixel_shuffle), *_w(model.dec_cond))
        for block in model.dec_refine:
            x, _ = np_memblock(block, x, np.zeros_like(x[:, 0]))
    x = np_pixel_shuffle(np_conv2d(relu(x), *_w(model.dec_out)), model.cfg.pixel_shuffle)
    if inputs is not None:
        x = x + skip
    return np.clip(x, 0, 1)


# ---- tests -------------------------------------------------------------------------------------

def test_default_param_count_is_official():
    abstract = nnx.eval_shape(lambda: ReAE(ReAEConfig(), rngs=nnx.Rngs(0)))
    assert all(isinstance(p, jax.ShapeDtypeStruct) for p in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    assert param_count(abstract) == 40_946_364


@pytest.mark.parametrize("spatial", [(2, 2, 2), (1, 2, 2)])
def test_shapes_and_state_structure_under_jit(spatial):
    cfg = dataclasses.replace(TINY, spatial_strides=spatial)
    model = _model(cfg)
    enc, dec = _jitted(model)
    f = cfg.space_factor
    assert (f, cfg.time_factor, model.frames_to_trim) == ({(2, 2, 2): 16, (1, 2, 2): 8}[spatial], 4, 3)
    x = jax.random.uniform(jax.random.key(0), (2, 8, H, W, 3))
    s0 = model.init_encoder_state(2, H, W)
    z, s1 = enc(x, s0)
    assert z.shape == (2, 2, H // f, W // f, cfg.latent_channels)
    assert jax.tree.structure(s1) == jax.tree.structure(s0) and _shapes(s1) == _shapes(s0)
    d0 = model.init_decoder_state(2, H // f, W // f)
    y, d1 = dec(z, d0)
    assert y.shape == (2, 8, H, W, 3)
    assert jax.tree.structure(d1) == jax.tree.structure(d0) and _shapes(d1) == _shapes(d0)


def test_encode_rejects_bad_inputs(tiny):
    model, *_ = tiny
    state = model.init_encoder_state(B, H, W)
    with pytest.raises(ValueError, match="multiple of 4"):
        model.encode(jnp.zeros((B, 6, H, W, 3)), state)
    with pytest.raises(ValueError, match="multiples of 16"):
        model.init_encoder_state(B, 24, W)
    with pytest.raises(ValueError, match="state shapes"):
        model.encode(jnp.zeros((B, 4, H, W, 3)), model.init_encoder_state(B, H, 2 * W))
    with pytest.raises(ValueError, match="state shapes"):
        model.decode(jnp.zeros((B, 1, 2, 4, TINY.latent_channels)), model.init_decoder_state(2, 2, 4))


@pytest.mark.parametrize("chunks", [(8, 8), (4, 12), (4, 4, 4, 4)])
def test_chunked_equals_whole_clip(tiny, chunks):
    model, enc, dec, x, z = tiny
    state, zs, t = model.init_encoder_state(B, H, W), [], 0
    for n in chunks:
        zc, state = enc(x[:, t:t + n], state)
        zs.append(zc)
        t += n
    np.testing.assert_allclose(np.concatenate(zs, 1), z, atol=1e-5, rtol=0)

    y, _ = dec(z, model.init_decoder_state(B, *z.shape[2:4]))
    state, ys, t = model.init_decoder_state(B, *z.shape[2:4]), [], 0
    for n in chunks:
        yc, state = dec(z[:, t:t + n // 4], state)
        ys.append(yc)
        t += n // 4
    np.testing.assert_allclose(np.concatenate(ys, 1), y, atol=1e-5, rtol=0)
    assert float(jnp.std(y)) > 0.05  # the comparison is not between constant frames


@pytest.mark.parametrize("per_step", [1, 2])
def test_latents_per_step_equals_whole_chunk(tiny, per_step):
    """Running a chunk group by group through the memory (lax.scan) gives the whole-chunk result
    and the same memory for the next chunk."""
    model, _, _, x, z = tiny  # x: 16 frames -> 4 latents
    graphdef, params = nnx.split(model)
    enc = jax.jit(lambda p, x, s: nnx.merge(graphdef, p).encode(x, s, latents_per_step=per_step))
    dec = jax.jit(lambda p, z, s: nnx.merge(graphdef, p).decode(z, s, latents_per_step=per_step))
    s0 = model.init_encoder_state(B, H, W)
    zg, sg = enc(params, x, s0)
    zw, sw = model.encode(x, s0)
    np.testing.assert_allclose(zg, zw, atol=1e-5, rtol=0)
    for a, b in zip(jax.tree.leaves(sg), jax.tree.leaves(sw)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    d0 = model.init_decoder_state(B, *z.shape[2:4])
    yg, _ = dec(params, z, d0)
    yw, _ = model.decode(z, d0)
    np.testing.assert_allclose(yg, yw, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="must divide"):
        model.decode(z[:, :3], d0, latents_per_step=2)


def test_residual_latents_per_step_equals_whole_chunk(residual):
    model, dec, z, x = residual
    s0 = model.init_decoder_state(B, H // 16, W // 16)
    yw, sw = dec(z, s0, x)
    yg, sg = model.decode(z, s0, x, latents_per_step=1)
    np.testing.assert_allclose(yg, yw, atol=1e-5, rtol=0)
    np.testing.assert_allclose(sg[-1][0], sw[-1][0], atol=0, rtol=0)  # the lag line carries on


def test_causality(tiny):
    model, enc, dec, x, z = tiny
    x2 = x.at[:, 9:].set(jax.random.uniform(jax.random.key(7), x[:, 9:].shape))  # change frames >= 9
    z2, _ = enc(x2, model.init_encoder_state(B, H, W))
    np.testing.assert_array_equal(z2[:, :2], z[:, :2])  # latents of frames 0..7 untouched
    assert not np.allclose(z2[:, 2], z[:, 2])
    z3 = z.at[:, 2:].add(1.0)  # change latents >= 2
    d0 = model.init_decoder_state(B, *z.shape[2:4])
    y, _ = dec(z, d0)
    y3, _ = dec(z3, d0)
    np.testing.assert_array_equal(y3[:, :8], y[:, :8])  # frames decoded from latents 0, 1
    assert not np.allclose(y3[:, 8:12], y[:, 8:12])


def test_pixel_shuffle_matches_torch_order():
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 12, 3)).astype(np.float32)
    u = np.asarray(pixel_unshuffle(jnp.asarray(x), 2))
    np.testing.assert_array_equal(u, np_pixel_unshuffle(x, 2))
    np.testing.assert_array_equal(np.asarray(pixel_shuffle(jnp.asarray(u), 2)), x)
    y = np.random.default_rng(1).normal(size=(4, 2, 3, 27)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(pixel_shuffle(jnp.asarray(y), 3)), np_pixel_shuffle(y, 3))


def test_memblock_matches_numpy():
    block = _random(lambda: MemBlock(6, rngs=nnx.Rngs(0)), 1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 7, 6))
    past = rng.normal(size=(2, 6, 7, 6))
    y, last = block(jnp.asarray(x, jnp.float32), jnp.asarray(past, jnp.float32))
    y_ref, last_ref = np_memblock(block, x, past)
    np.testing.assert_allclose(y, y_ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(last, last_ref, atol=1e-6)


def test_tpool_and_tgrow_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 5, 4, 3))
    for s in (1, 2, 3):
        pool = _random(lambda: TPool(3, s, rngs=nnx.Rngs(0)), s)
        np.testing.assert_allclose(pool(jnp.asarray(x, jnp.float32)), np_tpool(pool, x), atol=1e-5, rtol=1e-5)
    for s in (1, 2):
        grow = _random(lambda: TGrow(3, s, rngs=nnx.Rngs(0)), s)
        y = grow(jnp.asarray(x, jnp.float32))
        assert y.shape == (2, 6 * s, 5, 4, 3)
        np.testing.assert_allclose(y, np_tgrow(grow, x), atol=1e-5, rtol=1e-5)


def test_whole_model_matches_numpy(tiny):
    model, enc, dec, x, z = tiny
    x8 = np.asarray(x[:, :8], np.float64)
    np.testing.assert_allclose(z[:, :2], np_encode(model, x8), atol=2e-4, rtol=1e-4)
    zr = np.asarray(z[:, :2], np.float64)
    y, _ = dec(z[:, :2], model.init_decoder_state(B, *z.shape[2:4]))
    np.testing.assert_allclose(y, np_decode(model, zr), atol=2e-4, rtol=1e-4)


def test_decoded_values_in_unit_range(tiny):
    model, enc, dec, x, z = tiny
    loud = _model()
    loud.dec_out.kernel[...] = 10.0 * loud.dec_out.kernel[...]  # push pre-clip values far outside [0, 1]
    y, _ = _jitted(loud)[1](z[:, :2], loud.init_decoder_state(B, *z.shape[2:4]))
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert float(y.min()) == 0.0 and float(y.max()) == 1.0  # the clip was actually exercised


@pytest.fixture(scope="module", params=[(0, 0), (2, 0), (2, 3)], ids=["skip", "cond_blocks", "lq_blocks"])
def residual(request):
    cond_blocks, lq_blocks = request.param
    model = _model(dataclasses.replace(TINY, residual=True, cond_blocks=cond_blocks, lq_blocks=lq_blocks))
    model.dec_out.bias[...] = jnp.zeros_like(model.dec_out.bias[...])  # a correction around 0
    if cond_blocks:  # trained-looking conditioning instead of the zero initialisation
        convs = [model.dec_cond] + [b.conv3 for b in model.dec_refine] + ([model.lq_out] if lq_blocks else [])
        for conv, key in zip(convs, jax.random.split(jax.random.key(5), len(convs))):
            conv.kernel[...] = 0.05 * jax.random.normal(key, conv.kernel[...].shape)
    graphdef, params = nnx.split(model)
    dec = jax.jit(lambda p, z, s, x: nnx.merge(graphdef, p).decode(z, s, x))
    z = jax.random.normal(jax.random.key(3), (B, 4, H // 16, W // 16, TINY.latent_channels))
    x = jax.random.uniform(jax.random.key(4), (B, 16, H, W, 3))
    return model, (lambda z, s, x: dec(params, z, s, x)), z, x


def test_residual_decoder_adds_lagged_inputs(residual):
    model, dec, z, x = residual
    y, _ = dec(z, model.init_decoder_state(B, H // 16, W // 16), x)
    ref = np_decode(model, np.asarray(z, np.float64), np.asarray(x, np.float64))
    np.testing.assert_allclose(y, ref, atol=2e-4, rtol=1e-4)
    # Not vacuous: the skip moves the output and few pixels sit on the clip.
    plain = np_decode(model, np.asarray(z, np.float64), np.zeros(x.shape))
    assert np.abs(ref - plain).mean() > 0.1 and 0.0 < float(y.mean()) < 1.0
    with pytest.raises(ValueError, match="needs `inputs`"):
        model.decode(z, model.init_decoder_state(B, H // 16, W // 16))


@pytest.mark.parametrize("chunks", [(2, 2), (1, 3), (1, 1, 1, 1)])
def test_residual_chunked_equals_whole_clip(residual, chunks):
    model, dec, z, x = residual
    y, _ = dec(z, model.init_decoder_state(B, H // 16, W // 16), x)
    state, ys, t = model.init_decoder_state(B, H // 16, W // 16), [], 0
    for n in chunks:
        yc, state = dec(z[:, t:t + n], state, x[:, 4 * t:4 * (t + n)])
        ys.append(yc)
        t += n
    np.testing.assert_allclose(np.concatenate(ys, 1), y, atol=1e-5, rtol=0)


def test_cond_blocks_start_as_a_no_op():
    """Zero-initialised cond blocks leave a residual decoder's output unchanged; trained ones use
    every frame's input (not only what the latents carry)."""
    base = ReAE(dataclasses.replace(TINY, residual=True), rngs=nnx.Rngs(0))
    cond = ReAE(dataclasses.replace(TINY, residual=True, cond_blocks=1), rngs=nnx.Rngs(0))
    z = jax.random.normal(jax.random.key(3), (B, 2, H // 16, W // 16, TINY.latent_channels))
    x = jax.random.uniform(jax.random.key(4), (B, 8, H, W, 3))
    y0, _ = base.decode(z, base.init_decoder_state(B, H // 16, W // 16), x)
    y1, s1 = cond.decode(z, cond.init_decoder_state(B, H // 16, W // 16), x)
    np.testing.assert_array_equal(y1, y0)  # same seed: the shared parameters are identical
    assert [a.shape for a in s1[-2]] == [(B, H // 2, W // 2, TINY.dec_widths[-1])]
    cond.dec_cond.kernel[...] = 0.05 * jax.random.normal(jax.random.key(6), cond.dec_cond.kernel[...].shape)
    x2 = x.at[:, 4].set(1.0 - x[:, 4])  # change one input frame only
    ya, _ = cond.decode(z, cond.init_decoder_state(B, H // 16, W // 16), x)
    yb, _ = cond.decode(z, cond.init_decoder_state(B, H // 16, W // 16), x2)
    moved = np.abs(np.asarray(yb) - np.asarray(ya)).mean(axis=(0, 2, 3, 4))
    assert moved[7] > 5 * moved[6]  # the lag-3 output of frame 4 moves beyond its skip alone

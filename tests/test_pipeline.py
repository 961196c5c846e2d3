import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from swiftvr_jax.config import get_config
from swiftvr_jax.models.swiftvr import SwiftVR, WeightsError, load_pretrained, save_pretrained
from swiftvr_jax.pipeline import ChunkType, SwiftVRPipeline, plan_chunks

CFG = get_config("tiny")


@pytest.fixture(scope="module")
def pipe():
    return SwiftVRPipeline(SwiftVR(CFG, rngs=nnx.Rngs(0)), CFG)


def _frames(n, h=20, w=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _official_schedule(t, clip_len):
    """The official release's chunk list for t = 4a+1 frames: (kind, start, count)."""
    if t <= clip_len + 4:
        return [("last", 0, t)]
    out, pos = [("first", 0, clip_len + 4)], clip_len + 4
    while t - pos > clip_len:
        out.append(("middle", pos, clip_len))
        pos += clip_len
    return out + [("last", pos, t - pos)]


def _reference_restore(model, frames, upscale, clip_len):
    """Eager, variable-shape reimplementation of the official per-chunk protocol."""
    t, h, w, _ = frames.shape
    H, W = h * upscale, w * upscale
    ph, pw = -(-H // 32) * 32, -(-W // 32) * 32
    enc = model.reae.init_encoder_state(1, ph, pw)
    dec = model.reae.init_decoder_state(1, ph // 16, pw // 16)
    text = model.text[...]
    outs, prev_z, offset, full = [], None, 0, clip_len // 4
    seen = []  # every LQ frame fed so far (the last chunk's padding too), for the learned base's history
    for i, (kind, start, count) in enumerate(_official_schedule(t, clip_len)):
        x = frames[start:start + count].astype(np.float32) / 255.0
        if kind == "last":  # 4b+1 frames -> 4b+4 by repeating the last frame
            x = np.concatenate([x, np.repeat(x[-1:], 3, axis=0)])
        pad = lambda v: jnp.pad(v, ((0, 0), (0, 0), (0, ph - H), (0, pw - W), (0, 0)))
        base = jax.image.resize(jnp.asarray(x)[None], (1, len(x), H, W, 3), model.reae.cfg.residual_resize)
        seen += list(x)
        if model.reae.cfg.base_blocks:  # the learned base: its LQNet frame by frame on the K frames up to each
            k_f = model.reae.cfg.base_frames
            stacks = [np.concatenate([seen[max(g - k_f + 1 + i, 0)] for i in range(k_f)], -1)
                      for g in range(len(seen) - len(x), len(seen))]
            base = base + jnp.stack([model.reae.base_net(jnp.asarray(f)[None])[0] for f in stacks])[None]
        base = pad(base)
        x = pad(jax.image.resize(jnp.asarray(x)[None], (1, len(x), H, W, 3), "bilinear"))
        z, enc = model.reae.encode(x, enc)
        k = z.shape[1]
        if kind == "last" and prev_z is not None and k < full:
            z_in = jnp.concatenate([prev_z[:, prev_z.shape[1] - (full - k):], z], axis=1)
            off = offset - (full - k)
        else:
            z_in, off = z, offset
        z_hq = (z_in - model.dit(z_in, 1000.0, text, t_offset=off))[:, -k:]
        y, dec = model.reae.decode(z_hq, dec, base)
        if i == 0:
            y = y[:, 3:]
        outs.append(np.asarray(jnp.round(y[0, :, :H, :W] * 255)).astype(np.uint8))
        prev_z, offset = z, offset + k
    return np.concatenate(outs)


def test_plan_matches_official_schedule_for_4a_plus_1():
    for t in range(1, 200, 4):
        ours = plan_chunks(t, 24)
        official = _official_schedule(t, 24)
        assert len(ours) == len(official)
        for c, (kind, _, count) in zip(ours, official):
            want = {"first": count, "middle": count}.get(kind, count + 3)  # LAST gets its 3 padded frames
            assert c.frames == want
            assert c.kind.value == kind or (c.kind == ChunkType.SINGLE and len(official) == 1)


@pytest.mark.parametrize("t", [5, 13, 17, 29])
def test_pipeline_equals_official_protocol_reference(pipe, t):
    frames = _frames(t)
    got = pipe.restore_frames(frames, upscale=2, clip_len=8)
    want = _reference_restore(pipe.model, frames, 2, 8)
    assert got.shape == want.shape == (t, 40, 48, 3)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01  # jit vs eager rounding only


@pytest.mark.parametrize("t,resize,cond_blocks,base_blocks,base_frames", [
    (13, "bilinear", 0, 0, 1), (29, "bilinear", 0, 0, 1), (29, "cubic", 2, 0, 1), (17, "cubic", 2, 1, 1),
    (29, "cubic", 0, 1, 3)])
def test_residual_pipeline_equals_reference(t, resize, cond_blocks, base_blocks, base_frames):
    cfg = dataclasses.replace(CFG, reae=dataclasses.replace(CFG.reae, residual=True, residual_resize=resize,
                                                            cond_blocks=cond_blocks, base_blocks=base_blocks,
                                                            base_channels=8, base_scale=2, base_frames=base_frames))
    model = SwiftVR(cfg, rngs=nnx.Rngs(2))
    # Trained-looking conditioning and base instead of their zero initialisation.
    convs = [model.reae.dec_cond] + [b.conv3 for b in model.reae.dec_refine] if cond_blocks else []
    for conv in convs + ([model.reae.base_net.up, model.reae.base_net.head] if base_blocks else []):
        conv.kernel[...] = 0.02 * jax.random.normal(jax.random.key(7), conv.kernel[...].shape)
    pipe = SwiftVRPipeline(model, cfg)
    frames = _frames(t, seed=5)
    got = pipe.restore_frames(frames, upscale=2, clip_len=8)
    want = _reference_restore(pipe.model, frames, 2, 8)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert got.shape == want.shape and diff.max() <= 1 and diff.mean() < 0.01
    if base_blocks:  # the learned base is x2 only
        with pytest.raises(ValueError, match="x2 only"):
            pipe.stream(upscale=3)
    # The output follows the input: near its upscale, lagged by nothing after the trim.
    up = np.asarray(jax.image.resize(frames.astype(np.float32), (t, 40, 48, 3), resize))
    assert np.abs(got - up).mean() < np.abs(got[1:] - up[:-1]).mean()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 11, 12, 14, 26, 27, 31])
def test_every_input_frame_is_kept(pipe, n):
    out = pipe.restore_frames(_frames(n, 9, 13), upscale=3, clip_len=8)
    assert out.shape == (n, 27, 39, 3) and out.dtype == np.uint8


def test_stream_in_uneven_pieces_equals_one_call(pipe):
    frames = _frames(37, seed=3)
    whole = pipe.restore_frames(frames, upscale=2, clip_len=8)
    session = pipe.stream(upscale=2, clip_len=8)
    parts, i = [], 0
    for size in [1, 5, 2, 9, 3, 17]:
        got = session.step(frames[i:i + size])
        i += size
        if got is not None:
            parts.append(got)
    parts.append(session.flush())
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert session.frames_out == 37


def test_one_compilation_per_chunk_type():
    pipe = SwiftVRPipeline(SwiftVR(CFG, rngs=nnx.Rngs(1)), CFG)
    session = pipe.stream(upscale=1, clip_len=8)
    frames = _frames(12 + 8 * 8 + 5, 32, 32)  # FIRST + 8 MIDDLE + LAST = 10 chunks
    for i in range(0, len(frames), 4):
        session.step(frames[i:i + 4])
    session.flush()
    assert len(session.chunk_kinds) == 10
    assert pipe.compilations() == {"encode": 2, "dit": 2, "decode": 2}


def test_frame_size_change_and_bad_dtype_rejected(pipe):
    s = pipe.stream(upscale=1, clip_len=8)
    s.step(_frames(2, 16, 16))
    with pytest.raises(ValueError, match="frame size changed"):
        s.step(_frames(2, 16, 20))
    with pytest.raises(ValueError, match="uint8"):
        pipe.stream().step(np.zeros((2, 8, 8, 3), np.float32))


def test_weights_round_trip_and_strict_loading(tmp_path, pipe):
    save_pretrained(pipe.model, CFG, str(tmp_path / "w"))
    loaded = SwiftVRPipeline.from_pretrained(str(tmp_path / "w"))
    frames = _frames(6)
    np.testing.assert_array_equal(loaded.restore_frames(frames, upscale=1), pipe.restore_frames(frames, upscale=1))
    other = dataclasses.replace(CFG, model=dataclasses.replace(CFG.model, ffn_dim=96))
    (tmp_path / "bad").mkdir()
    save_pretrained(SwiftVR(other, rngs=nnx.Rngs(0)), CFG, str(tmp_path / "bad"))  # config says 128
    with pytest.raises(WeightsError, match="ffn"):
        load_pretrained(str(tmp_path / "bad"))
    with pytest.raises(WeightsError, match="config.json"):
        load_pretrained(str(tmp_path))


def test_float16_export_halves_the_file_and_loads_back_within_rounding(tmp_path, pipe):
    save_pretrained(pipe.model, CFG, str(tmp_path / "f32"))
    save_pretrained(pipe.model, CFG, str(tmp_path / "f16"), dtype="float16")
    size = lambda d: os.path.getsize(tmp_path / d / "model.safetensors")
    assert 0.49 < size("f16") / size("f32") < 0.51
    model, _ = load_pretrained(str(tmp_path / "f16"))
    from swiftvr_jax.models.swiftvr import flat_params

    ref, got = flat_params(pipe.model), flat_params(model)
    for k in ref:
        r = np.asarray(ref[k])
        assert np.asarray(got[k]).dtype == np.float32
        np.testing.assert_array_equal(np.asarray(got[k]), r.astype(np.float16).astype(np.float32))
    with pytest.raises(ValueError, match="float32 or float16"):
        save_pretrained(pipe.model, CFG, str(tmp_path / "x"), dtype="bfloat8")


def test_restore_video_png_equals_stream_and_dtype_view(tmp_path, pipe):
    from swiftvr_jax.video_io import open_writer, read_video

    frames = _frames(7, 16, 16, seed=5)
    with open_writer(str(tmp_path / "in") + "/", 10.0) as w:
        w.write(frames)
    summary = pipe.restore_video(str(tmp_path / "in"), str(tmp_path / "out") + "/", upscale=2, clip_len=4)
    got, fps = read_video(str(tmp_path / "out"))
    assert summary["frames"] == 7 and fps == pytest.approx(24.0)  # frame folders carry no fps: the default
    np.testing.assert_array_equal(got, pipe.restore_frames(frames, upscale=2, clip_len=4))
    bf16 = pipe.restore_frames(frames, upscale=2, clip_len=4, dtype="bfloat16")
    assert pipe.with_dtype("bfloat16").cfg.model.dtype == "bfloat16"
    assert np.abs(bf16.astype(int) - got.astype(int)).mean() < 3  # same weights, lower precision

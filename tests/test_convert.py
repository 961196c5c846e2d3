"""Official <-> project weight conversion on small generated checkpoints (no torch needed).

The official-layout checkpoints are written here from the documented official naming (diffusers
`WanTransformer3DModel` keys, the official ReAE `nn.Sequential` indices), independently of the
tables in `swiftvr_jax.convert`, with safetensors' own writer (bfloat16 included).
"""

import json
import os
import tracemalloc

import jax
import ml_dtypes
import numpy as np
import pytest
from flax import nnx
from safetensors import TensorSpec, serialize_file
from safetensors.numpy import load_file, save_file

from infer.convert import main as convert_main
from swiftvr_jax.config import get_config
from swiftvr_jax.convert import (ConvertError, SafetensorsFile, SafetensorsWriter, bf16_bits_to_float32,
                                 conversion_plan, dit_config_from_diffusers, export_official, float32_to_bf16_bits,
                                 import_official, project_shapes, reae_config_from_shapes)
from swiftvr_jax.models.dit import timestep_features
from swiftvr_jax.models.swiftvr import SwiftVR, flat_params, load_pretrained, save_pretrained

DIFFUSERS_CFG = {
    "_class_name": "WanTransformer3DModel", "_diffusers_version": "0.35.1", "patch_size": [1, 2, 2],
    "num_attention_heads": 2, "attention_head_dim": 12, "in_channels": 8, "out_channels": 8, "text_dim": 16,
    "freq_dim": 32, "ffn_dim": 40, "num_layers": 4, "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6, "image_dim": None, "added_kv_proj_dim": None, "rope_max_seq_len": 1024,
    "pos_embed_seq_len": None, "enable_swa": True, "self_attn_window_hw": [8, 8],
}
REAE = dict(enc=8, latent=8, widths=(16, 16, 8, 8), strides=(2, 2, 1), blocks=2, r=2)
TEXT_SHAPE = (1, 5, 16)


# ---- official-layout checkpoints, written from the documented naming ------------------------------

def official_dit(rng, c=DIFFUSERS_CFG) -> dict[str, np.ndarray]:
    """diffusers WanTransformer3DModel state dict (names and PyTorch shapes) with random values."""
    d = c["num_attention_heads"] * c["attention_head_dim"]
    pt, ph, pw = c["patch_size"]
    t = {}

    def rand(*shape):
        return rng.standard_normal(shape).astype(np.float32) * 0.2

    def lin(name, din, dout):
        t[f"{name}.weight"], t[f"{name}.bias"] = rand(dout, din), rand(dout)

    t["patch_embedding.weight"], t["patch_embedding.bias"] = rand(d, c["in_channels"], pt, ph, pw), rand(d)
    lin("condition_embedder.time_embedder.linear_1", c["freq_dim"], d)
    lin("condition_embedder.time_embedder.linear_2", d, d)
    lin("condition_embedder.time_proj", d, 6 * d)
    lin("condition_embedder.text_embedder.linear_1", c["text_dim"], d)
    lin("condition_embedder.text_embedder.linear_2", d, d)
    for i in range(c["num_layers"]):
        b = f"blocks.{i}"
        t[f"{b}.scale_shift_table"] = rand(1, 6, d)
        for a in ("attn1", "attn2"):
            for p in ("to_q", "to_k", "to_v", "to_out.0"):
                lin(f"{b}.{a}.{p}", d, d)
            t[f"{b}.{a}.norm_q.weight"], t[f"{b}.{a}.norm_k.weight"] = rand(d), rand(d)
        t[f"{b}.norm2.weight"], t[f"{b}.norm2.bias"] = rand(d), rand(d)
        lin(f"{b}.ffn.net.0.proj", d, c["ffn_dim"])
        lin(f"{b}.ffn.net.2", c["ffn_dim"], d)
    t["scale_shift_table"] = rand(1, 2, d)
    lin("proj_out", d, c["out_channels"] * pt * ph * pw)
    return t


def official_reae(rng, enc, latent, widths, strides, blocks, r) -> dict[str, np.ndarray]:
    """Official ReAE state dict: `encoder`/`decoder` nn.Sequential indices as in the release (rng None: shapes)."""
    t = {}

    def conv(name, cin, cout, k=(3, 3), bias=True):
        if rng is None:  # shapes only: zero-copy placeholders
            t[f"{name}.weight"] = np.broadcast_to(np.float32(0), (cout, cin, *k))
            t.update({f"{name}.bias": np.broadcast_to(np.float32(0), (cout,))} if bias else {})
            return
        t[f"{name}.weight"] = (rng.standard_normal((cout, cin, *k)) / np.sqrt(cin * np.prod(k))).astype(np.float32)
        if bias:
            t[f"{name}.bias"] = (0.1 * rng.standard_normal(cout)).astype(np.float32)

    def memblock(name, c):
        conv(f"{name}.conv.0", 2 * c, c)
        conv(f"{name}.conv.2", c, c)
        conv(f"{name}.conv.4", c, c)

    conv("encoder.0", 3 * r * r, enc)  # 1: ReLU
    i = 2
    for s in strides:  # TPool, strided conv, MemBlocks
        conv(f"encoder.{i}.conv", s * enc, enc, k=(1, 1), bias=False)
        conv(f"encoder.{i + 1}", enc, enc, bias=False)
        for b in range(blocks):
            memblock(f"encoder.{i + 2 + b}", enc)
        i += 2 + blocks
    conv(f"encoder.{i}", enc, latent)
    conv("decoder.1", latent, widths[0])  # 0: Clamp, 2: ReLU
    i = 3
    for s, stride in enumerate(strides[::-1]):  # MemBlocks, Upsample, TGrow, conv
        for b in range(blocks):
            memblock(f"decoder.{i + b}", widths[s])
        if stride == 1:
            conv(f"decoder.{i + blocks + 1}.proj", widths[s], widths[s], k=(1, 1), bias=False)
        else:
            conv(f"decoder.{i + blocks + 1}.conv3d", widths[s], widths[s], k=(3, 1, 1), bias=False)
        conv(f"decoder.{i + blocks + 2}", widths[s], widths[s + 1], bias=False)
        i += blocks + 3
    conv(f"decoder.{i + 1}", widths[-1], 3 * r * r)  # i: ReLU
    return t


def bf16_round(a: np.ndarray) -> np.ndarray:
    """Reference bfloat16 rounding (ml_dtypes), back in float32."""
    return np.asarray(a, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def save_tensors(path, tensors: dict[str, np.ndarray], dtype: str = "float32", fp32_keys=()) -> None:
    """Write with safetensors' own writers; bfloat16 via its raw serializer."""
    if dtype != "bfloat16":
        save_file({k: v.astype(dtype if k not in fp32_keys else "float32") for k, v in tensors.items()}, str(path))
        return
    arrays = {k: (v.astype(np.float32) if k in fp32_keys
                  else bf16_round(v).astype(ml_dtypes.bfloat16)) for k, v in tensors.items()}
    specs = {k: TensorSpec(dtype="float32" if k in fp32_keys else "bfloat16", shape=list(a.shape),
                           data_ptr=a.ctypes.data, data_len=a.nbytes) for k, a in arrays.items()}
    serialize_file(specs, str(path), {"format": "pt"})


def write_official(root, seed=0, dtype="float32", shards=1, fp32_keys=(), dit_cfg=DIFFUSERS_CFG, reae=REAE):
    """A complete official checkpoint directory; returns its tensors per file (float32 values)."""
    rng = np.random.default_rng(seed)
    dit, ae = official_dit(rng, dit_cfg), official_reae(rng, **reae)
    text = rng.standard_normal(TEXT_SHAPE).astype(np.float32)
    tdir = os.path.join(root, "transformer")
    os.makedirs(tdir, exist_ok=True)
    with open(os.path.join(tdir, "config.json"), "w") as f:
        json.dump(dit_cfg, f)
    if shards == 1:
        save_tensors(os.path.join(tdir, "diffusion_pytorch_model.safetensors"), dit, dtype, fp32_keys)
    else:
        keys, weight_map = list(dit), {}
        for n, part in enumerate(np.array_split(np.arange(len(keys)), shards), 1):
            name = f"diffusion_pytorch_model-{n:05d}-of-{shards:05d}.safetensors"
            save_tensors(os.path.join(tdir, name), {keys[j]: dit[keys[j]] for j in part}, dtype, fp32_keys)
            weight_map.update({keys[j]: name for j in part})
        with open(os.path.join(tdir, "diffusion_pytorch_model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)
    save_tensors(os.path.join(root, "reae.safetensors"), ae, dtype, fp32_keys)
    save_tensors(os.path.join(root, "prompt_embedding.safetensors"), {"prompt_emb": text}, dtype, fp32_keys)
    rounded = (lambda d: {k: (v if dtype == "float32" or k in fp32_keys else
                              bf16_round(v) if dtype == "bfloat16" else v.astype(np.float16).astype(np.float32))
                          for k, v in d.items()})
    return {"transformer": rounded(dit), "reae": rounded(ae), "prompt": rounded({"prompt_emb": text})}


def read_official(root) -> dict[str, tuple[str, tuple, bytes]]:
    """Every tensor of an official directory: name -> (dtype tag, shape, raw bytes)."""
    files = [os.path.join(root, "reae.safetensors"), os.path.join(root, "prompt_embedding.safetensors")]
    tdir = os.path.join(root, "transformer")
    files += [os.path.join(tdir, f) for f in sorted(os.listdir(tdir)) if f.endswith(".safetensors")]
    out = {}
    for path in files:
        f = SafetensorsFile(path)
        for k in f.keys():
            assert k not in out
            out[k] = (f.dtype(k), f.shape(k), f.raw(k).tobytes())
    return out


@pytest.fixture(scope="module")
def official_f32(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("official_f32"))
    return root, write_official(root, shards=3)


# ---- bfloat16 bits and the file reader/writer ------------------------------------------------------

def test_bf16_bits_round_to_nearest_even_like_ml_dtypes():
    one = np.float32(1.0)
    cases = np.array([1.0, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -0.0, np.inf, -np.inf,
                      3.4028235e38, 1e-40, -2.5], np.float32)
    bits = float32_to_bf16_bits(cases)
    assert bits[0] == 0x3F80 and bits[1] == 0x3F80 and bits[2] == 0x3F82 and bits[3] == 0x3F81  # ties to even
    assert bits[4] == 0x8000 and bits[5] == 0x7F80 and bits[6] == 0xFF80 and bits[7] == 0x7F80  # max -> inf
    rng = np.random.default_rng(0)
    x = np.concatenate([cases, (rng.standard_normal(10000) * 10.0 ** rng.integers(-30, 30, 10000)).astype(np.float32)])
    np.testing.assert_array_equal(float32_to_bf16_bits(x), x.astype(ml_dtypes.bfloat16).view(np.uint16))
    assert np.isnan(bf16_bits_to_float32(float32_to_bf16_bits(np.array([np.nan], np.float32))))
    assert bf16_bits_to_float32(np.array([0x3F80], np.uint16))[0] == one


def test_every_bf16_bit_pattern_survives_float32():
    bits = np.arange(2 ** 16, dtype=np.uint16)
    wide = bf16_bits_to_float32(bits)
    np.testing.assert_array_equal(wide, bits.view(ml_dtypes.bfloat16).astype(np.float32))
    np.testing.assert_array_equal(float32_to_bf16_bits(wide), bits)  # NaNs included, bit for bit


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_reader_reads_what_safetensors_wrote(tmp_path, dtype):
    rng = np.random.default_rng(1)
    tensors = {"a": rng.standard_normal((3, 4, 5)).astype(np.float32), "b": rng.standard_normal(7).astype(np.float32)}
    save_tensors(tmp_path / "x.safetensors", tensors, dtype)
    f = SafetensorsFile(tmp_path / "x.safetensors")
    tag = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[dtype]
    ref = {k: bf16_round(v) if dtype == "bfloat16" else v.astype(dtype).astype(np.float32) for k, v in tensors.items()}
    assert sorted(f.keys()) == ["a", "b"] and f.dtype("a") == tag and f.shape("a") == (3, 4, 5)
    for k in tensors:
        np.testing.assert_array_equal(f.read(k), ref[k])
    np.testing.assert_array_equal(f.read("a", row=2), ref["a"][2])


def test_writer_rows_in_any_order_load_with_safetensors(tmp_path):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((4, 3, 2)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    path = tmp_path / "w.safetensors"
    with SafetensorsWriter(path, {"a": ("F32", a.shape), "b": ("F32", b.shape)}, {"k": "v"}) as w:
        for row in (3, 0, 2, 1):
            w.write("a", a[row], row=row)
        w.write("b", b)
    loaded = load_file(str(path))
    np.testing.assert_array_equal(loaded["a"], a)
    np.testing.assert_array_equal(loaded["b"], b)
    assert SafetensorsFile(path).metadata == {"k": "v"}
    with pytest.raises(AssertionError, match="never written"):
        with SafetensorsWriter(tmp_path / "partial.safetensors", {"a": ("F32", a.shape)}) as w:
            w.write("a", a[0], row=0)


# ---- import -----------------------------------------------------------------------------------------

def test_import_config_from_json_and_shapes(official_f32, tmp_path):
    root, _ = official_f32
    cfg = import_official(root, tmp_path / "p")
    m, r = cfg.model, cfg.reae
    assert (m.dim, m.num_heads, m.head_dim, m.num_layers, m.ffn_dim) == (24, 2, 12, 4, 40)
    assert (m.in_channels, m.out_channels, m.text_dim, m.text_len, m.freq_dim) == (8, 8, 16, 5, 32)
    assert (m.patch, m.window, m.attention, m.rope_theta, m.cross_attn_norm) == ((1, 2, 2), (8, 8), "mfswa", 1e4, True)
    assert (r.latent_channels, r.enc_width, r.dec_widths) == (8, 8, (16, 16, 8, 8))
    assert (r.time_strides, r.spatial_strides, r.blocks_per_stage, r.pixel_shuffle) == ((2, 2, 1), (2, 2, 2), 2, 2)


def test_official_5b_layout_gives_the_preset_and_exact_parameter_counts():
    wan_5b = dict(DIFFUSERS_CFG, num_attention_heads=24, attention_head_dim=128, in_channels=48, out_channels=48,
                  text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30)
    wan_5b.pop("self_attn_window_hw")
    preset = get_config("swiftvr-5b")
    assert dit_config_from_diffusers(wan_5b, text_len=512) == preset.model
    ae = official_reae(None, enc=64, latent=48, widths=(512, 256, 128, 64), strides=(2, 2, 1), blocks=3, r=2)
    assert reae_config_from_shapes({k: v.shape for k, v in ae.items()}) == preset.reae
    assert sum(v.size for v in ae.values()) == 40_946_364
    plan, shapes = conversion_plan(preset), project_shapes(preset)
    official_dit_count = sum(int(np.prod(shapes[m.project][m.layer is not None:])) for m in plan["transformer"])
    assert official_dit_count == 4_999_787_712  # the official transformer, tensor by tensor
    assert {m.official for m in plan["reae"]} == set(ae)


def test_import_places_tensors_in_jax_layout(official_f32, tmp_path):
    root, src = official_f32
    import_official(root, tmp_path / "p")
    model, _ = load_pretrained(str(tmp_path / "p"))
    p = {k: np.asarray(v) for k, v in flat_params(model).items()}
    dit, ae = src["transformer"], src["reae"]
    # Block i lives at slot i // 2 of the even (i even) or odd (i odd) stack; Linear (out, in) -> (in, out).
    np.testing.assert_array_equal(p["dit.blocks.odd.attn1.to_q.kernel"][1], dit["blocks.3.attn1.to_q.weight"].T)
    np.testing.assert_array_equal(p["dit.blocks.even.attn2.to_out.bias"][1], dit["blocks.2.attn2.to_out.0.bias"])
    np.testing.assert_array_equal(p["dit.blocks.even.ffn.proj_out.kernel"][0], dit["blocks.0.ffn.net.2.weight"].T)
    np.testing.assert_array_equal(p["dit.blocks.odd.norm2.scale"][0], dit["blocks.1.norm2.weight"])
    np.testing.assert_array_equal(p["dit.blocks.odd.attn2.norm_k.scale"][1], dit["blocks.3.attn2.norm_k.weight"])
    np.testing.assert_array_equal(p["dit.blocks.odd.scale_shift_table"][1], dit["blocks.3.scale_shift_table"][0])
    np.testing.assert_array_equal(p["dit.scale_shift_table"], dit["scale_shift_table"][0])
    np.testing.assert_array_equal(p["text"], src["prompt"]["prompt_emb"])
    # Every block tensor, by the documented diffusers naming (catches swapped projections too).
    renames = {"to_out.0": "to_out", "ffn.net.0.proj": "ffn.proj_in", "ffn.net.2": "ffn.proj_out",
               "norm_q.weight": "norm_q.scale", "norm_k.weight": "norm_k.scale", "norm2.weight": "norm2.scale"}
    for key, value in dit.items():
        if not key.startswith("blocks."):
            continue
        _, i, rest = key.split(".", 2)
        for old, new in renames.items():
            rest = rest.replace(old, new)
        rest = rest[:-len("weight")] + "kernel" if rest.endswith(".weight") else rest
        got = p[f"dit.blocks.{('even', 'odd')[int(i) % 2]}.{rest}"][int(i) // 2]
        np.testing.assert_array_equal(got, value.T if value.ndim == 2 else value.reshape(got.shape), err_msg=key)
    # Conv (out, in, kh, kw) -> (kh, kw, in, out): TPool of stage 1 is Sequential index 2 + (2 + blocks).
    np.testing.assert_array_equal(p["reae.enc_stages.1.pool.conv.kernel"][0, 0],
                                  ae["encoder.6.conv.weight"][:, :, 0, 0].T)
    np.testing.assert_array_equal(p["reae.dec_stages.1.grow.conv.kernel"][:, 0, 0],  # 3D (3,1,1) TGrow
                                  ae["decoder.11.conv3d.weight"][:, :, :, 0, 0].transpose(2, 1, 0))
    np.testing.assert_array_equal(p["reae.dec_stages.0.blocks.1.conv2.kernel"],
                                  ae["decoder.4.conv.2.weight"].transpose(2, 3, 1, 0))


def test_imported_embedders_and_patch_embedding_compute_the_official_functions(official_f32, tmp_path):
    root, src = official_f32
    import_official(root, tmp_path / "p")
    dit = load_pretrained(str(tmp_path / "p"))[0].dit
    w = src["transformer"]
    lin = lambda name, x: x @ w[f"{name}.weight"].T + w[f"{name}.bias"]  # noqa: E731 (torch Linear)
    silu = lambda x: x / (1 + np.exp(-x))  # noqa: E731
    ts = np.array([1000.0, 3.0], np.float32)
    feats = np.asarray(timestep_features(ts, 32))
    hidden = silu(lin("condition_embedder.time_embedder.linear_1", feats))
    temb = lin("condition_embedder.time_embedder.linear_2", hidden)
    tproj = lin("condition_embedder.time_proj", silu(temb)).reshape(2, 6, 24)
    got_temb, got_tproj = dit.time_embedding(ts)
    np.testing.assert_allclose(np.asarray(got_temb), temb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got_tproj), tproj, rtol=1e-5, atol=1e-5)
    # Conv3d (out, in, kt, kh, kw) with stride = kernel over [B, C, T, H, W], against nnx.Conv channels-last.
    x = np.random.default_rng(3).standard_normal((1, 8, 2, 4, 6)).astype(np.float32)
    patches = x.reshape(1, 8, 2, 1, 2, 2, 3, 2)  # [B, C, T, kt, h, kh, w, kw]
    ref = np.einsum("bctahiwj,ocaij->bthwo", patches, w["patch_embedding.weight"]) + w["patch_embedding.bias"]
    got = dit.patch_embedding(np.moveaxis(x, 1, -1))
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-5)


def test_import_holds_one_tensor_at_a_time(tmp_path):
    big = dict(DIFFUSERS_CFG, num_attention_heads=2, attention_head_dim=96, ffn_dim=768, num_layers=16)
    write_official(str(tmp_path / "o"), dit_cfg=big)
    total = os.path.getsize(tmp_path / "o" / "transformer" / "diffusion_pytorch_model.safetensors")
    import_official(str(tmp_path / "o"), tmp_path / "warm")  # first-use tracing caches stay out of the measurement
    tracemalloc.start()
    try:
        import_official(str(tmp_path / "o"), tmp_path / "p")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # ~38 MB of weights, largest tensor 0.6 MB; about 2 MB of the peak is tracing the abstract model.
    assert total > 3e7 and peak < total / 8, (peak, total)


# ---- round trips --------------------------------------------------------------------------------------

PLAIN_DIFFUSERS_CFG = {k: v for k, v in DIFFUSERS_CFG.items() if k not in ("enable_swa", "self_attn_window_hw")}


@pytest.mark.parametrize("dtype,fp32_keys,dit_cfg", [
    ("float32", (), DIFFUSERS_CFG), ("bfloat16", (), DIFFUSERS_CFG), ("float16", (), PLAIN_DIFFUSERS_CFG),
    ("bfloat16", ("scale_shift_table", "blocks.1.scale_shift_table", "decoder.1.bias"), PLAIN_DIFFUSERS_CFG),
])
def test_official_project_official_is_bit_identical(tmp_path, dtype, fp32_keys, dit_cfg):
    """float32, bfloat16, float16 and mixed (float32 tables in a bfloat16 file, as diffusers may save)."""
    root = str(tmp_path / "official")
    write_official(root, seed=4, dtype=dtype, shards=2, fp32_keys=fp32_keys, dit_cfg=dit_cfg)
    import_official(root, tmp_path / "project")
    export_official(str(tmp_path / "project"), str(tmp_path / "back"), max_shard_bytes=20_000)
    before, after = read_official(root), read_official(tmp_path / "back")
    assert sorted(before) == sorted(after)
    for k in before:
        assert before[k][:2] == after[k][:2], k  # dtype tag and shape
        assert before[k][2] == after[k][2], k  # raw bits
    with open(os.path.join(root, "transformer", "config.json")) as f, \
            open(tmp_path / "back" / "transformer" / "config.json") as g:
        assert json.load(f) == json.load(g)
    index_path = tmp_path / "back" / "transformer" / "diffusion_pytorch_model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    assert len(set(index["weight_map"].values())) > 1 and set(index["weight_map"]) == set(
        k for k in before if not k.startswith(("encoder.", "decoder.", "prompt_emb")))


def _random_project(cfg, path, seed=5):
    model = nnx.eval_shape(lambda: SwiftVR(cfg, rngs=nnx.Rngs(0)))
    rng = np.random.default_rng(seed)
    graphdef, state = nnx.split(model)
    model = nnx.merge(graphdef, jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(np.float32), state))
    save_pretrained(model, cfg, str(path))
    return {k: np.asarray(v) for k, v in flat_params(model).items()}


def test_project_official_project_is_bit_identical(tmp_path):
    cfg = get_config("tiny")
    before = _random_project(cfg, tmp_path / "p")
    export_official(str(tmp_path / "p"), str(tmp_path / "o"))
    assert SafetensorsFile(tmp_path / "o" / "reae.safetensors").dtype("encoder.0.weight") == "F32"
    # tiny: one MemBlock per stage -> decoder 3 MemBlock, 4 Upsample, 5 TGrow (stride 1: proj), 6 conv, ...
    assert {"decoder.3.conv.4.weight", "decoder.5.proj.weight", "decoder.9.conv3d.weight", "decoder.16.bias"} <= set(
        SafetensorsFile(tmp_path / "o" / "reae.safetensors").keys())
    cfg2 = import_official(str(tmp_path / "o"), tmp_path / "p2")
    assert cfg2.model == cfg.model and cfg2.reae == cfg.reae
    after = {k: np.asarray(v) for k, v in flat_params(load_pretrained(str(tmp_path / "p2"))[0]).items()}
    assert sorted(before) == sorted(after)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_export_bfloat16_rounds_to_nearest(tmp_path):
    cfg = get_config("tiny")
    before = _random_project(cfg, tmp_path / "p")
    export_official(str(tmp_path / "p"), str(tmp_path / "o"), dtype="bfloat16")
    f = SafetensorsFile(tmp_path / "o" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert f.dtype("blocks.1.attn1.to_q.weight") == "BF16"
    np.testing.assert_array_equal(f.read("blocks.1.attn1.to_q.weight"),
                                  bf16_round(before["dit.blocks.odd.attn1.to_q.kernel"][0].T))


# ---- strictness ---------------------------------------------------------------------------------------

def _mutate(root, file, fn):
    path = os.path.join(root, file)
    tensors = load_file(path)
    fn(tensors)
    save_file(tensors, path)


@pytest.mark.parametrize("file,change,expect", [
    ("transformer/diffusion_pytorch_model.safetensors", lambda t: t.pop("blocks.2.attn1.to_k.bias"),
     "tensor blocks.2.attn1.to_k.bias is missing (the model expects shape (24,))"),
    ("transformer/diffusion_pytorch_model.safetensors",
     lambda t: t.update({"blocks.4.norm2.weight": np.ones(24, np.float32)}),
     "unknown tensor blocks.4.norm2.weight with shape (24,)"),
    ("transformer/diffusion_pytorch_model.safetensors",
     lambda t: t.update({"blocks.1.ffn.net.2.weight": np.ones((24, 41), np.float32)}),
     "tensor blocks.1.ffn.net.2.weight has shape (24, 41), the model expects (24, 40)"),
    ("reae.safetensors", lambda t: t.update({"decoder.4.conv.2.weight": np.ones((16, 16, 1, 1), np.float32)}),
     "tensor decoder.4.conv.2.weight has shape (16, 16, 1, 1), the model expects (16, 16, 3, 3)"),
    ("reae.safetensors", lambda t: t.update({"encoder.4.skip.weight": np.ones((8, 8, 1, 1), np.float32)}),
     "unknown tensor encoder.4.skip.weight"),
    ("reae.safetensors", lambda t: t.pop("encoder.0.weight"), "cannot infer the ReAE layout"),
    ("prompt_embedding.safetensors", lambda t: t.update({"prompt_emb": np.ones((1, 5, 17), np.float32)}),
     "tensor prompt_emb has shape (1, 5, 17), the model expects (1, 5, 16)"),
    ("reae.safetensors", lambda t: t.update({"decoder.1.bias": np.arange(16)}), "dtype I64"),
])
def test_strict_errors_name_the_tensor_and_shapes(tmp_path, file, change, expect):
    root = str(tmp_path / "o")
    write_official(root)
    _mutate(root, file, change)
    with pytest.raises(ConvertError) as e:
        import_official(root, tmp_path / "p")
    assert expect in str(e.value) and "\n" not in str(e.value)
    assert not os.path.exists(tmp_path / "p" / "model.safetensors")


@pytest.mark.parametrize("edit,expect", [
    ({"qk_norm": "rms_norm"}, "qk_norm='rms_norm' is not supported"),
    ({"image_dim": 1280}, "image_dim=1280 is not supported"),
    ({"num_layers": 3}, "num_layers=3 must be even"),
    ({"_class_name": "UNet2DModel"}, "only WanTransformer3DModel converts"),
])
def test_unsupported_configs_are_one_line_errors(tmp_path, edit, expect):
    root = str(tmp_path / "o")
    write_official(root)
    cfg_path = os.path.join(root, "transformer", "config.json")
    with open(cfg_path, "w") as f:
        json.dump(dict(DIFFUSERS_CFG, **edit), f)
    with pytest.raises(ConvertError, match=expect):
        import_official(root, tmp_path / "p")


def test_missing_files_are_one_line_errors(tmp_path):
    with pytest.raises(ConvertError, match="not a directory"):
        import_official(str(tmp_path / "nowhere"), tmp_path / "p")
    root = str(tmp_path / "o")
    write_official(root)
    os.remove(os.path.join(root, "prompt_embedding.safetensors"))
    with pytest.raises(ConvertError, match="prompt_embedding.safetensors: no such file"):
        import_official(root, tmp_path / "p")
    os.remove(os.path.join(root, "transformer", "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ConvertError, match="no diffusion_pytorch_model.safetensors or"):
        import_official(root, tmp_path / "p")


# ---- command line -------------------------------------------------------------------------------------

def test_cli_import_export_and_errors(official_f32, tmp_path, capsys):
    root, _ = official_f32
    assert convert_main([root, str(tmp_path / "p")]) == 0
    assert "DiT dim 24, 4 layers" in capsys.readouterr().out
    assert convert_main([root, str(tmp_path / "p")]) == 1  # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert convert_main(["--to-official", str(tmp_path / "p"), str(tmp_path / "o"), "--dtype", "bfloat16",
                         "--max-shard-size", "30KB"]) == 0
    assert os.path.isfile(tmp_path / "o" / "transformer" / "diffusion_pytorch_model.safetensors.index.json")
    assert SafetensorsFile(tmp_path / "o" / "reae.safetensors").dtype("decoder.1.weight") == "BF16"
    assert convert_main([str(tmp_path / "missing"), str(tmp_path / "q")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        convert_main([root, str(tmp_path / "q"), "--dtype", "bfloat16"])  # --dtype is export-only

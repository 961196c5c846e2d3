"""Parity with the PyTorch reference stack: diffusers' WanTransformer3DModel and a torch ReAE.

Needs `torch==2.13.0` and `diffusers` (the `parity` extra); skipped otherwise. Every model is tiny,
random and float32 unless a test says otherwise. The torch ReAE below is written here from the
documented official topology (DESIGN.md section 4 and the official `nn.Sequential` layout), with
torch's own pixel (un)shuffle, nearest interpolation and Conv3d, so it checks the project's channel
orders and temporal semantics independently.
"""

import dataclasses
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

pytestmark = pytest.mark.parity
_NEEDS = "parity tests need the reference stack: pip install torch==2.13.0 diffusers"
torch = pytest.importorskip("torch", reason=_NEEDS, exc_type=ImportError)
diffusers = pytest.importorskip("diffusers", reason=_NEEDS, exc_type=ImportError)

from safetensors.torch import load_file  # noqa: E402
from safetensors.torch import save_file as torch_save_file  # noqa: E402

from swiftvr_jax.config import ReAEConfig  # noqa: E402
from swiftvr_jax.convert import (export_official, float32_to_bf16_bits, import_official,  # noqa: E402
                                 reae_config_from_shapes)
from swiftvr_jax.models.reae import ReAE  # noqa: E402
from swiftvr_jax.models.swiftvr import CONFIG_NAME, load_pretrained, read_config  # noqa: E402
from swiftvr_jax.rope import rope_angles  # noqa: E402

nn, F = torch.nn, torch.nn.functional
WAN = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=8, out_channels=8,
           text_dim=16, freq_dim=32, ffn_dim=48, num_layers=4, cross_attn_norm=True, rope_max_seq_len=64)
TINY_REAE = ReAEConfig(latent_channels=8, enc_width=8, dec_widths=(16, 16, 8, 8), blocks_per_stage=2)
TEXT_LEN = 5


# ---- a torch ReAE from the documented topology ------------------------------------------------------

class MemBlock(nn.Module):
    """relu(conv3x3 . relu . conv3x3 . relu . conv3x3 (cat[x_t, x_{t-1}]) + x_t); submodules at conv.0/2/4."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(c, c, 3, padding=1))


class TPool(nn.Module):
    def __init__(self, c, stride):
        super().__init__()
        self.stride, self.conv = stride, nn.Conv2d(stride * c, c, 1, bias=False)


class TGrow(nn.Module):
    def __init__(self, c, stride):
        super().__init__()
        self.stride = stride
        if stride == 1:
            self.proj = nn.Conv2d(c, c, 1, bias=False)
        else:
            self.conv3d = nn.Conv3d(c, c, (3, 1, 1), padding=(1, 0, 0), bias=False)


class Clamp(nn.Module):
    def forward(self, x):
        return 3 * torch.tanh(x / 3)


def torch_reae(cfg: ReAEConfig):
    """(encoder, decoder) nn.Sequentials with the official indices for `cfg`."""
    c, n = cfg.enc_width, cfg.blocks_per_stage
    enc = [nn.Conv2d(3 * cfg.pixel_shuffle ** 2, c, 3, padding=1), nn.ReLU()]
    for s in cfg.time_strides:
        enc += [TPool(c, s), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), *(MemBlock(c) for _ in range(n))]
    enc.append(nn.Conv2d(c, cfg.latent_channels, 3, padding=1))
    w = cfg.dec_widths
    dec = [Clamp(), nn.Conv2d(cfg.latent_channels, w[0], 3, padding=1), nn.ReLU()]
    for i, s in enumerate(cfg.time_strides[::-1]):
        dec += [*(MemBlock(w[i]) for _ in range(n)), nn.Upsample(scale_factor=2), TGrow(w[i], s),
                nn.Conv2d(w[i], w[i + 1], 3, padding=1, bias=False)]
    dec += [nn.ReLU(), nn.Conv2d(w[-1], 3 * cfg.pixel_shuffle ** 2, 3, padding=1)]
    return nn.Sequential(*enc), nn.Sequential(*dec)


def run_causal(seq, x):
    """Whole clip through a Sequential, causally: x [N, T, C, H, W] -> [N, T', C', H', W']."""
    for m in seq:
        n, t = x.shape[:2]
        if isinstance(m, MemBlock):
            past = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)  # frame t sees t-1, zeros first
            y = m.conv(torch.cat([x, past], 2).flatten(0, 1)).unflatten(0, (n, t))
            x = F.relu(y + x)
        elif isinstance(m, TPool):  # s consecutive frames side by side on channels (frame-major)
            x = x.reshape(n, t // m.stride, m.stride * x.shape[2], *x.shape[3:])
            x = m.conv(x.flatten(0, 1)).unflatten(0, (n, t // m.stride))
        elif isinstance(m, TGrow) and m.stride == 1:
            x = m.proj(x.flatten(0, 1)).unflatten(0, (n, t))
        elif isinstance(m, TGrow):  # each frame -> `stride` copies mixed by a (3,1,1) conv, in time order
            v = x.flatten(0, 1)[:, :, None]  # [NT, C, 1, H, W]
            v = m.conv3d(F.interpolate(v, size=(m.stride, *v.shape[-2:]), mode="nearest"))
            x = v.transpose(1, 2).reshape(n, t * m.stride, *v.shape[1:2], *v.shape[-2:])
        else:
            x = m(x.flatten(0, 1)).unflatten(0, (n, t))
    return x


def torch_encode(enc, frames, r):
    """frames [N, T, 3, H, W] in [0, 1] -> latents [N, T/4, C, H/16, W/16]."""
    return run_causal(enc, F.pixel_unshuffle(frames.flatten(0, 1), r).unflatten(0, frames.shape[:2]))


def torch_decode(dec, z, r):
    """latents -> frames [N, 4t, 3, 16h, 16w], clamped to [0, 1] before the pixel shuffle (untrimmed)."""
    x = run_causal(dec, z).clamp(0, 1)
    return F.pixel_shuffle(x.flatten(0, 1), r).unflatten(0, x.shape[:2])


def _randomize(module, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1:  # biases and norm scales: away from their 0/1 inits
                p.copy_((1.0 if name.endswith(("norm_q.weight", "norm_k.weight", "norm2.weight")) else 0.0)
                        + 0.2 * torch.randn(p.shape, generator=gen))
            elif "scale_shift_table" in name:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p[0].numel()))


# ---- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An official-layout directory written by diffusers/torch, and its import with `full` attention."""
    root = tmp_path_factory.mktemp("official")
    wan = diffusers.WanTransformer3DModel(**WAN).eval()
    _randomize(wan, 0)
    wan.save_pretrained(root / "transformer", max_shard_size="40KB")  # diffusers' own sharded layout
    enc, dec = torch_reae(TINY_REAE)
    _randomize(enc, 1)
    _randomize(dec, 2)
    with torch.no_grad():
        dec[-1].bias.fill_(0.5)  # mid-grey output: most pixels inside the [0, 1] clamp
    reae_sd = {f"encoder.{k}": v for k, v in enc.state_dict().items()}
    reae_sd.update({f"decoder.{k}": v for k, v in dec.state_dict().items()})
    torch_save_file(reae_sd, str(root / "reae.safetensors"))
    text = torch.randn(1, TEXT_LEN, WAN["text_dim"], generator=torch.Generator().manual_seed(3))
    torch_save_file({"prompt_emb": text}, str(root / "prompt_embedding.safetensors"))

    dst = tmp_path_factory.mktemp("project")
    import_official(str(root), str(dst), overwrite=True)
    cfg = read_config(str(dst))
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, attention="full"))
    (dst / CONFIG_NAME).write_text(cfg.to_json())
    model, _ = load_pretrained(str(dst))
    return dict(root=root, dst=dst, wan=wan, enc=enc, dec=dec, text=text, model=model)


def _to_np(t):
    return t.detach().float().numpy()


# ---- DiT ---------------------------------------------------------------------------------------------

def test_diffusers_checkpoint_is_sharded(checkpoint):
    assert (checkpoint["root"] / "transformer" / "diffusion_pytorch_model.safetensors.index.json").is_file()


def test_dit_forward_matches_diffusers(checkpoint):
    wan, dit = checkpoint["wan"], checkpoint["model"].dit
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 8, 3, 6, 8, generator=gen)  # [B, C, T, H, W]
    text = torch.randn(2, TEXT_LEN, WAN["text_dim"], generator=gen)
    ts = torch.tensor([1000.0, 250.0])
    with torch.no_grad():
        ref = _to_np(wan(hidden_states=x, timestep=ts, encoder_hidden_states=text, return_dict=False)[0])
    got = dit(jnp.asarray(_to_np(x.permute(0, 2, 3, 4, 1))), jnp.asarray(_to_np(ts)), jnp.asarray(_to_np(text)))
    got = np.moveaxis(np.asarray(got), -1, 1)
    assert np.abs(ref).mean() > 0.1  # a real signal, not a zero output
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)


def test_dit_forward_with_fixed_text_matches_diffusers(checkpoint):
    """The imported `text` parameter is the checkpoint's prompt embedding, shared by the batch."""
    wan, model = checkpoint["wan"], checkpoint["model"]
    x = torch.randn(2, 8, 2, 4, 4, generator=torch.Generator().manual_seed(5))
    ts = torch.full((2,), 1000.0)
    with torch.no_grad():
        ref = _to_np(wan(x, ts, checkpoint["text"].expand(2, -1, -1), return_dict=False)[0])
    dit = model.dit
    got = dit(jnp.asarray(_to_np(x.permute(0, 2, 3, 4, 1))), 1000.0, cross_kv=dit.cross_kv(model.text[...]))
    np.testing.assert_allclose(np.moveaxis(np.asarray(got), -1, 1), ref, rtol=0, atol=1e-4)


def test_time_and_text_embedders_match_diffusers(checkpoint):
    wan, dit = checkpoint["wan"], checkpoint["model"].dit
    ts = torch.tensor([1000.0, 0.0, 37.5])
    text = torch.randn(3, TEXT_LEN, WAN["text_dim"], generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        temb, tproj, ctx, _ = wan.condition_embedder(ts, text)
    got_temb, got_tproj = dit.time_embedding(jnp.asarray(_to_np(ts)))
    np.testing.assert_allclose(np.asarray(got_temb), _to_np(temb), rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got_tproj), _to_np(tproj).reshape(3, 6, -1), rtol=0, atol=1e-5)
    # The text projection: Linear -> GELU(tanh) -> Linear, checked through the cross-attention values
    # (v = to_v(ctx) of block 0), which is what the DiT consumes.
    _, vs = dit.cross_kv(jnp.asarray(_to_np(text)))
    with torch.no_grad():
        v0 = wan.blocks[0].attn2.to_v(ctx).unflatten(2, (2, -1))
        k1 = wan.blocks[1].attn2.norm_k(wan.blocks[1].attn2.to_k(ctx)).unflatten(2, (2, -1))
    ks, _ = dit.cross_kv(jnp.asarray(_to_np(text)))
    np.testing.assert_allclose(np.asarray(vs[0, 0]), _to_np(v0), rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ks[0, 1]), _to_np(k1), rtol=0, atol=1e-5)


@pytest.mark.parametrize("t_offset", [0, 5])
def test_rope_tables_match_diffusers(checkpoint, t_offset):
    wan = checkpoint["wan"]
    t, h, w = 3, 4, 6  # latent grid after patchify
    x = torch.zeros(1, 8, t + t_offset, 2 * h, 2 * w)
    cos, sin = wan.rope(x)  # [1, L, 1, head_dim], each angle repeated for its channel pair
    cos, sin = _to_np(cos[0, t_offset * h * w:, 0]), _to_np(sin[0, t_offset * h * w:, 0])
    np.testing.assert_array_equal(cos[:, 0::2], cos[:, 1::2])
    angles = np.asarray(rope_angles((t, h, w), WAN["attention_head_dim"], t_offset))  # [L, head_dim/2]
    np.testing.assert_allclose(np.cos(angles), cos[:, 0::2], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.sin(angles), sin[:, 0::2], rtol=0, atol=1e-6)


def test_bf16_rounding_matches_torch():
    x = torch.randn(100000, generator=torch.Generator().manual_seed(7)) * 10.0 ** torch.randint(-20, 20, (100000,))
    ref = x.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(float32_to_bf16_bits(x.numpy()), ref)


def test_bf16_checkpoint_round_trips_through_diffusers(checkpoint, tmp_path):
    """A bfloat16 diffusers checkpoint -> project -> official loads in diffusers with identical bits."""
    root = checkpoint["root"]
    wan = diffusers.WanTransformer3DModel(**WAN)
    _randomize(wan, 8)
    wan = wan.to(torch.bfloat16)
    src = tmp_path / "official"
    wan.save_pretrained(src / "transformer")
    for name in ("reae.safetensors", "prompt_embedding.safetensors"):
        (src / name).write_bytes((root / name).read_bytes())
    import_official(str(src), str(tmp_path / "project"))
    export_official(str(tmp_path / "project"), str(tmp_path / "back"), max_shard_bytes=30_000)
    # diffusers' from_pretrained needs `accelerate` for Wan; load the shards strictly by hand instead.
    folder = tmp_path / "back" / "transformer"
    index = json.loads((folder / "diffusion_pytorch_model.safetensors.index.json").read_text())
    loaded = {}
    for shard in sorted(set(index["weight_map"].values())):
        loaded.update(load_file(str(folder / shard)))
    assert set(loaded) == set(index["weight_map"])
    back = diffusers.WanTransformer3DModel.from_config(json.loads((folder / "config.json").read_text()))
    back = back.to(torch.bfloat16)
    back.load_state_dict(loaded, strict=True)
    before, after = wan.state_dict(), back.state_dict()
    assert sorted(before) == sorted(after)
    for k, v in before.items():
        assert after[k].dtype == v.dtype, k
        assert torch.equal(after[k].view(torch.int16), v.view(torch.int16)), k


def test_bf16_compute_error_is_no_worse_than_diffusers_bf16(checkpoint):
    """Known difference, measured: bfloat16 compute vs the float32 reference, both implementations.

    The project keeps parameters, norms and AdaLN modulation in float32 and computes matmuls in
    bfloat16; diffusers in bfloat16 casts the parameters too. Both errors are printed.
    """
    wan = checkpoint["wan"]
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(1, 8, 2, 6, 8, generator=gen)
    text = torch.randn(1, TEXT_LEN, WAN["text_dim"], generator=gen)
    ts = torch.tensor([1000.0])
    with torch.no_grad():
        ref = _to_np(wan(x, ts, text, return_dict=False)[0])
        wan_bf16 = diffusers.WanTransformer3DModel(**WAN).to(torch.bfloat16)
        wan_bf16.load_state_dict(wan.state_dict())
        theirs = _to_np(wan_bf16(x.bfloat16(), ts, text.bfloat16(), return_dict=False)[0])
    dit_bf16 = load_pretrained(str(checkpoint["dst"]), dtype="bfloat16")[0].dit
    ours = np.asarray(dit_bf16(jnp.asarray(_to_np(x.permute(0, 2, 3, 4, 1))), ts.numpy(), jnp.asarray(_to_np(text))),
                      np.float32)
    ours = np.moveaxis(ours, -1, 1)
    err_ours, err_theirs = np.abs(ours - ref).max(), np.abs(theirs - ref).max()
    print(f"bf16 max abs error vs float32 reference (mean |ref| {np.abs(ref).mean():.3f}): "
          f"project {err_ours:.4f}, diffusers {err_theirs:.4f}")
    assert 0 < err_ours <= 2 * err_theirs


# ---- ReAE ------------------------------------------------------------------------------------------

def test_default_reae_layout_is_inferred_from_the_official_shapes():
    enc, dec = torch_reae(ReAEConfig())
    shapes = {f"encoder.{k}": tuple(v.shape) for k, v in enc.state_dict().items()}
    shapes.update({f"decoder.{k}": tuple(v.shape) for k, v in dec.state_dict().items()})
    assert sum(np.prod(s) for s in shapes.values()) == 40_946_364
    assert reae_config_from_shapes(shapes) == ReAEConfig()


def test_reae_encode_decode_match_torch_reference(checkpoint):
    reae: ReAE = checkpoint["model"].reae
    r = TINY_REAE.pixel_shuffle
    frames = torch.rand(2, 8, 3, 32, 48, generator=torch.Generator().manual_seed(10))  # [N, T, 3, H, W]
    with torch.no_grad():
        z_ref = torch_encode(checkpoint["enc"], frames, r)
        y_ref = torch_decode(checkpoint["dec"], z_ref, r)
    x = jnp.asarray(_to_np(frames.permute(0, 1, 3, 4, 2)))  # [B, T, H, W, 3]
    z, _ = reae.encode(x, reae.init_encoder_state(2, 32, 48))
    np.testing.assert_allclose(np.asarray(z), _to_np(z_ref.permute(0, 1, 3, 4, 2)), rtol=0, atol=1e-4)
    y, _ = reae.decode(jnp.asarray(_to_np(z_ref.permute(0, 1, 3, 4, 2))), reae.init_decoder_state(2, 2, 3))
    y_ref = _to_np(y_ref.permute(0, 1, 3, 4, 2))
    assert y.shape == y_ref.shape == (2, 8, 32, 48, 3)
    assert ((y_ref > 0) & (y_ref < 1)).mean() > 0.5  # most pixels are not clamped
    np.testing.assert_allclose(np.asarray(y), y_ref, rtol=0, atol=1e-4)


def test_exported_reae_loads_strictly_into_the_torch_modules(checkpoint, tmp_path):
    export_official(str(checkpoint["dst"]), str(tmp_path / "o"))
    sd = load_file(str(tmp_path / "o" / "reae.safetensors"))
    enc, dec = torch_reae(TINY_REAE)
    enc.load_state_dict({k[8:]: v for k, v in sd.items() if k.startswith("encoder.")}, strict=True)
    dec.load_state_dict({k[8:]: v for k, v in sd.items() if k.startswith("decoder.")}, strict=True)
    for mine, ref in ((enc, checkpoint["enc"]), (dec, checkpoint["dec"])):
        for k, v in ref.state_dict().items():
            assert torch.equal(mine.state_dict()[k], v), k
    with open(tmp_path / "o" / "transformer" / "config.json") as f:
        exported = json.load(f)
    assert {k: exported[k] for k in WAN if k != "patch_size"} == {k: v for k, v in WAN.items() if k != "patch_size"}
    assert os.path.isfile(tmp_path / "o" / "prompt_embedding.safetensors")

import dataclasses

import jax
import numpy as np
import pytest

from swiftvr_jax.config import MeshConfig, get_config
from swiftvr_jax.models.discriminator import VideoDiscriminator, hinge_d_loss, hinge_g_loss
from swiftvr_jax.sharding import make_mesh
from swiftvr_jax.training.finetune import FinetuneConfig, FinetuneTrainer, finetune_config

CFG = get_config("tiny", ["train.warmup_steps=1", "train.lr=1e-3", "train.steps=200", "train.ema_decay=0.5"])
FT = FinetuneConfig(disc_channels=(8, 16), reae_lr_mult=1.0, dit_lr_mult=0.5)  # from scratch: no slow ReAE


def _batch(seed=0, b=4):
    rng = np.random.default_rng(seed)
    hq = rng.random((b, 8, 32, 32, 3), np.float32)
    lq = hq.reshape(b, 8, 8, 4, 8, 4, 3).mean((3, 5))  # box-downscaled HQ
    return {"hq": hq, "lq": lq}


def _mesh(shape):
    return make_mesh(MeshConfig(*shape), jax.devices()[: int(np.prod(shape))])


_CACHE = {}


def _trainer(shape):
    """One trainer per mesh for the whole module: each compiles its init and step once."""
    if shape not in _CACHE:
        _CACHE[shape] = FinetuneTrainer(CFG, _mesh(shape), FT)
    return _CACHE[shape]


def _groups():
    if "groups" not in _CACHE:  # one random generator for every test (the distill export's role)
        groups = jax.tree.map(np.asarray, _trainer((1, 1, 1)).random_groups(0))
        # A trained DiT's t=1 velocity is a small correction; a random one would swamp z.
        groups["dit"]["proj_out"]["kernel"].set_value(0.1 * groups["dit"]["proj_out"]["kernel"].get_value())
        _CACHE["groups"] = groups
    return _CACHE["groups"]


def _run(shape, steps=2, batch=None):
    tr = _trainer(shape)
    state, frozen = tr.init(_groups())
    before = jax.tree.map(np.array, {"params": state["params"], "disc": state["disc"]})
    out = []
    for _ in range(steps):
        state, m = tr.step(state, frozen, tr.shard_batch(batch or _batch()))
        out.append({k: float(v) for k, v in m.items()})
    return tr, state, frozen, out, before


def _max_diff(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(la, lb))


def test_hinge_losses_and_discriminator_shape():
    import jax.numpy as jnp
    from flax import nnx

    d = VideoDiscriminator((4, 8), rngs=nnx.Rngs(0))
    assert d(jnp.zeros((2, 5, 32, 32, 3))).shape == (2, 5, 8, 8, 1)
    real, fake = jnp.array([2.0, 0.5]), jnp.array([-2.0, 0.0])
    assert float(hinge_d_loss(real, fake)) == pytest.approx((0 + 0.5) / 2 + (0 + 1.0) / 2)
    assert float(hinge_g_loss(fake)) == pytest.approx(1.0)


@pytest.mark.parametrize("stride,size", [((1, 2, 2), (7, 9)), ((1, 1, 1), (6, 5))])
def test_discriminator_conv_equals_the_3d_conv(stride, size):
    """The 2D-folded conv the discriminator runs equals XLA's own 3D conv with the same weights."""
    import jax.numpy as jnp
    from flax import nnx

    from swiftvr_jax.models.discriminator import conv3d_as_2d

    conv = nnx.Conv(5, 4, (3, 4, 4) if stride[1] == 2 else (3, 3, 3), strides=stride, padding="SAME",
                    rngs=nnx.Rngs(1))
    conv.bias.set_value(jnp.arange(4.0))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 4, *size, 5)), jnp.float32)
    np.testing.assert_allclose(np.asarray(conv3d_as_2d(x, conv)), np.asarray(conv(x)), rtol=1e-5, atol=1e-5)


def test_config_reads_train_fields_and_defaults():
    ft = finetune_config(CFG, gan_weight=0.5)
    assert ft.gan_weight == 0.5 and ft.reae_lr_mult == FinetuneConfig().reae_lr_mult


def test_sharded_step_equals_single_device_and_both_nets_move():
    _, s1, _, m1, before = _run((1, 1, 1))
    _, s2, _, m2, _ = _run((2, 2, 2))
    assert m1[0]["finite"] and m1[0]["uses_lpips"] == 0.0
    for part in ("params", "disc", "ema"):
        assert _max_diff(s1[part], s2[part]) < 1e-5, part
    for k in ("loss", "d_loss", "l1", "gan_g"):
        assert abs(m1[-1][k] - m2[-1][k]) < 1e-5, k
    for group in ("reae", "dit", "text"):  # every generator group and the discriminator trained
        assert _max_diff(before["params"][group], s1["params"][group]) > 0, group
    assert _max_diff(before["disc"], s1["disc"]) > 0


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(8, 1, 1), (2, 4, 1)])
def test_other_meshes_equal_single_device(shape):
    _, s1, _, m1, _ = _run((1, 1, 1), batch=_batch(b=8))  # 8 clips: one per batch shard
    _, s2, _, m2, _ = _run(shape, batch=_batch(b=8))
    for part in ("params", "disc", "ema"):
        assert _max_diff(s1[part], s2[part]) < 1e-5, part
    assert abs(m1[-1]["loss"] - m2[-1]["loss"]) < 1e-5


@pytest.mark.slow
def test_few_steps_reduce_pixel_loss():
    b, t, y, x = np.ogrid[:4, :8, :32, :32]
    hq = (0.5 + 0.3 * np.sin(0.2 * x + 0.3 * y + 0.1 * t + b)[..., None] * np.ones(3)).astype(np.float32)
    smooth = {"hq": hq, "lq": hq.reshape(4, 8, 8, 4, 8, 4, 3).mean((3, 5))}  # content the LQ still carries
    _, _, _, m, _ = _run((1, 1, 1), steps=30, batch=smooth)
    assert all(r["finite"] for r in m)
    first, last = m[0]["l1"], min(r["l1"] for r in m[-3:])
    assert last < first / 2, (first, last)


def test_nan_batch_is_skipped_and_training_goes_on():
    tr, state, frozen, _, _ = _run((1, 1, 1), steps=1)
    before = jax.tree.map(np.array, {k: state[k] for k in ("params", "disc", "ema", "opt_state", "disc_opt_state")})
    bad = _batch(1)
    bad["hq"][0, 0, 0, 0, 0] = np.nan
    state, m = tr.step(state, frozen, tr.shard_batch(bad))
    assert not m["finite"] and int(state["skipped"]) == 1 and int(state["step"]) == 2
    assert _max_diff(before, {k: state[k] for k in before}) == 0.0  # nothing changed
    state, m = tr.step(state, frozen, tr.shard_batch(_batch(2)))
    assert bool(m["finite"]) and int(state["skipped"]) == 1
    assert _max_diff(before["params"], state["params"]) > 0


def test_lpips_file_is_used_when_given(tmp_path):
    from safetensors.numpy import save_file

    from swiftvr_jax import lpips

    rng = np.random.default_rng(0)
    tensors = {k: (np.abs(rng.standard_normal(s)) * 0.05).astype(np.float32)
               for k, s in lpips.expected_shapes("alex").items()}
    path = str(tmp_path / "alex.safetensors")
    save_file(tensors, path, metadata={"net": "alex"})
    tr = FinetuneTrainer(CFG, _mesh((1, 1, 1)), FinetuneConfig(disc_channels=(8, 16), lpips_weights=path))
    assert tr.uses_lpips and "LPIPS-alex" in tr.perceptual_note and list(tr.frozen_shardings) == ["lpips"]
    model = lpips.load_lpips(path)
    frozen = {"lpips": jax.device_put(model.params, tr.frozen_shardings["lpips"])}
    a = rng.random((1, 2, 32, 32, 3), np.float32)
    b = np.clip(a + 0.1, 0, 1)
    got = float(jax.jit(tr.perceptual)(frozen, a, b))
    want = float(np.mean(np.asarray(model(a[0], b[0]))))
    assert got > 0 and abs(got - want) < 1e-6
    assert "substitute" in _trainer((1, 1, 1)).perceptual_note and not _trainer((1, 1, 1)).uses_lpips


@pytest.mark.parametrize("resize", ["bilinear", "lanczos3"])
def test_residual_generator_passes_the_lagged_upsampled_lq(resize, upsample_reference):
    cfg = get_config("tiny", ["reae.residual=true", f"reae.residual_resize={resize}"])
    tr = FinetuneTrainer(cfg, _mesh((1, 1, 1)), FT)
    groups = tr.random_groups(0)
    for name in ("kernel", "bias"):  # zero correction: the output is the skip alone
        leaf = groups["reae"]["dec_out"][name]
        leaf.set_value(0.0 * leaf.get_value())
    lq = _batch(b=1)["lq"]
    out, lag = tr.generate(groups, lq, (32, 32))
    up = upsample_reference(lq, (32, 32), resize)[0]
    assert lag == 3
    np.testing.assert_allclose(np.asarray(out[0, lag:]), up[:-lag], atol=1e-5)


@pytest.mark.parametrize("base_mult", [0.0, 0.5])
def test_base_lr_mult_freezes_or_slows_the_lqnet_base(base_mult):
    """`base_lr_mult=0` leaves the ReAE's LQNet base exactly as loaded while the rest trains; any
    other value trains it too (in a 'base' optimizer group that only then exists)."""
    cfg = get_config("tiny", ["reae.residual=true", "reae.base_blocks=1", "train.warmup_steps=1", "train.lr=1e-3"])
    ft = dataclasses.replace(FT, base_lr_mult=base_mult)
    tr = FinetuneTrainer(cfg, _mesh((1, 1, 1)), ft)
    state, frozen = tr.init(jax.tree.map(np.asarray, tr.random_groups(0)))
    assert "base" in state["opt_state"][2].inner_states
    plain = FinetuneTrainer(cfg, _mesh((1, 1, 1)), FT)
    assert set(plain.tx.init(state["params"])[2].inner_states) == {"reae", "dit", "text"}  # layout as before
    before = jax.tree.map(np.array, state["params"]["reae"])
    for seed in range(2):
        state, m = tr.step(state, frozen, tr.shard_batch(_batch(seed)))
        assert m["finite"]
    after = state["params"]["reae"]
    base_moved = _max_diff(before["base_net"], after["base_net"])
    rest_moved = _max_diff({k: v for k, v in before.items() if k != "base_net"},
                           {k: v for k, v in after.items() if k != "base_net"})
    assert rest_moved > 1e-4
    assert (base_moved == 0.0) if base_mult == 0 else (base_moved > 1e-5)

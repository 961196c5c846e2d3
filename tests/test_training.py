import jax
import numpy as np
import pytest

from swiftvr_jax.config import MeshConfig, get_config
from swiftvr_jax.sharding import make_mesh, spec_for
from swiftvr_jax.training.trainer import Trainer

CFG = get_config("tiny", ["train.warmup_steps=1", "train.lr=1e-3", "train.ema_decay=0.5"])


def _batch(seed=0, b=8):
    rng = np.random.default_rng(seed)
    hq = rng.random((b, 8, 64, 64, 3), np.float32)
    lq = hq.reshape(b, 8, 16, 4, 16, 4, 3).mean((3, 5))  # a real LQ partner: box-downscaled HQ
    return {"hq": hq, "lq": lq}


def _smooth_batch(b=2):
    """Low-frequency clips (random 4x4 colour grids, bilinearly enlarged): learnable by a tiny model."""
    import jax.numpy as jnp

    grid = np.random.default_rng(0).random((b, 8, 4, 4, 3), np.float32)
    hq = np.asarray(jax.image.resize(jnp.asarray(grid), (b, 8, 64, 64, 3), "bilinear"))
    return {"hq": hq, "lq": hq.reshape(b, 8, 16, 4, 16, 4, 3).mean((3, 5))}


def _mesh(shape):
    return make_mesh(MeshConfig(*shape), jax.devices()[: int(np.prod(shape))])


def _run(stage, shape, steps=2, batch=None, cfg=CFG):
    tr = Trainer(cfg, stage, _mesh(shape))
    groups = Trainer(cfg, stage, _mesh((1, 1, 1))).random_groups(0)
    state, frozen = tr.init(jax.tree.map(np.asarray, groups))
    batch = batch or _batch()
    out = []
    for _ in range(steps):
        state, m = tr.step(state, frozen, tr.shard_batch(batch))
        out.append({k: float(v) for k, v in m.items()})
    return tr, state, frozen, out


def _max_diff(a, b):
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_rules_shard_what_divides():
    mesh = _mesh((2, 2, 2))
    assert spec_for("dit.blocks.even.attn1.to_q.kernel", (4, 64, 64), mesh) == jax.sharding.PartitionSpec(None, "fsdp", "tensor")
    assert spec_for("dit.blocks.even.ffn.proj_out.kernel", (4, 128, 64), mesh) == jax.sharding.PartitionSpec(None, "tensor", "fsdp")
    assert spec_for("reae.enc_out.kernel", (3, 3, 16, 3), mesh) == jax.sharding.PartitionSpec(None, None, None, None)  # 3 % 2


@pytest.mark.parametrize("stage, shape", [("teacher", (2, 2, 2))])
def test_sharded_step_equals_single_device(stage, shape):
    _, s1, _, m1 = _run(stage, (1, 1, 1))
    _, s2, _, m2 = _run(stage, shape)
    assert _max_diff(s1["params"], s2["params"]) < 1e-5
    assert abs(m1[-1]["loss"] - m2[-1]["loss"]) < 1e-5
    assert _max_diff(s1["params"], jax.tree.map(np.zeros_like, s1["params"])) > 0  # params really moved


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["reae", "teacher", "distill"])
@pytest.mark.parametrize("shape", [(8, 1, 1), (2, 4, 1), (2, 2, 2)])
def test_every_stage_every_mesh_equals_single_device(stage, shape):
    _, s1, _, m1 = _run(stage, (1, 1, 1))
    _, s2, _, m2 = _run(stage, shape)
    assert _max_diff(s1["params"], s2["params"]) < 1e-5
    assert abs(m1[-1]["loss"] - m2[-1]["loss"]) < 1e-5


def test_distill_teacher_is_frozen_and_nan_batch_is_skipped():
    tr, state, frozen, _ = _run("distill", (1, 1, 1), steps=1)
    teacher_before = jax.tree.map(np.array, frozen["teacher_dit"])
    params_before = jax.tree.map(np.array, state["params"])
    bad = _batch(1)
    bad["hq"][0, 0, 0, 0, 0] = np.nan
    state, m = tr.step(state, frozen, tr.shard_batch(bad))
    assert not m["finite"] and int(state["skipped"]) == 1
    assert _max_diff(params_before, state["params"]) == 0.0  # skipped step changed nothing
    state, m = tr.step(state, frozen, tr.shard_batch(_batch(2)))
    assert bool(m["finite"]) and int(state["step"]) == 3
    assert _max_diff(params_before, state["params"]) > 0  # and training went on
    for a, b in zip(jax.tree.leaves(teacher_before), jax.tree.leaves(frozen["teacher_dit"])):
        np.testing.assert_array_equal(a, np.asarray(b))  # bit-identical teacher


@pytest.mark.slow
@pytest.mark.parametrize("stage, factor", [("reae", 1.5), ("teacher", 3.0), ("distill", 1.25)])
def test_tiny_model_overfits_a_fixed_batch(stage, factor):
    # Factors from measured runs (60 steps): reae 0.218 -> 0.119, teacher > 3x, distill 0.994 -> 0.757
    # (its student also chases a random teacher here, which the flow target contradicts).
    cfg = get_config("tiny", ["train.warmup_steps=5", "train.lr=3e-3", "train.steps=200"])
    _, _, _, metrics = _run(stage, (1, 1, 1), steps=60, batch=_smooth_batch(), cfg=cfg)
    first, last = metrics[0]["loss"], min(m["loss"] for m in metrics[-5:])
    assert last < first / factor, (first, last)


def test_parameter_tree_really_shards():
    from flax import nnx

    from swiftvr_jax.models.swiftvr import SwiftVR
    from swiftvr_jax.sharding import tree_shardings

    mesh = _mesh((2, 2, 2))
    model = nnx.eval_shape(lambda: SwiftVR(CFG, rngs=nnx.Rngs(0)))
    sh = tree_shardings(nnx.state(model.dit, nnx.Param), mesh, prefix="dit.")
    specs = {s.spec for s in jax.tree.leaves(sh, is_leaf=lambda x: isinstance(x, jax.sharding.NamedSharding))}
    assert jax.sharding.PartitionSpec(None, "fsdp", "tensor") in specs  # stacked q/k/v kernels
    sharded = [s for s in jax.tree.leaves(sh, is_leaf=lambda x: isinstance(x, jax.sharding.NamedSharding))
               if any(a is not None for a in s.spec)]
    assert len(sharded) > 10


@pytest.mark.slow
def test_gradient_accumulation_equals_one_big_batch():
    cfg = get_config("tiny", ["train.warmup_steps=1", "train.lr=1e-3"])
    acc = get_config("tiny", ["train.warmup_steps=1", "train.lr=1e-3", "train.grad_accum=2"])
    a, b = _batch(10, b=4), _batch(11, b=4)
    big = {k: np.concatenate([a[k], b[k]]) for k in a}
    # Two updates each: warm-up makes the first update zero, so compare after the second.
    _, s_big, _, _ = _run("reae", (1, 1, 1), steps=2, batch=big, cfg=cfg)
    tr = Trainer(acc, "reae", _mesh((1, 1, 1)))
    state, frozen = tr.init(jax.tree.map(np.asarray, tr.random_groups(0)))
    for _ in range(2):
        for half in (a, b):
            state, _ = tr.step(state, frozen, tr.shard_batch(half))
    assert _max_diff(s_big["params"], state["params"]) < 1e-5


def test_ema_warmup_fades_the_initialisation_out():
    """EMA decay min(d, (1+s)/(10+s)) against a numpy loop: after 3000 steps of constant
    parameters the initial value keeps weight prod(decay_s), far below the plain d^3000 = 5%."""
    from swiftvr_jax.training.trainer import update_ema

    ema, target, decay = {"w": np.zeros(3, np.float32)}, {"w": np.ones(3, np.float32)}, 0.999
    ref = 0.0
    for s in range(3000):
        ema = update_ema(ema, target, decay, np.int32(s))
        d = min(decay, (1 + s) / (10 + s))
        ref = d * ref + (1 - d) * 1.0
    np.testing.assert_allclose(np.asarray(ema["w"]), ref, rtol=1e-5)
    assert 1 - ref < 0.01 < 1 - decay ** 3000


@pytest.mark.parametrize("resize", ["bilinear", "cubic"])
def test_residual_reae_stage_corrects_the_lagged_upsampled_lq(resize, upsample_reference):
    # With the decoder's last conv zeroed, a residual ReAE outputs the upsampled LQ, lag frames late:
    # the reae-stage L1 must then equal the L1 of cv2's (PIL's) upscale against the aligned HQ.
    cfg = get_config("tiny", ["reae.residual=true", f"reae.residual_resize={resize}"])
    tr = Trainer(cfg, "reae", _mesh((1, 1, 1)))
    groups = tr.random_groups(0)
    for name in ("kernel", "bias"):
        leaf = groups["reae"]["dec_out"][name]
        leaf.set_value(0.0 * leaf.get_value())
    batch = _batch(b=2)
    _, terms = tr.loss(groups, {}, batch, jax.random.key(0))
    up = upsample_reference(batch["lq"], (64, 64), resize)
    want = np.abs(up[:, :5] - batch["hq"][:, :5]).mean()  # 8 frames, lag 3
    np.testing.assert_allclose(float(terms["l1"]), want, rtol=1e-5)

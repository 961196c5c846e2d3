"""train/plan.py: FLOP counting and the abstract ahead-of-time compile of a training step."""

import math

import jax
import jax.numpy as jnp
import pytest

from swiftvr_jax.config import MeshConfig, get_config
from swiftvr_jax.sharding import make_mesh
from swiftvr_jax.training.trainer import Trainer
from train import plan


def test_matmul_flops_counts_every_scan_trip():
    def f(x, w):  # x [16, 32], w [5, 32, 32]: five chained matmuls in a scan
        return jax.lax.scan(lambda c, wi: (jnp.tanh(c @ wi), None), x, w)[0]

    x, w = jax.ShapeDtypeStruct((16, 32), jnp.float32), jax.ShapeDtypeStruct((5, 32, 32), jnp.float32)
    assert plan.matmul_flops(jax.make_jaxpr(f)(x, w)) == 5 * 2 * 16 * 32 * 32
    # Under remat the backward pass recomputes the forward: 5 forward + 5 recomputed + 10 backward matmuls.
    g = jax.grad(lambda x, w: jnp.sum(jax.checkpoint(f)(x, w)), argnums=(0, 1))
    assert plan.matmul_flops(jax.make_jaxpr(g)(x, w)) == 4 * 5 * 2 * 16 * 32 * 32


def test_matmul_flops_counts_convolutions_and_their_gradients():
    def conv(x, k):  # x [1, 8, 8, 3], k [3, 3, 3, 4] -> [1, 8, 8, 4]
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    x, k = jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32), jax.ShapeDtypeStruct((3, 3, 3, 4), jnp.float32)
    one = 2 * 8 * 8 * 4 * (3 * 3 * 3)  # 2 x outputs x taps per output
    assert plan.matmul_flops(jax.make_jaxpr(conv)(x, k)) == one
    grads = jax.grad(lambda x, k: jnp.sum(conv(x, k)), argnums=(0, 1))
    assert plan.matmul_flops(jax.make_jaxpr(grads)(x, k)) == 3 * one  # forward, input and kernel gradients


@pytest.fixture(scope="module")
def tiny_distill_plan():
    """One abstract compile of the tiny distill step on a (2, 4, 1) mesh of the 8 test devices."""
    held = jax.live_arrays()  # kept referenced, so none is freed and no id is reused meanwhile
    mp = pytest.MonkeyPatch()

    def refuse(*args, **kwargs):
        raise AssertionError("the plan must not create parameters")

    mp.setattr(Trainer, "random_groups", refuse)
    try:
        cfg = get_config("tiny", list(plan.DEFAULT_OVERRIDES))
        row = plan.plan_step(cfg, "distill", make_mesh(MeshConfig(2, 4, 1)), frames=8, height=64, width=64)
    finally:
        mp.undo()
    held_ids = {id(a) for a in held}
    return cfg, row, [a.shape for a in jax.live_arrays() if id(a) not in held_ids]


def test_plan_reports_positive_memory_and_flops_without_allocating(tiny_distill_plan):
    cfg, row, new_arrays = tiny_distill_plan
    assert new_arrays == []  # nothing was placed on any device
    for key in ("argument_bytes", "output_bytes", "temp_bytes", "state_bytes", "frozen_bytes", "peak_bytes",
                "flops_per_device", "xla_flops_loop_bodies_once"):
        assert row[key] > 0, key
    assert row["devices"] == 8 and row["global_batch"] == 8 and row["mesh"] == "2x4x1"
    assert row["argument_bytes"] >= row["state_bytes"]  # unused frozen leaves may be dropped by XLA
    # One clip's DiT forward costs at least its linear layers: 2 x tokens x (6 d^2 + 2 d ffn) per layer.
    m = cfg.model
    assert row["dit_tokens"] == (8 // 4) * (64 // 32) * (64 // 32)
    assert row["flops_per_device"] > 3 * 2 * row["dit_tokens"] * m.num_layers * (6 * m.dim ** 2 + 2 * m.dim * m.ffn_dim)


def test_plan_shards_the_trained_state(tiny_distill_plan):
    _, row, _ = tiny_distill_plan
    # params + EMA + two AdamW moments of the DiT and text, float32; fsdp=4 must split most of it.
    unsharded = 4 * 4 * row["trained_params"]
    assert row["state_bytes"] < 0.5 * unsharded, (row["state_bytes"], unsharded)


def test_plan_command_rejects_bad_arguments_in_one_line(capsys):
    assert plan.main(["--stages", "distil"]) == 2
    assert "unknown stage(s) ['distil']" in capsys.readouterr().err
    assert plan.main(["--meshes", "8x8"]) == 2
    assert "DATAxFSDPxTENSOR" in capsys.readouterr().err
    assert plan.main(["--size", "720x1280"]) == 2
    assert "multiples of 32" in capsys.readouterr().err
    assert math.prod(plan.parse_mesh("8x4x2")) == 64


def test_replication_warning_names_meshes_whose_per_device_compute_grows():
    rows = [{"stage": "distill", "mesh": "1x8x1", "xla_flops_loop_bodies_once": 2.0e13},
            {"stage": "distill", "mesh": "1x64x1", "xla_flops_loop_bodies_once": 1.0e14},
            {"stage": "teacher", "mesh": "1x8x1", "xla_flops_loop_bodies_once": 2.0e13},
            {"stage": "teacher", "mesh": "1x64x1", "xla_flops_loop_bodies_once": 2.1e13}]
    (line,) = plan.replication_warnings(rows)
    assert line.startswith("distill on 1x64x1: XLA plans 5.0x")

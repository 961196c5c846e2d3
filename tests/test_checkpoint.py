import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P, SingleDeviceSharding

from swiftvr_jax.checkpoint import Checkpointer, CheckpointError, NonFiniteError

META = {"config": {"preset": "tiny", "lr": 1e-3}, "data": {"epoch": 1, "index": 7}, "rng": [0, 42]}


def _train_state(scale=1.0, tx=None):
    """Trainer-shaped state sharded over an 8-device mesh (8,), after one real optax update."""
    mesh = jax.make_mesh((8,), ("x",), axis_types=(AxisType.Auto,))
    rows = NamedSharding(mesh, P("x"))
    params = {
        "dit": {"w": jax.device_put(jnp.arange(128.0).reshape(16, 8) * scale, rows)},
        "head": {"b": jax.device_put(jnp.linspace(-1.0, 1.0, 8) * scale, NamedSharding(mesh, P()))},
        # nnx.to_pure_dict gives integer keys for nnx.List layers
        "blocks": {i: {"kernel": jax.device_put(jnp.full((8, 4), i + 0.5) * scale, rows)}
                   for i in range(2)},
    }
    tx = tx or optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 1e-3, 10, 100), weight_decay=0.1),
    )
    opt_state = tx.init(params)
    grads = jax.tree.map(lambda p: jnp.cos(p) * 0.1, params)
    updates, opt_state = jax.jit(tx.update)(grads, opt_state, params)
    ema = jax.tree.map(lambda p, u: 0.5 * p + u, params, updates)
    return {"params": params, "opt_state": opt_state, "ema": ema, "step": jnp.int32(3)}


def _abstract(state, sharding_for):
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding_for(x)), state)


def _on_one_device(state):
    return _abstract(state, lambda x: SingleDeviceSharding(jax.devices()[0]))


def _assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_restore_onto_other_mesh_and_single_device(tmp_path):
    state = _train_state()
    with Checkpointer(tmp_path) as ckpt:
        assert ckpt.save(5, state, META)
        assert ckpt.latest_step() == 5

        mesh = jax.make_mesh((2, 4), ("a", "b"), axis_types=(AxisType.Auto,) * 2)
        spec = {2: P("a", "b"), 1: P("b"), 0: P()}  # by ndim; every dim here divides its axis
        target = _abstract(state, lambda x: NamedSharding(mesh, spec[x.ndim]))
        step, restored, meta = ckpt.restore(target)
        assert step == 5 and meta == META
        _assert_same(restored, state)
        for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(target)):
            assert got.sharding == want.sharding
        # optax NamedTuples come back as themselves, not as dicts or lists
        adam = restored["opt_state"][1][0]
        assert type(adam) is optax.ScaleByAdamState
        assert type(restored["opt_state"][1][2]) is optax.ScaleByScheduleState
        assert int(restored["opt_state"][1][2].count) == 1

        step, restored, _ = ckpt.restore(_on_one_device(state))
        _assert_same(restored, state)
        one = SingleDeviceSharding(jax.devices()[0])
        assert all(x.sharding == one for x in jax.tree.leaves(restored))


def test_multisteps_state_round_trips(tmp_path):
    state = _train_state(tx=optax.MultiSteps(optax.adamw(1e-3), every_k_schedule=2))
    assert type(state["opt_state"]) is optax.MultiStepsState
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, state, {})
        step, restored, meta = ckpt.restore(_on_one_device(state))
    assert (step, meta) == (1, {})
    _assert_same(restored, state)
    assert type(restored["opt_state"]) is optax.MultiStepsState


def test_keeps_last_n_and_nothing_to_resume(tmp_path):
    state = _train_state()
    with Checkpointer(tmp_path, keep=2) as ckpt:
        assert ckpt.latest_step() is None
        assert ckpt.restore(_on_one_device(state)) is None
        for step in (10, 20, 30, 40):
            ckpt.save(step, jax.tree.map(lambda x: x + step, state), {"step": step})
        ckpt.wait()
        assert sorted(os.listdir(ckpt.directory)) == ["30", "40"]
        step, restored, meta = ckpt.restore(_on_one_device(state), step=30)
    assert step == 30 and meta == {"step": 30}
    _assert_same(restored, jax.tree.map(lambda x: x + 30, state))


def test_relative_workdir(tmp_path, monkeypatch):
    """A workdir given relative to the current folder (as in the README's commands) saves and restores."""
    monkeypatch.chdir(tmp_path)
    state = _train_state()
    with Checkpointer("runs/rel") as ckpt:
        ckpt.save(5, state, META)
        ckpt.wait()
        step, restored, meta = ckpt.restore(_on_one_device(state))
    assert step == 5 and meta == META and (tmp_path / "runs" / "rel" / "checkpoints" / "5").is_dir()
    _assert_same(restored, state)


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf, -jnp.inf])
def test_non_finite_state_is_never_written(tmp_path, bad):
    state = _train_state()
    mu = state["opt_state"][1][0].mu
    w = np.asarray(mu["dit"]["w"]).copy()
    w[3, 5] = bad
    mu["dit"]["w"] = jax.device_put(w, mu["dit"]["w"].sharding)  # sharded leaf deep in optax state
    with Checkpointer(tmp_path) as ckpt:
        with pytest.raises(NonFiniteError, match="step 7"):
            ckpt.save(7, state, META)
        assert ckpt.latest_step() is None
    assert os.listdir(tmp_path / "checkpoints") == []


def test_bad_arguments_are_reported(tmp_path):
    state = _train_state()
    with Checkpointer(tmp_path) as ckpt:
        with pytest.raises(TypeError, match="JSON"):
            ckpt.save(1, state, {"rng": jax.random.key(0)})
        ckpt.save(1, state, META)
        no_sharding = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
        with pytest.raises(ValueError, match="needs a sharding"):
            ckpt.restore(no_sharding)


def _garble(path):
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 4, len(data) // 4 + 16):
        data[i % len(data)] ^= 0x5A
    path.write_bytes(bytes(data))


def _garble_array_chunks(step_dir):
    chunks = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert chunks  # OCDBT data files: state/d/* and state/ocdbt.process_*/d/*
    for path in chunks:
        _garble(path)


DAMAGE = {
    "no_commit_marker": lambda d: (d / "commit_success.txt").unlink(),
    "deleted_meta": lambda d: (d / "meta" / "metadata").unlink(),
    "truncated_tree_metadata": lambda d: (d / "state" / "_METADATA").write_text('{"tree_metadata": {'),
    "garbled_array_data": _garble_array_chunks,
    # Valid files holding another step's values: only the checksums can tell.
    "swapped_array_data": lambda d: (
        shutil.rmtree(d / "state"),
        shutil.copytree(d.parent / "1" / "state", d / "state"),
    ),
}


# tensorstore completes a read of the garbled data after Orbax closed its event loop: noise.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_newest_falls_back_to_previous(tmp_path, damage, caplog):
    state = _train_state()
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, state, {"step": 1})
        ckpt.save(2, jax.tree.map(lambda x: x * 2, state), {"step": 2})
    DAMAGE[damage](tmp_path / "checkpoints" / "2")

    with Checkpointer(tmp_path) as ckpt:  # a restarted run
        with pytest.raises(CheckpointError, match="step 2"):
            ckpt.restore(_on_one_device(state), step=2)
        with caplog.at_level(logging.WARNING, logger="swiftvr_jax.checkpoint"):
            step, restored, meta = ckpt.restore(_on_one_device(state))
        assert (step, meta) == (1, {"step": 1})
        _assert_same(restored, state)
        assert any("checkpoints/2 is damaged" in r.getMessage() for r in caplog.records)
        # The damaged step was set aside, so the resumed run can save step 2 again.
        assert ckpt.latest_step() == 1
        assert (tmp_path / "checkpoints" / "2.damaged").is_dir()
        ckpt.save(2, jax.tree.map(lambda x: x * 3, state), {"step": 2})
        step, restored, _ = ckpt.restore(_on_one_device(state))
    assert step == 2
    _assert_same(restored, jax.tree.map(lambda x: x * 3, state))


def test_every_step_damaged_raises(tmp_path):
    state = _train_state()
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, state, {})
    (tmp_path / "checkpoints" / "1" / "commit_success.txt").unlink()
    with Checkpointer(tmp_path) as ckpt:
        with pytest.raises(CheckpointError, match="no checkpoint .* is readable"):
            ckpt.restore(_on_one_device(state))


def test_arrays_may_be_donated_once_save_returns(tmp_path):
    state = _train_state()
    expected = jax.tree.map(np.asarray, state)
    with Checkpointer(tmp_path) as ckpt:
        ckpt.save(1, state, {})
        for x in jax.tree.leaves(state):  # what donating the state to the next train step does
            x.delete()
        _, restored, _ = ckpt.restore(_on_one_device(expected))
    _assert_same(restored, expected)

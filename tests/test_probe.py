"""train/probe.py: the data probe starts as bicubic exactly, stacks frames causally, and reports its rows."""

import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from swiftvr_jax import baselines
from swiftvr_jax.models import lqnet
from train import probe


def test_stack_causal_matches_a_loop():
    rng = np.random.default_rng(0)
    lq = rng.random((2, 5, 4, 6, 3)).astype(np.float32)  # [B, T, h, w, 3]
    hist = rng.random((2, 2, 4, 6, 3)).astype(np.float32)  # a stream's two frames before lq[:, 0]
    for history in (None, hist):
        out = np.asarray(lqnet.stack_causal(jnp.asarray(lq), 3, None if history is None else jnp.asarray(history)))
        ref = np.zeros((2, 5, 4, 6, 9), np.float32)
        for b in range(2):
            for t in range(5):
                for i, src in enumerate(range(t - 2, t + 1)):  # oldest first, newest last
                    if src >= 0:
                        ref[b, t, ..., 3 * i:3 * i + 3] = lq[b, src]
                    else:  # before the chunk: the history, or the first frame at a stream's start
                        ref[b, t, ..., 3 * i:3 * i + 3] = lq[b, 0] if history is None else history[b, 2 + src]
        np.testing.assert_array_equal(out, ref)


def test_untrained_probe_is_bicubic():
    lq = np.random.default_rng(1).integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    model = probe.ProbeSR(2, channels=8, blocks=1, rngs=nnx.Rngs(0))
    x = probe.flat(lqnet.stack_causal(jnp.asarray(lq[None], jnp.float32) / 255.0, 2))
    np.testing.assert_array_equal(probe.to_uint8(model(x)), baselines.resize_upscale(lq, 4, "bicubic"))


def test_detail_matches_a_loop():
    frames = np.random.default_rng(2).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    g = frames.astype(np.float64).mean(-1) / 255.0
    right = [abs(g[t, y, x + 1] - g[t, y, x]) for t in range(2) for y in range(5) for x in range(6)]
    down = [abs(g[t, y + 1, x] - g[t, y, x]) for t in range(2) for y in range(4) for x in range(7)]
    assert abs(probe.detail(frames) - (np.mean(right) + np.mean(down))) < 1e-12
    assert probe.detail(np.full((1, 4, 4, 3), 77, np.uint8)) == 0.0


def _run(tmp_path, steps, name=None, extra=()):
    out = tmp_path / (name or f"s{steps}")
    rc = probe.main(["--out", str(out), "--steps", str(steps), "--frames", "2", "--channels", "8", "--blocks", "1",
                     "--hq-size", "32", "--clip-frames", "2", "--check-batches", "1", "--clips", "carphone",
                     "--heldout-frames", "2", "--set", "data.num_workers=0", "--lr", "1e-2", *extra])
    assert rc == 0
    return json.loads((out / "probe.json").read_text())


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, capsys):
    whole = _run(tmp_path, 4, "whole", ["--checkpoint-every", "2"])
    _run(tmp_path, 4, "split", ["--checkpoint-every", "2"])
    shutil.rmtree(tmp_path / "split" / "checkpoints" / "4")  # as if stopped after step 2's checkpoint
    resumed = _run(tmp_path, 4, "split", ["--checkpoint-every", "2"])
    assert resumed["steps"] == 4 and resumed["heldout"] == whole["heldout"] and resumed["psnr"] == whole["psnr"]
    assert resumed["final_loss_mean_50"] == whole["final_loss_mean_50"]
    with pytest.raises(AssertionError):  # a run's folder refuses other settings, in one line
        _run(tmp_path, 4, "split", ["--checkpoint-every", "2", "--seed", "1"])
    assert "with other settings" in capsys.readouterr().err


def test_cli_rows(tmp_path):
    untrained, trained = _run(tmp_path, 0), _run(tmp_path, 3)
    for rows in (untrained["psnr"], trained["psnr"]):
        assert set(rows) == {"training content (loader seed 7)", "held-out clips (mean)"}
    assert untrained["heldout"]["carphone"]["probe"] == untrained["heldout"]["carphone"]["bicubic"]
    assert trained["steps"] == 3 and trained["config"]["data"]["degradation"] == "light"
    assert trained["heldout"]["carphone"]["probe"] != trained["heldout"]["carphone"]["bicubic"]
    assert trained["heldout"]["carphone"]["bicubic"] == untrained["heldout"]["carphone"]["bicubic"]
    assert trained["heldout"]["carphone"]["detail"] == untrained["heldout"]["carphone"]["detail"] > 0


def test_init_starts_from_a_saved_network(tmp_path, capsys):
    first = _run(tmp_path, 2, "first", ["--save"])
    saved = str(tmp_path / "first" / lqnet.FILE)
    again = _run(tmp_path, 0, "again", ["--init", saved])  # no steps: exactly the saved network
    assert again["heldout"] == first["heldout"]
    grown = _run(tmp_path, 0, "grown", ["--init", saved, "--blocks", "3"])  # two identity blocks after its own
    assert grown["heldout"] == first["heldout"]
    assert probe.main(["--out", str(tmp_path / "x"), "--steps", "0", "--frames", "1", "--channels", "8",
                       "--blocks", "1", "--init", saved]) == 2  # 2 frames saved, 1 asked: one line
    assert "shape" in capsys.readouterr().err


def test_loss_kinds(tmp_path):
    rng = np.random.default_rng(3)
    pred, target = rng.random((2, 4, 5, 3)), rng.random((2, 4, 5, 3))
    assert abs(float(probe.pixel_loss(pred, target, "l1")) - np.abs(pred - target).mean()) < 1e-6
    assert abs(float(probe.pixel_loss(pred, target, "l2")) - ((pred - target) ** 2).mean()) < 1e-6
    l1, l2 = _run(tmp_path, 2, "l1"), _run(tmp_path, 2, "l2", ["--loss", "l2"])
    assert l2["args"]["loss"] == "l2" and l2["heldout"] != l1["heldout"]
    assert l2["final_loss_mean_50"] < l1["final_loss_mean_50"]  # squares of errors below 1


def test_bad_source_is_one_line(tmp_path, capsys):
    rc = probe.main(["--out", str(tmp_path), "--steps", "1", "--set", f"data.sources={tmp_path}/missing"])
    assert rc == 2 and "no such file or folder" in capsys.readouterr().err


def _saved_small(tmp_path):
    """A 1-frame, 2-block LQNet with a non-zero output conv, saved; (net, path)."""
    import jax

    small = lqnet.LQNet(1, channels=8, blocks=2, rngs=nnx.Rngs(0))
    small.up.kernel.set_value(jax.random.normal(jax.random.key(1), small.up.kernel.shape) * 0.1)  # not zero
    path = str(tmp_path / lqnet.FILE)
    lqnet.save(small, path)
    return small, path


def test_grow_loads_fewer_blocks_as_the_same_function(tmp_path):
    from swiftvr_jax.models.swiftvr import WeightsError

    small, path = _saved_small(tmp_path)
    big = lqnet.LQNet(1, channels=8, blocks=4, rngs=nnx.Rngs(5))
    own_first = np.asarray(big.blocks[3][0].kernel[...])
    with pytest.raises(WeightsError):  # without grow the key sets differ
        lqnet.load(big, path)
    lqnet.load(big, path, grow=True)
    x = jnp.asarray(np.random.default_rng(0).random((2, 6, 5, 3)), jnp.float32)
    np.testing.assert_array_equal(np.asarray(big(x)), np.asarray(small(x)))
    np.testing.assert_array_equal(np.asarray(big.blocks[1][1].kernel[...]), np.asarray(small.blocks[1][1].kernel[...]))
    np.testing.assert_array_equal(np.asarray(big.blocks[3][0].kernel[...]), own_first)  # its own init
    assert not np.any(np.asarray(big.blocks[2][1].kernel[...]))
    with pytest.raises(WeightsError, match="more than"):
        lqnet.load(lqnet.LQNet(1, channels=8, blocks=1, rngs=nnx.Rngs(0)), path, grow=True)


def test_grow_loads_fewer_frames_as_the_same_function(tmp_path):
    """A 1-frame file in a 3-frame net: the newest frame's channels get its head, the older ones zeros."""
    one, path = _saved_small(tmp_path)
    three = lqnet.LQNet(3, channels=8, blocks=3, rngs=nnx.Rngs(5))
    lqnet.load(three, path, grow=True)
    clip = jnp.asarray(np.random.default_rng(0).random((1, 4, 6, 5, 3)), jnp.float32)
    out3 = three(lqnet.stack_causal(clip, 3)[0])
    np.testing.assert_array_equal(np.asarray(out3), np.asarray(one(clip[0])))
    assert not np.any(np.asarray(three.head.kernel[:, :, :6]))

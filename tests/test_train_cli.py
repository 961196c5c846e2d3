import json

import numpy as np
import pytest

from swiftvr_jax.convert import SafetensorsFile
from swiftvr_jax.pipeline import SwiftVRPipeline
from train.train import main

COMMON = ["--preset", "tiny", "--set", "train.batch_size=8", "--set", "train.steps=4", "--set", "train.log_every=1", "--set", "train.checkpoint_every=2",
          "--set", "train.warmup_steps=1"]


def _rows(workdir):
    return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


def _weights(workdir):
    f = SafetensorsFile(str(workdir / "export" / "model.safetensors"))
    return {k: f[k] for k in f}


def _tensorboard_scalars(folder, tag):
    """(step, value) of `tag` read back from TFRecord event files (length, crc, Event proto, crc)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    out = []
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos:pos + 8])
            event = Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
            out += [(event.step, v.simple_value) for v in event.summary.value if v.tag == tag]
    return [(s, float(np.float32(v))) for s, v in out]


def test_resume_gives_identical_weights_and_batches(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["--stage", "reae", "--workdir", str(straight), *COMMON]) == 0
    assert main(["--stage", "reae", "--workdir", str(split), *COMMON, "--stop-after", "2"]) == 0
    assert not (split / "export").exists()
    assert main(["--stage", "reae", "--workdir", str(split), *COMMON]) == 0
    a, b = _rows(straight), _rows(split)
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert [r["clips"] for r in a] == [r["clips"] for r in b]  # same data order across the restart
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert all(r["wall_s"] >= 0 for r in b) and b[-1]["wall_s"] >= b[1]["wall_s"]  # summed over both runs
    assert _tensorboard_scalars(straight / "tb", "reae/loss") == [(r["step"], r["loss"]) for r in a]
    wa, wb = _weights(straight), _weights(split)
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)  # bitwise on CPU
    # the export is a normal weight directory for the restorer
    pipe = SwiftVRPipeline.from_pretrained(str(straight / "export"))
    out = pipe.restore_frames(np.zeros((3, 16, 16, 3), np.uint8), upscale=2)
    assert out.shape == (3, 32, 32, 3)


def test_later_stage_needs_init(tmp_path, capsys):
    assert main(["--stage", "teacher", "--workdir", str(tmp_path / "t"), *COMMON]) == 2
    assert "--init" in capsys.readouterr().err


def test_plain_init_becomes_a_residual_reae_with_zero_correction():
    import pytest
    from flax import nnx

    from swiftvr_jax.config import ConfigError, get_config
    from swiftvr_jax.models.swiftvr import SwiftVR
    from train.train import make_residual

    plain, residual = get_config("tiny"), get_config("tiny", ["reae.residual=true"])
    model = SwiftVR(plain, rngs=nnx.Rngs(0))
    assert not make_residual(model, plain, plain, "x")
    assert float(np.abs(model.reae.dec_out.bias[...]).max()) > 0  # plain init: mid-grey bias
    assert make_residual(model, plain, residual, "x")
    assert not np.any(model.reae.dec_out.kernel[...]) and not np.any(model.reae.dec_out.bias[...])
    with pytest.raises(ConfigError, match="residual"):
        make_residual(model, residual, plain, "x")


@pytest.mark.parametrize("name", ["cond_blocks", "lq_blocks"])
def test_residual_init_grows_zero_initialised_blocks(name):
    import jax
    from flax import nnx

    from swiftvr_jax.config import ConfigError, get_config
    from swiftvr_jax.models.swiftvr import SwiftVR
    from swiftvr_jax.training.trainer import param_groups
    from train.train import grow_decoder

    residual, grown2 = get_config("tiny", ["reae.residual=true"]), get_config("tiny", ["reae.residual=true",
                                                                                    f"reae.{name}=2"])
    model = SwiftVR(residual, rngs=nnx.Rngs(0))
    reae = model.reae
    z = jax.random.normal(jax.random.key(0), (1, 2, 2, 2, residual.reae.latent_channels))
    x = jax.random.uniform(jax.random.key(1), (1, 8, 32, 32, 3))
    before, _ = reae.decode(z, reae.init_decoder_state(1, 2, 2), x)
    assert grow_decoder(model, residual, residual, "x") == []
    assert grow_decoder(model, residual, grown2, "x") == [name]
    after, _ = reae.decode(z, reae.init_decoder_state(1, 2, 2), x)
    np.testing.assert_array_equal(after, before)  # no change until the blocks train
    assert getattr(reae.cfg, name) == 2
    # The grown model has exactly the parameters of a model built with {name}=2.
    shapes = lambda m: jax.tree.map(lambda a: a.shape, param_groups(m))
    assert shapes(model) == shapes(SwiftVR(grown2, rngs=nnx.Rngs(1)))
    with pytest.raises(ConfigError, match=name):
        grow_decoder(model, grown2, residual, "x")
    # Growing 2 -> 3 blocks after training (non-zero weights) leaves the output unchanged too.
    leaves, treedef = jax.tree.flatten(nnx.state(reae, nnx.Param))
    keys = jax.random.split(jax.random.key(2), len(leaves))
    nnx.update(reae, jax.tree.unflatten(treedef, [a + 0.05 * jax.random.normal(k, a.shape)
                                                  for a, k in zip(leaves, keys)]))
    trained, _ = reae.decode(z, reae.init_decoder_state(1, 2, 2), x)
    assert not np.allclose(trained, before)  # the new path now changes the output
    grown3 = get_config("tiny", ["reae.residual=true", f"reae.{name}=3"])
    assert grow_decoder(model, grown2, grown3, "x") == [name]
    grown, _ = reae.decode(z, reae.init_decoder_state(1, 2, 2), x)
    np.testing.assert_array_equal(grown, trained)
    assert shapes(model) == shapes(SwiftVR(grown3, rngs=nnx.Rngs(1)))


@pytest.mark.parametrize("frames", [1, 3])
def test_init_grows_a_zero_base_then_loads_a_probe_lqnet(tmp_path, frames):
    import jax
    from flax import nnx

    from swiftvr_jax.config import ConfigError, get_config
    from swiftvr_jax.models import lqnet
    from swiftvr_jax.models.swiftvr import SwiftVR
    from swiftvr_jax.training.trainer import param_groups
    from train import probe
    from train.train import grow_decoder, load_base

    common = ["reae.residual=true", "reae.residual_resize=cubic"]
    residual = get_config("tiny", common)
    based = get_config("tiny", [*common, "reae.base_blocks=1", "reae.base_channels=8", "reae.base_scale=2",
                                 f"reae.base_frames={frames}"])
    model = SwiftVR(residual, rngs=nnx.Rngs(0))
    lq = jax.random.uniform(jax.random.key(1), (1, 3, 8, 10, 3))
    before = model.reae.residual_base(lq, (16, 20))
    with pytest.raises(ConfigError, match="base_blocks"):
        load_base(model, str(tmp_path / "none.safetensors"))  # no base to load into yet
    assert grow_decoder(model, residual, based, "x") == ["base_blocks"]
    np.testing.assert_array_equal(model.reae.residual_base(lq, (16, 20)), before)  # zero output: no change yet
    shapes = lambda m: jax.tree.map(lambda a: a.shape, param_groups(m))  # noqa: E731
    assert shapes(model) == shapes(SwiftVR(based, rngs=nnx.Rngs(1)))
    # A probe's saved network becomes the base: the base is then the probe's restoration, frame by frame
    # (each with the frames before it, the first repeated).
    trained = probe.ProbeSR(frames, scale=2, channels=8, blocks=1, rngs=nnx.Rngs(3))
    trained.net.up.kernel[...] = 0.05 * jax.random.normal(jax.random.key(4), trained.net.up.kernel[...].shape)
    lqnet.save(trained.net, str(tmp_path / "lqnet.safetensors"))
    load_base(model, str(tmp_path / "lqnet.safetensors"))
    got = np.asarray(model.reae.residual_base(lq, (16, 20)))[0]
    want = np.asarray(trained(probe.flat(lqnet.stack_causal(lq, frames))))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(got - np.asarray(before)[0]).mean() > 1e-3
    one_by_one = np.asarray(model.reae.residual_base(lq, (16, 20), one_frame_at_a_time=True))[0]
    np.testing.assert_allclose(one_by_one, got, atol=1e-6)
    # An --init that already has a different base is refused; a wrong-shaped file too.
    wider = get_config("tiny", [*common, "reae.base_blocks=1", "reae.base_channels=16", "reae.base_scale=2",
                                f"reae.base_frames={frames}"])
    with pytest.raises(ConfigError, match="base_channels=8"):
        grow_decoder(model, based, wider, "x")
    # With --init-base (new_base) the base takes the run's settings, ready for the file.
    more = get_config("tiny", [*common, "reae.base_blocks=1", "reae.base_channels=8", "reae.base_scale=2",
                               f"reae.base_frames={frames + 1}"])
    regrown = SwiftVR(residual, rngs=nnx.Rngs(0))
    grow_decoder(regrown, residual, based, "x")
    assert grow_decoder(regrown, based, more, "x", new_base=True) == ["base_blocks"]
    assert regrown.reae.base_net.head.in_features == 3 * (frames + 1)
    assert shapes(regrown) == shapes(SwiftVR(more, rngs=nnx.Rngs(1)))
    for name, other in (("wide", probe.ProbeSR(frames, scale=2, channels=16, blocks=1, rngs=nnx.Rngs(3))),
                        ("frames", probe.ProbeSR(frames + 1, scale=2, channels=8, blocks=1, rngs=nnx.Rngs(3)))):
        lqnet.save(other.net, str(tmp_path / f"{name}.safetensors"))
        with pytest.raises(Exception, match="shape"):
            load_base(model, str(tmp_path / f"{name}.safetensors"))

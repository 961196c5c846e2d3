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

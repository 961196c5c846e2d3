"""train/soup.py: the weighted mean of two weight directories, against numpy, and its refusals."""

import json

import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file

from swiftvr_jax.config import get_config
from swiftvr_jax.models.swiftvr import SwiftVR, flat_params, load_pretrained, save_pretrained
from train import soup


def _weights(path, seed, overrides=(), dtype="float32"):
    cfg = get_config("tiny", overrides)
    save_pretrained(SwiftVR(cfg, rngs=nnx.Rngs(seed)), cfg, str(path), dtype=dtype)
    return str(path)


def test_weighted_mean_matches_numpy(tmp_path):
    a, b = _weights(tmp_path / "a", 0), _weights(tmp_path / "b", 1)
    assert soup.main(["--out", str(tmp_path / "s"), a, b, "--weights", "1", "3"]) == 0
    ta, tb = load_file(f"{a}/model.safetensors"), load_file(f"{b}/model.safetensors")
    ts = load_file(str(tmp_path / "s" / "model.safetensors"))
    assert ts.keys() == ta.keys()
    differ = 0
    for k in ta:
        ref = (0.25 * ta[k].astype(np.float64) + 0.75 * tb[k].astype(np.float64)).astype(np.float32)
        np.testing.assert_array_equal(ts[k], ref)
        differ += int(not np.array_equal(ta[k], tb[k]))
    assert differ > 0  # the two inputs really differ
    model, _ = load_pretrained(str(tmp_path / "s"))  # the soup loads as a model
    k = next(iter(ta))
    np.testing.assert_allclose(np.asarray(flat_params(model)[k]), ts[k])
    record = json.loads((tmp_path / "s" / "soup.json").read_text())
    assert record["weights"] == [0.25, 0.75] and record["inputs"] == [a, b] and len(record["sha256"]) == 2


def test_keeps_the_first_inputs_dtype(tmp_path):
    a, b = _weights(tmp_path / "a", 0, dtype="float16"), _weights(tmp_path / "b", 1, dtype="float16")
    soup.soup([a, b], [1, 1], str(tmp_path / "s"))
    ts = load_file(str(tmp_path / "s" / "model.safetensors"))
    assert all(v.dtype == np.float16 for v in ts.values())


def test_refuses_other_architectures_and_bad_weights(tmp_path, capsys):
    a, b = _weights(tmp_path / "a", 0), _weights(tmp_path / "b", 1, ["model.num_layers=4"])
    assert soup.main(["--out", str(tmp_path / "s"), a, b]) == 2
    assert "differs" in capsys.readouterr().err and not (tmp_path / "s").exists()
    with pytest.raises(soup.WeightsError, match="one weight per input"):
        soup.soup([a, a], [1.0], str(tmp_path / "s"))
    with pytest.raises(soup.WeightsError, match=">= 0"):
        soup.soup([a, a], [1.0, -1.0], str(tmp_path / "s"))

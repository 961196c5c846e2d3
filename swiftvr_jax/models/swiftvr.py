"""The whole SwiftVR restorer (ReAE + DiT + fixed text conditioning) and its weight files.

The project's own weight format is a directory holding `config.json` (the resolved
`Config`) and `model.safetensors` (every parameter, keys like `dit.blocks.even.attn1.to_q.kernel`,
float32, JAX layouts). Nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax.sharding import NamedSharding

from swiftvr_jax import sharding
from swiftvr_jax.config import Config, ConfigError, config_from_dict
from swiftvr_jax.models.dit import DiT
from swiftvr_jax.models.reae import ReAE

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class SwiftVR(nnx.Module):
    """ReAE encoder/decoder, the one-step DiT and the fixed text embedding it attends to.

    `text` [1, text_len, text_dim] is the empty-prompt umT5 embedding for official weights,
    or a learned null embedding for models trained from scratch here.
    """

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        self.reae = ReAE(cfg.reae, rngs=rngs)
        self.dit = DiT(cfg.model, rngs=rngs)
        m = cfg.model
        self.text = nnx.Param(0.02 * jax.random.normal(rngs.params(), (1, m.text_len, m.text_dim), jnp.float32))


class WeightsError(ValueError):
    """A weight directory that does not match the model (missing, unknown or mis-shaped tensors)."""


def flat_params(model: nnx.Module) -> dict[str, jax.Array]:
    """Parameters as a flat {dotted.key: array} dict."""
    pure = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(pure)[0]:
        flat[".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)] = leaf
    return flat


def load_flat_params(model: nnx.Module, tensors, *, what: str = "weights", mesh=None) -> None:
    """Strictly copy {dotted.key: array} into `model` (shapes and key sets must match exactly).

    `model` may be abstract (from `nnx.eval_shape`); `tensors` may be a lazy mapping, read one
    tensor at a time. With a `mesh`, each tensor goes straight onto its sharding from the rules
    table, so the full model never sits on the host twice.
    """
    state = nnx.state(model, nnx.Param)
    expected = flat_params(model)
    missing = sorted(set(expected) - set(tensors))
    unknown = sorted(set(tensors) - set(expected))
    if missing or unknown:
        raise WeightsError(f"{what}: {len(missing)} missing tensors (e.g. {missing[:3]}) and "
                           f"{len(unknown)} unknown tensors (e.g. {unknown[:3]})")
    shape_of = tensors.shape if callable(getattr(tensors, "shape", None)) else (lambda k: tensors[k].shape)
    for key, ref in expected.items():
        if tuple(shape_of(key)) != tuple(ref.shape):
            raise WeightsError(f"{what}: tensor {key} has shape {tuple(shape_of(key))}, "
                               f"the model expects {tuple(ref.shape)}")
    pure = nnx.to_pure_dict(state)

    def fill(node, prefix):
        for k in list(node):
            key = f"{prefix}{k}"
            if isinstance(node[k], dict):
                fill(node[k], key + ".")
            elif mesh is None:
                node[k] = jnp.asarray(tensors[key], jnp.float32)
            else:
                spec = sharding.spec_for(key, tuple(node[k].shape), mesh)
                node[k] = jax.device_put(np.asarray(tensors[key], np.float32), NamedSharding(mesh, spec))

    fill(pure, "")
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)


def save_pretrained(model: SwiftVR, cfg: Config, path: str, *, dtype: str = "float32") -> None:
    """Write `config.json` + `model.safetensors` into directory `path`.

    `dtype` "float16" halves the file (relative rounding <= 2^-11, loaded back as float32);
    parameters beyond float16's range are refused rather than silently turned into inf.
    """
    from safetensors.numpy import save_file

    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype={dtype!r}: choose float32 or float16")
    arrays = {}
    for k, v in flat_params(model).items():
        v = np.asarray(v, np.float32)
        if dtype == "float16" and np.abs(v).max(initial=0.0) > np.finfo(np.float16).max:
            raise ValueError(f"{k}: values beyond the float16 range; export as float32")
        arrays[k] = np.ascontiguousarray(v.astype(dtype))
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, CONFIG_NAME), "w") as f:
        f.write(cfg.to_json())
    tmp = os.path.join(path, WEIGHTS_NAME + ".partial")
    save_file(arrays, tmp, metadata={"format": "swiftvr-jax", "preset": cfg.preset})
    os.replace(tmp, os.path.join(path, WEIGHTS_NAME))


def read_config(path: str) -> Config:
    """The `Config` stored in a weight directory, with a one-line error when unusable."""
    cfg_path = os.path.join(path, CONFIG_NAME)
    if not os.path.isfile(cfg_path):
        raise WeightsError(f"{path}: no {CONFIG_NAME}; expected a directory written by save_pretrained "
                           f"or swiftvr-convert")
    try:
        with open(cfg_path) as f:
            return config_from_dict(json.load(f))
    except (json.JSONDecodeError, ConfigError, TypeError) as e:
        raise WeightsError(f"{cfg_path}: unreadable config ({e})") from None


def load_pretrained(path: str, *, dtype: str | None = None, mesh=None) -> tuple[SwiftVR, Config]:
    """Build the model described by `path/config.json` and load `path/model.safetensors`.

    Tensors are read one at a time (bfloat16/float16 files too); with a `mesh` each is placed
    straight onto its sharding. `dtype` overrides the DiT compute dtype (parameters stay float32).
    """
    from swiftvr_jax.convert import ConvertError, SafetensorsFile

    cfg = read_config(path)
    if dtype is not None:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dtype=dtype))
    weights = os.path.join(path, WEIGHTS_NAME)
    if not os.path.isfile(weights):
        raise WeightsError(f"{path}: no {WEIGHTS_NAME}")
    try:
        tensors = SafetensorsFile(weights)
    except (ConvertError, OSError) as e:
        raise WeightsError(f"{weights}: not a readable safetensors file ({e})") from None
    model = nnx.eval_shape(lambda: SwiftVR(cfg, rngs=nnx.Rngs(0)))  # abstract: nothing allocated yet
    load_flat_params(model, tensors, what=weights, mesh=mesh)
    return model, cfg

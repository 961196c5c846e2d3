"""Test setup: 8 simulated CPU devices so sharded code can be compared with one device."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A tiny random model as a float16 weight directory (like the shipped default), built once
    per session: building the model takes most of a demo/quality test's time."""
    from flax import nnx

    from swiftvr_jax.config import get_config
    from swiftvr_jax.models.swiftvr import SwiftVR, save_pretrained

    path = tmp_path_factory.mktemp("tiny_weights")
    cfg = get_config("tiny")
    save_pretrained(SwiftVR(cfg, rngs=nnx.Rngs(0)), cfg, str(path), dtype="float16")
    return str(path)

"""Test setup: 8 simulated CPU devices so sharded code can be compared with one device."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)


import numpy as np  # noqa: E402
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


def _upsample_reference(lq, hw, method="bilinear"):
    """[B, T, h, w, 3] float frames -> hw with cv2 (bilinear) or PIL (cubic: Keys a=-0.5, lanczos3)."""
    import cv2
    from PIL import Image

    if method == "bilinear":
        return np.stack([[cv2.resize(f, hw[::-1], interpolation=cv2.INTER_LINEAR) for f in clip] for clip in lq])
    flt = {"cubic": Image.BICUBIC, "lanczos3": Image.LANCZOS}[method]
    one = lambda f: np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(f[..., c]), mode="F")
                                         .resize(hw[::-1], flt)) for c in range(f.shape[-1])], -1)
    return np.stack([[one(f) for f in clip] for clip in lq])


@pytest.fixture
def upsample_reference():
    """Independent upscaling references: cv2 bilinear; PIL cubic (Keys a=-0.5) and lanczos3."""
    return _upsample_reference

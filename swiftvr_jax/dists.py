"""DISTS (Ding et al. 2020, "Image Quality Assessment: Unifying Structure and Texture Similarity") in JAX.

    D(x, y) = 1 - sum_k sum_c ( alpha_kc l(x_kc, y_kc) + beta_kc s(x_kc, y_kc) ),  sum(alpha) + sum(beta) = 1
    l = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)            texture: spatial means of a channel
    s = (2 cov_xy + c2) / (var_x + var_y + c2)                 structure: spatial correlation of a channel

c1 = c2 = 1e-6; statistics are over the whole map of channel c of stage k (population variances).
Stage 0 is the [0, 1] image itself; stages 1-5 are relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of an
ImageNet VGG16 (torchvision) run on the ImageNet-normalised image, where L2 pooling (square root of
a 3x3 Hanning-weighted mean of squares, stride 2, zero padding 1) replaces every max pool. alpha and
beta [1475 = 3 + 64 + 128 + 256 + 512 + 512] are DISTS's learned weights, normalised by their joint
sum as in the official DISTS_pytorch. Images are scored at the size given (the official demo first
resizes the short side to 256).

Nothing here downloads or unpickles. The user makes ONE safetensors file outside this project's
runtime (the README, section Evaluation, has the script), keeping torch's layouts and names:

    features.{i}.weight  [O, I, 3, 3]   features.{i}.bias  [O]   (torchvision vgg16 convs, i = 0, 2, ..., 28)
    alpha, beta          [1, 1475, 1, 1]                          (DISTS_pytorch's weights.pt)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from swiftvr_jax import lpips
from swiftvr_jax.models.swiftvr import WeightsError

# torchvision vgg16 `features` as LPIPS-VGG uses it: its five taps are DISTS's stages 1-5.
_VGG = lpips.NETS["vgg"]
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # ImageNet normalisation of the backbone input
_STD = np.array([0.229, 0.224, 0.225], np.float32)
_C1 = _C2 = 1e-6
_HANN = np.hanning(5)[1:-1]  # [0.5, 1, 0.5]: DISTS_pytorch's 5-tap Hanning window without its zero ends
L2_WINDOW = (np.outer(_HANN, _HANN) / np.outer(_HANN, _HANN).sum()).astype(np.float32)  # [3, 3], sums to 1


class DISTSWeightsError(WeightsError):
    """A DISTS weights file that cannot be used (unreadable, missing/unknown/mis-shaped tensors)."""


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """{key: torch-layout shape} a DISTS weights file must hold exactly."""
    vgg = lpips.expected_shapes("vgg")
    shapes = {k: s for k, s in vgg.items() if k.startswith("features.")}
    n = 3 + sum(s[1] for k, s in vgg.items() if k.startswith("lin"))  # the image's and the five taps' channels
    shapes["alpha"] = shapes["beta"] = (1, n, 1, 1)
    return shapes


@dataclass(frozen=True)
class DISTS:
    """A loaded DISTS network: `params` {key: float32 array, JAX layouts} (conv kernels HWIO,
    alpha/beta [1475]). Pass `params` through jit as an argument, not a constant."""
    params: dict[str, Any]

    def __call__(self, x, y):
        """DISTS of images [N, H, W, 3] in [0, 1] -> [N]."""
        return dists_distance(self.params, x, y)


def load_dists(path: str) -> DISTS:
    """Read a DISTS safetensors file (format in the module docstring), strictly; raises DISTSWeightsError."""
    from swiftvr_jax.convert import ConvertError, SafetensorsFile

    if not path or not os.path.isfile(path):
        raise DISTSWeightsError(f"{path}: no such DISTS weights file "
                                "(the README, section Evaluation, says how to make one)")
    try:
        f = SafetensorsFile(path)
    except ConvertError as e:
        raise DISTSWeightsError(str(e)) from None
    params = lpips.read_torch_tensors(f, path, expected_shapes(), "DISTS", DISTSWeightsError,
                                      vector=lambda k: k in ("alpha", "beta"))  # alpha/beta [1475]
    return DISTS(params)


def l2_pool(x):
    """L2 pooling of x [N, H, W, C]: sqrt(Hanning-weighted 3x3 mean of x^2 + 1e-12), stride 2,
    zero padding 1 -> [N, ceil(H/2), ceil(W/2), C]."""
    c = x.shape[-1]
    window = jnp.broadcast_to(jnp.asarray(L2_WINDOW, x.dtype)[:, :, None, None], (3, 3, 1, c))  # depthwise HWIO
    y = jax.lax.conv_general_dilated(x * x, window, (2, 2), ((1, 1), (1, 1)), feature_group_count=c,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST)
    return jnp.sqrt(y + 1e-12)


def stages(params, x):
    """The six DISTS stages of x [N, H, W, 3] in [0, 1]: x itself, then relu1_2 ... relu5_3 (NHWC)."""
    feats, h = [x], (x - _MEAN) / _STD
    for op in _VGG:
        if op[0] == "conv":
            h = lpips.conv_relu(params, op, h)
        elif op[0] == "pool":
            h = l2_pool(h)
        else:
            feats.append(h)
    return feats


def dists_distance(params, x, y):
    """DISTS of images x, y [N, H, W, 3] in [0, 1] -> [N] float32; 0 for identical images.

    Channel counts are read from `params`, so narrower VGG-shaped weights (tests) work too.
    """
    n = x.shape[0]
    feats = stages(params, jnp.concatenate([x, y]).astype(jnp.float32))
    alpha, beta = params["alpha"], params["beta"]
    total = jnp.sum(alpha) + jnp.sum(beta)
    similarity, start = jnp.zeros((n,), jnp.float32), 0
    for f in feats:
        c = f.shape[-1]
        fx, fy = f[:n], f[n:]  # [N, h, w, c]
        mx, my = jnp.mean(fx, (1, 2)), jnp.mean(fy, (1, 2))  # [N, c]
        dx, dy = fx - mx[:, None, None], fy - my[:, None, None]
        vx, vy, cov = jnp.mean(dx * dx, (1, 2)), jnp.mean(dy * dy, (1, 2)), jnp.mean(dx * dy, (1, 2))
        texture = (2 * mx * my + _C1) / (mx * mx + my * my + _C1)
        structure = (2 * cov + _C2) / (vx + vy + _C2)
        similarity = similarity + (texture @ alpha[start:start + c] + structure @ beta[start:start + c]) / total
        start += c
    assert start == alpha.shape[0], (start, alpha.shape)
    return 1.0 - similarity

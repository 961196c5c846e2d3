"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features") in JAX.

    d(x, y) = sum_l mean_hw( w_l . (f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)|)^2 )

f_l are the ReLU outputs of five layers of an ImageNet AlexNet or VGG16 (torchvision), the
channel norm is over C (eps 1e-10), w_l >= 0 are the learned 1x1 linear heads of the `lpips`
package (v0.1). Inputs are [0, 1] images; they are mapped to [-1, 1] and through the package's
fixed ScalingLayer before the backbone.

The weights cannot be downloaded from inside this project, and nothing here ever unpickles:
the user makes ONE safetensors file outside this project's runtime (any machine with torch,
safetensors, and the two weight files), keeping torch's layouts and names:

    features.{i}.weight  [O, I, kh, kw]   features.{i}.bias  [O]     (torchvision backbone convs)
    lin{l}.weight        [1, C_l, 1, 1]                               (lpips heads, l = 0..4)
    metadata {"net": "alex"} or {"net": "vgg"}

    # make_lpips_safetensors.py  (run with torch + safetensors installed; not part of this project)
    import sys, torch
    from safetensors.torch import save_file
    net, backbone_pth, lin_pth, out = sys.argv[1:5]
    # backbone_pth: torchvision's alexnet-owt-7be5be79.pth or vgg16-397923af.pth
    # lin_pth: the lpips package's lpips/weights/v0.1/alex.pth or vgg.pth
    tv = torch.load(backbone_pth, map_location="cpu", weights_only=True)
    lin = torch.load(lin_pth, map_location="cpu", weights_only=True)
    tensors = {k: v for k, v in tv.items() if k.startswith("features.")}
    tensors.update({f"lin{l}.weight": lin[f"lin{l}.model.1.weight"] for l in range(5)})
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, out, metadata={"net": net})

    python make_lpips_safetensors.py alex alexnet-owt-7be5be79.pth alex.pth lpips_alex.safetensors

Without a file, training uses the documented substitute `losses.gradient_loss` instead
(`load_lpips(None)` raises `LPIPSUnavailable`; the finetune trainer catches it and says so).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from swiftvr_jax.models.swiftvr import WeightsError

# Backbones as torchvision's `features` Sequential: ("conv", index, c_in, c_out, kernel, stride, pad),
# ("pool", kernel, stride), ("tap",) = this ReLU output is an LPIPS layer. Every conv is followed by a ReLU.
_ALEX = (("conv", 0, 3, 64, 11, 4, 2), ("tap",), ("pool", 3, 2),
         ("conv", 3, 64, 192, 5, 1, 2), ("tap",), ("pool", 3, 2),
         ("conv", 6, 192, 384, 3, 1, 1), ("tap",),
         ("conv", 8, 384, 256, 3, 1, 1), ("tap",),
         ("conv", 10, 256, 256, 3, 1, 1), ("tap",))


def _vgg16():
    plan, idx, c_in = [], 0, 3
    for block, (c_out, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))):
        if block:
            plan.append(("pool", 2, 2))
            idx += 1
        for _ in range(n):
            plan.append(("conv", idx, c_in, c_out, 3, 1, 1))
            idx, c_in = idx + 2, c_out  # conv + ReLU
        plan.append(("tap",))
    return tuple(plan)


NETS = {"alex": _ALEX, "vgg": _vgg16()}
# The lpips package's ScalingLayer: x in [-1, 1] -> (x - shift) / scale.
_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
_SCALE = np.array([0.458, 0.448, 0.450], np.float32)
_EPS = 1e-10


class LPIPSUnavailable(Exception):
    """No LPIPS weights file was configured: use the substitute perceptual term."""


class LPIPSWeightsError(WeightsError):
    """An LPIPS weights file that cannot be used (unreadable, wrong net, missing/unknown/mis-shaped)."""


def expected_shapes(net: str) -> dict[str, tuple[int, ...]]:
    """{key: torch-layout shape} a weights file for `net` ('alex' | 'vgg') must hold exactly."""
    shapes, taps_c, c = {}, [], 0
    for op in NETS[net]:
        if op[0] == "conv":
            _, i, c_in, c, k, _, _ = op
            shapes[f"features.{i}.weight"] = (c, c_in, k, k)
            shapes[f"features.{i}.bias"] = (c,)
        elif op[0] == "tap":
            taps_c.append(c)
    for layer, c in enumerate(taps_c):
        shapes[f"lin{layer}.weight"] = (1, c, 1, 1)
    return shapes


@dataclass(frozen=True)
class LPIPS:
    """A loaded LPIPS network: `net` name and `params` {key: float32 array, JAX layouts}
    (conv kernels HWIO, heads [C]). Pass `params` through jit as an argument, not a constant."""
    net: str
    params: dict[str, Any]

    def __call__(self, x, y):
        """LPIPS distance of images [N, H, W, 3] in [0, 1] -> [N]."""
        return lpips_distance(self.net, self.params, x, y)


def read_torch_tensors(f, path: str, want: dict[str, tuple[int, ...]], what: str, error: type[Exception],
                       vector: Callable[[str], bool]) -> dict[str, np.ndarray]:
    """Exactly the tensors `want` {key: torch shape} of an open SafetensorsFile as float32 in JAX
    layouts: conv kernels OIHW -> HWIO, `vector(key)` tensors flattened. Raises `error`, one line."""
    from swiftvr_jax.convert import ConvertError

    missing, unknown = sorted(set(want) - set(f)), sorted(set(f) - set(want))
    if missing or unknown:
        raise error(f"{path}: does not hold the {what} tensors: {len(missing)} missing "
                    f"(e.g. {missing[:3]}) and {len(unknown)} unknown (e.g. {unknown[:3]})")
    for k, shape in want.items():
        if f.shape(k) != shape:
            raise error(f"{path}: tensor {k} has shape {f.shape(k)}, {what} needs {shape}")
    params = {}
    for k in want:
        try:
            a = np.asarray(f[k], np.float32)
        except ConvertError as e:
            raise error(f"{e} (write the file in float32)") from None
        if vector(k):
            params[k] = a.reshape(-1)
        elif a.ndim == 4:
            params[k] = np.ascontiguousarray(a.transpose(2, 3, 1, 0))  # OIHW -> HWIO
        else:
            params[k] = a
    return params


def load_lpips(path: str | None, net: str | None = None) -> LPIPS:
    """Read an LPIPS safetensors file (format in the module docstring), strictly.

    Raises `LPIPSUnavailable` when `path` is None or empty, `LPIPSWeightsError` for a bad file.
    `net` defaults to the file's metadata `net`.
    """
    if not path:
        raise LPIPSUnavailable("no LPIPS weights file given")
    from swiftvr_jax.convert import ConvertError, SafetensorsFile

    if not os.path.isfile(path):
        raise LPIPSWeightsError(f"{path}: no such LPIPS weights file (see swiftvr_jax/lpips.py for how to make one)")
    try:
        f = SafetensorsFile(path)
    except ConvertError as e:
        raise LPIPSWeightsError(str(e)) from None
    net = net or f.metadata.get("net")
    if net not in NETS:
        raise LPIPSWeightsError(f"{path}: LPIPS net {net!r} unknown; set metadata net=alex|vgg when writing the file")
    params = read_torch_tensors(f, path, expected_shapes(net), f"LPIPS-{net}", LPIPSWeightsError,
                                vector=lambda k: k.startswith("lin"))
    return LPIPS(net, params)


def conv_relu(params, op, x):
    """One torchvision backbone conv + ReLU, op = ("conv", index, c_in, c_out, kernel, stride, pad); NHWC."""
    _, i, _, _, _, stride, pad = op
    x = jax.lax.conv_general_dilated(x, params[f"features.{i}.weight"], (stride, stride), ((pad, pad), (pad, pad)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST)
    return jax.nn.relu(x + params[f"features.{i}.bias"])


def _features(net: str, params, x):
    """The five tapped ReLU outputs of the backbone for x [N, H, W, 3] (already scaled)."""
    feats = []
    for op in NETS[net]:
        if op[0] == "conv":
            x = conv_relu(params, op, x)
        elif op[0] == "pool":
            _, k, s = op
            x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, s, s, 1), "VALID")
        else:
            feats.append(x)
    return feats


def min_size(net: str) -> int:
    """Smallest image side the backbone accepts (every tapped map at least 1x1)."""
    return {"alex": 31, "vgg": 16}[net]


def lpips_distance(net: str, params, x, y):
    """LPIPS distance of images x, y [N, H, W, 3] in [0, 1] -> [N] (float32)."""
    if min(x.shape[1:3]) < min_size(net):
        raise ValueError(f"LPIPS-{net}: images of {x.shape[1:3]} px are too small; need at least {min_size(net)}")
    n = x.shape[0]
    both = jnp.concatenate([x, y]).astype(jnp.float32) * 2.0 - 1.0
    both = (both - _SHIFT) / _SCALE
    total = jnp.zeros((n,), jnp.float32)
    for layer, f in enumerate(_features(net, params, both)):
        f = f / (jnp.sqrt(jnp.sum(jnp.square(f), -1, keepdims=True)) + _EPS)
        d = jnp.square(f[:n] - f[n:]) @ params[f"lin{layer}.weight"]  # 1x1 head: [N, h, w]
        total = total + jnp.mean(d, (1, 2))
    return total


def lpips_video_loss(net: str, params, pred, target):
    """Mean LPIPS over all frames of videos [B, T, H, W, 3] in [0, 1] -> scalar."""
    hw = pred.shape[2:]
    return jnp.mean(lpips_distance(net, params, pred.reshape(-1, *hw), target.reshape(-1, *hw)))

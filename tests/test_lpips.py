import numpy as np
import pytest
from safetensors.numpy import save_file

from swiftvr_jax import lpips


def _random_file(tmp_path, net, seed=0, drop=None, reshape=None):
    rng = np.random.default_rng(seed)
    tensors = {}
    for k, shape in lpips.expected_shapes(net).items():
        fan_in = int(np.prod(shape[1:])) if len(shape) == 4 and not k.startswith("lin") else 1
        scale = 1.0 if k.startswith("lin") else np.sqrt(2.0 / fan_in)
        a = (rng.standard_normal(shape) * scale).astype(np.float32)
        tensors[k] = np.abs(a) if k.startswith("lin") else a  # heads are non-negative in LPIPS
    if drop:
        tensors.pop(drop)
    if reshape:
        tensors[reshape] = tensors[reshape][..., :1]
    path = str(tmp_path / f"lpips_{net}.safetensors")
    save_file(tensors, path, metadata={"net": net})
    return path, tensors


# ---- independent numpy reference (torch layouts, NCHW) ------------------------------------

def _conv(x, w, b, stride, pad):
    n, c, h, ww = x.shape
    o, _, k, _ = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - k) // stride + 1, (ww + 2 * pad - k) // stride + 1
    cols = np.empty((n, c, k, k, ho, wo), np.float64)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = x[:, :, i: i + stride * ho: stride, j: j + stride * wo: stride]
    return np.einsum("nckluv,ockl->nouv", cols, w.astype(np.float64), optimize=True) + b[None, :, None, None]


def _pool(x, k, s):
    n, c, h, w = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    out = np.full((n, c, ho, wo), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, x[:, :, i: i + s * ho: s, j: j + s * wo: s])
    return out


def _reference(net, t, x, y):
    """LPIPS from the paper's formula, written independently: [N, H, W, 3] in [0, 1] -> [N]."""
    def feats(img):
        h = (img.transpose(0, 3, 1, 2).astype(np.float64) * 2 - 1)
        shift, scale = np.array([-.030, -.088, -.188]), np.array([.458, .448, .450])
        h = (h - shift[None, :, None, None]) / scale[None, :, None, None]
        out = []
        convs = {"alex": [(0, 4, 2), "p3", (3, 1, 2), "p3", (6, 1, 1), (8, 1, 1), (10, 1, 1)],
                 "vgg": [0, 2, "p2", 5, 7, "p2", 10, 12, 14, "p2", 17, 19, 21, "p2", 24, 26, 28]}[net]
        taps = {"alex": {0, 3, 6, 8, 10}, "vgg": {2, 7, 14, 21, 28}}[net]
        for op in convs:
            if isinstance(op, str):
                h = _pool(h, int(op[1]), 2)
                continue
            i, s, p = op if isinstance(op, tuple) else (op, 1, 1)
            h = np.maximum(_conv(h, t[f"features.{i}.weight"], t[f"features.{i}.bias"], s, p), 0)
            if i in taps:
                out.append(h)
        return out

    total = 0
    for layer, (fx, fy) in enumerate(zip(feats(x), feats(y))):
        nx = fx / (np.sqrt((fx ** 2).sum(1, keepdims=True)) + 1e-10)
        ny = fy / (np.sqrt((fy ** 2).sum(1, keepdims=True)) + 1e-10)
        d = ((nx - ny) ** 2 * t[f"lin{layer}.weight"].reshape(1, -1, 1, 1)).sum(1)
        total = total + d.mean((1, 2))
    return total


@pytest.mark.parametrize("net, size", [("alex", 64), ("vgg", 32)])
def test_lpips_matches_numpy_reference(tmp_path, net, size):
    path, tensors = _random_file(tmp_path, net)
    model = lpips.load_lpips(path)
    assert model.net == net
    rng = np.random.default_rng(1)
    x = rng.random((2, size, size, 3), np.float32)
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape).astype(np.float32), 0, 1)
    got = np.asarray(model(x, y))
    want = _reference(net, tensors, x, y)
    np.testing.assert_allclose(got, want, rtol=2e-4)
    assert np.all(got > 0)
    np.testing.assert_allclose(np.asarray(model(x, x)), 0.0, atol=1e-6)


def test_lpips_file_is_checked_strictly(tmp_path):
    with pytest.raises(lpips.LPIPSUnavailable):
        lpips.load_lpips(None)
    with pytest.raises(lpips.LPIPSWeightsError, match="no such"):
        lpips.load_lpips(str(tmp_path / "absent.safetensors"))
    path, _ = _random_file(tmp_path, "alex", drop="lin2.weight")
    with pytest.raises(lpips.LPIPSWeightsError, match="1 missing"):
        lpips.load_lpips(path)
    path, _ = _random_file(tmp_path, "alex", reshape="features.3.weight")
    with pytest.raises(lpips.LPIPSWeightsError, match=r"features\.3\.weight has shape"):
        lpips.load_lpips(path)
    path, _ = _random_file(tmp_path, "alex")
    with pytest.raises(lpips.LPIPSWeightsError, match="does not hold the LPIPS-vgg tensors"):
        lpips.load_lpips(path, net="vgg")
    bad = tmp_path / "junk.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(lpips.LPIPSWeightsError):
        lpips.load_lpips(str(bad))

"""Tests for swiftvr_jax.dists against an independent numpy DISTS written from the paper and DISTS_pytorch."""

import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from swiftvr_jax import dists

# DISTS_pytorch's stages as lists of torchvision vgg16 `features` conv indices; an L2 pool precedes stages 2-5.
STAGES = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
VGG16_WIDTHS = (64, 128, 256, 512, 512)


def _random_weights(widths, seed=0):
    """torch-layout VGG-shaped convs with stage widths `widths`, and positive alpha/beta [1, 3 + sum, 1, 1]."""
    rng = np.random.default_rng(seed)
    tensors, c_in = {}, 3
    for stage, c_out in zip(STAGES, widths):
        for i in stage:
            w = rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2.0 / (9 * c_in))
            tensors[f"features.{i}.weight"] = w.astype(np.float32)
            tensors[f"features.{i}.bias"] = (0.1 * rng.standard_normal(c_out)).astype(np.float32)
            c_in = c_out
    n = 3 + sum(widths)
    tensors["alpha"] = rng.uniform(0.01, 0.2, (1, n, 1, 1)).astype(np.float32)
    tensors["beta"] = rng.uniform(0.01, 0.2, (1, n, 1, 1)).astype(np.float32)
    return tensors


def _jax_params(tensors):
    """The loader's layouts without the loader: HWIO kernels, flat alpha/beta."""
    return {k: v.reshape(-1) if k in ("alpha", "beta") else v.transpose(2, 3, 1, 0) if v.ndim == 4 else v
            for k, v in tensors.items()}


# ---- independent numpy reference (torch layouts, NCHW, float64) ---------------------------

def _conv3x3(x, w, b):
    """Cross-correlation, stride 1, zero padding 1: x [N, C, H, W], w [O, C, 3, 3] -> [N, O, H, W]."""
    h, wd = x.shape[2:]
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.stack([p[:, :, i:i + h, j:j + wd] for i in range(3) for j in range(3)], 2)  # [N, C, 9, H, W]
    return np.einsum("nckhw,ock->nohw", cols, w.reshape(*w.shape[:2], 9), optimize=True) + b[None, :, None, None]


def _l2pool(x):
    """DISTS_pytorch's L2pooling, one output pixel at a time: x [N, C, H, W] -> [N, C, ceil(H/2), ceil(W/2)]."""
    g = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16.0  # hanning(5)[1:-1] = [.5, 1, .5], outer, sum 1
    n, c, h, w = x.shape
    p = np.pad(x.astype(np.float64) ** 2, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.empty((n, c, (h + 1) // 2, (w + 1) // 2))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = (p[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3] * g).sum((2, 3))
    return np.sqrt(out + 1e-12)


def _reference(t, x, y):
    """DISTS of [N, H, W, 3] images in [0, 1] -> [N], in the form of the paper / DISTS_pytorch."""
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])

    def feats(img):
        img = img.transpose(0, 3, 1, 2).astype(np.float64)
        h, out = (img - mean[None, :, None, None]) / std[None, :, None, None], [img]
        for k, stage in enumerate(STAGES):
            if k:
                h = _l2pool(h)
            for i in stage:
                h = np.maximum(_conv3x3(h, t[f"features.{i}.weight"], t[f"features.{i}.bias"]), 0)
            out.append(h)
        return out

    alpha, beta = t["alpha"].reshape(-1).astype(np.float64), t["beta"].reshape(-1).astype(np.float64)
    w_sum, start, d1, d2 = alpha.sum() + beta.sum(), 0, 0.0, 0.0
    for fx, fy in zip(feats(x), feats(y)):
        c = fx.shape[1]
        a, b = alpha[start:start + c] / w_sum, beta[start:start + c] / w_sum
        start += c
        mx, my = fx.mean((2, 3)), fy.mean((2, 3))  # [N, C]
        vx, vy = ((fx - mx[..., None, None]) ** 2).mean((2, 3)), ((fy - my[..., None, None]) ** 2).mean((2, 3))
        cov = (fx * fy).mean((2, 3)) - mx * my
        d1 = d1 + ((2 * mx * my + 1e-6) / (mx ** 2 + my ** 2 + 1e-6) * a).sum(1)
        d2 = d2 + ((2 * cov + 1e-6) / (vx + vy + 1e-6) * b).sum(1)
    assert start == len(alpha)
    return 1 - (d1 + d2)


def _images(size, n=2, seed=1, noise=0.1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], -1) * 0.4 + 0.5  # smooth texture
    x = np.clip(base[None] + 0.05 * rng.standard_normal((n, size, size, 3)), 0, 1).astype(np.float32)
    y = np.clip(0.8 * x + 0.05 + noise * rng.standard_normal(x.shape), 0, 1).astype(np.float32)  # darker, noisy
    return x, y


# ---- tests ---------------------------------------------------------------------------------

def test_l2_pool_matches_direct_convolution():
    x = np.random.default_rng(0).standard_normal((2, 9, 8, 5)).astype(np.float32)  # odd H: ceil(9 / 2) = 5
    got = np.asarray(dists.l2_pool(x))
    assert got.shape == (2, 5, 4, 5)
    want = _l2pool(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(dists.l2_pool(np.full((1, 6, 6, 1), 2.0, np.float32)))[0, 1:, 1:, 0],
                               2.0, rtol=1e-6)  # a constant stays constant away from the zero padding


def test_dists_matches_numpy_reference_on_narrow_vgg():
    tensors = _random_weights((4, 8, 8, 16, 16))
    x, y = _images(64)
    got = np.asarray(dists.dists_distance(_jax_params(tensors), x, y))
    want = _reference(tensors, x, y)
    assert np.all(want > 1e-3)
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)  # measured: < 1e-7
    np.testing.assert_allclose(np.asarray(dists.dists_distance(_jax_params(tensors), x, x)), 0.0, atol=1e-6)
    _, y_more = _images(64, noise=0.3)
    assert np.all(np.asarray(dists.dists_distance(_jax_params(tensors), x, y_more)) > got)


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    tensors = _random_weights(VGG16_WIDTHS)
    path = str(tmp_path_factory.mktemp("dists") / "dists.safetensors")
    save_file(tensors, path)
    return path, tensors


def test_load_dists_vgg16_file_matches_numpy_reference(vgg16_file):
    path, tensors = vgg16_file
    model = dists.load_dists(path)
    assert model.params["alpha"].shape == (1475,) and model.params["features.28.weight"].shape == (3, 3, 512, 512)
    x, y = _images(32)
    np.testing.assert_allclose(np.asarray(model(x, y)), _reference(tensors, x, y), atol=1e-6, rtol=0)


def test_dists_file_is_checked_strictly(vgg16_file, tmp_path):
    with pytest.raises(dists.DISTSWeightsError, match="no such"):
        dists.load_dists(str(tmp_path / "absent.safetensors"))
    _, tensors = vgg16_file
    small = {k: v for k, v in tensors.items() if k in ("features.0.weight", "features.0.bias", "alpha")}
    save_file(small, str(tmp_path / "partial.safetensors"))
    with pytest.raises(dists.DISTSWeightsError, match="25 missing"):  # 12 convs x 2 + beta
        dists.load_dists(str(tmp_path / "partial.safetensors"))
    bad = dict(tensors, beta=tensors["beta"][:, :1000])
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(dists.DISTSWeightsError, match=r"beta has shape \(1, 1000, 1, 1\)"):
        dists.load_dists(str(tmp_path / "bad.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(dists.DISTSWeightsError):
        dists.load_dists(str(tmp_path / "junk.safetensors"))


def _readme_script() -> str:
    """The DISTS-file script of README.md, section Evaluation."""
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    start = readme.index("```python\n# make_dists_safetensors.py") + len("```python\n")
    return readme[start:readme.index("```", start)]


@pytest.mark.parity
def test_readme_recipe_and_torch_dists_agree(tmp_path):
    """The README's script on torch-saved files (as torchvision's and DISTS's), then a torch DISTS."""
    torch = pytest.importorskip("torch", reason="needs torch (the parity extra)", exc_type=ImportError)
    F = torch.nn.functional
    tensors = _random_weights(VGG16_WIDTHS, seed=3)
    vgg = {k: torch.from_numpy(v) for k, v in tensors.items() if k.startswith("features.")}
    vgg["classifier.0.weight"] = torch.zeros(8, 8)  # torchvision's file also holds the classifier
    torch.save(vgg, tmp_path / "vgg16.pth")
    torch.save({k: torch.nn.Parameter(torch.from_numpy(tensors[k])) for k in ("alpha", "beta")}, tmp_path / "w.pt")
    (tmp_path / "make.py").write_text(_readme_script())
    out = tmp_path / "dists.safetensors"
    subprocess.run([sys.executable, str(tmp_path / "make.py"), str(tmp_path / "vgg16.pth"), str(tmp_path / "w.pt"),
                    str(out)], check=True)
    model = dists.load_dists(str(out))

    x, y = _images(32, seed=4)
    g = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16

    def feats(img):
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        h = (img - mean[:, None, None]) / std[:, None, None]
        out = [img]
        for k, stage in enumerate(STAGES):
            if k:
                c = h.shape[1]
                h = torch.sqrt(F.conv2d(h ** 2, g.repeat(c, 1, 1, 1), stride=2, padding=1, groups=c) + 1e-12)
            for i in stage:
                h = F.relu(F.conv2d(h, vgg[f"features.{i}.weight"], vgg[f"features.{i}.bias"], padding=1))
            out.append(h)
        return out

    tx, ty = (torch.from_numpy(a).permute(0, 3, 1, 2) for a in (x, y))
    alpha, beta = (torch.from_numpy(tensors[k]) for k in ("alpha", "beta"))
    w_sum = alpha.sum() + beta.sum()
    alphas, betas = torch.split(alpha / w_sum, [3, *VGG16_WIDTHS], 1), torch.split(beta / w_sum, [3, *VGG16_WIDTHS], 1)
    d = 0
    for fx, fy, a, b in zip(feats(tx), feats(ty), alphas, betas):
        mx, my = fx.mean((2, 3), keepdim=True), fy.mean((2, 3), keepdim=True)
        vx, vy = ((fx - mx) ** 2).mean((2, 3), keepdim=True), ((fy - my) ** 2).mean((2, 3), keepdim=True)
        cov = (fx * fy).mean((2, 3), keepdim=True) - mx * my
        d = d + (a * (2 * mx * my + 1e-6) / (mx ** 2 + my ** 2 + 1e-6)).sum((1, 2, 3))
        d = d + (b * (2 * cov + 1e-6) / (vx + vy + 1e-6)).sum((1, 2, 3))
    np.testing.assert_allclose(np.asarray(model(x, y)), (1 - d).numpy(), atol=1e-5, rtol=0)

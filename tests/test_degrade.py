"""Tests for swiftvr_jax.degrade: kernels, sampler, noise, compression, pipeline contract."""

import io
import json
import math
import dataclasses
import os
import tempfile
import time

import av
import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import stats
from skimage import data

from swiftvr_jax import degrade as D
from swiftvr_jax.config import ConfigError


def _smooth_clip(seed: int, t: int = 4, h: int = 64, w: int = 64) -> np.ndarray:
    """A natural-ish test clip: blurred noise stretched to [0, 1]."""
    x = np.random.default_rng(seed).random((t, h, w, 3), dtype=np.float32)
    x = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in x])
    return (x - x.min()) / (x.max() - x.min())


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def _grid(size):
    ax = np.arange(size) - size // 2
    return np.meshgrid(ax, ax)  # x along columns, y along rows


def _reference_quadratic(size, sx, sy, theta):
    """(u/sx)^2 + (v/sy)^2 with (u, v) the grid rotated by -theta: no matrix inverse involved."""
    xx, yy = _grid(size)
    u = math.cos(theta) * xx + math.sin(theta) * yy
    v = -math.sin(theta) * xx + math.cos(theta) * yy
    return (u / sx) ** 2 + (v / sy) ** 2


# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("kind", D.KERNEL_TYPES)
def test_sampled_kernels_sum_to_one_and_have_sampled_size(kind):
    cfg = D.DegradationConfig(kernel_types=(kind,), kernel_probs=(1.0,))
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = D.sample_blur_params(rng, cfg, 3, cfg.blur_sigma)
        assert p["kernel"] == kind and p["size"] in cfg.kernel_sizes
        for t in range(3):
            k = D.make_kernel(p, t)
            assert k.shape == (p["size"], p["size"])
            assert abs(k.sum() - 1.0) < 1e-9
            assert np.unravel_index(np.argmax(k), k.shape) == (p["size"] // 2,) * 2  # peak at the centre


@pytest.mark.parametrize("make", [
    lambda: D.generalized_gaussian_kernel(21, 2.3, 2.3, 0.0),
    lambda: D.generalized_gaussian_kernel(15, 1.7, 1.7, 0.0, beta=0.6),
    lambda: D.generalized_gaussian_kernel(15, 1.7, 1.7, 0.0, beta=3.5),
    lambda: D.plateau_kernel(13, 1.2, 1.2, 0.0, beta=1.5),
    lambda: D.sinc_kernel(21, math.pi / 4),
])
def test_isotropic_kernels_are_rotation_symmetric(make):
    k = make()
    for other in (k.T, np.rot90(k), np.rot90(k, 2), np.flipud(k), np.fliplr(k)):
        np.testing.assert_allclose(k, other, atol=1e-12)


def test_isotropic_kernels_ignore_theta():
    np.testing.assert_allclose(D.generalized_gaussian_kernel(15, 1.5, 1.5, 0.0),
                               D.generalized_gaussian_kernel(15, 1.5, 1.5, 1.1), atol=1e-12)


@pytest.mark.parametrize("sx,sy,theta", [(2.5, 0.8, 0.0), (2.5, 0.8, 0.6), (0.9, 2.2, -2.0), (2.0, 1.0, math.pi / 2)])
def test_gaussian_kernel_matches_density_and_covariance(sx, sy, theta):
    size = 21
    k = D.generalized_gaussian_kernel(size, sx, sy, theta)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    cov = rot @ np.diag([sx**2, sy**2]) @ rot.T
    xx, yy = _grid(size)
    ref = stats.multivariate_normal(mean=[0, 0], cov=cov).pdf(np.stack([xx, yy], -1))
    np.testing.assert_allclose(k, ref / ref.sum(), atol=1e-10)
    # second moments of the kernel recover the covariance (truncation at >= 4 sigma costs < 1%)
    emp = np.array([[np.sum(k * xx * xx), np.sum(k * xx * yy)], [np.sum(k * xx * yy), np.sum(k * yy * yy)]])
    np.testing.assert_allclose(emp, cov, atol=0.03 * max(sx, sy) ** 2)
    # the long axis points along theta (mod pi)
    evals, evecs = np.linalg.eigh(emp)
    major = evecs[:, np.argmax(evals)] if sx >= sy else evecs[:, np.argmin(evals)]
    angle = math.atan2(major[1], major[0])
    assert abs(math.sin(angle - theta)) < 0.02


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.7])
@pytest.mark.parametrize("theta", [0.3, -1.2, 2.9])
def test_generalized_and_plateau_kernels_follow_formula(beta, theta):
    q = _reference_quadratic(17, 2.1, 0.7, theta)
    g = np.exp(-0.5 * q**beta)
    np.testing.assert_allclose(D.generalized_gaussian_kernel(17, 2.1, 0.7, theta, beta), g / g.sum(), atol=1e-12)
    pl = 1.0 / (1.0 + q ** max(beta, 1.0))
    np.testing.assert_allclose(D.plateau_kernel(17, 2.1, 0.7, theta, max(beta, 1.0)), pl / pl.sum(), atol=1e-12)


def test_anisotropic_kernel_rotates_with_theta():
    k0 = D.generalized_gaussian_kernel(21, 2.5, 0.7, 0.4, beta=1.5)
    k90 = D.generalized_gaussian_kernel(21, 2.5, 0.7, 0.4 + math.pi / 2, beta=1.5)
    # a quarter turn of the kernel image is a quarter turn of theta (y points down the rows)
    np.testing.assert_allclose(np.rot90(k0, -1), k90, atol=1e-12)
    assert np.abs(k0 - k90).max() > 1e-3


@pytest.mark.parametrize("size,omega", [(21, math.pi / 3), (21, math.pi / 2), (13, math.pi / 5), (7, math.pi / 3)])
def test_sinc_kernel_is_lowpass_at_omega(size, omega):
    k = D.sinc_kernel(size, omega)
    assert abs(k.sum() - 1) < 1e-12
    n = 512
    resp = np.abs(np.fft.fftshift(np.fft.fft2(k, (n, n))))
    f = np.fft.fftshift(np.fft.fftfreq(n)) * 2 * np.pi
    r = np.hypot(*np.meshgrid(f, f))  # radial frequency, rad/pixel
    assert resp[r < 0.6 * omega].mean() > 0.8  # pass band
    assert resp[(r > 1.4 * omega) & (r < math.pi)].mean() < 0.05  # stop band
    assert 0.2 < resp[np.abs(r - omega) < 0.05].mean() < 0.65  # the edge sits at omega


# ----------------------------------------------------------------------------- sampler


def test_kernel_type_frequencies_match_probabilities():
    cfg = D.DegradationConfig()
    rng = np.random.default_rng(123)
    draws = 20000
    counts = dict.fromkeys(cfg.kernel_types, 0)
    for _ in range(draws):
        p = D.sample_blur_params(rng, cfg, 1, cfg.blur_sigma)
        counts[p["kernel"]] += 1
        if p["kernel"] == "sinc":
            lo = math.pi / 3 if p["size"] < 13 else math.pi / 5
            assert lo <= p["omega"][0] <= math.pi
        else:
            assert 0.2 <= p["sigma_x"][0] <= 3.0 and 0.2 <= p["sigma_y"][0] <= 3.0
            if "aniso" not in p["kernel"]:
                assert p["sigma_x"] == p["sigma_y"] and p["rotation"] == [0.0]
    expected = np.asarray(cfg.kernel_probs) * draws
    chi2 = float(np.sum((np.array(list(counts.values())) - expected) ** 2 / expected))
    assert chi2 < stats.chi2.ppf(0.999, df=len(expected) - 1), counts


# ----------------------------------------------------------------------------- noise


@pytest.mark.parametrize("gray", [False, True])
def test_gaussian_noise_std_matches_sigma(gray):
    flat = np.full((4, 64, 64, 3), 0.5, np.float32)
    sigmas = [3.0, 10.0, 20.0, 30.0]  # per frame, 0-255 scale
    noise = D.add_gaussian_noise(flat, np.random.default_rng(0), sigmas, gray) - flat
    for t, s in enumerate(sigmas):
        assert abs(noise[t].std() / (s / 255) - 1) < 0.03
        assert abs(noise[t].mean()) < 0.1 * s / 255
    corr = np.corrcoef(noise[..., 0].ravel(), noise[..., 1].ravel())[0, 1]
    assert corr > 0.999 if gray else abs(corr) < 0.05


@pytest.mark.parametrize("gray", [False, True])
def test_poisson_noise_std_matches_scale(gray):
    levels = np.array([32, 128, 128, 200]) / 255.0  # exact 8-bit levels
    scales = [1.0, 0.5, 2.0, 3.0]
    flat = np.broadcast_to(levels[:, None, None, None], (4, 64, 64, 3)).astype(np.float32)
    noise = D.add_poisson_noise(flat, np.random.default_rng(1), scales, gray) - flat
    for t in range(4):
        expected = scales[t] * math.sqrt(levels[t] / 256)  # shot noise of 256 photon levels per unit
        assert abs(noise[t].std() / expected - 1) < 0.04
        assert abs(noise[t].mean()) < 0.1 * expected
    corr = np.corrcoef(noise[..., 0].ravel(), noise[..., 2].ravel())[0, 1]
    assert corr > 0.999 if gray else abs(corr) < 0.05


# ----------------------------------------------------------------------------- compression


def test_jpeg_reduces_psnr_keeps_shape_and_follows_quality():
    x = _smooth_clip(0)
    lo, hi = D.jpeg_compress(x, [30] * 4), D.jpeg_compress(x, [95] * 4)
    assert lo.shape == x.shape and lo.dtype == np.float32
    assert 15 < _psnr(x, lo) < _psnr(x, hi) < 45  # 8-bit rounding alone gives ~59 dB


@pytest.mark.parametrize("codec", D.DegradationConfig().video_codecs)
def test_video_compression_reduces_psnr_keeps_shape(codec):
    x = _smooth_clip(1, t=5, h=30, w=42)
    y = D.video_compress(x, codec, 10_000)
    assert y.shape == x.shape and y.dtype == np.float32
    assert 20 < _psnr(x, y) < 45
    odd = D.video_compress(x[:, :29, :41], codec, 10_000)  # odd sides are padded for yuv420p and cropped back
    assert odd.shape == (5, 29, 41, 3)


@pytest.mark.parametrize("codec", D.DegradationConfig().video_codecs)
def test_video_compression_is_repeatable(codec):
    # noisy content at a low bitrate is where x264's mb-tree varied between runs (about 1 in 10)
    x = np.random.default_rng(8).random((4, 64, 64, 3), dtype=np.float32)
    outs = {D.video_compress(x, codec, 60_000).tobytes() for _ in range(30)}
    assert len(outs) == 1


def test_video_compression_uses_no_temp_files(monkeypatch, tmp_path):
    def forbidden(*args, **kwargs):
        raise AssertionError("tempfile used")

    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile", "SpooledTemporaryFile",
                 "TemporaryDirectory"):
        monkeypatch.setattr(tempfile, name, forbidden)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.chdir(tmp_path)
    targets = []
    real_open = av.open

    def spy(file, *args, **kwargs):
        targets.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", spy)
    for codec in D.DegradationConfig().video_codecs:
        D.video_compress(_smooth_clip(2), codec, 50_000)
    assert len(targets) == 6 and all(isinstance(f, io.BytesIO) for f in targets)
    assert os.listdir(tmpdir) == [] and sorted(os.listdir(tmp_path)) == ["tmp"]


# ----------------------------------------------------------------------------- pipeline


@pytest.mark.parametrize("scale,h,w", [(4, 64, 64), (2, 64, 64), (3, 60, 66)])
def test_degrade_clip_output_contract(scale, h, w):
    hq = _smooth_clip(3, t=6, h=h, w=w)
    for seed in range(4):
        lq, params = D.degrade_clip(hq, np.random.default_rng([seed, 7]), scale=scale)
        assert lq.shape == (6, h // scale, w // scale, 3) and lq.dtype == np.float32
        assert lq.min() >= 0.0 and lq.max() <= 1.0
        np.testing.assert_allclose(lq * 255, np.round(lq * 255), atol=1e-4)  # on 8-bit levels
        json.loads(json.dumps(params))
        assert params["scale"] == scale and set(params) >= {"stage1", "stage2"}


def test_degrade_clip_is_deterministic():
    hq = _smooth_clip(4, t=4)
    a, pa = D.degrade_clip(hq, np.random.default_rng([5, 0]))
    b, pb = D.degrade_clip(hq, np.random.default_rng([5, 0]))
    c, _ = D.degrade_clip(hq, np.random.default_rng([5, 1]))
    assert a.tobytes() == b.tobytes() and pa == pb
    assert a.tobytes() != c.tobytes()
    d, _ = D.degrade_clip(hq, 11)
    e, _ = D.degrade_clip(hq, 11)
    assert d.tobytes() == e.tobytes()


def _per_frame_lists(params, t):
    """Every per-frame parameter list in a params dict, as (path, values)."""
    out = []
    for key, value in params.items():
        if isinstance(value, dict):
            out += [(f"{key}.{k}", v) for k, v in _per_frame_lists(value, t)]
        elif isinstance(value, list) and len(value) == t and key not in ("order", "size", "hq_size"):
            out.append((key, value))
    return out


_ALWAYS = dict(blur2_prob=1.0, final_sinc_prob=1.0, kernel_types=("generalized_aniso",), kernel_probs=(1.0,))


def test_constant_mode_repeats_params_per_frame():
    cfg = D.DegradationConfig(mode="constant", **_ALWAYS)
    _, params = D.degrade_clip(_smooth_clip(5, t=8), 3, cfg)
    lists = _per_frame_lists(params, 8)
    assert len(lists) >= 10  # sigma_x/y, rotation, beta (x2), noise, jpeg (x2), omega
    for path, values in lists:
        assert len(set(values)) == 1, path


def test_drift_mode_walks_within_ranges():
    cfg = D.DegradationConfig(mode="drift", **_ALWAYS)
    _, params = D.degrade_clip(_smooth_clip(5, t=8), 3, cfg)
    s1, s2 = params["stage1"], params["stage2"]
    for blur, (lo, hi) in ((s1["blur"], cfg.blur_sigma), (s2["blur"], cfg.blur2_sigma)):
        for key in ("sigma_x", "sigma_y"):
            assert len(set(blur[key])) > 1 and all(lo <= v <= hi for v in blur[key])
            assert max(abs(np.diff(blur[key]))) <= cfg.sigma_step
        assert all(cfg.rotation[0] <= v <= cfg.rotation[1] for v in blur["rotation"])
        assert all(cfg.beta_gaussian[0] <= v <= cfg.beta_gaussian[1] for v in blur["beta"])
    for noise, gauss, pois in ((s1["noise"], cfg.noise_sigma, cfg.poisson_scale),
                               (s2["noise"], cfg.noise2_sigma, cfg.poisson2_scale)):
        lo, hi = gauss if noise["type"] == "gaussian" else pois
        assert len(set(noise["level"])) > 1 and all(lo <= v <= hi for v in noise["level"])
    for jpeg, (lo, hi) in ((s1["jpeg"], cfg.jpeg_quality), (s2["jpeg"], cfg.jpeg2_quality)):
        assert all(lo <= q <= hi for q in jpeg["quality"])
    omega = s2["final_sinc"]["omega"]
    assert len(set(omega)) > 1 and all(cfg.final_sinc_omega[0] <= v <= cfg.final_sinc_omega[1] for v in omega)


# Every stage applied (resize never "keep"), so switching one off is visible.
_ALL_ON = D.DegradationConfig(mode="constant", blur_prob=1.0, blur2_prob=1.0, resize_probs=(0.5, 0.5, 0.0),
                              resize2_probs=(0.5, 0.5, 0.0), noise_prob=1.0, jpeg_prob=1.0, video_prob=1.0,
                              final_sinc_prob=1.0)
# stage -> (the config knobs that switch it off, the steps it leaves unchanged)
_OFF = {
    "blur": (dict(blur_prob=0.0, blur2_prob=0.0), ("stage1.blur", "stage2.blur")),
    "resize": (dict(resize_probs=(0.0, 0.0, 1.0), resize2_probs=(0.0, 0.0, 1.0)), ("stage1.resize", "stage2.resize")),
    "noise": (dict(noise_prob=0.0), ("stage1.noise", "stage2.noise")),
    "jpeg": (dict(jpeg_prob=0.0), ("stage1.jpeg", "stage2.jpeg")),
    "video": (dict(video_prob=0.0), ("stage1.video", "stage2.video")),
    "final_sinc": (dict(final_sinc_prob=0.0), ("stage2.final_sinc",)),
}


def _steps(hq, seed, cfg):
    """(lq, params, [(step name, copy of the clip after it)]) of one degrade_clip call."""
    seen = []
    lq, params = D.degrade_clip(hq, seed, cfg, on_stage=lambda name, clip: seen.append((name, clip.copy())))
    return lq, params, seen


def _unchanged(seen, hq):
    """Names of the steps whose output equals their input."""
    before = [hq] + [c for _, c in seen[:-1]]
    return {name: b.shape == c.shape and np.array_equal(b, c) for (name, c), b in zip(seen, before)}


def test_every_stage_changes_the_clip_when_on():
    hq = _smooth_clip(9, t=3, h=48, w=48)
    for seed in range(3):
        _, params, seen = _steps(hq, seed, _ALL_ON)
        same = _unchanged(seen, hq)
        assert not any(v for k, v in same.items() if k != "final"), same  # "final" only rounds: may be a no-op
        assert all(params[s][k] is not None for s in ("stage1", "stage2") for k in ("blur", "noise", "jpeg", "video"))


@pytest.mark.parametrize("stage", list(_OFF))
def test_each_stage_can_be_turned_off(stage):
    knobs, steps = _OFF[stage]
    cfg = dataclasses.replace(_ALL_ON, **knobs)
    hq = _smooth_clip(9, t=3, h=48, w=48)
    for seed in range(3):
        lq, params, seen = _steps(hq, seed, cfg)
        assert lq.shape == (3, 12, 12, 3)
        same = _unchanged(seen, hq)
        assert [k for k, v in same.items() if v and k != "final"] == list(steps)  # only the switched-off steps
        for step in steps:
            group, key = step.split(".")
            value = params[group][key]
            assert value is None or (key == "resize" and value["updown"] == "keep"), (step, value)


def test_second_order_can_be_turned_off():
    hq = _smooth_clip(9, t=3, h=48, w=48)
    lq, params, seen = _steps(hq, 4, dataclasses.replace(_ALL_ON, second_order=False))
    assert "stage2" not in params and [n for n, _ in seen] == [s for s in D.STEPS if not s.startswith("stage2.")]
    assert params["final_resize_mode"] in _ALL_ON.resize_modes and lq.shape == (3, 12, 12, 3)


@pytest.mark.parametrize("second_order", [False, True])
def test_all_stages_off_is_a_plain_resize(second_order):
    knobs = {k: v for ks, _ in _OFF.values() for k, v in ks.items()}
    cfg = dataclasses.replace(_ALL_ON, second_order=second_order, **knobs)
    hq = _smooth_clip(10, t=3, h=48, w=64)
    for seed in range(4):
        lq, params = D.degrade_clip(hq, seed, cfg, scale=4)
        mode = params["stage2"]["final_resize_mode"] if second_order else params["final_resize_mode"]
        ref = D.resize_clip(hq, (12, 16), mode)
        assert lq.tobytes() == (np.round(np.clip(ref, 0, 1) * 255) / 255).astype(np.float32).tobytes(), mode


def test_timings_and_on_stage_do_not_change_results():
    hq = _smooth_clip(11, t=4)
    for seed in range(6):
        a, pa = D.degrade_clip(hq, np.random.default_rng([seed, 2]))
        timings, seen = {}, []
        t0 = time.perf_counter()
        b, pb = D.degrade_clip(hq, np.random.default_rng([seed, 2]), timings=timings,
                               on_stage=lambda name, clip: seen.append((name, clip.copy())))
        total = time.perf_counter() - t0
        assert a.tobytes() == b.tobytes() and pa == pb
        assert set(timings) == set(D.STEPS) and all(v >= 0 for v in timings.values())
        assert sum(timings.values()) <= total
        order = pb["stage2"]["order"]  # the video step and the final resize + sinc run in a random order
        tail = ["stage2.video"] if order[0] == "video" else []
        tail += ["stage2.final_resize", "stage2.final_sinc"] + (["stage2.video"] if order[0] != "video" else [])
        assert [n for n, _ in seen] == list(D.STEPS[:9]) + tail + ["final"]
        assert seen[-1][1].tobytes() == b.tobytes()
    acc = {}  # a dict passed again accumulates
    D.degrade_clip(hq, 0, timings=acc)
    first = dict(acc)
    D.degrade_clip(hq, 0, timings=acc)
    assert all(acc[k] >= first[k] for k in first)


def test_full_degradation_is_well_below_a_clean_resize():
    # a natural image panned 2 px/frame down and 1 px/frame right; 96 px so x4 leaves 24 px of detail
    img = data.astronaut().astype(np.float32) / 255.0
    hq = np.stack([img[40 + 2 * t:136 + 2 * t, 120 + t:216 + t] for t in range(4)])
    up = lambda lq: np.clip(D.resize_clip(lq, hq.shape[1:3], "bicubic"), 0, 1)  # noqa: E731
    clean = _psnr(up(D.degrade_named(hq, "bicubic4")[0]), hq)
    degraded = [_psnr(up(D.degrade_clip(hq, seed, scale=4)[0]), hq) for seed in range(8)]
    # measured: clean 27.3 dB, degraded 19.9-24.9 dB (mean 23.2)
    assert 26.0 < clean < 29.0
    assert clean - np.mean(degraded) > 3.0, (clean, degraded)
    assert max(degraded) < clean - 1.0 and min(degraded) > 15.0  # every seed worse, none destroyed


def test_degrade_clip_rejects_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        D.degrade_clip(np.zeros((2, 30, 32, 3), np.float32), 0)
    with pytest.raises(ValueError, match="float"):
        D.degrade_clip(np.zeros((2, 32, 32, 3), np.uint8), 0)
    with pytest.raises(ValueError, match="T, H, W, 3"):
        D.degrade_clip(np.zeros((32, 32, 3), np.float32), 0)


def test_config_validation_and_presets():
    with pytest.raises(ConfigError, match="mode"):
        D.DegradationConfig(mode="wobble")
    with pytest.raises(ConfigError, match="sum to 1"):
        D.DegradationConfig(resize_probs=(0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match="odd"):
        D.DegradationConfig(kernel_sizes=(8,))
    with pytest.raises(ConfigError, match="codec"):
        D.DegradationConfig(video_codecs=("no-such-codec",))
    with pytest.raises(ConfigError, match="unknown degradation preset"):
        D.degradation_preset("heavy")
    hq = _smooth_clip(6, t=4)
    light, params = D.degrade_clip(hq, 0, D.degradation_preset("light"))
    assert light.shape == (4, 16, 16, 3) and "stage2" not in params and params["stage1"]["video"] is None


# ----------------------------------------------------------------------------- resize and named degradations


@pytest.mark.parametrize("h,w,oh,ow", [(64, 48, 16, 12), (64, 48, 32, 24), (63, 48, 21, 16), (16, 12, 40, 30)])
def test_bicubic_aa_matches_pil_inside(h, w, oh, ow):
    img = np.random.default_rng(0).random((h, w), dtype=np.float32)
    ref = np.asarray(Image.fromarray(img, mode="F").resize((ow, oh), Image.BICUBIC))  # a=-0.5, antialiased
    out = D.resize_clip(np.repeat(img[None, ..., None], 3, -1), (oh, ow), "bicubic_aa")
    assert out.shape == (1, oh, ow, 3) and out.dtype == np.float32
    b = math.ceil(3 * max(1.0, oh / h))  # borders differ: MATLAB pads symmetrically, PIL renormalises
    np.testing.assert_allclose(out[0, b:-b, b:-b, 1], ref[b:-b, b:-b], atol=1e-5)


def test_degrade_named():
    hq = _smooth_clip(7, t=4)
    with pytest.raises(ValueError, match="bicubic4.*realbasicvsr"):
        D.degrade_named(hq, "bicubic5")
    for scale in (2, 4):
        lq, _ = D.degrade_named(hq, f"bicubic{scale}")
        ref = D.resize_clip(hq, (64 // scale, 64 // scale), "bicubic_aa")
        np.testing.assert_allclose(lq, ref, atol=0.5 / 255 + 1e-6)  # only 8-bit rounding
        np.testing.assert_allclose(lq * 255, np.round(lq * 255), atol=1e-4)
    none, _ = D.degrade_clip(hq, 0, D.degradation_preset("none"))
    assert none.tobytes() == D.degrade_named(hq, "bicubic4")[0].tobytes()
    a, _ = D.degrade_named(hq, "realbasicvsr", seed=3)
    b, _ = D.degrade_clip(hq, np.random.default_rng(3))
    assert a.tobytes() == b.tobytes()
    a, _ = D.degrade_named(hq, "light", seed=3)
    b, _ = D.degrade_clip(hq, np.random.default_rng(3), D.degradation_preset("light"))
    assert a.tobytes() == b.tobytes()
    c, params = D.degrade_named(hq, "blur-noise-jpeg", seed=1)
    assert c.shape == (4, 16, 16, 3) and c.tobytes() == D.degrade_named(hq, "blur-noise-jpeg", seed=1)[0].tobytes()
    assert c.tobytes() != D.degrade_named(hq, "blur-noise-jpeg", seed=2)[0].tobytes()
    json.dumps(params)

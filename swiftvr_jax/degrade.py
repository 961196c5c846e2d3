"""RealBasicVSR second-order degradation: HQ clip -> LQ clip, on the host in numpy/OpenCV.

Runs in data-loader workers, never inside JAX. A clip is float32 [T, H, W, 3] RGB in [0, 1].
`degrade_clip` samples every parameter from an explicit `np.random.Generator`, so the same
seed gives byte-identical LQ clips. Parameters are either constant over the clip or random
walks with small per-frame steps (`mode="drift"`, the RealBasicVSR default). Kernel formulas
follow Real-ESRGAN / BasicSR; ranges and drift steps follow the published RealBasicVSR config.
`degrade_named` gives fixed evaluation degradations ("bicubic4", "realbasicvsr", ...).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import cv2
import numpy as np
from scipy import special

from swiftvr_jax.config import ConfigError

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc")
RESIZE_MODES = ("bilinear", "area", "bicubic", "bicubic_aa")  # bicubic_aa: MATLAB imresize (antialiased)
MODES = ("constant", "drift")
# Step names `degrade_clip` reports to `timings` / `on_stage`, in pipeline order ("stage2.video"
# runs before or after the final resize + sinc, at random); "final": resize to the LQ size if
# stage 2 did not, and 8-bit rounding.
STEPS = ("stage1.blur", "stage1.resize", "stage1.noise", "stage1.jpeg", "stage1.video",
         "stage2.blur", "stage2.resize", "stage2.noise", "stage2.jpeg", "stage2.video",
         "stage2.final_resize", "stage2.final_sinc", "final")
_CV2_INTERP = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "bicubic": cv2.INTER_CUBIC}
_POISSON_LEVELS = 256  # photon levels per unit intensity; what BasicSR's unique-value count gives for 8-bit content


@dataclass(frozen=True)
class DegradationConfig:
    """Ranges (lo, hi), probabilities and drift steps of the second-order pipeline.

    Fields without a number are stage 1; `*2*` fields are stage 2. Noise sigma is on the
    0-255 scale, rotation in radians, omega (sinc cutoff) in radians per pixel.
    """

    mode: str = "drift"  # "constant": one value per clip; "drift": per-frame random walk
    second_order: bool = True
    # blur (both stages share the kernel family)
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    kernel_types: tuple[str, ...] = KERNEL_TYPES
    kernel_probs: tuple[float, ...] = (0.405, 0.225, 0.108, 0.027, 0.108, 0.027, 0.1)
    blur_prob: float = 1.0
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    blur2_prob: float = 0.8
    blur2_sigma: tuple[float, float] = (0.2, 1.5)
    rotation: tuple[float, float] = (-math.pi, math.pi)
    beta_gaussian: tuple[float, float] = (0.5, 4.0)
    beta_plateau: tuple[float, float] = (1.0, 2.0)
    sinc_omega_small: tuple[float, float] = (math.pi / 3, math.pi)  # kernel size < 13
    sinc_omega_large: tuple[float, float] = (math.pi / 5, math.pi)  # kernel size >= 13
    # resize: probabilities of (up, down, keep)
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_scale: tuple[float, float] = (0.15, 1.5)
    resize2_probs: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize2_scale: tuple[float, float] = (0.3, 1.2)
    resize_modes: tuple[str, ...] = ("bilinear", "area", "bicubic")
    # noise
    noise_prob: float = 1.0
    gaussian_noise_prob: float = 0.5  # else Poisson
    gray_noise_prob: float = 0.4
    noise_sigma: tuple[float, float] = (1.0, 30.0)
    noise2_sigma: tuple[float, float] = (1.0, 25.0)
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    poisson2_scale: tuple[float, float] = (0.05, 2.5)
    # compression
    jpeg_prob: float = 1.0
    jpeg_quality: tuple[int, int] = (30, 95)
    jpeg2_quality: tuple[int, int] = (30, 95)
    video_prob: float = 1.0
    video_codecs: tuple[str, ...] = ("libx264", "h264", "mpeg4")
    video_bitrate: tuple[int, int] = (10_000, 100_000)  # bits per second at 1 frame per second
    # final sinc, applied with the resize to the LQ size in stage 2
    final_sinc_prob: float = 0.8
    final_sinc_omega: tuple[float, float] = (math.pi / 3, math.pi)
    # per-frame random-walk steps (mode="drift"), from the RealBasicVSR config
    sigma_step: float = 0.02
    rotation_step: float = math.pi / 10
    beta_gaussian_step: float = 0.05
    beta_plateau_step: float = 0.1
    omega_step: float = 0.0628
    noise_sigma_step: float = 0.1
    poisson_scale_step: float = 0.005
    jpeg_quality_step: float = 3.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"degradation mode={self.mode!r} is not valid; choose one of {', '.join(MODES)}")
        if len(self.kernel_types) != len(self.kernel_probs) or not set(self.kernel_types) <= set(KERNEL_TYPES):
            raise ConfigError(f"kernel_types must be a subset of {KERNEL_TYPES} with one probability each")
        if any(k < 3 or k % 2 == 0 for k in self.kernel_sizes):
            raise ConfigError(f"kernel_sizes={self.kernel_sizes} must be odd and >= 3")
        if not set(self.resize_modes) <= set(RESIZE_MODES) or not self.resize_modes:
            raise ConfigError(f"resize_modes={self.resize_modes} must be a non-empty subset of {RESIZE_MODES}")
        for name in ("kernel_probs", "resize_probs", "resize2_probs"):
            if abs(sum(getattr(self, name)) - 1.0) > 1e-6:
                raise ConfigError(f"{name}={getattr(self, name)} must sum to 1")
        for name in ("blur_sigma", "blur2_sigma", "rotation", "beta_gaussian", "beta_plateau", "sinc_omega_small",
                     "sinc_omega_large", "resize_scale", "resize2_scale", "noise_sigma", "noise2_sigma",
                     "poisson_scale", "poisson2_scale", "jpeg_quality", "jpeg2_quality", "video_bitrate",
                     "final_sinc_omega"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ConfigError(f"{name}={getattr(self, name)} must be (low, high) with low <= high")
        for codec in self.video_codecs:
            try:
                av.codec.Codec(codec, "w")
            except av.codec.codec.UnknownCodecError:
                raise ConfigError(f"video codec {codec!r} has no encoder in this PyAV build") from None


DEGRADATION_PRESETS = ("realbasicvsr", "light", "none")


def degradation_preset(name: str) -> DegradationConfig:
    """The named preset: "realbasicvsr" (published ranges), "light" (first order, milder), "none"."""
    if name == "realbasicvsr":
        return DegradationConfig()
    if name == "light":  # project choice: one mild stage, no codec
        return DegradationConfig(second_order=False, blur_sigma=(0.2, 1.5), noise_sigma=(1.0, 10.0),
                                 poisson_scale=(0.05, 1.0), jpeg_quality=(60, 95), video_prob=0.0)
    if name == "none":  # plain antialiased bicubic down-sampling, as "bicubic4"
        return DegradationConfig(second_order=False, blur_prob=0.0, resize_probs=(0.0, 0.0, 1.0),
                                 resize_modes=("bicubic_aa",), noise_prob=0.0, jpeg_prob=0.0, video_prob=0.0)
    raise ConfigError(f"unknown degradation preset {name!r}; choose one of {', '.join(DEGRADATION_PRESETS)}")


# ----------------------------------------------------------------------------- kernels


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    return np.meshgrid(ax, ax)  # xx varies along columns (x), yy along rows (y)


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """x^T S^-1 x on the grid, S = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T."""
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T
    inv = np.linalg.inv(cov)
    xx, yy = _grid(size)
    return inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy


def generalized_gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float,
                                beta: float = 1.0) -> np.ndarray:
    """[size, size] kernel exp(-0.5 (x^T S^-1 x)^beta), summing to 1 (beta=1: Gaussian)."""
    k = np.exp(-0.5 * np.power(_quadratic_form(size, sigma_x, sigma_y, theta), beta))
    return k / k.sum()


def plateau_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """[size, size] plateau kernel 1 / (1 + (x^T S^-1 x)^beta), summing to 1."""
    k = 1.0 / (np.power(_quadratic_form(size, sigma_x, sigma_y, theta), beta) + 1.0)
    return k / k.sum()


def sinc_kernel(size: int, omega: float) -> np.ndarray:
    """[size, size] circular low-pass (jinc) kernel with cutoff omega in rad/pixel, summing to 1."""
    xx, yy = _grid(size)
    r = np.hypot(xx, yy)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = omega * special.j1(omega * r) / (2 * np.pi * r)
    k[size // 2, size // 2] = omega**2 / (4 * np.pi)  # the r -> 0 limit
    return k / k.sum()


def _walk(rng: np.random.Generator, start: float, lo: float, hi: float, step: float, n: int,
          drift: bool) -> list[float]:
    """n per-frame values: constant, or a random walk of uniform(-step, step) steps clipped to [lo, hi]."""
    if not drift or n == 1:
        return [float(start)] * n
    steps = rng.uniform(-step, step, size=n - 1)
    vals = [float(start)]
    for d in steps:  # clip at every step, as RealBasicVSR does
        vals.append(float(np.clip(vals[-1] + d, lo, hi)))
    return vals


def _sample_beta(rng: np.random.Generator, lo: float, hi: float) -> float:
    # BasicSR: half the draws below 1 (sharper than Gaussian), half above
    return float(rng.uniform(lo, 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, hi))


def sample_blur_params(rng: np.random.Generator, cfg: DegradationConfig, num_frames: int,
                       sigma_range: tuple[float, float]) -> dict[str, Any]:
    """Sample one blur step: kernel type and size for the clip, per-frame shape parameters."""
    drift = cfg.mode == "drift"
    kind = str(cfg.kernel_types[rng.choice(len(cfg.kernel_types), p=np.asarray(cfg.kernel_probs))])
    size = int(rng.choice(cfg.kernel_sizes))
    if kind == "sinc":
        lo, hi = cfg.sinc_omega_small if size < 13 else cfg.sinc_omega_large
        omega = _walk(rng, rng.uniform(lo, hi), lo, hi, cfg.omega_step, num_frames, drift)
        return {"kernel": kind, "size": size, "omega": omega}
    lo, hi = sigma_range
    sigma_x = _walk(rng, rng.uniform(lo, hi), lo, hi, cfg.sigma_step, num_frames, drift)
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sigma_y, theta = list(sigma_x), [0.0] * num_frames
    else:
        sigma_y = _walk(rng, rng.uniform(lo, hi), lo, hi, cfg.sigma_step, num_frames, drift)
        rlo, rhi = cfg.rotation
        theta = _walk(rng, rng.uniform(rlo, rhi), rlo, rhi, cfg.rotation_step, num_frames, drift)
    if kind.startswith("generalized"):
        blo, bhi = cfg.beta_gaussian
        beta = _walk(rng, _sample_beta(rng, blo, bhi), blo, bhi, cfg.beta_gaussian_step, num_frames, drift)
    elif kind.startswith("plateau"):
        blo, bhi = cfg.beta_plateau
        beta = _walk(rng, _sample_beta(rng, blo, bhi), blo, bhi, cfg.beta_plateau_step, num_frames, drift)
    else:
        beta = [1.0] * num_frames
    return {"kernel": kind, "size": size, "sigma_x": sigma_x, "sigma_y": sigma_y, "rotation": theta, "beta": beta}


def make_kernel(params: dict[str, Any], frame: int) -> np.ndarray:
    """The [size, size] kernel of `frame` from a `sample_blur_params` dict."""
    size, kind = params["size"], params["kernel"]
    if kind == "sinc":
        return sinc_kernel(size, params["omega"][frame])
    args = (size, params["sigma_x"][frame], params["sigma_y"][frame], params["rotation"][frame], params["beta"][frame])
    return plateau_kernel(*args) if kind.startswith("plateau") else generalized_gaussian_kernel(*args)


def blur_clip(clip: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Filter each frame of [T, H, W, 3] with its kernel (reflect borders)."""
    out = np.empty_like(clip)
    for t in range(clip.shape[0]):
        # kernels are point-symmetric, so filter2D's correlation equals convolution
        out[t] = cv2.filter2D(clip[t], -1, make_kernel(params, t).astype(np.float32),
                              borderType=cv2.BORDER_REFLECT_101)
    return out


# ----------------------------------------------------------------------------- resize


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return ((1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1)
            + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _bicubic_aa_matrix(in_len: int, out_len: int) -> np.ndarray:
    """[out_len, in_len] MATLAB imresize bicubic weights (antialiased when shrinking, symmetric borders)."""
    scale = out_len / in_len
    width = 4.0 / scale if scale < 1 else 4.0
    u = (np.arange(out_len) + 0.5) / scale - 0.5  # output centres in input pixel coordinates
    left = np.floor(u - width / 2)
    idx = left[:, None] + np.arange(int(math.ceil(width)) + 2)[None]
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if scale < 1 else _cubic(dist)
    w /= w.sum(1, keepdims=True)
    idx = idx.astype(np.int64)
    idx = np.where(idx < 0, -idx - 1, idx)  # symmetric padding, edge pixel repeated
    idx = np.clip(np.where(idx >= in_len, 2 * in_len - 1 - idx, idx), 0, in_len - 1)
    m = np.zeros((out_len, in_len))
    np.add.at(m, (np.repeat(np.arange(out_len), idx.shape[1]), idx.ravel()), w.ravel())
    return m


def resize_clip(clip: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Resize [T, H, W, 3] to [T, h, w, 3]; `size` is (h, w), `mode` one of RESIZE_MODES."""
    h, w = size
    if clip.shape[1:3] == (h, w):
        return clip
    if mode == "bicubic_aa":
        mh, mw = _bicubic_aa_matrix(clip.shape[1], h), _bicubic_aa_matrix(clip.shape[2], w)
        return np.ascontiguousarray(np.einsum("oh,thwc,pw->topc", mh, clip, mw, optimize=True), np.float32)
    return np.stack([cv2.resize(f, (w, h), interpolation=_CV2_INTERP[mode]) for f in clip])


# ----------------------------------------------------------------------------- noise


def add_gaussian_noise(clip: np.ndarray, rng: np.random.Generator, sigma: list[float], gray: bool) -> np.ndarray:
    """Add N(0, (sigma_t/255)^2) noise to frame t of [T, H, W, 3]; gray: one noise for all channels."""
    t, h, w, _ = clip.shape
    noise = rng.standard_normal((t, h, w, 1 if gray else 3), dtype=np.float32)
    return clip + noise * (np.asarray(sigma, np.float32)[:, None, None, None] / 255.0)


def add_poisson_noise(clip: np.ndarray, rng: np.random.Generator, scale: list[float], gray: bool) -> np.ndarray:
    """Add Poisson (shot) noise, std scale_t * sqrt(I / 256), to [T, H, W, 3]; gray: computed on luma."""
    src = clip
    if gray:
        src = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in np.clip(clip, 0, 1)])[..., None]
    levels = np.round(np.clip(src, 0, 1) * 255.0) / 255.0
    noise = rng.poisson(levels * _POISSON_LEVELS) / _POISSON_LEVELS - levels
    return clip + (noise * np.asarray(scale)[:, None, None, None]).astype(np.float32)


# ----------------------------------------------------------------------------- compression


def _to_uint8(clip: np.ndarray) -> np.ndarray:
    return np.round(np.clip(clip, 0.0, 1.0) * 255.0).astype(np.uint8)


def jpeg_compress(clip: np.ndarray, quality: list[int]) -> np.ndarray:
    """JPEG-encode and decode frame t of [T, H, W, 3] at `quality[t]` (OpenCV, in memory)."""
    out = []
    for frame, q in zip(_to_uint8(clip), quality):
        ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(q)])  # cv2 wants BGR
        assert ok, "cv2.imencode failed"
        out.append(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return np.stack(out).astype(np.float32) / 255.0


def video_compress(clip: np.ndarray, codec: str, bitrate: int) -> np.ndarray:
    """Encode [T, H, W, 3] as one yuv420p mp4 stream (PyAV, in a BytesIO buffer) and decode it back."""
    t, h, w, _ = clip.shape
    frames = _to_uint8(clip)
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # yuv420p needs even sides
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        # mbtree=0: with x264's macroblock-tree rate control the same input gave different bytes run to run
        x264 = av.codec.Codec(codec, "w").name == "libx264"
        stream = container.add_stream(codec, rate=1, options={"x264-params": "mbtree=0"} if x264 else {})
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = int(bitrate)
        stream.codec_context.thread_count = 1  # one thread: loader workers already run in parallel
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    buf.seek(0)
    with av.open(buf, "r", format="mp4") as container:
        out = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert out.shape[0] == t, f"codec {codec} returned {out.shape[0]} of {t} frames"
    return out[:, :h, :w].astype(np.float32) / 255.0


# ----------------------------------------------------------------------------- pipeline


def _resize_step(rng: np.random.Generator, cfg: DegradationConfig, clip: np.ndarray,
                 probs: tuple[float, ...], scale_range: tuple[float, float]) -> tuple[np.ndarray, dict]:
    updown = ("up", "down", "keep")[rng.choice(3, p=np.asarray(probs))]
    lo, hi = scale_range
    factor = 1.0
    if updown == "up":
        factor = rng.uniform(1.0, hi)
    elif updown == "down":
        factor = rng.uniform(lo, 1.0)
    mode = str(rng.choice(cfg.resize_modes))
    # whole clip: every frame of a video has the same size
    size = (max(2, round(clip.shape[1] * factor)), max(2, round(clip.shape[2] * factor)))
    return resize_clip(clip, size, mode), {"updown": updown, "factor": float(factor), "mode": mode, "size": list(size)}


def _noise_step(rng: np.random.Generator, cfg: DegradationConfig, clip: np.ndarray,
                sigma_range: tuple[float, float], poisson_range: tuple[float, float]) -> tuple[np.ndarray, dict]:
    drift, n = cfg.mode == "drift", clip.shape[0]
    gaussian = bool(rng.uniform() < cfg.gaussian_noise_prob)
    gray = bool(rng.uniform() < cfg.gray_noise_prob)
    if gaussian:
        lo, hi = sigma_range
        level = _walk(rng, rng.uniform(lo, hi), lo, hi, cfg.noise_sigma_step, n, drift)
        clip = add_gaussian_noise(clip, rng, level, gray)
    else:
        lo, hi = poisson_range
        level = _walk(rng, rng.uniform(lo, hi), lo, hi, cfg.poisson_scale_step, n, drift)
        clip = add_poisson_noise(clip, rng, level, gray)
    return np.clip(clip, 0.0, 1.0), {"type": "gaussian" if gaussian else "poisson", "gray": gray, "level": level}


def _jpeg_step(rng: np.random.Generator, cfg: DegradationConfig, clip: np.ndarray,
               quality_range: tuple[int, int]) -> tuple[np.ndarray, dict]:
    lo, hi = quality_range
    walk = _walk(rng, rng.uniform(lo, hi), lo, hi, cfg.jpeg_quality_step, clip.shape[0], cfg.mode == "drift")
    quality = [int(round(q)) for q in walk]
    return jpeg_compress(clip, quality), {"quality": quality}


def _video_step(rng: np.random.Generator, cfg: DegradationConfig, clip: np.ndarray) -> tuple[np.ndarray, dict]:
    codec = str(rng.choice(cfg.video_codecs))
    bitrate = int(rng.integers(cfg.video_bitrate[0], cfg.video_bitrate[1] + 1))
    return video_compress(clip, codec, bitrate), {"codec": codec, "bitrate": bitrate}


def _sample_final_sinc(rng: np.random.Generator, cfg: DegradationConfig, n: int) -> dict[str, Any]:
    size = int(rng.choice(cfg.kernel_sizes))
    lo, hi = cfg.final_sinc_omega
    omega = _walk(rng, rng.uniform(lo, hi), lo, hi, cfg.omega_step, n, cfg.mode == "drift")
    return {"kernel": "sinc", "size": size, "omega": omega}


def _blur_resize_noise_jpeg(rng: np.random.Generator, cfg: DegradationConfig, clip: np.ndarray, stage: int,
                            p: dict[str, Any], done: Callable[[str, np.ndarray], None]) -> np.ndarray:
    """The shared part of both stages; records what it sampled in `p` and reports each step to `done`."""
    two = stage == 2
    n = clip.shape[0]
    p["blur"] = None
    if rng.uniform() < (cfg.blur2_prob if two else cfg.blur_prob):
        p["blur"] = sample_blur_params(rng, cfg, n, cfg.blur2_sigma if two else cfg.blur_sigma)
        clip = blur_clip(clip, p["blur"])
    done(f"stage{stage}.blur", clip)
    clip, p["resize"] = _resize_step(rng, cfg, clip, cfg.resize2_probs if two else cfg.resize_probs,
                                     cfg.resize2_scale if two else cfg.resize_scale)
    done(f"stage{stage}.resize", clip)
    p["noise"] = None
    if rng.uniform() < cfg.noise_prob:
        clip, p["noise"] = _noise_step(rng, cfg, clip, cfg.noise2_sigma if two else cfg.noise_sigma,
                                       cfg.poisson2_scale if two else cfg.poisson_scale)
    done(f"stage{stage}.noise", clip)
    p["jpeg"] = None
    if rng.uniform() < cfg.jpeg_prob:
        clip, p["jpeg"] = _jpeg_step(rng, cfg, clip, cfg.jpeg2_quality if two else cfg.jpeg_quality)
    done(f"stage{stage}.jpeg", clip)
    return clip


def _check_clip(hq: np.ndarray, scale: int) -> np.ndarray:
    hq = np.asarray(hq)
    if hq.ndim != 4 or hq.shape[-1] != 3 or hq.shape[0] < 1:
        raise ValueError(f"HQ clip must be [T, H, W, 3]; got shape {hq.shape}")
    if not np.issubdtype(hq.dtype, np.floating):
        raise ValueError(f"HQ clip must be float in [0, 1]; got {hq.dtype} (divide uint8 frames by 255)")
    if scale < 1 or hq.shape[1] % scale or hq.shape[2] % scale:
        raise ValueError(f"HQ size {hq.shape[1]}x{hq.shape[2]} is not divisible by scale {scale}; crop it first")
    return np.clip(hq, 0.0, 1.0).astype(np.float32)


def degrade_clip(hq: np.ndarray, rng_or_seed: np.random.Generator | int | tuple[int, ...],
                 cfg: DegradationConfig = DegradationConfig(), scale: int = 4, *,
                 timings: dict[str, float] | None = None,
                 on_stage: Callable[[str, np.ndarray], None] | None = None) -> tuple[np.ndarray, dict]:
    """Degrade an HQ clip into its LQ partner with the second-order pipeline.

    hq: float [T, H, W, 3] in [0, 1], H and W divisible by `scale`.
    rng_or_seed: an `np.random.Generator` (consumed) or a seed for `np.random.default_rng`.
    timings: if given, seconds spent in each step are added to it under the names of STEPS
      (a skipped step adds its near-zero sampling time, so every name of the run appears).
    on_stage: if given, called as on_stage(name, clip) after each step of STEPS with the
      float32 [T, h, w, 3] clip at that point (the pipeline's own array: read, do not modify).
    Neither changes the result. Returns (lq, params): lq float32 [T, H/scale, W/scale, 3] on
    8-bit levels in [0, 1]; params a JSON-serialisable dict of every sampled parameter (None
    for skipped steps).
    """
    last = time.perf_counter()
    clip = _check_clip(hq, scale)
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    n, target = clip.shape[0], (clip.shape[1] // scale, clip.shape[2] // scale)
    params: dict[str, Any] = {"mode": cfg.mode, "scale": scale, "hq_size": list(clip.shape[1:3])}

    def done(name: str, out: np.ndarray) -> None:  # wall time since the previous step, then the hook
        nonlocal last
        now = time.perf_counter()
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + now - last
        if on_stage is not None:
            on_stage(name, out)
        last = time.perf_counter()  # the hook's own time is not charged to the next step

    params["stage1"] = p1 = {}
    clip = _blur_resize_noise_jpeg(rng, cfg, clip, 1, p1, done)
    p1["video"] = None
    if rng.uniform() < cfg.video_prob:
        clip, p1["video"] = _video_step(rng, cfg, clip)
    done("stage1.video", clip)

    if cfg.second_order:
        params["stage2"] = p2 = {}
        clip = _blur_resize_noise_jpeg(rng, cfg, clip, 2, p2, done)
        p2["order"] = ["video", "resize_sinc"] if rng.uniform() < 0.5 else ["resize_sinc", "video"]
        p2.update(video=None, final_sinc=None)
        for step in p2["order"]:
            if step == "video":
                if rng.uniform() < cfg.video_prob:
                    clip, p2["video"] = _video_step(rng, cfg, clip)
                done("stage2.video", clip)
            else:
                p2["final_resize_mode"] = str(rng.choice(cfg.resize_modes))
                clip = resize_clip(clip, target, p2["final_resize_mode"])
                done("stage2.final_resize", clip)
                if rng.uniform() < cfg.final_sinc_prob:
                    p2["final_sinc"] = _sample_final_sinc(rng, cfg, n)
                    clip = blur_clip(clip, p2["final_sinc"])
                done("stage2.final_sinc", clip)

    params["final_resize_mode"] = None
    if clip.shape[1:3] != target:
        params["final_resize_mode"] = str(rng.choice(cfg.resize_modes))
        clip = resize_clip(clip, target, params["final_resize_mode"])
    lq = (np.round(np.clip(clip, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)  # real LQ video is uint8
    done("final", lq)
    return lq, params


# ----------------------------------------------------------------------------- evaluation degradations

EVAL_DEGRADATIONS = ("bicubic2", "bicubic3", "bicubic4", "realbasicvsr", "light", "blur-noise-jpeg")
_BNJ = {"kernel": "iso", "size": 21, "sigma": 2.0, "noise_sigma": 10.0, "jpeg_quality": 50}  # "blur-noise-jpeg", x4


def degrade_named(hq: np.ndarray, name: str, seed: int = 0) -> tuple[np.ndarray, dict]:
    """A fixed, deterministic evaluation degradation of float [T, H, W, 3] HQ in [0, 1].

    "bicubicS": MATLAB-style antialiased bicubic down-sampling by S (2, 3, 4).
    "realbasicvsr" / "light": that training preset's x4 pipeline with `np.random.default_rng(seed)`.
    "blur-noise-jpeg": iso Gaussian blur (sigma 2, 21x21), bicubic x4 down, Gaussian noise
    (sigma 10 of 255, seeded), JPEG quality 50. Returns (lq, params) like `degrade_clip`.
    """
    if name not in EVAL_DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; choose one of {', '.join(EVAL_DEGRADATIONS)}")
    if name.startswith("bicubic"):
        scale = int(name[len("bicubic"):])
        clip = _check_clip(hq, scale)
        lq = resize_clip(clip, (clip.shape[1] // scale, clip.shape[2] // scale), "bicubic_aa")
        return (np.round(np.clip(lq, 0, 1) * 255) / 255).astype(np.float32), {"name": name, "scale": scale}
    if name in ("realbasicvsr", "light"):
        lq, params = degrade_clip(hq, np.random.default_rng(seed), degradation_preset(name), scale=4)
        return lq, {"name": name, "seed": seed, **params}
    clip = _check_clip(hq, 4)
    n, rng = clip.shape[0], np.random.default_rng(seed)
    blur = {"kernel": "iso", "size": _BNJ["size"], "sigma_x": [_BNJ["sigma"]] * n, "sigma_y": [_BNJ["sigma"]] * n,
            "rotation": [0.0] * n, "beta": [1.0] * n}
    clip = resize_clip(blur_clip(clip, blur), (clip.shape[1] // 4, clip.shape[2] // 4), "bicubic")
    clip = np.clip(add_gaussian_noise(clip, rng, [_BNJ["noise_sigma"]] * n, gray=False), 0, 1)
    lq = jpeg_compress(clip, [_BNJ["jpeg_quality"]] * n)
    return lq, {"name": name, "seed": seed, "scale": 4, **_BNJ}


__all__ = [
    "DEGRADATION_PRESETS", "EVAL_DEGRADATIONS", "KERNEL_TYPES", "RESIZE_MODES", "STEPS", "DegradationConfig",
    "add_gaussian_noise", "add_poisson_noise", "blur_clip", "degradation_preset", "degrade_clip",
    "degrade_named", "generalized_gaussian_kernel", "jpeg_compress", "make_kernel", "plateau_kernel",
    "resize_clip", "sample_blur_params", "sinc_kernel", "video_compress",
]

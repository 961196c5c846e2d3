"""Video in and out: streaming readers, atomic writers, and background helpers.

Reading: video files (mp4, mkv, avi, webm, gif, anything FFmpeg demuxes) are
decoded lazily with PyAV; folders of .png/.jpg frames are read in natural order
(2.png before 10.png). Every frame comes out as uint8 RGB [H, W, 3]: grayscale
is replicated to three channels and alpha is dropped.

Writing: mp4/mkv/mov through the ffmpeg binary bundled with imageio-ffmpeg
(H.264 via libx264 or H.265 via libx265, quality as CRF), or a folder of
frame_000000.png files. Output goes to a hidden temporary name beside the final
path and is renamed into place only by a successful `close()`; an error or
`abort()` removes it, so a partial output never appears under the final name.

Odd frame sizes: yuv420p (the pixel format every player decodes) needs even
height and width, so the encoder pads the bottom row / right column by edge
replication and records it in `VideoWriter.padded`; readers then see the padded
size. We prefer this to yuv444p, which many players (browsers, QuickTime)
refuse for H.264.

Mistakes a user can make (missing or unreadable input, empty input, mixed frame
sizes, unwritable output) raise `VideoIOError` with a one-line fix.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from typing import Any

import av
import imageio_ffmpeg
import numpy as np
from PIL import Image

DEFAULT_FOLDER_FPS = 24.0
FRAME_EXTS = (".png", ".jpg", ".jpeg")
CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
CODECS = {"h264": "libx264", "h265": "libx265"}
# yuv -> rgb with full horizontal chroma interpolation: +5 dB PSNR over swscale's default on 4:2:0.
_RGB_INTERP = (av.video.reformatter.Interpolation.BILINEAR | av.video.reformatter.Interpolation.ACCURATE_RND
               | av.video.reformatter.Interpolation.FULL_CHR_H_INT)
# Audio codecs the mp4/mov muxer accepts as-is; anything else is re-encoded to AAC.
MP4_AUDIO_CODECS = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}


class VideoIOError(ValueError):
    """A user-facing video input/output problem; the message says what to do."""


class _Truncated(Exception):
    """Raised by a frame source when the data ends early (cut or corrupt file)."""


def _natural_key(name: str) -> list:
    # Digit runs compare as numbers; split() alternates str/int so types line up.
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _to_rgb(img: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> uint8 [H, W, 3] (gray replicated, alpha dropped)."""
    if img.mode.startswith("I"):  # 16-bit gray; PIL's convert("RGB") would clip, not rescale
        a = np.clip(np.asarray(img) >> 8, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=-1)
    return np.asarray(img.convert("RGB"))


class VideoReader:
    """A single-pass stream of uint8 RGB frames [H, W, 3] with its metadata.

    Attributes:
      path: the input path.
      fps: frames per second (float).
      size: (height, width) in pixels.
      num_frames: frame count from the container or folder, or None if unknown;
        a truncated file may report more than it decodes.
      has_audio: whether the input has an audio track.
      frames_read: frames yielded so far; after iteration, how many decoded.
      truncated: True if decoding stopped early on a corrupt or cut file.
    Use as a context manager or call `close()`.
    """

    def __init__(self, path: str, fps: float, size: tuple[int, int], num_frames: int | None,
                 has_audio: bool, frames: Iterator[np.ndarray], close: Callable[[], None]):
        self.path, self.fps, self.size = path, fps, size
        self.num_frames, self.has_audio = num_frames, has_audio
        self.frames_read, self.truncated = 0, False
        self._frames, self._close, self._started, self._closed = frames, close, False, False

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._started:
            raise VideoIOError(f"{self.path}: a VideoReader can be iterated once; call open_video again")
        self._started = True
        return self._iterate()

    def _iterate(self) -> Iterator[np.ndarray]:
        while not self._closed:  # checked before decoding: a closed container must not be touched
            try:
                frame = next(self._frames)
            except StopIteration:
                # Fewer frames than the container's index promised: the file was cut.
                self.truncated = bool(self.num_frames and self.frames_read < self.num_frames)
                return
            except _Truncated:
                self.truncated = True
                return
            self.frames_read += 1
            yield frame

    def close(self) -> None:
        """Release the decoder / file handles. Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_folder(path: str, fps: float | None) -> VideoReader:
    names = sorted((n for n in os.listdir(path) if n.lower().endswith(FRAME_EXTS)), key=_natural_key)
    if not names:
        raise VideoIOError(f"folder {path} has no {'/'.join(FRAME_EXTS)} frames; "
                           "point to a video file or a folder of frames")
    files = [os.path.join(path, n) for n in names]
    sizes = {}
    for f in files:  # headers only: PIL decodes pixels lazily
        try:
            with Image.open(f) as img:
                sizes.setdefault(img.size, f)
        except (OSError, Image.DecompressionBombError) as e:
            raise VideoIOError(f"cannot read frame {f} ({e}); replace or remove it") from None
    if len(sizes) > 1:
        ((w0, h0), f0), ((w1, h1), f1) = list(sizes.items())[:2]
        raise VideoIOError(f"frames in {path} differ in size ({os.path.basename(f0)} is {w0}x{h0}, "
                           f"{os.path.basename(f1)} is {w1}x{h1}); resize them to one size")
    w, h = next(iter(sizes))

    def frames() -> Iterator[np.ndarray]:
        for f in files:
            try:
                with Image.open(f) as img:
                    yield _to_rgb(img)
            except OSError as e:
                raise VideoIOError(f"cannot decode frame {f} ({e}); replace or remove it") from None

    fps = DEFAULT_FOLDER_FPS if fps is None else float(fps)
    return VideoReader(path, fps, (h, w), len(files), False, frames(), lambda: None)


def _open_container(path: str, fps: float | None) -> VideoReader:
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError) as e:
        raise VideoIOError(f"cannot read {path} as a video ({e}); is it a video file or frame folder?") from None
    try:
        if not container.streams.video:
            raise VideoIOError(f"{path} has no video stream; pass a video file or a folder of frames")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads: decoding is the reader's hot path
        decoded = container.decode(stream)
        try:  # decode one frame now so empty and unreadable inputs fail at open, not mid-stream
            first = next(decoded).to_ndarray(format="rgb24", interpolation=_RGB_INTERP)
        except (StopIteration, av.FFmpegError):
            raise VideoIOError(f"{path} contains no decodable video frames; "
                               "check the file is not empty or corrupt") from None
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if fps is None:
            fps = float(rate) if rate else DEFAULT_FOLDER_FPS
        has_audio = len(container.streams.audio) > 0
    except BaseException:
        container.close()
        raise

    def frames() -> Iterator[np.ndarray]:
        yield first
        try:
            for frame in decoded:
                yield frame.to_ndarray(format="rgb24", interpolation=_RGB_INTERP)
        except av.FFmpegError:  # cut or corrupt data: keep what decoded so far
            raise _Truncated from None

    return VideoReader(path, float(fps), first.shape[:2], stream.frames or None, has_audio,
                       frames(), container.close)


def open_video(path: str | os.PathLike, *, fps: float | None = None) -> VideoReader:
    """Open a video file or a folder of .png/.jpg frames for lazy, single-pass reading.

    Args:
      path: a video file (mp4, mkv, avi, webm, gif, ...) or a folder of frames.
      fps: overrides the reported frame rate; frame folders default to 24.
    Returns:
      A `VideoReader` yielding uint8 RGB frames [H, W, 3].
    Raises:
      VideoIOError: missing path, unreadable or non-video file, zero frames,
        or a frame folder whose frames differ in size.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoIOError(f"no such file or folder: {path}; check the path")
    if os.path.isdir(path):
        return _open_folder(path, fps)
    return _open_container(path, fps)


def read_video(path: str | os.PathLike, *, fps: float | None = None) -> tuple[np.ndarray, float]:
    """Read a whole video or frame folder into memory.

    Returns:
      (frames, fps): frames uint8 [T, H, W, 3] RGB, fps a float.
    """
    with open_video(path, fps=fps) as reader:
        return np.stack(list(reader)), reader.fps


def _audio_codec(path: str) -> str | None:
    """The codec name of the first audio stream of `path`, or None if it has none."""
    if os.path.isdir(path):
        return None
    try:
        with av.open(path) as c:
            return c.streams.audio[0].codec_context.name if c.streams.audio else None
    except (av.FFmpegError, OSError) as e:
        raise VideoIOError(f"cannot read audio_from={path} ({e}); pass a readable video or None") from None


def _run_ffmpeg(args: list[str], what: str) -> None:
    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), *args], capture_output=True, text=True)
    if proc.returncode:
        raise VideoIOError(f"ffmpeg failed {what}: {_last_line(proc.stderr)}")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no error message"


def _remove(paths: list[str], procs: list[subprocess.Popen], logs: list) -> None:
    """Kill encoders, close their logs and delete temporaries (also the finalizer of a dropped writer)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        try:
            p.stdin.close()
        except OSError:  # unflushed bytes to a dead encoder: irrelevant, we are discarding
            pass
        p.wait()
    procs.clear()
    for f in logs:
        f.close()
    logs.clear()
    for t in paths:
        shutil.rmtree(t, ignore_errors=True) if os.path.isdir(t) else _unlink(t)
    paths.clear()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class _ClosesOnExit:
    """Context manager: `close()` on success, `abort()` (no output left) on an exception."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class VideoWriter(_ClosesOnExit):
    """Writes uint8 RGB frames to a video file or a png folder, atomically.

    Create with `open_writer`. `write()` takes [H, W, 3] or [T, H, W, 3] uint8;
    the size is fixed by the first frame. `close()` publishes the output;
    `abort()` (or an exception inside `with`) removes it.

    Attributes:
      path: the final output path.
      fps: frames per second.
      frames_written: frames accepted so far.
      padded: (rows, cols) of edge padding added to reach an even size for yuv420p.
    """

    def __init__(self, path: str, fps: float, codec: str, quality: int, preset: str,
                 audio_from: str | None):
        self.fps, self.frames_written, self.padded = fps, 0, (0, 0)
        # pathlib drops a trailing '/', so a path without an extension also means a folder.
        self._folder = path.endswith(("/", os.sep)) or os.path.isdir(path) or not os.path.splitext(path)[1]
        self.path = os.path.abspath(path)
        self._codec, self._quality, self._preset = codec, quality, preset
        self._size: tuple[int, int] | None = None
        self._temps: list[str] = []
        self._procs: list[subprocess.Popen] = []
        self._logs: list = []  # the encoder's stderr, a file so ffmpeg can never block on it
        self._done = False
        # Forgetting close() must not leave a temporary behind either.
        self._finalizer = weakref.finalize(self, _remove, self._temps, self._procs, self._logs)

        parent, name = os.path.split(self.path)
        if self._folder:
            self._format = None
            if os.path.isdir(self.path) and os.listdir(self.path):
                raise VideoIOError(f"output folder {self.path} is not empty; choose a new folder or empty it")
            if os.path.exists(self.path) and not os.path.isdir(self.path):
                raise VideoIOError(f"output folder {self.path} is an existing file; choose another path")
        else:
            ext = os.path.splitext(name)[1].lower()
            if ext not in CONTAINER_FORMATS:
                raise VideoIOError(f"cannot write {self.path}: use a .mp4, .mkv or .mov file, "
                                   "or a folder path (no extension) for png frames")
            self._format = CONTAINER_FORMATS[ext]
        try:
            os.makedirs(parent, exist_ok=True)
            # Create the temporary now so an unwritable destination fails at open, not at close.
            if self._folder:
                self._temps.append(tempfile.mkdtemp(dir=parent, prefix=f".{name}.", suffix=".partial"))
            else:
                fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{name}.", suffix=".partial")
                os.close(fd)
                self._temps.append(tmp)
        except OSError as e:
            raise VideoIOError(f"cannot write to {self.path} ({e.strerror}); choose a writable output path") from None

        self._audio_from, self._audio_codec = None, None
        if audio_from is not None and not self._folder:
            audio_from = os.fspath(audio_from)
            if not os.path.exists(audio_from):
                self.abort()
                raise VideoIOError(f"audio_from={audio_from} does not exist; check the path or pass None")
            try:
                self._audio_codec = _audio_codec(audio_from)
            except VideoIOError:
                self.abort()
                raise
            self._audio_from = audio_from if self._audio_codec else None

    def _start_encoder(self, h: int, w: int) -> None:
        rate = Fraction(self.fps).limit_denominator(1001)  # 29.97 -> 30000/1001 exactly
        args = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", str(rate), "-i", "-",
                "-an", "-c:v", CODECS[self._codec], "-preset", self._preset, "-crf", str(self._quality),
                # Convert with and tag BT.709 so players and our reader agree on the colours.
                "-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
                "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
        if self._codec == "h265":
            args += ["-x265-params", "log-level=error", "-tag:v", "hvc1"]  # hvc1: Apple players need it
        if self._format in ("mp4", "mov"):
            args += ["-movflags", "+faststart"]  # index first: a cut file still decodes
        args += ["-f", self._format, self._temps[0]]
        self._logs.append(tempfile.TemporaryFile())
        self._procs.append(subprocess.Popen(args, stdin=subprocess.PIPE, stderr=self._logs[0]))

    def _ffmpeg_error(self) -> str:
        self._procs[0].wait()
        self._logs[0].seek(0)
        return _last_line(self._logs[0].read().decode(errors="replace"))

    def write(self, frames: Any) -> None:
        """Append one frame [H, W, 3] or a batch [T, H, W, 3] of uint8 RGB."""
        if self._done:
            raise VideoIOError(f"{self.path}: writer is already closed; open a new one")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            self.abort()
            raise VideoIOError(f"{self.path}: frames must be uint8 [H, W, 3] or [T, H, W, 3], got "
                               f"{frames.dtype} {list(frames.shape)}; convert with "
                               "(x * 255).round().clip(0, 255).astype(np.uint8)")
        h, w = frames.shape[1:3]
        if self._size is None:
            self._size = (h, w)
            if not self._folder:
                self.padded = (h % 2, w % 2)
                self._start_encoder(h + h % 2, w + w % 2)
        elif self._size != (h, w):
            self.abort()
            raise VideoIOError(f"{self.path}: frame size changed from {self._size} to {(h, w)}; "
                               "write frames of one size")
        if self._folder:
            for frame in frames:
                out = os.path.join(self._temps[0], f"frame_{self.frames_written:06d}.png")
                Image.fromarray(frame).save(out, compress_level=1)  # lossless anyway; level 1 is fast
                self.frames_written += 1
            return
        if any(self.padded):
            frames = np.pad(frames, ((0, 0), (0, self.padded[0]), (0, self.padded[1]), (0, 0)), mode="edge")
        try:
            self._procs[0].stdin.write(np.ascontiguousarray(frames).data)
        except OSError:  # BrokenPipeError: the encoder died
            msg = self._ffmpeg_error()
            self.abort()
            raise VideoIOError(f"ffmpeg failed writing {self.path}: {msg}") from None
        self.frames_written += len(frames)

    def close(self) -> None:
        """Finish encoding and move the output to its final path.

        Raises:
          VideoIOError: if no frames were written or the encoder failed; nothing is left behind.
        """
        if self._done:
            return
        try:
            if self.frames_written == 0:
                raise VideoIOError(f"no frames were written to {self.path}; nothing saved")
            if self._folder:
                if os.path.isdir(self.path):
                    os.rmdir(self.path)  # an empty existing folder: replace it
                _chmod_as_created(self._temps[0], 0o777)
                os.rename(self._temps[0], self.path)
            else:
                proc = self._procs[0]
                try:
                    proc.stdin.close()
                except OSError:  # encoder already died; its exit code and message follow
                    pass
                if proc.wait():
                    raise VideoIOError(f"ffmpeg failed writing {self.path}: {self._ffmpeg_error()}")
                src = self._temps[0]
                if self._audio_from:
                    src = self._mux_audio(src)
                _chmod_as_created(src, 0o666)
                os.replace(src, self.path)
        except BaseException:
            self.abort()
            raise
        self._temps.clear()  # published: nothing left to delete
        self._done = True
        self._finalizer()  # reaps the finished encoder and closes its log

    def _mux_audio(self, video: str) -> str:
        """Copy the first audio track of `audio_from` beside `video`, cut to the video's length."""
        fd, out = tempfile.mkstemp(dir=os.path.dirname(self.path), prefix=f".{os.path.basename(self.path)}.",
                                   suffix=".partial")
        os.close(fd)
        self._temps.append(out)
        copy = self._format == "matroska" or self._audio_codec in MP4_AUDIO_CODECS
        args = ["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", video, "-i", self._audio_from,
                "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "copy" if copy else "aac",
                # Cut audio at the last frame; -shortest would instead cut video if the audio is shorter.
                "-t", f"{self.frames_written / self.fps:.6f}"]
        if self._format in ("mp4", "mov"):
            args += ["-movflags", "+faststart"]
        _run_ffmpeg([*args, "-f", self._format, out], f"adding audio from {self._audio_from}")
        return out

    def abort(self) -> None:
        """Stop writing and delete everything written so far. Safe to call twice."""
        self._done = True
        self._finalizer()  # runs _remove once; later calls do nothing


def _chmod_as_created(path: str, mode: int) -> None:
    """Give a mkstemp/mkdtemp temporary (0600/0700) the mode open()/mkdir() would have given it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def open_writer(path: str | os.PathLike, fps: float, *, codec: str = "h264", quality: int = 18,
                preset: str = "medium", audio_from: str | os.PathLike | None = None) -> VideoWriter:
    """Open an atomic video writer.

    Args:
      path: a .mp4/.mkv/.mov file, or a folder (an existing one, a path ending in
        '/', or a path without an extension) that receives frame_000000.png, ...
      fps: frames per second (> 0).
      codec: "h264" (libx264) or "h265" (libx265); ignored for png folders.
      quality: CRF, 0-51, lower is better; 18 is visually lossless for H.264.
      preset: x264/x265 speed preset ("ultrafast" ... "veryslow").
      audio_from: a video whose first audio track is copied (or re-encoded to AAC
        when the container cannot hold it) into the output, cut to the video's
        length; ignored if it has no audio or the output is a png folder.
    Returns:
      A `VideoWriter`; use as a context manager or call `close()`.
    Raises:
      VideoIOError: bad codec/quality/fps/extension, missing audio_from, or an
        unwritable output path.
    """
    if codec not in CODECS:
        raise VideoIOError(f"codec={codec!r} is not supported; choose one of {', '.join(CODECS)}")
    if not 0 <= quality <= 51:
        raise VideoIOError(f"quality={quality} is out of range; use a CRF from 0 (best) to 51 (worst)")
    if not fps > 0:
        raise VideoIOError(f"fps={fps} must be positive")
    return VideoWriter(os.fspath(path), float(fps), codec, int(quality), preset,
                       None if audio_from is None else os.fspath(audio_from))


_END = object()


class _Raised:
    """Carries a worker thread's exception to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


def prefetch(iterable: Iterable, depth: int = 4) -> Iterator:
    """Iterate `iterable` in a background thread, keeping up to `depth` items ready.

    Exceptions raised by the source are re-raised in the consumer at the point
    they occurred in the sequence. Stopping early (break, or closing the
    generator) stops the worker thread; the thread starts at the first `next()`.
    """
    if depth < 1:
        raise ValueError(f"prefetch depth={depth} must be >= 1")
    return _prefetch(iterable, depth)


def _prefetch(iterable: Iterable, depth: int) -> Iterator:
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():  # time out so an abandoned consumer cannot block us forever
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def work() -> None:
        try:
            for item in iterable:
                if not put(item):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, not swallowed
            put(_Raised(e))
            return
        put(_END)

    thread = threading.Thread(target=work, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


class BackgroundWriter(_ClosesOnExit):
    """Feeds a `VideoWriter` from a bounded queue in a thread, so encoding overlaps compute.

    `write()` accepts anything `np.asarray` turns into uint8 [H, W, 3] or
    [T, H, W, 3] (a jax.Array is converted in the worker, so the device-to-host
    copy overlaps too); it blocks only while `depth` items are pending. Do not
    mutate an array after passing it. A worker failure is re-raised by the next
    `write()` or by `close()`; the output is then removed.
    """

    def __init__(self, writer: VideoWriter, depth: int = 8):
        if depth < 1:
            raise ValueError(f"BackgroundWriter depth={depth} must be >= 1")
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abort = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="video-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (item := self._queue.get()) is not _END:
            if self._error is None and not self._abort.is_set():
                try:
                    self.writer.write(item)
                except BaseException as e:  # noqa: BLE001 - re-raised in the producer
                    self._error = e
            # After a failure keep draining, so a producer blocked in put() wakes up.
        try:
            if self._error is None and not self._abort.is_set():
                self.writer.close()
        except BaseException as e:  # noqa: BLE001 - re-raised by close()
            self._error = e
        finally:
            if self._error is not None or self._abort.is_set():
                self.writer.abort()

    def write(self, frames: Any) -> None:
        """Queue one frame [H, W, 3] or a batch [T, H, W, 3] for writing."""
        if self._closed:
            raise VideoIOError(f"{self.writer.path}: writer is already closed; open a new one")
        if self._error is not None:
            self.abort()
            raise self._error
        self._queue.put(frames)

    def close(self) -> None:
        """Write what is queued, publish the output, and re-raise any worker error."""
        if not self._closed:
            self._closed = True
            self._queue.put(_END)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Drop queued frames and remove the output."""
        self._abort.set()
        if not self._closed:
            self._closed = True
            self._queue.put(_END)
            self._thread.join()


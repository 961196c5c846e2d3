import json
import os

import numpy as np
import pytest

from infer.restore import main
from swiftvr_jax.video_io import open_writer, read_video


def _write_mp4(path, n=9, h=24, w=32, fps=12.0):
    frames = np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    with open_writer(str(path), fps, quality=10) as wr:
        wr.write(frames)
    return frames


def _write_pngs(folder, sizes):
    from PIL import Image

    folder.mkdir()
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(np.full((h, w, 3), 40 * i % 256, np.uint8)).save(folder / f"{i}.png")


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, err


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "clip.mp4"
    _write_mp4(path)
    return path


def test_restore_mp4_keeps_frames_and_fps(tmp_path, video, capsys):
    out = tmp_path / "out.mp4"
    rc, err = _run(capsys, video, "-o", out, "--preset", "tiny", "--upscale", "2", "--clip-len", "4")
    assert rc == 0, err
    frames, fps = read_video(str(out))
    assert frames.shape == (9, 48, 64, 3) and fps == pytest.approx(12.0)
    summary = json.loads((tmp_path / "out.mp4.json").read_text())
    assert summary["frames"] == 9 and summary["config"]["preset"] == "tiny"
    # existing output: refused without --overwrite, replaced with it
    rc, err = _run(capsys, video, "-o", out, "--preset", "tiny", "--upscale", "2")
    assert rc == 2 and "--overwrite" in err
    rc, err = _run(capsys, video, "-o", out, "--preset", "tiny", "--upscale", "1", "--clip-len", "4", "--overwrite")
    assert rc == 0 and read_video(str(out))[0].shape == (9, 24, 32, 3)


def test_restore_png_folder_input_and_output(tmp_path, capsys):
    _write_pngs(tmp_path / "frames", [(16, 16)] * 5)
    out = tmp_path / "restored"
    rc, err = _run(capsys, tmp_path / "frames", "-o", out, "--png", "--preset", "tiny", "--upscale", "2")
    assert rc == 0, err
    assert len(os.listdir(out)) == 5 and read_video(str(out))[0].shape == (5, 32, 32, 3)


def test_truncated_video_restores_what_decodes(tmp_path, capsys):
    full = tmp_path / "full.mp4"
    _write_mp4(full, n=40, h=16, w=16)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "out.mp4"
    rc, err = _run(capsys, cut, "-o", out, "--preset", "tiny", "--upscale", "1", "--clip-len", "8")
    assert rc == 0 and "truncated" in err
    n = json.loads((tmp_path / "out.mp4.json").read_text())["frames"]
    assert 0 < n < 40 and read_video(str(out))[0].shape[0] == n


@pytest.mark.parametrize("case", ["missing", "not_video", "bad_clip_len", "bad_upscale", "unwritable", "mixed_sizes",
                                  "zero_frames", "no_weights", "bad_extension"])
def test_user_errors_are_one_line_and_leave_nothing(tmp_path, video, capsys, case, monkeypatch):
    out = tmp_path / "o.mp4"
    args = [video, "-o", out, "--preset", "tiny"]
    if case == "missing":
        args[0] = tmp_path / "nope.mp4"
    elif case == "not_video":
        (tmp_path / "x.mp4").write_text("hello")
        args[0] = tmp_path / "x.mp4"
    elif case == "bad_clip_len":
        args += ["--clip-len", "6"]
    elif case == "bad_upscale":
        args += ["--upscale", "5"]
    elif case == "unwritable":
        out = tmp_path / "no" / "such" / "dir" / "o.mp4"
        args[2] = out
    elif case == "mixed_sizes":
        _write_pngs(tmp_path / "mixed", [(16, 16), (16, 16), (16, 20)])
        args[0] = tmp_path / "mixed"
    elif case == "zero_frames":
        (tmp_path / "empty").mkdir()
        args[0] = tmp_path / "empty"
    elif case == "no_weights":  # no --checkpoint or --preset, and no default weights installed
        from swiftvr_jax import pipeline

        monkeypatch.setattr(pipeline, "DEFAULT_WEIGHTS", str(tmp_path / "weights" / "default"))
        args = args[:3]
    elif case == "bad_extension":
        out = tmp_path / "o.txt"
        args[2] = out
    rc, err = _run(capsys, *args)
    lines = [l for l in err.strip().splitlines() if "error" in l]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert not out.exists() and not any(p.name.endswith(".partial") for p in tmp_path.rglob("*"))


def test_no_checkpoint_uses_the_shipped_default_model(tmp_path, video, capsys):
    from swiftvr_jax import pipeline

    weights = os.path.join(pipeline.DEFAULT_WEIGHTS, "model.safetensors")
    assert os.path.getsize(weights) <= 30 * 2**20  # the size limit for shipped weights
    out = tmp_path / "out.mp4"
    rc, err = _run(capsys, video, "-o", out, "--clip-len", "4")
    assert rc == 0, err
    summary = json.loads((tmp_path / "out.mp4.json").read_text())
    assert summary["config"]["preset"] == "small" and summary["config"]["reae"]["residual"] is True
    assert read_video(str(out))[0].shape == (9, 96, 128, 3)  # default upscale 4

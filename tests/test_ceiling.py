"""infer/ceiling.py: every stage's row lines up with the same frames, and the rows are what they say."""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np

from infer import ceiling, demo, evaluate
from swiftvr_jax import baselines, metrics, pipeline
from swiftvr_jax.config import get_config


def _pipe(zero_decoder: bool) -> pipeline.SwiftVRPipeline:
    cfg = get_config("tiny")
    cfg = dataclasses.replace(cfg, reae=dataclasses.replace(cfg.reae, residual=True, residual_resize="cubic"))
    pipe = pipeline.SwiftVRPipeline.from_config(cfg)
    if zero_decoder:  # the residual ReAE then returns its base, the upsampled LQ, whatever the latents
        out = pipe.model.reae.dec_out
        out.kernel[...] = jnp.zeros_like(out.kernel[...])
    return pipe


def _clip(frames=9):
    gt, _ = demo.load_clip("carphone", frames)
    lq, _ = evaluate.make_lq(gt, "light", evaluate.clip_seed(0, "carphone"))
    return gt, lq


def test_a_decoder_that_adds_nothing_scores_bicubic_on_every_row():
    gt, lq = _clip()
    pipe = _pipe(zero_decoder=True)
    rows = ceiling.stage_psnrs(pipe, gt, lq)
    t, lag = 8, 3  # 9 frames -> 8 (time factor 4); the tiny ReAE's decoder lags 3 frames
    assert pipe.model.reae.frames_to_trim == lag
    bicubic = metrics.psnr(baselines.resize_upscale(lq, 4, "bicubic")[: t - lag], gt[: t - lag])
    # A misaligned row (output frame i scored against ground-truth frame i + lag) would differ.
    assert metrics.psnr(baselines.resize_upscale(lq, 4, "bicubic")[lag:t], gt[: t - lag]) != bicubic
    for name in ceiling.ROWS:
        np.testing.assert_allclose(rows[name], bicubic, atol=1e-9, err_msg=name)


def test_a_trained_looking_decoder_moves_the_rows_and_the_cli_writes_json(tmp_path, monkeypatch):
    gt, lq = _clip()
    pipe = _pipe(zero_decoder=False)
    rows = ceiling.stage_psnrs(pipe, gt, lq)
    assert rows["hq_latents"] != rows["base"] and rows["no_dit"] != rows["base"]
    monkeypatch.setattr(pipeline.SwiftVRPipeline, "from_pretrained", classmethod(lambda cls, path=None: pipe))
    assert ceiling.main(["--out", str(tmp_path), "--clips", "carphone", "--frames", "9"]) == 0
    saved = json.loads((tmp_path / "ceiling.json").read_text())
    assert saved["rows"] == list(ceiling.ROWS) and saved["config"]["reae"]["residual"] is True
    np.testing.assert_allclose([saved["psnr"]["carphone"][k] for k in ceiling.ROWS],
                               [rows[k] for k in ceiling.ROWS])
    assert saved["psnr"]["mean"] == saved["psnr"]["carphone"]
    assert ceiling.main(["--out", str(tmp_path), "--clips", "carphone", "--frames", "99"]) == 2

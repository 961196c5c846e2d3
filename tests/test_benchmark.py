"""The benchmark programs run end to end on the tiny preset and write their JSON."""

import json

import pytest

from infer import benchmark


def _run(tmp_path, *argv):
    assert benchmark.main([*argv, "--repeats", "1", "--out", str(tmp_path)]) == 0
    return json.loads((tmp_path / f"benchmark_{argv[0]}.json").read_text())


@pytest.mark.parametrize("what", ["attention", "dit"])
def test_attention_and_dit_rows(tmp_path, what):
    out = _run(tmp_path, what, "--preset", "tiny", "--resolutions", "1080p", "--modes", "swin,mfswa")
    rows = {r["mode"]: r for r in out["rows"]}
    assert set(rows) == {"swin", "mfswa"} and rows["mfswa"]["ratio_vs_mfswa"] == 1.0
    assert all(r["impl"] == "xla" and r["ms"] > 0 for r in rows.values())  # CPU: auto means XLA
    assert out["config"]["preset"] == "tiny" and out["machine"]["backend"] == "cpu"


@pytest.mark.parametrize("residual", ["false", "true"])
def test_stream_compiles_once_per_chunk_type(tmp_path, residual):
    out = _run(tmp_path, "stream", "--preset", "tiny", "--set", f"reae.residual={residual}",
               "--size", "64x96", "--chunks", "3")
    (row,) = out["rows"]
    assert row["compilations"] == {"encode": 2, "dit": 2, "decode": 2}
    assert row["fps"] > 0 and row["chunk_ms"] == pytest.approx(row["encode_ms"] + row["dit_ms"] + row["decode_ms"])

"""Two JAX processes (2 CPU devices each, Gloo collectives) train like one process with 4 devices."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from swiftvr_jax.convert import SafetensorsFile

ARGS = ["-m", "train.train", "--stage", "reae", "--preset", "tiny", "--set", "train.steps=2", "--set",
        "train.batch_size=4", "--set", "train.log_every=1", "--set", "train.warmup_steps=1"]


def _env(devices, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    return {**env, "JAX_NUM_CPU_DEVICES": str(devices), "JAX_PLATFORMS": "cpu", **extra}


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    one = subprocess.run([sys.executable, *ARGS, "--workdir", str(tmp_path / "one")], cwd=root, env=_env(4),
                         capture_output=True, text=True, timeout=900)
    assert one.returncode == 0, one.stderr[-2000:]
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, *ARGS, "--workdir", str(tmp_path / "two")], cwd=root,
                              env=_env(2, JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2",
                                       JAX_PROCESS_ID=str(i), JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]

    rows = {k: [json.loads(line) for line in (tmp_path / k / "metrics.jsonl").read_text().splitlines()]
            for k in ("one", "two")}
    assert [r["step"] for r in rows["two"]] == [1, 2]  # only the lead process logs
    assert [r["clips"] for r in rows["one"]] == [r["clips"] for r in rows["two"]]  # each host loaded its share
    np.testing.assert_allclose([r["loss"] for r in rows["two"]], [r["loss"] for r in rows["one"]], rtol=1e-5)
    a, b = (SafetensorsFile(str(tmp_path / k / "export" / "model.safetensors")) for k in ("one", "two"))
    assert set(a) == set(b)
    for k in a:  # the export gathered every shard onto the lead host
        np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-6)

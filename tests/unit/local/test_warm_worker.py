"""A warm spare becomes `python -m shepard_worker` with the environment it is handed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _spare(tmp_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "shepard.local.warm_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )


def test_a_spare_runs_the_worker_with_the_orders_env_cwd_and_log(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    workdir = tmp_path / "here"
    workdir.mkdir()
    spare = _spare(tmp_path)
    order = {
        "env": {"SHEPARD_RUNNER": "process", "PATH": "/usr/bin:/bin"},
        "cwd": str(workdir),
        "log": str(log),
    }
    out, _ = spare.communicate(json.dumps(order).encode() + b"\n", timeout=60)
    # the worker itself refused the environment it was given, and said so in the job's log
    assert spare.returncode == 2
    assert out == b""
    assert "while reading the worker's environment" in log.read_text()
    text = log.read_text()
    assert "SHEPARD_JOB_ID" in text and "not set" in text
    # SHEPARD_RUNNER=process came from the order: the docker runner (the default) would also
    # have asked for the payload image
    assert "SHEPARD_PAYLOAD_IMAGE" not in text


def test_a_spare_with_no_job_exits_quietly(tmp_path: Path) -> None:
    spare = _spare(tmp_path)
    out, _ = spare.communicate(b"", timeout=60)
    assert spare.returncode == 0
    assert out == b""

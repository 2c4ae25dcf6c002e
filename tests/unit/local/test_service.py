"""The local flock service's life: start, status, a death reported with a way out, stop."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from pathlib import Path

import boto3
import pytest

from shepard.errors import BackendError
from shepard.local import ensure_running_with, logs, require_running, status, stop
from shepard.local.settings import LocalSettings

ROOT = Path(__file__).resolve().parents[3]
CODE = ROOT / "examples" / "testing-setup" / "code"


def _port_free(port: int) -> bool:
    # Nothing listens: a bind with SO_REUSEADDR fails only while a listener holds the port
    # (connections left in TIME_WAIT by the closed server do not count).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"


@pytest.mark.integration
@pytest.mark.slow
def test_service_lifecycle(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # The runner is named: "auto" would pick docker wherever an engine answers
    # (choose_runner's own test covers that choice).
    settings = LocalSettings(
        "life", "us-east-1", str(CODE), vcpus=1, max_parallel_jobs=2, runner="process"
    )
    flock = ensure_running_with(settings, state)
    try:
        # a working AWS emulator on loopback, and the Lambda endpoint
        assert flock.endpoint_url.startswith("http://127.0.0.1:")
        s3 = boto3.client(
            "s3",
            endpoint_url=flock.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="probe")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["probe"]
        current = status(state)
        assert current.running and current.pid == flock.pid
        assert current.parallel_jobs == 2 and current.runner == "process"

        # calling it again finds the same service, which picks up changed settings
        one_at_a_time = dataclasses.replace(settings, max_parallel_jobs=1)
        assert ensure_running_with(one_at_a_time, state).pid == flock.pid
        deadline = time.monotonic() + 5
        while status(state).parallel_jobs != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status(state).parallel_jobs == 1

        # killed behind our back: the next command says so, with the log and a way out
        os.kill(flock.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while status(state).state != "dead" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status(state).state == "dead"
        started = time.monotonic()
        with pytest.raises(BackendError) as caught:
            require_running(state, doing="querying jobs")
        assert time.monotonic() - started < 1  # reported at once, no retry loop
        message = caught.value.message
        assert message.startswith(f"while querying jobs: the local flock service (pid {flock.pid})")
        assert "ready in" in message  # the tail of its log
        assert "shepard-tf apply" in message and "shepard-tf local stop" in message

        # apply again: a new service, and a notice about the dead one
        again = ensure_running_with(settings, state)
        assert again.pid != flock.pid
        assert again.notice is not None and f"pid {flock.pid}" in again.notice
        assert require_running(state).pid == again.pid
    finally:
        info = status(state)
        assert stop(state) in (True, False)
    ports = [int(p.rsplit(":", 1)[1]) for p in (again.endpoint_url, again.lambda_endpoint_url)]
    assert _gone(again.pid)
    assert all(_port_free(p) for p in ports)
    assert status(state).state == "stopped"
    assert info.running
    assert any("stopped" in line for line in logs(state, 5))
    with pytest.raises(BackendError, match="is not running"):
        require_running(state)
    assert stop(state) is False  # nothing left to stop

"""CHECKPOINT_DIR against the emulator's S3, and the worker's interruption paths end to end:
a reclaimed attempt saves its checkpoint and is retried, the next attempt restores it, a
finished job's checkpoint is removed, a cancelled job uploads nothing."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from shepard_worker import spot
from shepard_worker.checkpoint import Checkpoint, prefix_of
from shepard_worker.run import main

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.ids import new_job_id
from shepard.joblayer.records import Phase, Result
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import make_test_flock

ROOT = Path(__file__).resolve().parents[3]

# Resumes from its checkpoint if there is one; else writes one, says so and waits to be stopped.
PAYLOAD = """\
import os, pathlib, sys, time
folder = pathlib.Path(os.environ["CHECKPOINT_DIR"])
state = folder / "state.txt"
if state.exists():
    text = state.read_text()
    pathlib.Path(os.environ["ROOT_OUTPUT_NAME"], "resumed.txt").write_text(text)
    print("resumed from", text, flush=True)
    sys.exit(0)
(folder / "deep").mkdir()
(folder / "deep" / "weights.bin").write_bytes(b"w" * 1000)
state.write_text("step 41")
print("checkpoint written", flush=True)
time.sleep(60)
"""


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    answer = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in answer.get("Contents", []))


@pytest.fixture(scope="module")
def resources(emulator: InProcessEmulator) -> Iterator[FlockSettings]:
    """The flock's buckets, table and secret, made once for the module (each test keeps to
    its own job ids)."""
    with pytest.MonkeyPatch.context() as patch:
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        emulator.reset()
        settings = make_test_flock("ck", batch=False).settings
        boto3.client("secretsmanager").create_secret(Name="ck-secrets", SecretString="{}")
        yield settings


def test_only_what_changed_goes_up_and_a_new_attempt_gets_it_back(
    resources: FlockSettings, tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    bucket = resources.outputs_bucket
    job_id = new_job_id()
    said: list[str] = []
    first = Checkpoint(s3, bucket, job_id, tmp_path / "one", said.append)
    assert first.restore() == 0
    (first.folder / "a.txt").write_text("a")
    (first.folder / "sub").mkdir()
    (first.folder / "sub" / "b.bin").write_bytes(b"b" * 10)
    (first.folder / "link").symlink_to(tmp_path)  # never followed, never uploaded

    assert first.upload("test") == 2
    assert first.upload("test") == 0  # nothing changed
    (first.folder / "a.txt").write_text("a, changed")
    (first.folder / "sub" / "b.bin").unlink()
    assert first.upload("test") == 1
    assert _keys(s3, bucket, prefix_of(job_id)) == [f"checkpoints/{job_id}/a.txt"]

    second = Checkpoint(s3, bucket, job_id, tmp_path / "two", said.append)
    assert second.restore() == 1
    assert (second.folder / "a.txt").read_text() == "a, changed"
    assert second.upload("test") == 0  # what was restored is not sent back

    second.remove()
    assert _keys(s3, bucket, prefix_of(job_id)) == []


class _Notice(BaseHTTPRequestHandler):
    """A sheep's metadata service: IMDSv2, a Spot notice once ``armed`` is set."""

    armed = threading.Event()

    def do_PUT(self) -> None:
        self._answer("t" if self.headers.get("X-aws-ec2-metadata-token-ttl-seconds") else None)

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "t":
            self._answer(None, 401)
        elif self.path.endswith("/spot/instance-action") and self.armed.is_set():
            self._answer(json.dumps({"action": "terminate", "time": "2026-11-29T07:02:00Z"}))
        elif self.path.endswith("/instance-type"):
            self._answer("m5.large")
        elif self.path.endswith("/instance-life-cycle"):
            self._answer("spot")
        else:
            self._answer(None)

    def _answer(self, body: str | None, code: int = 404) -> None:
        self.send_response(200 if body is not None else code)
        self.end_headers()
        if body is not None:
            self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def metadata() -> Iterator[str]:
    _Notice.armed.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Notice)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def worker_env(resources: FlockSettings, tmp_path: Path) -> dict[str, str]:
    s = resources
    payload = tmp_path / "payload.py"
    payload.write_text(PAYLOAD)
    (tmp_path / "root").mkdir()
    return {
        "PATH": os.environ["PATH"],
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "worker")]),
        "INPUTS_BUCKET": s.inputs_bucket,
        "OUTPUTS_BUCKET": s.outputs_bucket,
        "ERROR_BUCKET": s.errors_bucket,
        "SHEPARD_FLOCK": s.flock,
        "SHEPARD_TABLE_NAME": s.table_name,
        "SHEPARD_SECRET_NAME": "ck-secrets",
        "SHEPARD_QUICK_DEPLOY_BUCKET": s.quick_deploy_bucket,
        "SHEPARD_WORK_ROOT": str(tmp_path / "root"),
        "SHEPARD_RUNNER": "process",
        "SHEPARD_PAYLOAD_COMMAND": json.dumps([sys.executable, str(payload)]),
        "SHEPARD_STOP_GRACE_SECONDS": "2",
        "SHEPARD_SPOT_POLL_SECONDS": "0.1",
        spot.RETRY_ATTEMPTS: "3",
        spot.RETRY_ON_HOST_RECLAIM: "True",
        "AWS_BATCH_JQ_NAME": "ck-queue",
    }


def _start(env: dict[str, str], job_id: str, attempt: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shepard_worker"],
        env={**env, "SHEPARD_JOB_ID": job_id, "AWS_BATCH_JOB_ATTEMPT": str(attempt)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _until(worker: subprocess.Popen[str], text: str, seen: list[str]) -> None:
    assert worker.stdout is not None
    for line in worker.stdout:
        seen.append(line)
        if text in line:
            return
    pytest.fail(f"the worker never said {text!r}:\n" + "".join(seen))


def _finish(worker: subprocess.Popen[str], seen: list[str]) -> str:
    try:
        rest, _ = worker.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        rest, _ = worker.communicate()
    return "".join(seen) + rest


def _zipped(s3: Any, bucket: str, key: str) -> dict[str, str]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        return {n: zf.read(n).decode(errors="replace") for n in zf.namelist()}


def test_a_reclaimed_attempt_saves_its_checkpoint_and_the_retry_resumes_from_it(
    worker_env: dict[str, str], metadata: str
) -> None:
    env = {**worker_env, spot.IMDS_ENDPOINT: metadata}
    s3 = boto3.client("s3")
    outputs = env["OUTPUTS_BUCKET"]
    store = JobStore(env["SHEPARD_TABLE_NAME"], boto3.client("dynamodb"))
    job_id = new_job_id()
    assert store.create(JobRecord(job_id=job_id, variables={"test1": "x"}))

    seen: list[str] = []
    worker = _start(env, job_id, 1)
    _until(worker, "checkpoint written", seen)
    _Notice.armed.set()  # the two-minute warning: the checkpoint goes up at once
    _until(worker, "Spot interruption notice", seen)
    _until(worker, "checkpoint (Spot interruption notice): 2 file(s) uploaded", seen)
    worker.send_signal(signal.SIGTERM)
    log = _finish(worker, seen)

    assert worker.returncode == 128 + signal.SIGTERM, log
    record = store.get(job_id)
    assert record is not None
    assert (record.phase, record.result, record.reclaims) == (
        Phase.QUEUED,
        Result.INTERRUPTED,
        1,
    ), log
    assert record.reason is not None and "spot reclaim" in record.reason
    (first,) = record.attempts
    assert first["number"] == 1 and first["cause"] == spot.SPOT_RECLAIM
    assert first["exit_code"] == 128 + signal.SIGTERM
    assert (first["instance_type"], first["lifecycle"], first["queue"]) == (
        "m5.large",
        "spot",
        "ck-queue",
    )
    assert first["started"] <= first["ended"]
    assert _keys(s3, outputs, prefix_of(job_id)) == [
        f"checkpoints/{job_id}/deep/weights.bin",
        f"checkpoints/{job_id}/state.txt",
    ]

    _Notice.armed.clear()
    # Batch's retry (in process: no second interpreter to start).
    code = main([], {**env, "SHEPARD_JOB_ID": job_id, "AWS_BATCH_JOB_ATTEMPT": "2"})

    record = store.get(job_id)
    assert record is not None
    assert (code, record.result) == (0, Result.SUCCEEDED), record.reason
    (result_zip,) = record.outputs
    assert _zipped(s3, outputs, result_zip)["resumed.txt"] == "step 41"
    assert [a["number"] for a in record.attempts] == [1, 2]
    assert record.attempts[1]["exit_code"] == 0 and "cause" not in record.attempts[1]
    assert _keys(s3, outputs, prefix_of(job_id)) == []  # finished: the checkpoint is gone


def test_a_terminated_job_ends_interrupted_and_a_cancelled_one_uploads_nothing(
    worker_env: dict[str, str],
) -> None:
    s3 = boto3.client("s3")
    outputs = worker_env["OUTPUTS_BUCKET"]
    store = JobStore(worker_env["SHEPARD_TABLE_NAME"], boto3.client("dynamodb"))
    terminated, cancelled = new_job_id(), new_job_id()
    for job_id in (terminated, cancelled):
        assert store.create(JobRecord(job_id=job_id, variables={"test1": "x"}))
    workers = {job_id: _start(worker_env, job_id, 1) for job_id in (terminated, cancelled)}
    logs: dict[str, list[str]] = {job_id: [] for job_id in workers}
    for job_id, worker in workers.items():
        _until(worker, "checkpoint written", logs[job_id])
    assert store.cancel(cancelled, "cancelled by a test") is not None
    started = time.monotonic()
    for worker in workers.values():
        worker.send_signal(signal.SIGTERM)
    texts = {job_id: _finish(worker, logs[job_id]) for job_id, worker in workers.items()}
    assert time.monotonic() - started < 10

    record = store.get(terminated)
    assert record is not None
    # No notice: Batch stopped the job (TerminateJob, a timeout), which it does not retry.
    assert (record.phase, record.result, record.reclaims) == (
        Phase.FINISHED,
        Result.INTERRUPTED,
        0,
    ), texts[terminated]
    assert record.reason is not None and spot.JOB_TERMINATED in record.reason
    assert record.attempts[0]["cause"] == spot.JOB_TERMINATED
    assert len(_keys(s3, outputs, prefix_of(terminated))) == 2  # kept for a rerun by hand

    record = store.get(cancelled)
    assert record is not None
    assert (record.phase, record.result, record.reason) == (
        Phase.FINISHED,
        Result.CANCELLED,
        "cancelled by a test",
    ), texts[cancelled]
    assert record.attempts[0]["cause"] == "cancelled"
    assert "nothing uploaded" in texts[cancelled]
    assert _keys(s3, outputs, prefix_of(cancelled)) == []
    assert not [k for k in _keys(s3, outputs, "") if cancelled in k]
    assert not [k for k in _keys(s3, worker_env["ERROR_BUCKET"], "") if cancelled in k]

"""The local flock's executor emits Batch's job state events to the events handler, so a job
whose worker can never start ends ``failed`` with the reason within seconds (never ``queued``),
and a job that runs gets Batch's states beside the worker's own."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from shepard.emulator import InProcessEmulator
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.service import JobService
from shepard.joblayer.testing import make_test_flock
from shepard.local.dockerfile import PayloadCommand
from shepard.local.executor import Executor
from shepard.local.outputs import FlockOutputs
from shepard.local.settings import Paths

pytestmark = [pytest.mark.integration]


def executor_for(flock: Any, tmp_path: Path, worker_argv: tuple[str, ...]) -> Executor:
    outputs = FlockOutputs.from_mapping(
        {
            "sqs_queue_url": "http://127.0.0.1/123456789012/q",
            "table_name": flock.settings.table_name,
            "job_queue_arn": flock.settings.job_queue,
            "lambda_environment": flock.settings.to_env(),
            "job_environment": {
                "SHEPARD_TABLE_NAME": flock.settings.table_name,
                "SHEPARD_WORK_ROOT": "/mnt/root",
                "USES_EFS": "False",
            },
        }
    )
    return Executor(
        dynamodb=boto3.client("dynamodb"),
        batch=boto3.client("batch"),
        outputs=lambda: outputs,
        paths=Paths(tmp_path / "state"),
        parallel=lambda: 2,
        runner=lambda: "process",
        payload=lambda: PayloadCommand(("python", "/x.py"), tmp_path, "Dockerfile"),
        stop=threading.Event(),
        base_env={"PATH": "/usr/bin:/bin"},
        worker_argv=worker_argv,
    )


def run_until_finished(executor: Executor, service: JobService, job_id: str) -> Any:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        executor.step()
        executor.batch_events.flush()
        record = service.store.get(job_id)
        if record is not None and record.phase is Phase.FINISHED:
            return record
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish within 10 s: {service.store.get(job_id)}")


def test_a_job_whose_worker_cannot_start_or_dies_early_ends_failed_with_the_reason(
    aws: InProcessEmulator, tmp_path: Path
) -> None:
    flock = make_test_flock("evs")
    service = JobService.from_settings(flock.settings)
    # A worker that cannot be started at all (the executor's own failure, process mode).
    job = service.submit({"n": "1"}, is_invoked=True)
    executor = executor_for(flock, tmp_path / "a", (str(tmp_path / "no-such-worker"),))
    try:
        record = run_until_finished(executor, service, job.job_id)
    finally:
        executor.shutdown(grace_seconds=1)
    assert (record.result, record.status, record.batch_status) == (
        Result.FAILED,
        Status.DONE,
        "FAILED",
    )
    assert record.reason is not None
    assert "could not start its worker: FileNotFoundError" in record.reason
    assert "no-such-worker" in record.reason
    # A worker that exits before it has done the job (it never claimed it).
    job = service.submit({"n": "2"}, is_invoked=True)
    executor = executor_for(flock, tmp_path / "b", (sys.executable, "-c", "raise SystemExit(3)"))
    try:
        record = run_until_finished(executor, service, job.job_id)
    finally:
        executor.shutdown(grace_seconds=1)
    assert (record.result, record.exit_code, record.batch_status) == (Result.FAILED, 3, "FAILED")
    assert record.reason is not None and "exited with code 3" in record.reason
    assert record.job_queue == flock.settings.job_queue.rsplit("/", 1)[-1]

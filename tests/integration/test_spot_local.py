"""Spot on the local flock: a job that writes a checkpoint is interrupted the way a sheep is
reclaimed (``shepard-tf local interrupt``: the Spot notice from the local metadata endpoint, then
SIGTERM), resumes on attempt 2 with its checkpoint in place and succeeds; the record lists both
attempts and the cause of the first. And ``query --status interrupted`` finds interrupted jobs,
queued for their retry or ended.

The local flock is the check suite's (tests/integration/test_check.py), applied once in the
background for the session.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from shepard.cli import main
from shepard.emulator import emulator_environment
from shepard.joblayer.ids import new_job_id
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.store import JobRecord, JobStore
from shepard.local.settings import Paths
from tests.integration.test_check import LocalFlock, local_flock  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]

# A quick-deploy run.sh: resumes from its checkpoint if it has one, else writes one and waits.
RUN_SH = """\
#!/bin/bash
set -eu
state="$CHECKPOINT_DIR/state.txt"
if [ -f "$state" ]; then
  echo "resumed from $(cat "$state")"
  cp "$state" "$ROOT_OUTPUT_NAME/resumed.txt"
  exit 0
fi
echo "step 41" > "$state"
echo "checkpoint written"
exec sleep 60
"""


def _cli(local: LocalFlock, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), local.env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _until(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_an_interrupted_job_resumes_from_its_checkpoint_on_attempt_2(
    local_flock: LocalFlock,  # noqa: F811
) -> None:
    outputs = local_flock.outputs
    s3 = local_flock.client("s3")
    store = JobStore(outputs["table_name"], local_flock.client("dynamodb"))
    folder = f"spot-{time.monotonic_ns()}"
    s3.put_object(Bucket=outputs["quick_deploy_bucket"], Key=f"{folder}/run.sh", Body=RUN_SH)

    payload = json.dumps({"QUICK_DEPLOY_DIRECTORY": folder, "test1": "spot"})
    code, out, err = _cli(local_flock, "batch_via_api", "--json_payload", payload)
    assert code == 0, err
    job_id = out.strip().splitlines()[-1]
    log = Paths(local_flock.state_dir.resolve()).jobs_dir / f"{job_id}.log"
    _until(
        "the payload's checkpoint",
        lambda: log.is_file() and "checkpoint written" in log.read_text(errors="replace"),
    )

    code, out, err = _cli(
        local_flock, "local", "interrupt", job_id, str(local_flock.flock_file), "--warning", "0.5"
    )
    assert code == 0, err
    assert f"job {job_id}: Spot interruption notice given" in out

    def finished() -> JobRecord | None:
        record = store.get(job_id)
        return record if record is not None and record.phase is Phase.FINISHED else None

    record = _until("the job to finish", finished)
    text = log.read_text(errors="replace")
    assert (record.result, record.status, record.reclaims) == (
        Result.SUCCEEDED,
        Status.DONE,
        1,
    ), text
    first, second = record.attempts
    assert (first["number"], first["cause"], first["exit_code"]) == (1, "spot reclaim", 143)
    assert first["instance_type"] == "local" and first["lifecycle"] == "local"
    assert "it will be retried" in first["reason"]
    assert (second["number"], second["exit_code"]) == (2, 0) and "cause" not in second
    assert "Spot interruption notice" in text and "resumed from step 41" in text
    (key,) = record.outputs
    body = s3.get_object(Bucket=outputs["outputs_bucket"], Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.read("resumed.txt") == b"step 41\n"
    listed = s3.list_objects_v2(Bucket=outputs["outputs_bucket"], Prefix=f"checkpoints/{job_id}/")
    assert listed.get("KeyCount", 0) == 0  # a finished job's checkpoint is removed


# Writes a checkpoint, says so and waits to be stopped (run by the worker directly, below).
PAYLOAD = """\
import os, pathlib, time
folder = pathlib.Path(os.environ["CHECKPOINT_DIR"])
(folder / "state.txt").write_text("step 41")
print("checkpoint written", flush=True)
time.sleep(60)
"""


def _worker(local: LocalFlock, tmp_path: Path, job_id: str) -> subprocess.Popen[str]:
    """A worker run as Batch runs it, on the local flock's table and buckets (no metadata
    service: no Spot notice can come)."""
    payload = tmp_path / "payload.py"
    payload.write_text(PAYLOAD)
    (tmp_path / job_id).mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "worker")]),
        **emulator_environment(local.endpoint_url, "us-east-1"),
        **local.outputs["job_environment"],
        "AWS_EC2_METADATA_DISABLED": "true",
        "SHEPARD_JOB_ID": job_id,
        "AWS_BATCH_JOB_ATTEMPT": "1",
        "SHEPARD_WORK_ROOT": str(tmp_path / job_id),
        "SHEPARD_RUNNER": "process",
        "SHEPARD_PAYLOAD_COMMAND": json.dumps([sys.executable, str(payload)]),
        "SHEPARD_STOP_GRACE_SECONDS": "2",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "shepard_worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_terminated_job_ends_interrupted_and_a_cancelled_one_uploads_nothing(
    local_flock: LocalFlock,  # noqa: F811
    tmp_path: Path,
) -> None:
    outputs = local_flock.outputs
    s3 = local_flock.client("s3")
    store = JobStore(outputs["table_name"], local_flock.client("dynamodb"))
    terminated, cancelled = new_job_id(), new_job_id()
    for job_id in (terminated, cancelled):  # no BATCH_JOB_ID: the executor leaves them alone
        assert store.create(JobRecord(job_id=job_id, variables={"test1": "x"}))
    workers = {job_id: _worker(local_flock, tmp_path, job_id) for job_id in (terminated, cancelled)}
    logs: dict[str, list[str]] = {job_id: [] for job_id in workers}
    for job_id, worker in workers.items():
        assert worker.stdout is not None
        for line in worker.stdout:
            logs[job_id].append(line)
            if "checkpoint written" in line:
                break
    assert store.cancel(cancelled, "cancelled by a test") is not None
    for worker in workers.values():
        worker.send_signal(signal.SIGTERM)
    texts = {}
    for job_id, worker in workers.items():
        rest, _ = worker.communicate(timeout=20)
        texts[job_id] = "".join(logs[job_id]) + rest
        assert worker.returncode == 128 + signal.SIGTERM, texts[job_id]

    record = store.get(terminated)
    assert record is not None
    # No notice: Batch stopped the job (TerminateJob, a timeout), which it does not retry.
    assert (record.phase, record.result, record.reclaims) == (
        Phase.FINISHED,
        Result.INTERRUPTED,
        0,
    ), texts[terminated]
    assert record.reason is not None and "job terminated" in record.reason
    assert record.attempts[0]["cause"] == "job terminated"
    kept = s3.list_objects_v2(Bucket=outputs["outputs_bucket"], Prefix=f"checkpoints/{terminated}/")
    assert kept.get("KeyCount") == 1  # kept: a rerun by hand starts from it

    record = store.get(cancelled)
    assert record is not None
    assert (record.phase, record.result, record.reason) == (
        Phase.FINISHED,
        Result.CANCELLED,
        "cancelled by a test",
    ), texts[cancelled]
    assert record.attempts[0]["cause"] == "cancelled"
    assert "nothing uploaded" in texts[cancelled]
    for bucket in (outputs["outputs_bucket"], outputs["errors_bucket"]):
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        assert not [o["Key"] for o in listed if cancelled in o["Key"]]


def test_interrupting_a_job_that_does_not_run_says_so(local_flock: LocalFlock) -> None:  # noqa: F811
    code, _, err = _cli(local_flock, "local", "interrupt", "a" * 32, str(local_flock.flock_file))
    assert code == 2
    assert "has no running worker on this local flock" in err and "Traceback" not in err
    code, _, err = _cli(local_flock, "local", "interrupt", "not-a-job")
    assert code == 2 and "is not a job id" in err


def test_query_status_interrupted_finds_queued_and_ended_ones(
    local_flock: LocalFlock,  # noqa: F811
) -> None:
    store = JobStore(local_flock.outputs["table_name"], local_flock.client("dynamodb"))
    waiting, ended, failed = (new_job_id() for _ in range(3))
    attempt = {"number": 1, "cause": "spot reclaim", "exit_code": 143}
    store.put_many(
        [
            JobRecord(
                job_id=waiting,
                created_at="2026-11-25T08:00:00.000000Z",
                result=Result.INTERRUPTED,
                reason="the worker received SIGTERM (spot reclaim); it will be retried",
                attempts=(attempt,),
                reclaims=1,
            ),
            JobRecord(
                job_id=ended,
                created_at="2026-11-25T08:00:01.000000Z",
                phase=Phase.FINISHED,
                status=Status.DONE,
                result=Result.INTERRUPTED,
                reason="the worker received SIGTERM (job terminated); not retried",
            ),
            JobRecord(
                job_id=failed,
                created_at="2026-11-25T08:00:02.000000Z",
                phase=Phase.FINISHED,
                status=Status.DONE,
                result=Result.FAILED,
            ),
        ]
    )

    code, out, err = _cli(local_flock, "query", "--status", "interrupted", "--json")

    assert code == 0, err
    found = {r["UUID"]: r for r in json.loads(out)}
    assert waiting in found and ended in found and failed not in found
    assert found[waiting]["ATTEMPTS"] == [attempt] and found[waiting]["RECLAIMS"] == 1
    assert found[ended]["PHASE"] == "finished"


def test_every_attempt_has_its_entry_across_queues(local_flock: LocalFlock) -> None:  # noqa: F811
    store = JobStore(local_flock.outputs["table_name"], local_flock.client("dynamodb"))
    job_id = new_job_id()
    assert store.create(JobRecord(job_id=job_id))

    store.start_attempt(job_id, 1, queue="spot-queue", instance_type="m5.large", lifecycle="spot")
    store.end_attempt(job_id, 1, exit_code=143, cause="spot reclaim", reclaimed=True)
    store.note_attempt(job_id, 2, queue="spot-queue", log_stream="job/default/abc")  # Batch first
    store.start_attempt(job_id, 2, host="ip-10-0-1-5")  # the worker fills the same entry
    store.end_attempt(job_id, 2, exit_code=143, cause="spot reclaim", reclaimed=True)
    store.start_attempt(job_id, 1, queue="on-demand-queue", lifecycle="on_demand")  # resubmitted

    record = store.get(job_id)
    assert record is not None
    assert [(a["number"], a.get("queue")) for a in record.attempts] == [
        (1, "spot-queue"),
        (2, "spot-queue"),
        (1, "on-demand-queue"),
    ]
    assert record.attempts[1]["log_stream"] == "job/default/abc"
    assert record.attempts[1]["host"] == "ip-10-0-1-5" and "started" in record.attempts[1]
    assert "ended" not in record.attempts[2] and record.reclaims == 2

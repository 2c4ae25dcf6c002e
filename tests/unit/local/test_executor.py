"""The executor runs one worker per submitted Batch job, within the flock's parallelism."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from shepard.emulator import InProcessEmulator
from shepard.joblayer.service import JobService
from shepard.joblayer.store import JobRecord, created_at_text, utc_now
from shepard.joblayer.testing import make_test_flock
from shepard.local.dockerfile import PayloadCommand
from shepard.local.executor import Executor
from shepard.local.outputs import FlockOutputs
from shepard.local.settings import Paths

# A stand-in for `python -m shepard_worker` that records what it was given and how long it ran.
FAKE_WORKER = """
import json, os, sys, time
start = time.time()
time.sleep(0.4)
index = os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX")
key = os.environ["SHEPARD_JOB_ID"] + ("-" + index if index else "")
out = os.path.join(os.environ["FAKE_OUT"], key + "." + str(os.getpid()) + ".json")
with open(out, "w") as f:
    json.dump({"env": dict(os.environ), "cwd": os.getcwd(), "start": start, "end": time.time()}, f)
"""


@pytest.mark.integration
def test_submitted_jobs_each_run_once_within_the_parallelism(
    aws: InProcessEmulator, tmp_path: Path
) -> None:
    flock = make_test_flock("exec")
    service = JobService.from_settings(flock.settings)
    singles = [service.submit({"n": str(n)}, is_invoked=True).job_id for n in range(3)]
    array = service.submit_array([{"i": "0"}, {"i": "1"}])
    assert array.accepted
    # recorded but never submitted to Batch: must not run
    unsubmitted = "f" * 32
    service.store.create(
        JobRecord(job_id=unsubmitted, created_at=created_at_text(utc_now()), variables={})
    )
    out = tmp_path / "out"
    out.mkdir()
    code = tmp_path / "code"
    code.mkdir()
    outputs = FlockOutputs.from_mapping(
        {
            "sqs_queue_url": "http://127.0.0.1/123456789012/q",
            "table_name": flock.settings.table_name,
            "job_queue_arn": flock.settings.job_queue,
            "job_environment": {
                "SHEPARD_TABLE_NAME": flock.settings.table_name,
                "SHEPARD_WORK_ROOT": "/mnt/root",
                "USES_EFS": "False",
                "FAKE_OUT": str(out),
            },
        }
    )
    paths = Paths(tmp_path / "state")
    import boto3

    executor = Executor(
        dynamodb=boto3.client("dynamodb"),
        batch=boto3.client("batch"),
        outputs=lambda: outputs,
        paths=paths,
        parallel=lambda: 2,
        runner=lambda: "process",
        payload=lambda: PayloadCommand(("python", "/x.py"), code, "Dockerfile"),
        stop=threading.Event(),
        base_env={"PATH": "/usr/bin:/bin", "SECRET_OF_THE_CLI": "x"},
        worker_argv=(sys.executable, "-c", FAKE_WORKER),
    )
    deadline = time.monotonic() + 30
    while executor.finished < 5 and time.monotonic() < deadline:
        executor.step()
        time.sleep(0.05)
    for _ in range(3):  # seen again (the fake worker claims nothing): never started twice
        executor.step()
    assert executor.started == 5 and executor.finished == 5
    assert set(executor.exit_codes.values()) == {0}

    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    keys = sorted(p.name.split(".")[0] for p in out.glob("*.json"))
    assert keys == sorted([*singles, f"{array.job_id}-0", f"{array.job_id}-1"])
    assert unsubmitted not in keys
    for run in runs:
        env = run["env"]
        assert env["SHEPARD_RUNNER"] == "process"
        assert json.loads(env["SHEPARD_PAYLOAD_COMMAND"]) == ["python", "/x.py"]
        assert env["SHEPARD_WORK_ROOT"] == str(paths.work_root)  # not the sheep's /mnt/root
        assert env["SHEPARD_TABLE_NAME"] == flock.settings.table_name
        assert env["AWS_BATCH_JOB_ID"]
        assert "SECRET_OF_THE_CLI" not in env  # only the documented environment
        assert run["cwd"] == str(code)
    children = [r["env"] for r in runs if "AWS_BATCH_JOB_ARRAY_INDEX" in r["env"]]
    assert sorted(c["AWS_BATCH_JOB_ARRAY_INDEX"] for c in children) == ["0", "1"]
    assert {c["SHEPARD_JOB_ID"] for c in children} == {array.job_id}

    # never more than two at once, and two at once did happen
    events = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs])
    level, peak = 0, 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    assert peak == 2
    assert (paths.jobs_dir / f"{singles[0]}.log").exists()

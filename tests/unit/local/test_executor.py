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


# -- docker mode ------------------------------------------------------------------------------

DESCRIBED_DEFINITION = {
    "jobDefinitionArn": "arn:aws:batch:us-east-1:123456789012:job-definition/f-job:3",
    "containerProperties": {
        "image": "127.0.0.1:5000/f:worker-abc",
        "jobRoleArn": "arn:aws:iam::123456789012:role/f-job",
        "environment": [
            {"name": "SHEPARD_PAYLOAD_IMAGE", "value": "127.0.0.1:5000/f:payload-abc"},
            {"name": "SHEPARD_WORK_ROOT", "value": "/mnt/root"},
            {"name": "USES_EFS", "value": "True"},
            {"name": "SHEPARD_EFS_ROOT", "value": "/mnt/efs"},
            {"name": "ULIMIT_FILENO", "value": "1048576"},
        ],
        "resourceRequirements": [
            {"type": "VCPU", "value": "2"},
            {"type": "MEMORY", "value": "3000"},
        ],
        "ulimits": [{"name": "nofile", "softLimit": 1048576, "hardLimit": 1048576}],
    },
}


def test_a_worker_container_is_started_as_batch_starts_the_job_definition(tmp_path: Path) -> None:
    from shepard.local.containers import (
        JobDefinition,
        capped_nofile,
        job_limits,
        worker_container_spec,
    )
    from shepard.local.executor import JobRun, container_environment, job_folders

    definition = JobDefinition.from_described(DESCRIBED_DEFINITION)
    assert definition.image == "127.0.0.1:5000/f:worker-abc"
    assert definition.job_role_arn == "arn:aws:iam::123456789012:role/f-job"
    assert (definition.vcpus, definition.memory_mib, definition.nofile) == (2.0, 3000, 1048576)
    # The job's own overrides win over its definition's (SubmitJob's resourceRequirements).
    described_job = {"container": {"resourceRequirements": [{"type": "MEMORY", "value": "700"}]}}
    assert job_limits(described_job, definition) == (2.0, 700)
    assert job_limits({}, definition) == (2.0, 3000)
    assert capped_nofile(1048576, 20000) == 20000
    assert capped_nofile(4096, 20000) == 4096
    assert capped_nofile(4096, None) == 4096

    outputs = FlockOutputs.from_mapping(
        {
            "sqs_queue_url": "http://127.0.0.1/123456789012/q",
            "table_name": "f-jobs",
            "job_queue_arn": "arn:aws:batch:us-east-1:123456789012:job-queue/f-queue",
            "job_environment": {"FROM_THE_OUTPUTS": "not used: the definition is"},
        }
    )
    paths = Paths(tmp_path / "state")
    run = JobRun("a" * 32, "batch-1", {"SHEPARD_JOB_ID": "a" * 32})
    base = {
        "PATH": "/host/bin",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_PROFILE": "someone",
        "SECRET_OF_THE_CLI": "x",
    }
    env = container_environment(run, outputs, definition, base=base, paths=paths)
    assert env["SHEPARD_PAYLOAD_IMAGE"] == "127.0.0.1:5000/f:payload-abc"
    assert env["SHEPARD_WORK_ROOT"] == str(paths.work_root)  # the same path on both sides
    assert env["SHEPARD_EFS_ROOT"] == str(paths.root / "efs")
    assert env["SHEPARD_RUNNER"] == "docker"
    assert env["SHEPARD_CHECK_MOUNTS"] == "False"
    assert env["AWS_BATCH_JOB_ID"] == "batch-1" and env["SHEPARD_JOB_ID"] == "a" * 32
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"  # the worker's, for itself
    assert "AWS_PROFILE" not in env and "SECRET_OF_THE_CLI" not in env
    assert "PATH" not in env and "FROM_THE_OUTPUTS" not in env  # the image keeps its PATH
    folders = job_folders(env)
    assert folders == (paths.work_root, paths.root / "efs")

    spec = worker_container_spec(
        image=definition.image,
        env=env,
        name="shepard-worker-x",
        folders=folders,
        vcpus=2.0,
        memory_mib=700,
        nofile=20000,
        labels={"shepard.job": "x"},
    )
    spec.pop("detach")
    # What the Docker SDK sends the engine for these arguments.
    from docker.models.containers import _create_container_args

    args = _create_container_args({**spec, "version": "1.41"})
    host = args.pop("host_config")
    assert args["image"] == "127.0.0.1:5000/f:worker-abc"
    assert args["user"] == "0:0"
    assert args["labels"] == {"shepard": "worker", "shepard.job": "x"}
    assert host["NetworkMode"] == "host"
    assert sorted(host["Binds"]) == sorted(
        [
            "/var/run/docker.sock:/var/run/docker.sock:rw",
            f"{paths.work_root}:{paths.work_root}:rw",
            f"{paths.root / 'efs'}:{paths.root / 'efs'}:rw",
        ]
    )
    assert host["NanoCpus"] == 2_000_000_000
    assert host["Memory"] == 700 * 1024 * 1024
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 20000, "Hard": 20000}]


class FakeDockerJobs:
    """DockerJobs without an engine: says whether the images are there, records the orders."""

    def __init__(self, missing: str | None) -> None:
        self.missing = missing
        self.orders: list[object] = []
        self.asked: list[tuple[str, ...]] = []

    def images_missing(self, images: tuple[str, ...]) -> str | None:
        self.asked.append(images)
        return self.missing

    def start(self, order: object) -> object:
        self.orders.append(order)

        class Done:
            name = "shepard-worker-fake"
            pid = 0
            returncode = 0

            def poll(self) -> int:
                return 0

            def wait(self, timeout: float | None = None) -> int:
                return 0

            def send_signal(self, sig: int) -> None: ...

            def kill(self) -> None: ...

        return Done()


@pytest.mark.integration
def test_runner_auto_runs_containers_only_when_the_flocks_images_are_there(
    aws: InProcessEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3

    flock = make_test_flock("auto")
    service = JobService.from_settings(flock.settings)
    out = tmp_path / "out"
    out.mkdir()
    outputs = FlockOutputs.from_mapping(
        {
            "sqs_queue_url": "http://127.0.0.1/123456789012/q",
            "table_name": flock.settings.table_name,
            "job_queue_arn": flock.settings.job_queue,
            "job_definition_arn": flock.settings.job_definition,
            "job_environment": {
                "SHEPARD_TABLE_NAME": flock.settings.table_name,
                "SHEPARD_PAYLOAD_IMAGE": "127.0.0.1:5000/auto:payload-1",
                "FAKE_OUT": str(out),
            },
        }
    )

    def executor(docker_jobs: FakeDockerJobs) -> Executor:
        return Executor(
            dynamodb=boto3.client("dynamodb"),
            batch=boto3.client("batch"),
            outputs=lambda: outputs,
            paths=Paths(tmp_path / "state"),
            parallel=lambda: 1,
            runner=lambda: "docker",  # an engine answers
            runner_setting=lambda: "auto",
            payload=lambda: PayloadCommand(("python", "/x.py"), tmp_path, "Dockerfile"),
            stop=threading.Event(),
            base_env={"PATH": "/usr/bin:/bin"},
            worker_argv=(sys.executable, "-c", FAKE_WORKER),
            docker_jobs=docker_jobs,  # type: ignore[arg-type]
        )

    # Images not pushed: a process, and the log says why (once).
    first = service.submit({"n": "1"}, is_invoked=True).job_id
    missing = FakeDockerJobs("127.0.0.1:5000/auto:worker-latest is not in its registry")
    with caplog.at_level("INFO", logger="shepard.local.executor"):
        runner = executor(missing)
        deadline = time.monotonic() + 20
        while runner.finished < 1 and time.monotonic() < deadline:
            runner.step()
            time.sleep(0.05)
    assert runner.finished == 1 and missing.orders == []
    assert missing.asked == [("worker:latest", "127.0.0.1:5000/auto:payload-1")]
    assert [p.name.split(".")[0] for p in out.glob("*.json")] == [first]
    notes = [r.getMessage() for r in caplog.records if "runner auto" in r.getMessage()]
    assert notes == [
        "runner auto: jobs run as processes, not containers: "
        "127.0.0.1:5000/auto:worker-latest is not in its registry"
    ]

    # Images there: the job's worker is the job definition's image, with the job's limits.
    # (The fake worker claimed nothing: the first job is still queued and runs again here.)
    second = service.submit({"n": "2"}, is_invoked=True).job_id
    present = FakeDockerJobs(None)
    runner = executor(present)
    deadline = time.monotonic() + 20
    while runner.finished < 2 and time.monotonic() < deadline:
        runner.step()
        time.sleep(0.05)
    orders = {o.job_id: o for o in present.orders}  # type: ignore[attr-defined]
    assert set(orders) == {first, second}
    order = orders[second]
    assert order.definition.image == "worker:latest"  # type: ignore[attr-defined]
    assert (order.vcpus, order.memory_mib) == (1.0, 512)  # type: ignore[attr-defined]
    assert order.env["SHEPARD_RUNNER"] == "docker"  # type: ignore[attr-defined]


@pytest.mark.integration
def test_a_worker_that_never_started_fails_its_job_through_the_job_store(
    aws: InProcessEmulator, tmp_path: Path
) -> None:
    import boto3

    from shepard.joblayer.store import JobStore

    flock = make_test_flock("nostart")
    service = JobService.from_settings(flock.settings)
    job_id = service.submit({"n": "1"}, is_invoked=True).job_id
    outputs = FlockOutputs.from_mapping(
        {
            "sqs_queue_url": "http://127.0.0.1/123456789012/q",
            "table_name": flock.settings.table_name,
        }
    )
    runner = Executor(
        dynamodb=boto3.client("dynamodb"),
        batch=boto3.client("batch"),
        outputs=lambda: outputs,
        paths=Paths(tmp_path / "state"),
        parallel=lambda: 1,
        runner=lambda: "docker",
        payload=lambda: None,
        stop=threading.Event(),
    )
    reason = "while pulling the worker image r/w:missing (the job definition's image): not found"
    runner.record_failure(job_id, "batch-1", reason)
    store = JobStore(flock.settings.table_name, boto3.client("dynamodb"))
    record = store.get(job_id)
    assert record is not None
    assert record.phase.value == "finished" and record.result is not None
    assert record.result.value == "failed" and record.reason == reason
    # A job some worker has (or had) is left alone: never claimed twice.
    runner.record_failure(job_id, "batch-1", "something else")
    again = store.get(job_id)
    assert again is not None and again.reason == reason

"""why JOB: a job no instance can hold (on the applied flock's real compute environments), a
failed job's reason and log on the local flock, an unknown id."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.instances import fits
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.store import JobRecord, JobStore, created_at_text, utc_now
from shepard.joblayer.testing import create_job_table
from tests.unit.cli.helpers import cli_env, run, write_flock_profile

pytestmark = pytest.mark.integration

TABLE = "whyflock-jobs"


def test_why_names_the_compute_environment_and_the_memory_shortfall(
    applied_flock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied_flock.activate(monkeypatch)
    outputs = applied_flock.outputs
    # A job of the flock's queue asking more memory than any instance type of the flock has
    # (JOB_QUEUE as the events handler records it; no Batch job, so no worker picks it up).
    job_id = f"why-{uuid.uuid4().hex[:12]}"
    JobStore(outputs["table_name"]).create(
        JobRecord(
            job_id,
            created_at=created_at_text(utc_now()),
            job_queue=outputs["job_queue_name"],
            vcpus=2,
            memory_mib=2_000_000,
        )
    )
    batch = boto3.client("batch")
    [queue] = batch.describe_job_queues(jobQueues=[outputs["job_queue_name"]])["jobQueues"]
    arns = [item["computeEnvironment"] for item in queue["computeEnvironmentOrder"]]
    environments = batch.describe_compute_environments(computeEnvironments=arns)[
        "computeEnvironments"
    ]
    env = _env(outputs["table_name"], tmp_path)

    result = run(["why", job_id], env)

    assert result.code == 0, result.err
    text = " ".join(result.out.split())
    assert f"job {job_id}: waiting" in text
    assert "It asks 2 vCPUs and 2000000 MiB of memory (from its record)." in text
    assert "No compute environment can ever place it." in text
    for environment in environments:
        fit = fits(2, 2_000_000, 0, environment["computeResources"]["instanceTypes"])
        assert fit.most_memory_mib is not None
        name, usable = fit.most_memory_mib
        assert (
            f"Compute environment {environment['computeEnvironmentName']}: it asks 2000000 MiB "
            f"of memory and the largest instance type, {name}, leaves {usable} MiB to jobs "
            f"({2_000_000 - usable} MiB short)."
        ) in text

    answer = json.loads(run(["why", job_id, "--json"], env).out)
    assert answer["queue"] == outputs["job_queue_name"] and answer["queue_state"] == "ENABLED"
    assert {e["name"] for e in answer["environments"]} == {
        e["computeEnvironmentName"] for e in environments
    }
    assert all(e["fits"] is False and "MiB short" in e["why_not"] for e in answer["environments"])


@pytest.fixture(scope="module")
def why_table(emulator: InProcessEmulator) -> Iterator[str]:
    """A job table holding one failed job (the table is all these tests need)."""
    with pytest.MonkeyPatch.context() as patch:
        emulator.reset()
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        create_job_table(boto3.client("dynamodb"), TABLE)
        JobStore(TABLE).create(
            JobRecord(
                "job-failed",
                status=Status.DONE,
                phase=Phase.FINISHED,
                result=Result.FAILED,
                exit_code=3,
                reason="the payload exited with 3",
                created_at="2026",
            )
        )
        yield TABLE


def _env(table: str, tmp_path: Path) -> dict[str, str]:
    env = cli_env(tmp_path / "config")
    write_flock_profile(env, FlockSettings("whyflock", table, "q", "d", "i", "o", "e", "qd"))
    return env


def test_why_a_failed_job_on_the_local_flock_shows_its_reason_and_last_log_lines(
    why_table: str, tmp_path: Path
) -> None:
    jobs = tmp_path / "state" / "local" / "jobs"
    jobs.mkdir(parents=True)
    (jobs / "job-failed.log").write_text("".join(f"line {n}\n" for n in range(1, 31)))

    result = run(
        ["why", "job-failed", "--state_dir", str(tmp_path / "state")], _env(why_table, tmp_path)
    )

    assert result.code == 0, result.err
    assert "It failed: the payload exited with 3." in result.out
    assert "Exit code 3." in result.out
    shown = [line.strip() for line in result.out.splitlines() if line.strip().startswith("|")]
    assert shown == [f"| line {n}" for n in range(21, 31)]


def test_why_an_unknown_job_says_how_to_find_one(why_table: str, tmp_path: Path) -> None:
    result = run(["why", "no-such-job"], _env(why_table, tmp_path))
    assert result.code == 2
    assert "has no record with that id" in result.err and "Traceback" not in result.err

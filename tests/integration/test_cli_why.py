"""why JOB against the emulator: a job no instance can hold, a failed job's log, an unknown id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.instances import usable_memory_mib
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import create_job_table
from tests.unit.cli.helpers import cli_env, run, write_flock_profile

pytestmark = pytest.mark.integration

TRUST = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":'
    '{"Service":"batch.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
)


def _managed_queue(name: str, instance_types: list[str], max_vcpus: int) -> str:
    """A managed compute environment (as terraform/modules/batch makes) behind a job queue."""
    ec2, iam, batch = boto3.client("ec2"), boto3.client("iam"), boto3.client("batch")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
    role = iam.create_role(RoleName=f"{name}-batch", AssumeRolePolicyDocument=TRUST)["Role"]
    profile = iam.create_instance_profile(InstanceProfileName=f"{name}-sheep")["InstanceProfile"]
    environment = batch.create_compute_environment(
        computeEnvironmentName=f"{name}-default-1",
        type="MANAGED",
        state="ENABLED",
        serviceRole=role["Arn"],
        computeResources={
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": max_vcpus,
            "desiredvCpus": 0,
            "instanceTypes": instance_types,
            "subnets": [subnet],
            "securityGroupIds": [group],
            "instanceRole": profile["Arn"],
        },
    )
    queue = batch.create_job_queue(
        jobQueueName=f"{name}-queue",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}
        ],
    )
    return str(queue["jobQueueArn"])


@dataclass(frozen=True)
class WhyFlock:
    table: str
    big_job: str  # a waiting job asking 64000 MiB of a queue of m5.large and m5.xlarge


@pytest.fixture(scope="module")
def why_flock(emulator: InProcessEmulator) -> Iterator[WhyFlock]:
    """One table, queue and job for the module: making the compute environment is the slow part."""
    with pytest.MonkeyPatch.context() as patch:
        emulator.reset()
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        table = "whyflock-jobs"
        create_job_table(boto3.client("dynamodb"), table)
        queue = _managed_queue("whyflock", ["m5.large", "m5.xlarge"], 16)
        batch = boto3.client("batch")
        definition = batch.register_job_definition(
            jobDefinitionName="whyflock-job",
            type="container",
            containerProperties={
                "image": "worker:latest",
                "resourceRequirements": [
                    {"type": "VCPU", "value": "2"},
                    {"type": "MEMORY", "value": "64000"},
                ],
            },
        )
        submitted = batch.submit_job(
            jobName="big", jobQueue=queue, jobDefinition=definition["jobDefinitionArn"]
        )
        store = JobStore(table)
        store.create(JobRecord("job-big", batch_job_id=submitted["jobId"], created_at="2026"))
        store.create(
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
        yield WhyFlock(table, "job-big")


def _env(flock: WhyFlock, tmp_path: Path) -> dict[str, str]:
    env = cli_env(tmp_path / "config")
    settings = FlockSettings("whyflock", flock.table, "q", "d", "i", "o", "e", "qd")
    write_flock_profile(env, settings)
    return env


def test_why_names_the_compute_environment_and_the_memory_shortfall(
    why_flock: WhyFlock, tmp_path: Path
) -> None:
    env = _env(why_flock, tmp_path)

    result = run(["why", why_flock.big_job], env)

    assert result.code == 0, result.err
    short = 64000 - usable_memory_mib("m5.xlarge")
    assert "job job-big: waiting" in result.out
    assert "It asks 2 vCPUs and 64000 MiB of memory" in result.out
    assert "No compute environment can ever place it." in result.out
    assert (
        f"Compute environment whyflock-default-1: it asks 64000 MiB of memory and the largest "
        f"instance type, m5.xlarge, leaves {usable_memory_mib('m5.xlarge')} MiB to jobs "
        f"({short} MiB short)."
    ) in " ".join(result.out.split())

    answer = json.loads(run(["why", why_flock.big_job, "--json"], env).out)
    [environment] = answer["environments"]
    assert (environment["name"], environment["fits"], environment["max_vcpus"]) == (
        "whyflock-default-1",
        False,
        16,
    )
    assert answer["memory_mib"] == 64000 and answer["queue"] == "whyflock-queue"


def test_why_a_failed_job_on_the_local_flock_shows_its_reason_and_last_log_lines(
    why_flock: WhyFlock, tmp_path: Path
) -> None:
    jobs = tmp_path / "state" / "local" / "jobs"
    jobs.mkdir(parents=True)
    (jobs / "job-failed.log").write_text("".join(f"line {n}\n" for n in range(1, 31)))

    result = run(
        ["why", "job-failed", "--state_dir", str(tmp_path / "state")], _env(why_flock, tmp_path)
    )

    assert result.code == 0, result.err
    assert "It failed: the payload exited with 3." in result.out
    assert "Exit code 3." in result.out
    shown = [line.strip() for line in result.out.splitlines() if line.strip().startswith("|")]
    assert shown == [f"| line {n}" for n in range(21, 31)]


def test_why_an_unknown_job_says_how_to_find_one(why_flock: WhyFlock, tmp_path: Path) -> None:
    result = run(["why", "no-such-job"], _env(why_flock, tmp_path))
    assert result.code == 2
    assert "has no record with that id" in result.err and "Traceback" not in result.err

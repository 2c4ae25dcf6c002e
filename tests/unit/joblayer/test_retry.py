"""Retries after a failure: an out-of-memory kill comes back with twice the memory, and a job Spot
keeps reclaiming moves to the on-demand queue, with one record across Batch jobs.

Against the session emulator: a real job table, two real Batch queues and a job definition; the
FAILED events are AWS's documented samples (tests/fixtures/batch_events) going through the events
handler, and what Batch received is read from the emulator's own record of each SubmitJob.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas.events import handler as events
from shepard.emulator import InProcessEmulator
from shepard.joblayer.batch import BatchSubmitter, TransientFailure
from shepard.joblayer.batch_events import BatchEvent
from shepard.joblayer.ids import child_job_id, new_job_id
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.retry import (
    RetryPolicy,
    after_failure,
    decide,
    is_out_of_memory,
    resource_requirements,
)
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import create_job_table

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "batch_events"
ACCOUNT, REGION = "123456789012", "us-east-1"
TABLE = "ladder-jobs"
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"


@dataclass
class Flock:
    settings: FlockSettings
    store: JobStore
    batch: Any
    spot_queue: str  # the main queue (Spot first)
    on_demand_queue: str

    def submitter(self) -> BatchSubmitter:
        return BatchSubmitter(
            self.settings.job_queue, self.settings.job_definition, self.batch, sleep=lambda _: None
        )

    def runtime(self) -> events.Runtime:
        return events.Runtime.from_settings(
            self.settings, {}, dynamodb=self.store.client, batch=self.batch
        )

    def submitted_job(self, record: JobRecord) -> str:
        """A record with a Batch job on the main queue, as the API makes it."""
        assert self.store.create(record)
        batch_job_id = self.submitter().submit(record.job_id, tag=record.tag)
        self.store.set_batch_job_id(record.job_id, batch_job_id)
        return batch_job_id


def _queue(batch: Any, name: str, environment: str) -> str:
    return str(
        batch.create_job_queue(
            jobQueueName=name,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )["jobQueueArn"]
    )


def _client(emulator: InProcessEmulator, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=emulator.endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def flock(emulator: InProcessEmulator) -> Flock:
    """One table, two queues and a job definition for the module (each test has jobs of its
    own): the Batch resources alone take seconds to make, too long to make per test. Their names
    are this module's own, so the emulator is not reset (a reset makes IAM load AWS's managed
    policies again, seconds more)."""
    dynamodb, batch, iam = (_client(emulator, s) for s in ("dynamodb", "batch", "iam"))
    create_job_table(dynamodb, TABLE)
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "batch.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    role = iam.create_role(RoleName="ladder-batch", AssumeRolePolicyDocument=trust)
    environment = batch.create_compute_environment(
        computeEnvironmentName="ladder-ce",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role["Role"]["Arn"],
    )["computeEnvironmentArn"]
    spot = _queue(batch, "ladder-queue", environment)
    on_demand = _queue(batch, "ladder-queue-on-demand", environment)
    definition = batch.register_job_definition(
        jobDefinitionName="ladder-job",
        type="container",
        containerProperties={
            "image": "worker:latest",
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "2048"},
            ],
        },
    )["jobDefinitionArn"]
    settings = FlockSettings(
        flock="ladder",
        table_name=TABLE,
        job_queue=spot,
        job_definition=definition,
        inputs_bucket="in",
        outputs_bucket="out",
        errors_bucket="err",
        quick_deploy_bucket="qd",
        on_demand_job_queue=on_demand,
        spot_attempts=2,
        oom_factor=2,
        oom_max_memory_mib=6000,
        job_memory_mib=2048,
    )
    return Flock(settings, JobStore(TABLE, dynamodb), batch, spot, on_demand)


def sample(name: str, job_id: str, batch_job_id: str, queue: str, **detail: Any) -> dict[str, Any]:
    """A documented FAILED event of our Batch job (its id, queue and SHEPARD_JOB_ID override)."""
    event: dict[str, Any] = copy.deepcopy(json.loads((SAMPLES / f"{name}.json").read_text()))
    event["detail"].update(jobId=batch_job_id, jobQueue=queue, **detail)
    event["detail"]["container"]["environment"] = [{"name": "SHEPARD_JOB_ID", "value": job_id}]
    return event


def received(batch_job_id: str) -> Any:
    """The emulator's record of a SubmitJob it received (its container overrides as sent)."""
    from moto.batch.models import batch_backends

    return batch_backends[ACCOUNT][REGION].get_job_by_id(batch_job_id)


def jobs_of(job_id: str) -> list[Any]:
    """The Batch jobs the emulator received for one record (by their SHEPARD_JOB_ID)."""
    from moto.batch.models import batch_backends

    wanted = {"name": "SHEPARD_JOB_ID", "value": job_id}
    jobs = batch_backends[ACCOUNT][REGION]._jobs.values()
    return [j for j in jobs if wanted in j.container_overrides.get("environment", [])]


def memory_of(overrides: dict[str, Any]) -> str | None:
    found = [r["value"] for r in overrides.get("resourceRequirements", []) if r["type"] == "MEMORY"]
    return found[0] if found else None


def test_an_oom_killed_job_is_submitted_again_with_twice_the_memory(flock: Flock) -> None:
    job_id = new_job_id()
    first = flock.submitted_job(JobRecord(job_id=job_id, tag="big-genome"))
    rt = flock.runtime()

    event = sample("failed_out_of_memory", job_id, first, flock.spot_queue)
    assert events.handle_event(rt, event)

    record = flock.store.get(job_id)
    assert record is not None
    second = record.batch_job_id
    assert second and second != first
    # What Batch received: the same record id, on the same queue, with 2 x 2048 MiB.
    job = received(second)
    assert memory_of(job.container_overrides) == "4096"
    assert {"name": "SHEPARD_JOB_ID", "value": job_id} in job.container_overrides["environment"]
    [described] = flock.batch.describe_jobs(jobs=[second])["jobs"]
    assert described["jobQueue"] == flock.spot_queue
    assert described["jobName"] == "big-genome"
    assert (record.phase, record.status, record.result) == (
        Phase.QUEUED,
        Status.NOT_YET_INITIATED,
        None,
    )
    assert (record.memory_mib, record.exit_code, record.job_queue) == (4096, None, "ladder-queue")
    assert "4096 MiB" in (record.reason or "")

    # Killed again: 8192 would pass the flock's 6000 MiB ceiling, so it gets 6000 ...
    again = sample("failed_out_of_memory", job_id, second, flock.spot_queue)
    assert events.handle_event(rt, again)
    record = flock.store.get(job_id)
    assert record is not None and record.batch_job_id not in (first, second)
    assert memory_of(received(str(record.batch_job_id)).container_overrides) == "6000"
    # ... and once at the ceiling it ends failed with Batch's reason: nothing more to give.
    third = str(record.batch_job_id)
    assert events.handle_event(rt, sample("failed_out_of_memory", job_id, third, flock.spot_queue))
    record = flock.store.get(job_id)
    assert record is not None
    assert (record.phase, record.result, record.batch_job_id) == (
        Phase.FINISHED,
        Result.FAILED,
        third,
    )


def test_reclaims_move_the_job_to_the_on_demand_queue_with_one_record(flock: Flock) -> None:
    job_id = new_job_id()
    first = flock.submitted_job(JobRecord(job_id=job_id, tag="reclaimed"))
    # What the worker recorded of its attempt before the host went (kept across queues).
    flock.store.start_attempt(job_id, 1, queue="ladder-queue", lifecycle="spot")
    rt = flock.runtime()

    # Reclaim 1 of spot.attempts 2: back on the Spot queue.
    assert events.handle_event(
        rt, sample("failed_host_terminated", job_id, first, flock.spot_queue, attempts=[{}])
    )
    record = flock.store.get(job_id)
    assert record is not None and record.reclaims == 1
    second = str(record.batch_job_id)
    assert received(second).job_queue.arn == flock.spot_queue
    assert record.job_queue == "ladder-queue" and record.phase is Phase.QUEUED

    # Reclaim 2: the on-demand queue, same UUID, ATTEMPTS kept.
    assert events.handle_event(
        rt, sample("failed_host_terminated", job_id, second, flock.spot_queue, attempts=[{}])
    )
    record = flock.store.get(job_id)
    assert record is not None
    third = str(record.batch_job_id)
    assert third not in (first, second)
    job = received(third)
    assert job.job_queue.arn == flock.on_demand_queue
    assert {"name": "SHEPARD_JOB_ID", "value": job_id} in job.container_overrides["environment"]
    assert "resourceRequirements" not in job.container_overrides  # nothing raised, nothing given
    assert (record.job_queue, record.reclaims, record.phase) == (
        "ladder-queue-on-demand",
        2,
        Phase.QUEUED,
    )
    assert [a["number"] for a in record.attempts] == [1]
    assert "on-demand" in (record.reason or "")
    # The worker of the new Batch job finds its record by the job id it is given, and claims it.
    claimed = flock.store.claim(job_id, batch_job_id=third, batch_attempt=1)
    assert claimed is not None and claimed.reason is None and claimed.reclaims == 2

    # A host lost on the on-demand queue is Batch's retry strategy's business, not the ladder's.
    flock.store.finish(job_id, Result.FAILED, reason="Host EC2 (instance i-1) terminated.")
    record = flock.store.get(job_id)
    assert record is not None
    on_demand = BatchEvent.from_event(
        sample("failed_host_terminated", job_id, third, flock.on_demand_queue)
    )
    assert (
        after_failure(
            flock.store,
            flock.submitter(),
            record,
            on_demand,
            RetryPolicy.from_settings(rt.settings),
        )
        is None
    )


def test_a_second_delivery_of_the_failure_submits_nothing(flock: Flock) -> None:
    job_id = new_job_id()
    first = flock.submitted_job(JobRecord(job_id=job_id))
    event = BatchEvent.from_event(sample("failed_out_of_memory", job_id, first, flock.spot_queue))
    assert flock.store.apply_batch_event(event)
    failed = flock.store.get(job_id)
    assert failed is not None and failed.result is Result.FAILED
    policy = RetryPolicy.from_settings(flock.settings)
    submitter = flock.submitter()

    assert after_failure(flock.store, submitter, failed, event, policy)
    # The same event again, with the record as it was read before: the conditional write fails.
    assert after_failure(flock.store, submitter, failed, event, policy) is None
    assert submitter.calls == 1
    assert len(jobs_of(job_id)) == 2  # the first Batch job and the one resubmission


def test_an_array_child_comes_back_as_a_job_of_its_own_with_its_record(flock: Flock) -> None:
    parent = new_job_id()
    child = child_job_id(parent, 3)
    assert flock.store.create(JobRecord(job_id=child, array_parent=parent, array_index=3))
    array = flock.submitter().submit(parent, array_size=4)
    event = sample(
        "failed_out_of_memory", parent, f"{array}:3", flock.spot_queue, arrayProperties={"index": 3}
    )
    assert events.handle_event(flock.runtime(), event)
    record = flock.store.get(child)
    assert record is not None and record.batch_job_id and ":" not in record.batch_job_id
    job = received(record.batch_job_id)
    # No array: the new job's SHEPARD_JOB_ID is the child's own id, which the worker reads as is.
    assert job.array_properties in ({}, None)
    assert {"name": "SHEPARD_JOB_ID", "value": child} in job.container_overrides["environment"]
    assert memory_of(job.container_overrides) == "4096"


@pytest.mark.parametrize("result", [Result.SUCCEEDED, Result.CANCELLED])
def test_a_job_that_succeeded_or_was_cancelled_is_never_resubmitted(
    flock: Flock, result: Result
) -> None:
    job_id = new_job_id()
    first = flock.submitted_job(JobRecord(job_id=job_id))
    flock.store.finish(job_id, result, exit_code=137, reason=OOM_REASON)
    record = flock.store.get(job_id)
    assert record is not None
    event = BatchEvent.from_event(sample("failed_out_of_memory", job_id, first, flock.spot_queue))
    policy = RetryPolicy.from_settings(flock.settings)
    assert after_failure(flock.store, flock.submitter(), record, event, policy) is None
    assert flock.store.get(job_id) == record


class Throttled:
    """A Batch client that answers every SubmitJob with throttling."""

    def submit_job(self, **_: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "TooManyRequestsException", "Message": "slow down"},
             "ResponseMetadata": {"HTTPStatusCode": 429}},
            "SubmitJob",
        )  # fmt: skip


def test_a_throttled_resubmission_puts_the_record_back_for_the_next_delivery(
    flock: Flock,
) -> None:
    job_id = new_job_id()
    first = flock.submitted_job(JobRecord(job_id=job_id))
    event = BatchEvent.from_event(sample("failed_out_of_memory", job_id, first, flock.spot_queue))
    assert flock.store.apply_batch_event(event)
    failed = flock.store.get(job_id)
    assert failed is not None
    throttled = BatchSubmitter(
        flock.spot_queue, flock.settings.job_definition, Throttled(), sleep=lambda _: None
    )
    policy = RetryPolicy.from_settings(flock.settings)
    with pytest.raises(TransientFailure):
        after_failure(flock.store, throttled, failed, event, policy)
    assert flock.store.get(job_id) == replace(failed, batch_job_id=first)
    # The next delivery finds the failure again and resubmits.
    assert after_failure(flock.store, flock.submitter(), failed, event, policy)


def test_a_refused_resubmission_ends_the_job_failed_with_the_reason(flock: Flock) -> None:
    job_id = new_job_id()
    first = flock.submitted_job(JobRecord(job_id=job_id))
    event = BatchEvent.from_event(sample("failed_out_of_memory", job_id, first, flock.spot_queue))
    assert flock.store.apply_batch_event(event)
    failed = flock.store.get(job_id)
    assert failed is not None
    gone = replace(flock.settings, job_queue="arn:aws:batch:us-east-1:123456789012:job-queue/gone")
    policy = RetryPolicy.from_settings(flock.settings)
    submitter = BatchSubmitter(gone.job_queue, gone.job_definition, flock.batch)
    event = replace(event, job_queue="gone")
    assert after_failure(flock.store, submitter, failed, event, policy) is None
    record = flock.store.get(job_id)
    assert record is not None
    assert (record.phase, record.result) == (Phase.FINISHED, Result.FAILED)
    assert "while submitting the job again" in (record.reason or "")
    assert "gone" in (record.reason or "")


# -- the decision alone ----------------------------------------------------------------------


def _event(**fields: Any) -> BatchEvent:
    values: dict[str, Any] = {
        "batch_job_id": "b-1",
        "job_name": "job",
        "status": "FAILED",
        "status_reason": "Essential container in task exited",
        "job_queue": "flock-queue",
        "attempt": 1,
        "exit_code": 1,
        "container_reason": None,
        "log_stream": None,
        "instance": None,
        "shepard_job_id": "0" * 32,
        "array_index": None,
        "time": "2026-01-01T00:00:00Z",
    }
    values.update(fields)
    return BatchEvent(**values)


POLICY = RetryPolicy(
    spot_attempts=3,
    on_demand_queue="arn:aws:batch:us-east-1:123456789012:job-queue/flock-queue-on-demand",
    oom_factor=2,
    oom_max_memory_mib=30000,
    job_memory_mib=7000,
)


def test_the_workers_out_of_memory_counts_like_batchs() -> None:
    record = JobRecord(job_id="0" * 32, result=Result.FAILED, exit_code=137)
    worker = replace(record, reason="the payload exited with code 137: out of memory")
    assert is_out_of_memory(worker, _event())
    assert is_out_of_memory(record, _event(exit_code=137, container_reason=OOM_REASON))
    assert not is_out_of_memory(record, _event(exit_code=137))  # a kill, not memory
    assert not is_out_of_memory(replace(worker, exit_code=1), _event())


def test_memory_doubles_from_the_job_definitions_up_to_the_ceiling() -> None:
    record = JobRecord(job_id="0" * 32, result=Result.FAILED, exit_code=137, reason="out of memory")
    retry = decide(record, _event(), POLICY)
    assert retry is not None and (retry.memory_mib, retry.queue) == (14000, "flock-queue")
    retry = decide(replace(record, memory_mib=20000), _event(), POLICY)
    assert retry is not None and retry.memory_mib == 30000
    assert decide(replace(record, memory_mib=30000), _event(), POLICY) is None
    assert decide(record, _event(), replace(POLICY, oom_factor=0)) is None  # oom.retry off


def test_a_retry_keeps_the_vcpus_and_gpus_the_job_was_given() -> None:
    record = JobRecord(job_id="0" * 32, vcpus=8, memory_mib=16000, gpus=1)
    assert resource_requirements(record, 32000) == [
        {"type": "VCPU", "value": "8"},
        {"type": "MEMORY", "value": "32000"},
        {"type": "GPU", "value": "1"},
    ]
    # Moved by the ladder after an earlier raise: the raised memory goes along.
    assert resource_requirements(JobRecord(job_id="0" * 32, memory_mib=14000), None) == [
        {"type": "MEMORY", "value": "14000"}
    ]
    assert resource_requirements(JobRecord(job_id="0" * 32), None) == []


def test_reclaims_the_worker_saw_are_not_counted_twice() -> None:
    host = _event(status_reason="Host EC2 (instance i-0c9d8e7f6a5b4c3d2) terminated.")
    record = JobRecord(job_id="0" * 32, result=Result.INTERRUPTED, reclaims=1)
    seen = replace(record, attempts=({"number": 1, "cause": "spot reclaim"},))
    unseen = decide(record, host, POLICY)
    counted = decide(seen, host, POLICY)
    assert unseen is not None and unseen.reclaims == 2
    assert counted is not None and counted.reclaims == 1 and counted.queue == "flock-queue"
    moved = decide(replace(record, reclaims=2), host, POLICY)
    assert moved is not None and moved.queue == POLICY.on_demand_queue
    # The worker's own word is enough, whatever Batch's reason says.
    assert decide(seen, _event(), POLICY) is not None
    assert decide(record, host, replace(POLICY, spot_attempts=0)) is None  # no ladder


def test_the_policy_comes_from_the_lambdas_environment() -> None:
    env = FlockSettings(
        flock="f", table_name="t", job_queue="q", job_definition="d", inputs_bucket="i",
        outputs_bucket="o", errors_bucket="e", quick_deploy_bucket="qd",
    ).to_env()  # fmt: skip
    assert RetryPolicy.from_env(env) == RetryPolicy(job_memory_mib=0)
    assert not RetryPolicy.from_env(env).ladder and not RetryPolicy.from_env(env).oom
    env.update(
        SHEPARD_ON_DEMAND_JOB_QUEUE=POLICY.on_demand_queue,
        SHEPARD_SPOT_ATTEMPTS="3",
        SHEPARD_OOM_FACTOR="2",
        SHEPARD_OOM_MAX_MEMORY_MIB="30000",
        SHEPARD_JOB_MEMORY_MIB="7000",
    )
    policy = RetryPolicy.from_env(env)
    assert policy == POLICY and policy.ladder and policy.oom
    assert policy.on_demand_queue_name == "flock-queue-on-demand"

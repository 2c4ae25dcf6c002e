"""Batch's events reach the job table: AWS's documented event shape, parsed and applied through
the events Lambda's handler to a real (emulated) DynamoDB table; duplicates and out-of-order
deliveries change nothing; a job that fails before its worker ran ends failed with Batch's reason.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambdas.events import handler as events
from shepard.emulator import InProcessEmulator
from shepard.joblayer.batch_events import BatchEvent, NotABatchEvent, outcome
from shepard.joblayer.ids import child_job_id, new_job_id
from shepard.joblayer.notify import Notifier
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import create_job_table

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "batch_events"
DOC_JOB_ID = "4c7599ae-0a82-49aa-ba5a-4727fcce14a8"  # the documentation's Batch job id
TABLE = "flock-jobs"


def sample(name: str, job_id: str | None = None, **detail: Any) -> dict[str, Any]:
    """A documented event, with SHEPARD_JOB_ID in its overrides as every shepard job has."""
    event: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    if job_id is not None:
        event["detail"]["container"]["environment"] = [{"name": "SHEPARD_JOB_ID", "value": job_id}]
    event["detail"].update(detail)
    return event


def message(event: dict[str, Any], number: int = 0) -> dict[str, Any]:
    return {"messageId": f"m{number}", "body": json.dumps(event)}


class Topic:
    """Stands in for SNS's Publish: the messages a notifier sent."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.published.append(kwargs)
        return {"MessageId": str(len(self.published))}


@pytest.fixture(scope="module")
def dynamodb(emulator: InProcessEmulator) -> Any:
    """One job table for the module (each test uses jobs of its own): a table per test would
    double the module's time."""
    emulator.reset()
    client = boto3.client(
        "dynamodb",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    create_job_table(client, TABLE)
    return client


@pytest.fixture(scope="module")
def batch(emulator: InProcessEmulator) -> Any:
    return boto3.client(
        "batch",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def rt(dynamodb: Any, batch: Any) -> events.Runtime:
    settings = FlockSettings(
        flock="flock",
        table_name=TABLE,
        job_queue="arn:aws:batch:us-east-1:123456789012:job-queue/flock-queue",
        job_definition="arn:aws:batch:us-east-1:123456789012:job-definition/flock-job:1",
        inputs_bucket="in",
        outputs_bucket="out",
        errors_bucket="err",
        quick_deploy_bucket="quick",
    )
    return events.Runtime.from_settings(settings, env={}, dynamodb=dynamodb, batch=batch)


def submitted(store: JobStore, **fields: Any) -> JobRecord:
    record = JobRecord(job_id=new_job_id(), batch_job_id=DOC_JOB_ID, **fields)
    assert store.create(record)
    got = store.get(record.job_id)
    assert got is not None
    return got


def test_the_documented_event_parses() -> None:
    job_id = new_job_id()
    event = BatchEvent.from_event(sample("runnable", job_id))
    assert event.batch_job_id == DOC_JOB_ID
    assert event.status == "RUNNABLE"
    assert event.job_queue == "PexjEHappyPathCanary2JobQueue"
    assert event.attempt == 0
    assert event.shepard_job_id == job_id
    assert event.time == "2022-01-11T23:36:40Z"
    # Without SHEPARD_JOB_ID (a job not submitted by shepard) there is no record to update.
    assert BatchEvent.from_event(sample("runnable")).shepard_job_id is None
    with pytest.raises(NotABatchEvent):
        BatchEvent.from_event({"source": "aws.s3", "detail-type": "Object Created"})


def test_a_failed_event_gives_the_latest_attempt() -> None:
    event = BatchEvent.from_event(sample("failed_out_of_memory", new_job_id()))
    assert (event.status, event.attempt, event.exit_code) == ("FAILED", 1, 137)
    assert event.container_reason == "OutOfMemoryError: Container killed due to memory usage"
    assert event.log_stream == "first-run-job-definition/default/6b7c4f3f1a8e4b39a5d6f0e7c2b1a9d8"
    assert event.instance is not None and ":container-instance/" in event.instance


def test_an_array_child_finds_its_own_record_and_the_parent_none() -> None:
    parent = new_job_id()
    child = sample("runnable", parent, jobId=f"{DOC_JOB_ID}:7", arrayProperties={"index": 7})
    assert BatchEvent.from_event(child).shepard_job_id == child_job_id(parent, 7)
    whole = sample("runnable", parent, arrayProperties={"size": 10})
    assert BatchEvent.from_event(whole).shepard_job_id is None


def test_the_life_of_a_job_reaches_its_record(rt: events.Runtime) -> None:
    record = submitted(rt.store)
    for number, name in enumerate(("runnable", "starting", "running")):
        answer = events.handle(rt, {"Records": [message(sample(name, record.job_id), number)]})
        assert answer == {"batchItemFailures": []}
        now = rt.store.get(record.job_id)
        assert now is not None
        assert now.batch_status == name.upper()
        # Batch's states never touch the worker's: the record stays queued with its status.
        assert (now.phase, now.status) == (Phase.QUEUED, Status.NOT_YET_INITIATED)
    assert now is not None
    assert now.log_stream == "first-run-job-definition/default/6b7c4f3f1a8e4b39a5d6f0e7c2b1a9d8"
    assert now.job_queue == "PexjEHappyPathCanary2JobQueue"


def test_duplicates_and_late_events_change_nothing(rt: events.Runtime) -> None:
    record = submitted(rt.store)
    running = sample("running", record.job_id)
    assert events.handle_event(rt, running)
    assert not events.handle_event(rt, running)  # the same event again
    assert not events.handle_event(rt, sample("runnable", record.job_id))  # delivered late
    now = rt.store.get(record.job_id)
    assert now is not None and now.batch_status == "RUNNING"
    # A retried attempt goes back to RUNNABLE legitimately: one more entry in attempts.
    retried = sample("runnable", record.job_id)
    retried["detail"]["attempts"] = sample("failed_host_terminated")["detail"]["attempts"]
    assert events.handle_event(rt, retried)
    now = rt.store.get(record.job_id)
    assert now is not None and now.batch_status == "RUNNABLE"


def test_a_finished_record_is_never_moved_back(rt: events.Runtime) -> None:
    record = submitted(rt.store)
    rt.store.claim(record.job_id)
    rt.store.finish(record.job_id, Result.SUCCEEDED, exit_code=0)
    assert events.handle_event(rt, sample("succeeded", record.job_id))
    # A FAILED event delivered after the worker finished the job (out of order, or a stale
    # attempt) records Batch's state but keeps the worker's result.
    failed = sample("failed_exit_code", record.job_id)
    failed["detail"]["attempts"] *= 2
    assert events.handle_event(rt, failed)
    now = rt.store.get(record.job_id)
    assert now is not None
    assert (now.phase, now.result, now.status, now.exit_code) == (
        Phase.FINISHED,
        Result.SUCCEEDED,
        Status.DONE,
        0,
    )
    assert now.batch_status == "FAILED"


@pytest.mark.parametrize(
    ("name", "result", "words"),
    [
        ("failed_cannot_pull", Result.FAILED, "could not be pulled"),
        ("failed_host_terminated", Result.FAILED, "Host EC2 (instance i-0c9d8e7f6a5b4c3d2)"),
        ("failed_time_limit", Result.CANCELLED, "no compute environment has an instance type"),
    ],
)
def test_a_job_that_fails_before_its_worker_ran_ends_failed_with_the_reason(
    rt: events.Runtime, name: str, result: Result, words: str
) -> None:
    record = submitted(rt.store)
    assert events.handle_event(rt, sample("runnable", record.job_id))
    assert events.handle_event(rt, sample(name, record.job_id))
    now = rt.store.get(record.job_id)
    assert now is not None
    assert (now.phase, now.result, now.status) == (Phase.FINISHED, result, Status.DONE)
    assert now.reason is not None and words in now.reason
    assert now.batch_reason == sample(name)["detail"]["statusReason"]
    assert now.end_time and now.expires_at


def test_a_timed_out_job_says_so_with_its_timeout(rt: events.Runtime) -> None:
    record = submitted(rt.store, timeout_seconds=3600)
    rt.store.claim(record.job_id)
    rt.store.set_status(record.job_id, Status.CALLING_PAYLOAD_CODE)
    assert events.handle_event(rt, sample("failed_timeout", record.job_id))
    now = rt.store.get(record.job_id)
    assert now is not None
    assert (now.phase, now.result, now.exit_code) == (Phase.FINISHED, Result.FAILED, 137)
    assert now.reason is not None
    assert now.reason.startswith("timed out: the attempt ran longer than its timeout of 3600 s")


def test_events_of_a_resubmitted_jobs_old_batch_job_are_ignored(rt: events.Runtime) -> None:
    record = submitted(rt.store)
    rt.store.set_batch_job_id(record.job_id, "a-new-batch-job-on-another-queue")
    assert not events.handle_event(rt, sample("failed_cannot_pull", record.job_id))
    now = rt.store.get(record.job_id)
    assert now is not None and (now.phase, now.batch_status) == (Phase.QUEUED, None)


def test_a_bad_message_is_dropped_and_others_still_apply(rt: events.Runtime) -> None:
    record = submitted(rt.store)
    answer = events.handle(
        rt,
        {
            "Records": [
                {"messageId": "bad", "body": "not json"},
                message({"source": "aws.s3"}, 1),
                message(sample("running", record.job_id), 2),
            ]
        },
    )
    assert answer == {"batchItemFailures": []}
    now = rt.store.get(record.job_id)
    assert now is not None and now.batch_status == "RUNNING"


def test_a_table_failure_is_retried_for_that_message_only(rt: events.Runtime) -> None:
    record = submitted(rt.store)
    broken = copy.copy(rt.store)
    broken.table_name = "no-such-table"
    answer = events.handle(
        events.Runtime(rt.settings, broken),
        {"Records": [message(sample("running", record.job_id))]},
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


def test_notifications_of_a_failed_job_and_a_completed_batch(rt: events.Runtime) -> None:
    topic = Topic()
    rt.notifier = Notifier("arn:aws:sns:us-east-1:123456789012:flock-notifications", "flock", topic)
    first = submitted(rt.store, batch_id="b-20260101T000000-abcdef")
    second = JobRecord(
        job_id=new_job_id(), batch_job_id="second-batch-job", batch_id=first.batch_id
    )
    assert rt.store.create(second)
    assert events.handle_event(rt, sample("failed_cannot_pull", first.job_id))
    assert [m["Subject"] for m in topic.published] == [f"shepard flock: job {first.job_id} failed"]
    rt.store.claim(second.job_id)
    rt.store.finish(second.job_id, Result.SUCCEEDED, exit_code=0)
    done = sample("succeeded", second.job_id, jobId="second-batch-job")
    assert events.handle_event(rt, done)
    assert not events.handle_event(rt, done)  # a duplicate sends nothing more
    assert len(topic.published) == 2
    body = json.loads(topic.published[1]["Message"])
    assert body["event"] == "batch completed"
    assert body["counts"] == {"failed": 1, "succeeded": 1}
    assert "could not be pulled" in body["reasons"][0]["reason"]
    assert isinstance(body["wall_seconds"], int)
    # Another handler seeing the batch complete later sends nothing.
    assert not rt.notifier.batch_if_done(rt.store, str(first.batch_id))


def test_reasons_say_what_happened_and_what_to_do() -> None:
    result, reason = outcome(BatchEvent.from_event(sample("failed_out_of_memory", new_job_id())))
    assert result is Result.FAILED and reason.startswith("out of memory")
    result, reason = outcome(BatchEvent.from_event(sample("failed_exit_code", new_job_id())))
    assert "exit code 1" in reason and "Essential container in task exited" in reason


class RecordingBatch:
    """Takes SubmitJob requests as AWS Batch would and keeps them."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def submit_job(self, **params: Any) -> dict[str, str]:
        self.requests.append(params)
        return {"jobId": f"batch-{len(self.requests)}", "jobName": params["jobName"]}


def test_an_api_request_may_set_its_own_timeout(rt: events.Runtime) -> None:
    from lambdas.api import handler as api
    from shepard.joblayer.batch import BatchSubmitter
    from shepard.joblayer.service import JobService

    batch = RecordingBatch()
    jobs = JobService(rt.settings, rt.store, BatchSubmitter("queue", "definition", batch))
    status, answer = api.submit_payload(jobs, {"variables": {"A": "1"}, "timeout_seconds": 600})
    assert status == 200
    record = rt.store.get(answer["job_id"])
    assert record is not None and record.timeout_seconds == 600
    assert batch.requests[-1]["timeout"] == {"attemptDurationSeconds": 600}
    assert "timeout_seconds" not in record.variables  # an option, not a payload variable
    # Without one, the job has the flock's (the job definition's) timeout, recorded.
    status, answer = api.submit_payload(jobs, {"A": "2", "timeout_seconds": "5"})
    assert status == 200
    record = rt.store.get(answer["job_id"])
    assert record is not None and record.timeout_seconds == rt.settings.job_timeout_seconds
    assert "timeout" not in batch.requests[-1]
    assert record.variables["timeout_seconds"] == "5"  # a plain variable stays a variable
    for bad in (59, "600", True):
        status, answer = api.submit_payload(jobs, {"variables": {"A": "3"}, "timeout_seconds": bad})
        assert status == 400 and "timeout_seconds must be a whole number" in answer["error"]

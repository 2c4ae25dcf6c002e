"""The job store against the emulator's DynamoDB: conditional writes, claims, the phase index."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.batch import BatchSubmitter, TransientFailure
from shepard.joblayer.ids import child_job_id, job_id_for, new_job_id
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.service import JobService, Outcome
from shepard.joblayer.store import JobNotFound, JobRecord, JobStore
from shepard.joblayer.testing import FlockFixture, make_test_flock

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture
def store(flock: FlockFixture) -> JobStore:
    return JobStore(flock.settings.table_name, days_to_keep_finished_jobs=30, clock=Clock())


def test_create_is_conditional(store: JobStore) -> None:
    job_id = new_job_id()
    assert store.create(JobRecord(job_id=job_id, variables={"A": "1"})) is True
    assert store.create(JobRecord(job_id=job_id, variables={"A": "other"})) is False
    got = store.get(job_id)
    assert got is not None
    assert got.variables == {"A": "1"}
    assert got.created_at.startswith("2026-11-25T09:00:00.")
    assert store.get(new_job_id()) is None


def test_claim_once_then_finish(store: JobStore) -> None:
    job_id = new_job_id()
    store.create(JobRecord(job_id=job_id))
    claimed = store.claim(job_id)
    assert claimed is not None
    assert (claimed.phase, claimed.status, claimed.attempt) == (
        Phase.RUNNING,
        Status.IN_PROGRESS,
        1,
    )
    assert claimed.start_time == "20261125T090000Z"
    assert store.claim(job_id) is None  # a second worker gets nothing
    store.set_status(job_id, Status.CALLING_PAYLOAD_CODE)
    assert store.get(job_id).status is Status.CALLING_PAYLOAD_CODE  # type: ignore[union-attr]
    store.finish(
        job_id,
        Result.FAILED,
        exit_code=3,
        reason="exit 3",
        error_zip="e.zip",
        status=Status.FAILED_CLEANING_UP,
    )
    done = store.get(job_id)
    assert done is not None
    assert (done.phase, done.result, done.exit_code, done.reason, done.error_zip) == (
        Phase.FINISHED,
        Result.FAILED,
        3,
        "exit 3",
        "e.zip",
    )
    assert done.status is Status.FAILED_CLEANING_UP
    assert done.end_time is not None and done.end_time.startswith("20261125T0900")
    start = datetime(2026, 11, 25, 9, 0, tzinfo=UTC).timestamp()
    assert done.expires_at is not None
    assert abs(done.expires_at - (start + 30 * 86400)) < 5
    assert store.claim(job_id) is None  # a finished job is never claimed again


def test_interrupted_job_is_claimed_again_by_the_retry(store: JobStore) -> None:
    job_id = new_job_id()
    store.create(JobRecord(job_id=job_id))
    assert store.claim(job_id) is not None
    store.mark_interrupted(job_id, "host reclaimed (Spot)")
    waiting = store.get(job_id)
    assert waiting is not None
    assert (waiting.phase, waiting.result) == (Phase.QUEUED, Result.INTERRUPTED)
    again = store.claim(job_id)
    assert again is not None
    assert again.attempt == 2 and again.result is None and again.reason is None
    store.finish(job_id, Result.SUCCEEDED, exit_code=0, outputs=["a.zip", "b.zip"])
    final = store.get(job_id)
    assert final is not None and final.outputs == ("a.zip", "b.zip") and final.succeeded


def test_a_later_batch_attempt_takes_over_a_job_whose_host_died(store: JobStore) -> None:
    # A Spot host can vanish without a SIGTERM: the record stays running. Batch's retry
    # strategy starts attempt 2, which may take the job over; attempt 1 (or a duplicate
    # worker of attempt 2) may not.
    job_id = new_job_id()
    store.create(JobRecord(job_id=job_id))
    first = store.claim(job_id, batch_job_id="batch-1", batch_attempt=1)
    assert first is not None and first.batch_attempt == 1
    assert store.claim(job_id, batch_job_id="batch-1", batch_attempt=1) is None
    assert store.claim(job_id) is None  # no attempt number: never a takeover
    second = store.claim(job_id, batch_job_id="batch-1", batch_attempt=2)
    assert second is not None
    assert (second.phase, second.attempt, second.batch_attempt) == (Phase.RUNNING, 2, 2)
    assert store.claim(job_id, batch_job_id="batch-1", batch_attempt=2) is None
    store.finish(job_id, Result.SUCCEEDED, exit_code=0)
    assert store.claim(job_id, batch_job_id="batch-1", batch_attempt=3) is None


def test_updates_to_a_missing_job_say_so(store: JobStore) -> None:
    with pytest.raises(JobNotFound, match="no record with that id"):
        store.set_status(new_job_id(), Status.IN_PROGRESS)
    assert store.claim(new_job_id()) is None


def test_query_phase_newest_first_across_pages(store: JobStore) -> None:
    ids = [new_job_id() for _ in range(30)]
    for job_id in ids:
        store.create(JobRecord(job_id=job_id, variables={"pad": "x" * 40_000}))
    store.claim(ids[0])
    queued = store.query_phase(Phase.QUEUED)  # 29 x 40 KB spans several 1 MB pages
    assert [r.job_id for r in queued] == list(reversed(ids[1:]))
    assert [r.job_id for r in store.query_phase(Phase.QUEUED, limit=5)] == ids[-1:-6:-1]
    assert [r.job_id for r in store.query_phase(Phase.RUNNING)] == [ids[0]]
    assert sorted(r.job_id for r in store.scan_all()) == sorted(ids)


def test_put_many_writes_every_child(store: JobStore) -> None:
    parent = new_job_id()
    children = [
        JobRecord(job_id=f"{parent}-{i}", array_parent=parent, array_index=i) for i in range(60)
    ]
    assert store.put_many(children) == 60
    child = store.get(f"{parent}-59")
    assert child is not None and child.array_index == 59 and child.array_parent == parent
    assert len(store.query_phase(Phase.QUEUED)) == 60


# -- the job service: validate, record, submit ----------------------------------------------------


class Recorder:
    """Records sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class FlakyBatch:
    """The real emulator client, but the first ``failures`` SubmitJob calls answer ``code``."""

    def __init__(self, failures: int, code: str = "TooManyRequestsException", status: int = 429):
        self.real = boto3.client("batch")
        self.failures = failures
        self.code = code
        self.status = status
        self.calls = 0

    def submit_job(self, **params: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            answer: Any = {
                "Error": {"Code": self.code, "Message": "slow down"},
                "ResponseMetadata": {"HTTPStatusCode": self.status},
            }
            raise ClientError(answer, "SubmitJob")
        return self.real.submit_job(**params)


@pytest.fixture(scope="module")
def base_flock(emulator: InProcessEmulator) -> Iterator[FlockFixture]:
    """Buckets, role, compute environment, job definition: made once for this module."""
    emulator.reset()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in emulator_environment(emulator.endpoint_url).items():
            patch.setenv(key, value)
        yield make_test_flock("svc")


@pytest.fixture
def flock(
    base_flock: FlockFixture, emulator: InProcessEmulator, monkeypatch: pytest.MonkeyPatch
) -> FlockFixture:
    """A new empty table and job queue per test (no reset: IAM makes a reset flock slow)."""
    for key, value in emulator_environment(emulator.endpoint_url).items():
        monkeypatch.setenv(key, value)
    return base_flock.fresh(new_job_id()[:8])


def make_service(flock: FlockFixture, client: Any = None, sleep: Any = None) -> JobService:
    settings = flock.settings
    submitter = BatchSubmitter(
        settings.job_queue, settings.job_definition, client, sleep=sleep or Recorder()
    )
    return JobService(settings, JobStore(settings.table_name), submitter)


def batch_jobs(flock: FlockFixture) -> list[dict[str, Any]]:
    batch = boto3.client("batch")
    summaries = []
    for status in (
        "SUBMITTED",
        "PENDING",
        "RUNNABLE",
        "STARTING",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
    ):
        summaries += batch.list_jobs(jobQueue=flock.settings.job_queue, jobStatus=status)[
            "jobSummaryList"
        ]
    summaries = [s for s in summaries if ":" not in s["jobId"]]  # not array children
    if not summaries:
        return []
    return list(batch.describe_jobs(jobs=[s["jobId"] for s in summaries])["jobs"])


def test_submit_records_first_and_passes_only_the_job_id(flock: FlockFixture) -> None:
    service = make_service(flock)
    outcome = service.submit({"Tag": "run 7:a", "N": 3}, is_invoked=True)
    assert outcome.outcome is Outcome.SUBMITTED
    record = service.store.get(outcome.job_id)
    assert record is not None
    assert (record.phase, record.status, record.is_invoked) == (
        Phase.QUEUED,
        Status.NOT_YET_INITIATED,
        True,
    )
    assert record.variables == {"Tag": "run 7:a", "N": "3"} and record.tag == "run 7:a"
    assert record.batch_job_id == outcome.batch_job_id
    (job,) = batch_jobs(flock)
    assert job["jobId"] == record.batch_job_id
    assert job["jobName"] == "run_7_a"
    overrides = job["container"]["environment"]
    assert {"name": "SHEPARD_JOB_ID", "value": outcome.job_id} in overrides
    assert not any(e["name"] in ("Tag", "N") for e in overrides)
    assert record.expires_at is not None  # failed-launch retention until the worker finishes it


def test_duplicate_delivery_makes_one_record_and_one_batch_job(flock: FlockFixture) -> None:
    service = make_service(flock)
    key = "s3://svc-inputs/a.zip#etag1@0001"
    first = service.submit(
        {"A": "1"}, is_invoked=False, idempotency_key=key, input_zip_name="a.zip"
    )
    second = service.submit(
        {"A": "1"}, is_invoked=False, idempotency_key=key, input_zip_name="a.zip"
    )
    assert first.outcome is Outcome.SUBMITTED and second.outcome is Outcome.DUPLICATE
    assert first.job_id == second.job_id == job_id_for(key)
    assert second.batch_job_id == first.batch_job_id
    assert service.submitter.calls == 1
    assert len(batch_jobs(flock)) == 1
    assert len(service.store.scan_all()) == 1


def test_half_submitted_record_is_submitted_by_the_next_delivery(flock: FlockFixture) -> None:
    service = make_service(flock)
    key = "s3://svc-inputs/b.zip#e@1"
    # A delivery that died between writing the record and SubmitJob, five minutes ago.
    service.store.create(
        JobRecord(
            job_id=job_id_for(key),
            created_at="2020-01-01T00:00:00.000000Z",
            variables={"A": "1"},
            idempotency_key=key,
        )
    )
    outcome = service.submit({"A": "1"}, is_invoked=False, idempotency_key=key)
    assert outcome.outcome is Outcome.SUBMITTED
    assert len(batch_jobs(flock)) == 1


def test_rejected_request_is_recorded_with_its_reason(flock: FlockFixture) -> None:
    service = make_service(flock)
    outcome = service.submit({"PATH": "/evil"}, is_invoked=True)
    assert outcome.outcome is Outcome.REJECTED and "reserved" in (outcome.reason or "")
    record = service.store.get(outcome.job_id)
    assert record is not None
    assert (record.phase, record.result, record.reason) == (
        Phase.FINISHED,
        Result.REJECTED,
        outcome.reason,
    )
    assert batch_jobs(flock) == [] and service.submitter.calls == 0


def test_submit_refused_by_batch_finishes_the_record_failed(flock: FlockFixture) -> None:
    settings = flock.settings
    broken = JobService(
        settings,
        JobStore(settings.table_name),
        BatchSubmitter(
            "arn:aws:batch:us-east-1:123456789012:job-queue/nope", "nope:1", sleep=Recorder()
        ),
    )
    outcome = broken.submit({"A": "1"}, is_invoked=True)
    assert outcome.outcome is Outcome.FAILED
    assert broken.submitter.calls == 1  # a client error is not retried
    record = broken.store.get(outcome.job_id)
    assert record is not None and record.result is Result.FAILED
    assert record.reason is not None and "while submitting the job to AWS Batch" in record.reason


def test_throttled_submit_is_retried_with_backoff(flock: FlockFixture) -> None:
    flaky, sleeps = FlakyBatch(failures=2), Recorder()
    service = make_service(flock, flaky, sleeps)
    outcome = service.submit({"A": "1"}, is_invoked=True)
    assert outcome.outcome is Outcome.SUBMITTED
    assert flaky.calls == 3 and len(sleeps.delays) == 2
    assert sleeps.delays[1] > sleeps.delays[0] * 0.9  # grows (jitter within 50-100 %)
    assert len(batch_jobs(flock)) == 1


def test_submit_that_stays_throttled_raises_and_leaves_no_record(flock: FlockFixture) -> None:
    flaky = FlakyBatch(failures=100, code="InternalError", status=500)
    service = make_service(flock, flaky)
    with pytest.raises(TransientFailure):
        service.submit({"A": "1"}, is_invoked=False, idempotency_key="s3://x/y#e@s")
    assert flaky.calls == service.submitter.max_attempts
    assert service.store.scan_all() == []  # the redelivery starts over


def test_array_job_one_submit_one_record_per_child(flock: FlockFixture) -> None:
    service = make_service(flock)
    outcome = service.submit_array([{"I": i, "TAG": "arr"} for i in range(5)])
    assert outcome.outcome is Outcome.SUBMITTED and outcome.array_size == 5
    assert service.submitter.calls == 1
    children = sorted(service.store.scan_all(), key=lambda r: r.array_index or 0)
    assert [c.job_id for c in children] == [f"{outcome.job_id}-{i}" for i in range(5)]
    assert [c.variables["I"] for c in children] == ["0", "1", "2", "3", "4"]
    (job,) = batch_jobs(flock)
    assert job["arrayProperties"]["size"] == 5
    # a child's worker finds its own record from AWS_BATCH_JOB_ARRAY_INDEX
    claimed = service.store.claim(child_job_id(outcome.job_id, 3), batch_job_id=f"{job['jobId']}:3")
    assert claimed is not None and claimed.variables["I"] == "3"
    assert claimed.batch_job_id == f"{job['jobId']}:3"


def test_array_with_one_bad_item_is_rejected_whole(flock: FlockFixture) -> None:
    service = make_service(flock)
    outcome = service.submit_array([{"A": "1"}, {"A": "2"}, {"bad name": "3"}])
    assert outcome.outcome is Outcome.REJECTED
    assert outcome.reason is not None and outcome.reason.startswith("array item 2:")
    assert [r.result for r in service.store.scan_all()] == [Result.REJECTED]
    assert service.submitter.calls == 0

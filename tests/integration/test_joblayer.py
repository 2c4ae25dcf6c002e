"""The job store against the emulator's DynamoDB: conditional writes, claims, the phase index."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from shepard.emulator import InProcessEmulator
from shepard.joblayer.ids import new_job_id
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.store import JobNotFound, JobRecord, JobStore
from shepard.joblayer.testing import create_job_table

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture
def store(aws: InProcessEmulator) -> Iterator[JobStore]:
    client = boto3.client("dynamodb")
    create_job_table(client, "jobs")
    yield JobStore("jobs", client, days_to_keep_finished_jobs=30, clock=Clock())


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


def test_create_many_writes_every_child(store: JobStore) -> None:
    parent = new_job_id()
    children = [
        JobRecord(job_id=f"{parent}-{i}", array_parent=parent, array_index=i) for i in range(60)
    ]
    assert store.create_many(children) == 60
    child = store.get(f"{parent}-59")
    assert child is not None and child.array_index == 59 and child.array_parent == parent
    assert len(store.query_phase(Phase.QUEUED)) == 60

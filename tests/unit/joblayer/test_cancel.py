"""Cancelling jobs: the record first (conditional), then the right Batch call for each job."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer import clients
from shepard.joblayer.cancel import Done, cancel_records, whole_arrays
from shepard.joblayer.ids import new_job_id
from shepard.joblayer.records import Phase, Result
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import create_job_table

REASON = "cancelled by arn:aws:iam::123456789012:user/ana: wrong inputs"


class Batch:
    """Records the Batch calls (what AWS would be asked), refusing the ids in ``refuse``."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[str, str]] = []
        self.refuse = refuse

    def cancel_batch_job(self, batch_job_id: str, reason: str) -> None:
        assert reason == REASON
        self._call("CancelJob", batch_job_id)

    def terminate_batch_job(self, batch_job_id: str, reason: str) -> None:
        assert reason == REASON
        self._call("TerminateJob", batch_job_id)

    def _call(self, action: str, batch_job_id: str) -> None:
        if batch_job_id in self.refuse:
            raise RuntimeError(f"ClientException: job {batch_job_id} not found")
        self.calls.append((action, batch_job_id))


@pytest.fixture(scope="module")
def table(emulator: InProcessEmulator) -> Iterator[str]:
    """One job table for the module (a reset per test costs more than the tests)."""
    with pytest.MonkeyPatch.context() as patch:
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        name = f"cancel-{new_job_id()[:8]}"
        create_job_table(clients.client("dynamodb"), name)
        yield name


@pytest.fixture
def store(table: str, emulator: InProcessEmulator, monkeypatch: pytest.MonkeyPatch) -> JobStore:
    """The module's table; each test uses job ids of its own letters."""
    for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
        monkeypatch.setenv(key, value)
    return JobStore(table)


def _put(store: JobStore, *records: JobRecord) -> list[JobRecord]:
    store.put_many(records)
    return [r for r in (store.get(r.job_id) for r in records) if r is not None]


def test_queued_jobs_are_cancelled_running_ones_terminated_finished_ones_left(
    store: JobStore,
) -> None:
    records = _put(
        store,
        JobRecord(job_id="a" * 32, batch_job_id="batch-a"),
        JobRecord(job_id="b" * 32, batch_job_id="batch-b", phase=Phase.RUNNING),
        JobRecord(job_id="c" * 32, batch_job_id="batch-c", batch_status="STARTING"),
        JobRecord(
            job_id="d" * 32, batch_job_id="batch-d", phase=Phase.FINISHED, result=Result.SUCCEEDED
        ),
        JobRecord(job_id="e" * 32),  # recorded, not yet submitted
    )
    batch = Batch()
    done = {
        c.job_id: c
        for c in cancel_records(records, cancel_record=store.cancel, batch=batch, reason=REASON)
    }
    assert sorted(batch.calls) == [
        ("CancelJob", "batch-a"),
        ("TerminateJob", "batch-b"),
        ("TerminateJob", "batch-c"),
    ]
    assert [done[k * 32].done for k in "abcde"] == [
        Done.CANCELLED,
        Done.TERMINATED,
        Done.TERMINATED,
        Done.FINISHED,
        Done.CANCELLED,
    ]
    assert done["d" * 32].detail == "already succeeded: left alone"
    for k in "abce":
        record = store.get(k * 32)
        assert record is not None and record.result is Result.CANCELLED
        assert record.phase is Phase.FINISHED and record.reason == REASON and record.end_time
    left = store.get("d" * 32)
    assert left is not None and left.result is Result.SUCCEEDED


def test_a_job_that_finished_while_being_cancelled_keeps_its_result(store: JobStore) -> None:
    [record] = _put(store, JobRecord(job_id="1" * 32, batch_job_id="batch-a"))
    store.finish("1" * 32, Result.SUCCEEDED, exit_code=0)  # the worker got there first
    batch = Batch()
    [done] = cancel_records([record], cancel_record=store.cancel, batch=batch, reason=REASON)
    assert done.done is Done.FINISHED and batch.calls == []
    assert store.cancel("1" * 32, REASON) is None and store.cancel("f" * 32, REASON) is None
    after = store.get("1" * 32)
    assert after is not None and after.result is Result.SUCCEEDED


def test_a_whole_array_is_cancelled_through_its_parent(store: JobStore) -> None:
    parent = "p" * 32
    records = _put(
        store,
        *(
            JobRecord(
                job_id=f"{parent}-{i}",
                array_parent=parent,
                array_index=i,
                batch_job_id=f"arr:{i}" if i < 2 else None,
                phase=Phase.RUNNING if i == 0 else Phase.QUEUED,
            )
            for i in range(4)
        ),
    )
    arrays = whole_arrays(records, lambda p: 4)
    assert arrays == {"arr"} and whole_arrays(records, lambda p: 5) == set()
    batch = Batch()
    done = cancel_records(
        records, cancel_record=store.cancel, batch=batch, reason=REASON, whole_arrays=arrays
    )
    assert sorted(batch.calls) == [("CancelJob", "arr"), ("TerminateJob", "arr:0")]
    assert [d.done for d in done] == [Done.TERMINATED] + [Done.CANCELLED] * 3
    assert done[1].detail == "with its array job"
    assert store.cancelled_among([f"{parent}-{i}" for i in range(4)] + ["x" * 32]) == {
        f"{parent}-{i}" for i in range(4)
    }


def test_a_batch_refusal_is_reported_and_the_others_go_on(store: JobStore) -> None:
    records = _put(
        store,
        JobRecord(job_id="2" * 32, batch_job_id="gone"),
        JobRecord(job_id="3" * 32, batch_job_id="batch-b"),
    )
    batch = Batch(refuse=("gone",))
    done = cancel_records(records, cancel_record=store.cancel, batch=batch, reason=REASON)
    assert [d.done for d in done] == [Done.FAILED, Done.CANCELLED]
    assert "recorded cancelled, but ClientException" in done[0].detail
    assert batch.calls == [("CancelJob", "batch-b")]


def test_an_array_none_of_whose_children_started_is_found_in_batch(store: JobStore) -> None:
    """No child knows its array's Batch id before one starts: the finder (Batch's ListJobs by
    the array's name and size) gives it, and the array is cancelled whole."""
    parent = "q" * 32
    records = [
        JobRecord(job_id=f"{parent}-{i}", array_parent=parent, array_index=i, tag="run")
        for i in range(3)
    ]
    asked: list[tuple[str, str | None, int]] = []

    def finder(wanted: str, child: JobRecord, size: int) -> str | None:
        asked.append((wanted, child.tag, size))
        return "arr-q"

    assert whole_arrays(records, lambda p: 3, finder) == {"arr-q"}
    assert asked == [(parent, "run", 3)]
    assert whole_arrays(records, lambda p: 3, lambda *_: None) == set()  # not found: per child
    assert whole_arrays(records, lambda p: 4, finder) == set()  # not every child: never whole
    assert len(asked) == 1

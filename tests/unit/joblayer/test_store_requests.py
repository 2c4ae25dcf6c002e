"""A job's worker writes in few requests: the claim opens the attempt, the finish closes it and
writes the usage with the result, each one request; the events handler's entry is not doubled;
a stale attempt index still ends the attempt (bench/bench_requests_per_job.py counts them)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer import clients
from shepard.joblayer.ids import new_job_id
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import create_job_table

RUN = {
    "seconds": 2.5,
    "vcpu_seconds": 5.0,
    "memory_gib_seconds": 5.0,
    "instance_type": "local",
    "lifecycle": "local",
    "cost_usd": 0.000125,
}


@pytest.fixture(scope="module")
def table(emulator: InProcessEmulator) -> Iterator[str]:
    """One job table for the module (each test uses job ids of its own)."""
    with pytest.MonkeyPatch.context() as patch:
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        name = f"requests-{new_job_id()[:8]}"
        create_job_table(clients.client("dynamodb"), name)
        yield name


@pytest.fixture
def store(table: str, emulator: InProcessEmulator, monkeypatch: pytest.MonkeyPatch) -> JobStore:
    for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
        monkeypatch.setenv(key, value)
    return JobStore(table)


def _counted(store: JobStore) -> Counter[str]:
    """Every request the store's client sends from now on, by operation."""
    sent: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        sent[event_name.rsplit(".", 1)[-1]] += 1

    store.client.meta.events.register("before-send.dynamodb", count)
    return sent


def test_the_claim_opens_the_attempt_and_the_finish_closes_it_one_request_each(
    store: JobStore,
) -> None:
    job_id = new_job_id()
    before = {**RUN, "seconds": 1.0, "vcpu_seconds": 2.0, "cost_usd": 0.0001}
    assert store.create(JobRecord(job_id=job_id, input_zip_name="a.zip", input_zip_size=321))
    store.record_usage(job_id, before)  # an earlier run's usage, added to below
    sent = _counted(store)

    record = store.claim(
        job_id, batch_attempt=1, attempt={"number": 1, "queue": "q", "host": "h", "cause": None}
    )
    assert record is not None and sent == Counter(UpdateItem=1)
    assert record.input_zip_size == 321 and record.status is Status.IN_PROGRESS
    [entry] = record.attempts
    assert entry["number"] == 1 and entry["queue"] == "q" and entry["host"] == "h"
    assert "started" in entry and "cause" not in entry
    index = store.claimed_attempt(record, 1)
    assert index == 0 and sent == Counter(UpdateItem=1)  # nothing to tidy: no request

    total = store.add_usage(record.usage, RUN)
    store.finish_run(
        job_id,
        Result.SUCCEEDED,
        attempt_number=1,
        attempt_index=index,
        attempt_fields={"exit_code": 0},
        usage=total,
        exit_code=0,
        outputs=["out.zip"],
    )
    assert sent == Counter(UpdateItem=2)
    done = store.get(job_id)
    assert done is not None
    assert (done.phase, done.result, done.status) == (Phase.FINISHED, Result.SUCCEEDED, Status.DONE)
    assert done.outputs == ("out.zip",) and done.exit_code == 0
    [closed] = done.attempts
    assert closed["exit_code"] == 0 and "ended" in closed and closed["started"] == entry["started"]
    assert done.usage["seconds"] == pytest.approx(3.5)
    assert done.usage["vcpu_seconds"] == pytest.approx(7.0)
    assert done.usage["cost_usd"] == pytest.approx(0.000225)
    assert done.usage["instance_type"] == "local"


def test_an_entry_the_events_handler_made_first_is_folded_in_not_doubled(
    store: JobStore,
) -> None:
    job_id = new_job_id()
    assert store.create(JobRecord(job_id=job_id))
    store.note_attempt(job_id, 1, log_stream="job/default/abc", queue="events-queue")
    record = store.claim(job_id, batch_attempt=1, attempt={"number": 1, "host": "h"})
    assert record is not None and len(record.attempts) == 2
    sent = _counted(store)
    index = store.claimed_attempt(record, 1)
    assert index == 0 and sent == Counter(UpdateItem=1)
    after = store.get(job_id)
    assert after is not None
    [entry] = after.attempts
    assert entry["log_stream"] == "job/default/abc" and entry["host"] == "h"
    assert entry["queue"] == "events-queue" and "started" in entry

    # A later note from the events handler lands in the same entry.
    store.note_attempt(job_id, 1, instance_type="c5.large")
    store.finish_run(
        job_id,
        Result.FAILED,
        attempt_number=1,
        attempt_index=index,
        attempt_fields={"exit_code": 3, "reason": "the payload exited with code 3"},
        exit_code=3,
        reason="the payload exited with code 3",
    )
    done = store.get(job_id)
    assert done is not None and done.result is Result.FAILED
    [entry] = done.attempts
    assert entry["instance_type"] == "c5.large" and entry["exit_code"] == 3
    assert entry["reason"] == "the payload exited with code 3" and "ended" in entry


def test_a_stale_attempt_index_still_ends_the_attempt_by_its_number(store: JobStore) -> None:
    job_id = new_job_id()
    assert store.create(JobRecord(job_id=job_id))
    record = store.claim(job_id, batch_attempt=2, attempt={"number": 2})
    assert record is not None
    store.finish_run(
        job_id,
        Result.SUCCEEDED,
        attempt_number=2,
        attempt_index=4,  # no such entry: the finish is written, then the attempt ended apart
        attempt_fields={"exit_code": 0},
        usage=store.add_usage({}, RUN),
        exit_code=0,
    )
    done = store.get(job_id)
    assert done is not None and done.result is Result.SUCCEEDED and done.status is Status.DONE
    [entry] = done.attempts
    assert entry["number"] == 2 and entry["exit_code"] == 0 and "ended" in entry
    assert done.usage["seconds"] == pytest.approx(2.5)


def test_usage_adds_up_and_an_unknown_cost_makes_the_total_unknown() -> None:
    total = JobStore.add_usage({**RUN, "cost_usd": None}, RUN)
    assert total["seconds"] == pytest.approx(5.0) and total["cost_usd"] is None
    with pytest.raises(ValueError, match="USAGE has no keys"):
        JobStore.add_usage({}, {"watts": 3})

"""Cancelling jobs: the record first (conditional), then AWS Batch.

The record is marked ``RESULT=cancelled`` before Batch is told, so a worker that starts in
between finds nothing to claim and runs nothing, and a job that finished meanwhile keeps its own
result (``JobStore.cancel`` is conditional). Then Batch: ``CancelJob`` for a job that has not
started (SUBMITTED, PENDING, RUNNABLE), ``TerminateJob`` for one that has (STARTING, RUNNING: its
container gets SIGTERM, and the worker, seeing the record cancelled, stops its payload and
uploads nothing). An array job whose children are all cancelled is cancelled as a whole through
its parent (the parent takes its children); its running children are terminated one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from shepard.joblayer.records import Phase
from shepard.joblayer.store import JobRecord

# Batch states in which a job has a container: TerminateJob, not CancelJob, stops it.
STARTED_STATES = frozenset({"STARTING", "RUNNING"})
PARALLEL_CALLS = 8


class BatchControl(Protocol):
    def cancel_batch_job(self, batch_job_id: str, reason: str) -> None: ...

    def terminate_batch_job(self, batch_job_id: str, reason: str) -> None: ...


class Done(StrEnum):
    CANCELLED = "cancelled"  # had not started: recorded, CancelJob sent (or not yet in Batch)
    TERMINATED = "terminated"  # was running: recorded, TerminateJob sent
    FINISHED = "finished"  # had finished already: left alone
    FAILED = "failed"  # recorded cancelled, but Batch refused the call


@dataclass(frozen=True)
class Cancelled:
    """What became of one job."""

    job_id: str
    done: Done
    detail: str

    @property
    def stopped(self) -> bool:
        return self.done in (Done.CANCELLED, Done.TERMINATED)


def has_started(record: JobRecord) -> bool:
    """Whether the job's container may be running (a worker claimed it, or Batch says so)."""
    return record.phase is Phase.RUNNING or (record.batch_status or "") in STARTED_STATES


def array_parent_batch_id(record: JobRecord) -> str | None:
    """The Batch id of the array job a child belongs to (its own is ``<parent>:<index>``)."""
    if record.array_parent is None or not record.batch_job_id or ":" not in record.batch_job_id:
        return None
    return record.batch_job_id.rsplit(":", 1)[0]


def cancel_records(
    records: Iterable[JobRecord],
    *,
    cancel_record: Callable[[str, str], JobRecord | None],
    batch: BatchControl,
    reason: str,
    whole_arrays: Iterable[str] = (),
    parallel: int = PARALLEL_CALLS,
) -> list[Cancelled]:
    """Cancel each record's job (``cancel_record`` is ``JobStore.cancel``); ``whole_arrays``
    names the Batch ids of array jobs all of whose children are being cancelled (their parent is
    cancelled once, rather than each child). Errors from Batch are caught per job."""
    wholes = set(whole_arrays)

    def one(record: JobRecord) -> Cancelled:
        if record.phase is Phase.FINISHED:
            return Cancelled(record.job_id, Done.FINISHED, _finished(record))
        updated = cancel_record(record.job_id, reason)
        if updated is None:
            return Cancelled(record.job_id, Done.FINISHED, "finished while being cancelled")
        batch_id = record.batch_job_id
        try:
            if has_started(record) and batch_id:
                batch.terminate_batch_job(batch_id, reason)
                return Cancelled(record.job_id, Done.TERMINATED, f"was running: {batch_id}")
            if array_parent_batch_id(record) in wholes:
                return Cancelled(record.job_id, Done.CANCELLED, "with its array job")
            if batch_id:
                batch.cancel_batch_job(batch_id, reason)
                return Cancelled(record.job_id, Done.CANCELLED, f"had not started: {batch_id}")
        except Exception as exc:  # one refusal must not stop the others
            return Cancelled(record.job_id, Done.FAILED, f"recorded cancelled, but {exc}")
        # Not (yet) known to Batch by id: its worker will find the record cancelled and stop.
        return Cancelled(record.job_id, Done.CANCELLED, "had not started")

    chosen = list(records)
    errors: list[Cancelled] = []
    for parent in sorted(wholes):
        try:
            batch.cancel_batch_job(parent, reason)
        except Exception as exc:
            errors.append(Cancelled(parent, Done.FAILED, f"array job not cancelled: {exc}"))
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(chosen) or 1))) as pool:
        return errors + list(pool.map(one, chosen))


# Finds an array job's Batch id from its parent id, a child's record and the array's size (None
# when it cannot tell): no child knows it before one of them has started.
ParentFinder = Callable[[str, JobRecord, int], str | None]


def whole_arrays(
    records: Iterable[JobRecord],
    siblings: Callable[[str], int],
    find_parent: ParentFinder | None = None,
) -> set[str]:
    """The Batch ids of array jobs whose every child is among ``records`` (``siblings(parent)``
    says how many children the array has): as a child knows its array's Batch id, or, when
    none has started yet, as ``find_parent`` finds it in Batch."""
    counted: dict[str, int] = {}
    batch_ids: dict[str, str] = {}
    sample: dict[str, JobRecord] = {}
    for record in records:
        if record.array_parent is None:
            continue
        counted[record.array_parent] = counted.get(record.array_parent, 0) + 1
        sample.setdefault(record.array_parent, record)
        parent_batch = array_parent_batch_id(record)
        if parent_batch is not None:
            batch_ids[record.array_parent] = parent_batch
    wholes = {parent for parent, count in counted.items() if count == siblings(parent)}
    if find_parent is not None:
        for parent in sorted(wholes - set(batch_ids)):
            found = find_parent(parent, sample[parent], counted[parent])
            if found is not None:
                batch_ids[parent] = found
    return {batch_ids[parent] for parent in wholes if parent in batch_ids}


def _finished(record: JobRecord) -> str:
    result = record.result.value if record.result else "finished"
    return f"already {result}: left alone"

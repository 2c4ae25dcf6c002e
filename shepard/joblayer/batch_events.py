"""Batch's own view of a job: "Batch Job State Change" events, parsed, and what they mean.

AWS Batch sends an EventBridge event each time a job changes state (not for the first
SUBMITTED). Its ``detail`` is the job as DescribeJobs gives it. The flock's rule sends the events
of its job queues through an SQS queue to the events Lambda (lambdas/events), and the local
flock's executor emits the same events in-process (shepard/local/batch_events.py).

How an event finds its record: every job is submitted with ``SHEPARD_JOB_ID`` in its container
overrides (shepard/joblayer/batch.py), and the event's ``container.environment`` carries the
overrides. An array child inherits its parent's overrides and adds ``arrayProperties.index``;
its record is ``<parent>-<index>`` (ids.child_job_id). The job name is the TAG made safe and is
never used as a key; an array parent's own events (``arrayProperties.size``) have no record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shepard.joblayer import contract
from shepard.joblayer.ids import child_job_id, is_job_id
from shepard.joblayer.records import Result

DETAIL_TYPE = "Batch Job State Change"
SOURCE = "aws.batch"

# Batch's job states in the order one attempt goes through them. FAILED and SUCCEEDED are final
# for the Batch job (a retried attempt goes back to RUNNABLE with one more entry in ``attempts``).
STATUSES: tuple[str, ...] = (
    "SUBMITTED",
    "PENDING",
    "RUNNABLE",
    "STARTING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
)
FINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED"})

# statusReason texts Batch writes (AWS Batch User Guide: job timeouts, jobStateTimeLimitActions).
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
TIME_LIMIT_PREFIX = "Terminated by JobStateTimeLimit action"
HOST_PREFIX = "Host EC2"

# What each jobStateTimeLimitActions reason means, in the product's words.
STUCK_REASONS: dict[str, str] = {
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY": "no instance capacity came for it",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE": (
        "it asks more than any compute environment's max_vcpus allows"
    ),
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT": (
        "no compute environment has an instance type large enough for it"
    ),
}


class NotABatchEvent(ValueError):
    """The message is not a "Batch Job State Change" event."""


def rank(attempt: int, status: str) -> int:
    """The order of an event among the events of one Batch job: later states of one attempt
    rank higher, and every state of a later attempt ranks higher still. Used to refuse an event
    delivered after a later one (out of order) or twice."""
    position = STATUSES.index(status) if status in STATUSES else 0
    return attempt * len(STATUSES) + position


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _environment(detail: Mapping[str, Any]) -> dict[str, str]:
    container = detail.get("container") or {}
    return {
        str(e.get("name")): str(e.get("value"))
        for e in container.get("environment") or []
        if isinstance(e, Mapping) and "name" in e and "value" in e
    }


def _record_id(detail: Mapping[str, Any], array_index: int | None) -> str | None:
    """The record's UUID: SHEPARD_JOB_ID of the overrides (else a parameter or tag of that
    name), made a child's id for an array child; None for an array parent or a foreign job."""
    found = (
        _environment(detail).get(contract.JOB_ID)
        or (detail.get("parameters") or {}).get(contract.JOB_ID)
        or (detail.get("tags") or {}).get(contract.JOB_ID)
    )
    if not found or not is_job_id(str(found)):
        return None
    parent = str(found)
    array = detail.get("arrayProperties") or {}
    if array_index is not None:
        return child_job_id(parent, array_index)
    if array.get("size"):
        return None  # the array job itself: its children carry the records
    return parent


@dataclass(frozen=True)
class BatchEvent:
    """One "Batch Job State Change" detail, parsed."""

    batch_job_id: str  # detail.jobId (an array child: "<parent>:<index>")
    job_name: str
    status: str  # SUBMITTED PENDING RUNNABLE STARTING RUNNING SUCCEEDED FAILED
    status_reason: str | None
    job_queue: str | None  # the queue's name (from the ARN)
    attempt: int  # len(detail.attempts) (1-based; 0 before the first attempt)
    exit_code: int | None  # container.exitCode of the latest attempt
    container_reason: str | None  # container.reason (e.g. "OutOfMemoryError: Container killed")
    log_stream: str | None
    instance: str | None  # container.containerInstanceArn or taskArn
    shepard_job_id: str | None  # the record's UUID (from the job's overrides), None if none
    array_index: int | None
    time: str  # the event's time (ISO)

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> BatchEvent:
        """Parse an EventBridge event; raises NotABatchEvent for anything else."""
        if event.get("detail-type") != DETAIL_TYPE or event.get("source") != SOURCE:
            raise NotABatchEvent(
                f"expected source {SOURCE!r} and detail-type {DETAIL_TYPE!r}, got "
                f"{event.get('source')!r} and {event.get('detail-type')!r}"
            )
        detail = event.get("detail")
        if not isinstance(detail, Mapping) or not detail.get("jobId") or not detail.get("status"):
            raise NotABatchEvent("the event's detail has no jobId or status")
        attempts = [a for a in detail.get("attempts") or [] if isinstance(a, Mapping)]
        latest = attempts[-1] if attempts else {}
        latest_container = latest.get("container") or {}
        container = detail.get("container") or {}
        exit_code = latest_container.get("exitCode", container.get("exitCode"))
        index = (detail.get("arrayProperties") or {}).get("index")
        array_index = int(index) if isinstance(index, int | str) and str(index).isdigit() else None
        queue = _text(detail.get("jobQueue"))
        return cls(
            batch_job_id=str(detail["jobId"]),
            job_name=str(detail.get("jobName") or ""),
            status=str(detail["status"]),
            status_reason=_text(detail.get("statusReason") or latest.get("statusReason")),
            job_queue=queue.rsplit("/", 1)[-1] if queue else None,
            attempt=len(attempts),
            exit_code=int(exit_code) if isinstance(exit_code, int) else None,
            container_reason=_text(container.get("reason") or latest_container.get("reason")),
            log_stream=_text(
                container.get("logStreamName") or latest_container.get("logStreamName")
            ),
            instance=_text(
                container.get("containerInstanceArn")
                or container.get("taskArn")
                or latest_container.get("containerInstanceArn")
                or latest_container.get("taskArn")
            ),
            shepard_job_id=_record_id(detail, array_index),
            array_index=array_index,
            time=str(event.get("time") or ""),
        )

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def rank(self) -> int:
        return rank(self.attempt, self.status)

    @property
    def timed_out(self) -> bool:
        return (self.status_reason or "").startswith(TIMEOUT_REASON)

    @property
    def time_limit_cancelled(self) -> bool:
        return (self.status_reason or "").startswith(TIME_LIMIT_PREFIX)


def outcome(event: BatchEvent, *, timeout_seconds: int | None = None) -> tuple[Result, str]:
    """The RESULT and REASON of a job that Batch ended FAILED before its worker could say."""
    said = event.status_reason or "no status reason"
    if event.time_limit_cancelled:
        key = said.split("reason:", 1)[-1].strip() if "reason:" in said else ""
        why = STUCK_REASONS.get(key, "it could not be placed")
        return Result.CANCELLED, (
            f"cancelled by the job queue: it stayed RUNNABLE past batch.runnable_timeout_seconds "
            f"because {why}. Check its vcpus/memory/gpus against the compute environments "
            f"(shepard-tf why). Batch: {said}"
        )
    if event.timed_out:
        limit = f" of {timeout_seconds} s" if timeout_seconds else ""
        return Result.FAILED, (
            f"timed out: the attempt ran longer than its timeout{limit} (job.timeout_seconds "
            f"in flock.yaml, or the request's timeout_seconds). Batch: {said}"
        )
    container = event.container_reason or ""
    if container.startswith("CannotPullContainerError") or "CannotPull" in said:
        return Result.FAILED, (
            f"the job's container image could not be pulled, so the worker never ran. "
            f"Check the image and the instance role's ECR access. Batch: {said}; {container}"
        ).rstrip("; ")
    if container.startswith("OutOfMemoryError"):
        return Result.FAILED, (
            f"out of memory: the container was killed for using more than its memory. "
            f"Raise the job's memory. Batch: {said}; {container}"
        )
    if said.startswith(HOST_PREFIX):
        return Result.FAILED, f"the instance running it went away before it ended. Batch: {said}"
    parts = [f"Batch: {said}"]
    if container:
        parts.append(f"container: {container}")
    if event.exit_code is not None:
        parts.append(f"exit code {event.exit_code}")
    said_all = "; ".join(parts)
    return Result.FAILED, f"Batch ended the job FAILED before its worker finished it. {said_all}"

"""Notifications: a message on the flock's SNS topic when a job fails and when a batch completes.

Optional (flock.yaml ``notifications:``): the events Lambda gets the topic's ARN in
``SHEPARD_NOTIFY_TOPIC_ARN`` and publishes after it applied a final Batch event. A batch (every
job of one BATCH_ID) is complete when none of its jobs is queued or running; the handler that
sees it complete first marks the batch's oldest record (JobStore.mark_batch_notified, a
conditional write), so two handlers finishing the last two jobs at once send one message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from shepard.joblayer import clients
from shepard.joblayer.records import Phase, Result
from shepard.joblayer.store import JobRecord, JobStore

TOPIC_VARIABLE = "SHEPARD_NOTIFY_TOPIC_ARN"
SUBJECT_LIMIT = 100  # SNS's limit for e-mail subjects
MAX_REASONS = 10

log = logging.getLogger("shepard.notify")


class Publisher(Protocol):
    def publish(self, **kwargs: Any) -> Any: ...


def _seconds_between(first: str | None, last: str | None) -> int | None:
    """Seconds from CREATED_AT (ISO) to END_TIME (seed ``YYYYMMDDTHHMMSSZ``)."""
    if not first or not last:
        return None
    try:
        start = datetime.strptime(first, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        end = datetime.strptime(last, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return max(0, int((end - start).total_seconds()))


def job_failed_message(flock: str, record: JobRecord) -> dict[str, Any]:
    """The message of a failed job: what, which, why."""
    return {
        "event": "job failed",
        "flock": flock,
        "job_id": record.job_id,
        "batch_id": record.batch_id,
        "tag": record.tag,
        "result": record.result.value if record.result else None,
        "reason": record.reason,
        "exit_code": record.exit_code,
        "batch_job_id": record.batch_job_id,
        "log_stream": record.log_stream,
        "wall_seconds": _seconds_between(record.created_at, record.end_time),
    }


def batch_done_message(flock: str, batch_id: str, records: Sequence[JobRecord]) -> dict[str, Any]:
    """The message of a completed batch: counts by result, the distinct failure reasons, and
    the wall time from the first job's creation to the last one's end."""
    counts = JobStore.count_by_result(records)
    reasons: dict[str, int] = {}
    for record in records:
        if record.result in (Result.FAILED, Result.CANCELLED, Result.REJECTED) and record.reason:
            reasons[record.reason] = reasons.get(record.reason, 0) + 1
    ends = sorted(r.end_time for r in records if r.end_time)
    starts = sorted(r.created_at for r in records if r.created_at)
    return {
        "event": "batch completed",
        "flock": flock,
        "batch_id": batch_id,
        "jobs": len(records),
        "counts": counts,
        "reasons": [
            {"reason": reason, "jobs": jobs}
            for reason, jobs in sorted(reasons.items(), key=lambda kv: -kv[1])[:MAX_REASONS]
        ],
        "wall_seconds": _seconds_between(starts[0] if starts else None, ends[-1] if ends else None),
    }


def _subject(message: Mapping[str, Any]) -> str:
    if message["event"] == "job failed":
        text = f"shepard {message['flock']}: job {message['job_id']} {message['result']}"
    else:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(message["counts"].items()))
        text = f"shepard {message['flock']}: batch {message['batch_id']} done ({counts})"
    return text[:SUBJECT_LIMIT]


class Notifier:
    """Publishes to one SNS topic."""

    def __init__(self, topic_arn: str, flock: str, client: Publisher | None = None) -> None:
        self.topic_arn = topic_arn
        self.flock = flock
        self.client: Publisher = client if client is not None else clients.client("sns")
        self.sent: list[dict[str, Any]] = []

    @classmethod
    def from_env(cls, env: Mapping[str, str], flock: str) -> Notifier | None:
        """The flock's notifier; None when the flock has no ``notifications:``."""
        topic = env.get(TOPIC_VARIABLE, "")
        return cls(topic, flock) if topic else None

    def publish(self, message: dict[str, Any]) -> None:
        self.client.publish(
            TopicArn=self.topic_arn,
            Subject=_subject(message),
            Message=json.dumps(message, indent=2, sort_keys=True),
        )
        self.sent.append(message)
        log.info(json.dumps({"event": "notified", "what": message["event"]}))

    def job_failed(self, record: JobRecord) -> None:
        self.publish(job_failed_message(self.flock, record))

    def batch_if_done(self, store: JobStore, batch_id: str) -> bool:
        """Publish the batch's message if it is complete and nobody published it yet."""
        records = store.query_batch(batch_id)
        if not records or any(r.phase is not Phase.FINISHED for r in records):
            return False
        if not store.mark_batch_notified(records[0].job_id):
            return False
        self.publish(batch_done_message(self.flock, batch_id, records))
        return True

"""The scheduler Lambda: S3 "object created" events, through SQS, become Batch jobs.

For each zip dropped in the inputs bucket: read ``inputs.json`` out of it with ranged GETs,
validate, write the job record (conditional on the event's idempotency key), submit the job.

- A poison zip (not a zip, no ``inputs.json``, bad JSON, reserved names...) becomes a rejected
  record and a JSON report ``rejected/<zip key>.json`` in the errors bucket; its message counts as
  handled, so it is never retried forever.
- A transient failure (throttling, 5xx, a dropped connection) or an unexpected error puts that
  message id, and only it, in ``batchItemFailures``: SQS delivers it again, and after the queue's
  ``max_receive_count`` moves it to the dead-letter queue.
- A second delivery of one event finds its record and submits nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from shepard.joblayer import clients
from shepard.joblayer.batch import is_transient
from shepard.joblayer.ids import job_id_for
from shepard.joblayer.service import JobOutcome, JobService, Outcome
from shepard.joblayer.settings import FlockSettings, PerEnvironment
from shepard.joblayer.variables import JobRejected, parse_json
from shepard.joblayer.zipread import read_inputs_json

log = logging.getLogger("shepard.scheduler")
log.setLevel(logging.INFO)


@dataclass
class Runtime:
    """What one Lambda container keeps between invocations: settings and boto3 clients."""

    settings: FlockSettings
    service: JobService
    s3: Any

    @classmethod
    def from_settings(cls, settings: FlockSettings, **options: Any) -> Runtime:
        """``options``: JobService.from_settings's (``batch_client``, ``sleep``), for tests."""
        return cls(settings, JobService.from_settings(settings, **options), clients.client("s3"))


_RUNTIME: PerEnvironment[Runtime] = PerEnvironment(Runtime.from_settings)


def runtime() -> Runtime:
    """The container's runtime, made on first use (and again if the environment changed)."""
    return _RUNTIME.get()


def idempotency_key(bucket: str, key: str, s3_object: dict[str, Any], event_time: str) -> str:
    """``s3://bucket/key#<versionId or eTag>@<sequencer or eventTime>`` (contracts section 5)."""
    version = s3_object.get("versionId") or s3_object.get("eTag") or ""
    moment = s3_object.get("sequencer") or event_time
    return f"s3://{bucket}/{key}#{version}@{moment}"


def _report(rt: Runtime, folder: str, bucket: str, key: str, outcome: JobOutcome) -> None:
    report = {
        "job_id": outcome.job_id,
        "result": outcome.outcome.value,
        "reason": outcome.reason,
        "bucket": bucket,
        "key": key,
        "reported_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    rt.s3.put_object(
        Bucket=rt.settings.errors_bucket,
        Key=f"{folder}/{key}.json",
        Body=json.dumps(report, indent=2).encode(),
        ContentType="application/json",
    )


def _event_size(s3_object: dict[str, Any]) -> int | None:
    """The object's size as the S3 event gives it (a zip under 1 MiB is then read in one GET);
    None when the event has none."""
    size = s3_object.get("size")
    if isinstance(size, bool) or not isinstance(size, int | str):
        return None
    try:
        value = int(size)
    except ValueError:
        return None
    return value if value >= 0 else None


def handle_object(rt: Runtime, record: dict[str, Any]) -> JobOutcome | None:
    """One S3 event record: a job submitted, a duplicate, a rejection; None when not for us."""
    if not str(record.get("eventName", "")).startswith("ObjectCreated"):
        return None
    s3_part = record.get("s3", {})
    bucket = str(s3_part.get("bucket", {}).get("name", ""))
    s3_object = s3_part.get("object", {})
    key = unquote_plus(str(s3_object.get("key", "")))
    if not bucket or not key or key.endswith("/"):
        return None
    ikey = idempotency_key(bucket, key, s3_object, str(record.get("eventTime", "")))
    service = rt.service
    existing = service.store.get(job_id_for(ikey))
    if existing is not None and (existing.batch_job_id or existing.result):
        log.info(json.dumps({"event": "duplicate", "job_id": existing.job_id, "key": key}))
        return JobOutcome(existing.job_id, Outcome.DUPLICATE, existing.reason)
    try:
        found = read_inputs_json(
            rt.s3,
            bucket,
            key,
            version_id=s3_object.get("versionId"),
            etag=s3_object.get("eTag"),
            size=_event_size(s3_object),
        )
        request = parse_json(found.data, source=f"{found.entry} in s3://{bucket}/{key}")
    except JobRejected as exc:
        outcome = service.reject(
            exc.reason, is_invoked=False, idempotency_key=ikey, input_zip_name=key
        )
    else:
        outcome = service.submit(
            request, is_invoked=False, idempotency_key=ikey, input_zip_name=key
        )
    if outcome.outcome in (Outcome.REJECTED, Outcome.FAILED):
        _report(rt, outcome.outcome.value, bucket, key, outcome)
    log.info(
        json.dumps(
            {
                "event": outcome.outcome.value,
                "job_id": outcome.job_id,
                "key": key,
                "batch_job_id": outcome.batch_job_id,
                "reason": outcome.reason,
            }
        )
    )
    return outcome


def handle_message(rt: Runtime, message: dict[str, Any]) -> list[JobOutcome]:
    """One SQS message: an S3 event notification holding one or more records."""
    try:
        body = json.loads(message.get("body") or "")
    except json.JSONDecodeError:
        log.warning(json.dumps({"event": "unreadable message", "id": message.get("messageId")}))
        return []
    if not isinstance(body, dict) or body.get("Event") == "s3:TestEvent":
        return []
    outcomes = []
    for record in body.get("Records", []) or []:
        if isinstance(record, dict):
            outcome = handle_object(rt, record)
            if outcome is not None:
                outcomes.append(outcome)
    return outcomes


def handle(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    failures = []
    for message in event.get("Records", []) or []:
        try:
            handle_message(rt, message)
        except Exception as exc:  # every message gets an answer; the batch never fails whole
            transient = is_transient(exc)
            log.log(
                logging.WARNING if transient else logging.ERROR,
                json.dumps(
                    {
                        "event": "retry" if transient else "error",
                        "id": message.get("messageId"),
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                ),
                exc_info=not transient,
            )
            failures.append({"itemIdentifier": message.get("messageId")})
    return {"batchItemFailures": failures}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (SQS event source with ``ReportBatchItemFailures``)."""
    return handle(runtime(), event)

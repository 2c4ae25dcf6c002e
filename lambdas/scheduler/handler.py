"""The scheduler Lambda: S3 "object created" events, through SQS, become Batch jobs.

Each invocation gets one SQS batch (up to ``scheduler.batch_size`` messages gathered for up to
``scheduler.batching_window_seconds``: flock.yaml). Every zip dropped in it is read (``inputs.json``
only: one GET under 1 MiB, at most two above), validated and then the accepted ones fan in:

- two or more become ONE Batch array job: one child record each (``<parent>-<index>``, with
  ARRAY_PARENT/ARRAY_INDEX, written with BatchWriteItem after its idempotency claim, a
  conditional PutItem: ``JobStore.create_claimed``) and one SubmitJob, so 10,000 drops cost about
  100 SubmitJob calls, not 10,000, and stay far below Batch's request rate;
- a lone drop is a plain job, submitted at once (Batch has no array of one).

Every job of one invocation shares a BATCH_ID (``ids.new_batch_id()``), unless its zip carries
one (``x-amz-meta-shepard-batch-id``, set by ``shepard-tf batch``).

Per drop, never per batch:

- A poison zip (not a zip, no ``inputs.json``, bad JSON, reserved names...) becomes a rejected
  record and a JSON report ``rejected/<zip key>.json`` in the errors bucket; its message counts as
  handled, so it is never retried forever, and the other drops go on.
- A second delivery of one event finds its claim (or its plain record) and submits nothing.
  A fan-in marks its array submitted once SubmitJob answered (one PutItem an array); a claim
  found unmarked is in flight, and its message comes back in ``batchItemFailures``, until it is
  older than ``RESUBMIT_AFTER`` (the Lambda that made it died before SubmitJob answered): then
  the delivery takes it over, conditionally, writes its record again and submits it.
- A transient failure (throttling, 5xx, a dropped connection) or an unexpected error puts that
  message id, and only it, in ``batchItemFailures``: SQS delivers it again, and after the queue's
  ``max_receive_count`` moves it to the dead-letter queue. A SubmitJob that stays throttled
  removes the array's records and claims and returns all its messages, so they start afresh.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from shepard.joblayer import clients, ids
from shepard.joblayer.batch import TransientFailure, is_transient
from shepard.joblayer.contract import BATCH_ID_METADATA
from shepard.joblayer.ids import child_job_id, job_id_for, new_job_id
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.service import RESUBMIT_AFTER, JobOutcome, JobService, Outcome
from shepard.joblayer.settings import FlockSettings, PerEnvironment
from shepard.joblayer.store import JobRecord, created_at_text, expires_at, seed_time_text
from shepard.joblayer.variables import (
    JobRejected,
    check_request_size,
    find_tag,
    parse_json,
    validate_variables,
)
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


def _log(event: str, **fields: Any) -> None:
    log.info(json.dumps({"event": event, **fields}))


@dataclass(frozen=True)
class Drop:
    """One zip dropped: the S3 event record, decoded."""

    message_id: str
    bucket: str
    key: str
    ikey: str
    s3_object: dict[str, Any]

    @property
    def claim(self) -> str:
        """The job id its idempotency key gives: its plain record's id, or its claim's."""
        return job_id_for(self.ikey)


@dataclass(frozen=True)
class Accepted:
    """A drop whose ``inputs.json`` is valid: its variables, ready to be recorded."""

    drop: Drop
    variables: dict[str, str]
    batch_id: str | None


def drop_of(message_id: str, record: dict[str, Any]) -> Drop | None:
    """The drop an S3 event record describes; None when it is not a zip drop for us."""
    if not str(record.get("eventName", "")).startswith("ObjectCreated"):
        return None
    s3_part = record.get("s3", {})
    bucket = str(s3_part.get("bucket", {}).get("name", ""))
    s3_object = s3_part.get("object", {})
    key = unquote_plus(str(s3_object.get("key", "")))
    if not bucket or not key or key.endswith("/"):
        return None
    ikey = idempotency_key(bucket, key, s3_object, str(record.get("eventTime", "")))
    return Drop(message_id, bucket, key, ikey, s3_object)


def drops_of(message: dict[str, Any]) -> list[Drop]:
    """The drops of one SQS message: an S3 event notification holding one or more records."""
    message_id = str(message.get("messageId", ""))
    try:
        body = json.loads(message.get("body") or "")
    except json.JSONDecodeError:
        log.warning(json.dumps({"event": "unreadable message", "id": message_id}))
        return []
    if not isinstance(body, dict) or body.get("Event") == "s3:TestEvent":
        return []
    found = []
    for record in body.get("Records", []) or []:
        if isinstance(record, dict):
            drop = drop_of(message_id, record)
            if drop is not None:
                found.append(drop)
    return found


def read_drop(rt: Runtime, drop: Drop, batch_id: str) -> Accepted | JobOutcome:
    """Read and validate one drop's ``inputs.json``: Accepted, or the rejection recorded."""
    metadata_batch: str | None = None
    try:
        found = read_inputs_json(
            rt.s3,
            drop.bucket,
            drop.key,
            version_id=drop.s3_object.get("versionId"),
            etag=drop.s3_object.get("eTag"),
            size=_event_size(drop.s3_object),
        )
        metadata_batch = found.metadata.get(BATCH_ID_METADATA)
        variables = validate_variables(
            parse_json(found.data, source=f"{found.entry} in s3://{drop.bucket}/{drop.key}")
        )
        check_request_size(variables)
        unplaceable = rt.service.unplaceable()  # shepard/joblayer/fit.py
        if unplaceable:
            raise JobRejected(unplaceable)
    except JobRejected as exc:
        outcome = rt.service.reject(
            exc.reason,
            is_invoked=False,
            idempotency_key=drop.ikey,
            input_zip_name=drop.key,
            batch_id=metadata_batch or batch_id,
        )
        _finished(rt, drop, outcome)
        return outcome
    return Accepted(drop, variables, metadata_batch or batch_id)


def _finished(rt: Runtime, drop: Drop, outcome: JobOutcome) -> None:
    if outcome.outcome in (Outcome.REJECTED, Outcome.FAILED):
        _report(rt, outcome.outcome.value, drop.bucket, drop.key, outcome)
    _log(
        outcome.outcome.value,
        job_id=outcome.job_id,
        key=drop.key,
        batch_job_id=outcome.batch_job_id,
        reason=outcome.reason,
    )


def submit_one(rt: Runtime, accepted: Accepted) -> list[str]:
    """A lone drop: a plain job (its record's id is its claim), submitted at once. Found
    claimed by a fan-in (no Batch job id), it goes through ``fan_in``, which may take the claim
    over; returns the message ids to retry later."""
    drop = accepted.drop
    outcome = rt.service.submit(
        accepted.variables,
        is_invoked=False,
        idempotency_key=drop.ikey,
        input_zip_name=drop.key,
        batch_id=accepted.batch_id,
        input_zip_size=_event_size(drop.s3_object),
    )
    if outcome.outcome is Outcome.DUPLICATE and outcome.batch_job_id is None:
        return fan_in(rt, [accepted])
    _finished(rt, drop, outcome)
    return []


def fan_in(rt: Runtime, accepted: list[Accepted]) -> list[str]:
    """Two or more drops: child records with their claims, then ONE SubmitJob (an array job;
    a plain one when all but one were duplicates), then one PutItem marking the array
    submitted. A claim found unmarked is taken over after RESUBMIT_AFTER (its Lambda died
    before SubmitJob answered); younger, its message id is returned, to be retried later."""
    service = rt.service
    parent = new_job_id()
    now = service.clock()
    stamp = created_at_text(now)
    keep = expires_at(now, rt.settings.days_to_keep_failed_launch_indexes)
    pairs = [
        (
            item.drop.claim,
            JobRecord(
                job_id=child_job_id(parent, index),
                created_at=stamp,
                variables=item.variables,
                tag=find_tag(item.variables),
                is_invoked=False,
                input_zip_name=item.drop.key,
                input_zip_size=_event_size(item.drop.s3_object),
                idempotency_key=item.drop.ikey,
                array_parent=parent,
                array_index=index,
                expires_at=keep,
                batch_id=item.batch_id,
                timeout_seconds=rt.settings.job_timeout_seconds,
            ),
        )
        for index, item in enumerate(accepted)
    ]
    claimed = service.store.claim_drops(pairs, take_over_after=RESUBMIT_AFTER)
    children = claimed.records
    by_ikey = {item.drop.ikey: item.drop for item in accepted}
    written = {child.idempotency_key for child in children}
    in_flight = set(claimed.in_flight)
    retry = [item.drop.message_id for item in accepted if item.drop.claim in in_flight]
    for item in accepted:
        if item.drop.claim in in_flight:
            _log("in flight", job_id=item.drop.claim, key=item.drop.key)
        elif item.drop.ikey not in written:
            _log("duplicate", job_id=item.drop.claim, key=item.drop.key)
    if not children:
        return retry
    if len(children) == 1:
        # Batch has no array of one: the child runs as a plain job under its own id.
        submit_as, size = children[0].job_id, None
    else:
        # A duplicate's index has no record: that child finds none and exits at once.
        submit_as, size = parent, max(int(child.array_index or 0) for child in children) + 1
    claims = [by_ikey[str(child.idempotency_key)].claim for child in children]
    try:
        batch_job_id = service.submitter.submit(submit_as, tag=children[0].tag, array_size=size)
    except (ClientError, TransientFailure) as exc:
        if is_transient(exc):
            service.store.delete_claimed(children, claims)
            raise
        assert isinstance(exc, ClientError)
        error = exc.response.get("Error", {})
        reason = (
            f"while submitting the job to AWS Batch: {error.get('Code', 'error')}: "
            f"{error.get('Message', '')}. Check the flock's job queue and job definition."
        )
        finished_at = seed_time_text(service.clock())
        service.store.put_many(
            replace(
                child,
                status=Status.DONE,
                phase=Phase.FINISHED,
                result=Result.FAILED,
                reason=reason,
                end_time=finished_at,
            )
            for child in children
        )
        _mark(rt, parent, "", keep)
        for child in children:
            drop = by_ikey[str(child.idempotency_key)]
            _finished(rt, drop, JobOutcome(child.job_id, Outcome.FAILED, reason))
        return retry
    _mark(rt, parent, batch_job_id, keep)
    _log(
        "submitted",
        array_parent=parent,
        batch_job_id=batch_job_id,
        array_size=size,
        job_ids=[child.job_id for child in children],
        keys=[child.input_zip_name for child in children],
    )
    return retry


def _mark(rt: Runtime, parent: str, batch_job_id: str, keep: int) -> None:
    """The array's claims are settled (submitted, or failed for good). A failure here is only
    logged: the jobs are recorded, and a claim taken over later finds its record no longer
    queued, or marked by Batch's events, before resubmitting anything."""
    try:
        rt.service.store.mark_array_submitted(parent, batch_job_id, expires=keep)
    except Exception as exc:
        _log("unmarked", array_parent=parent, error=f"{type(exc).__name__}: {exc}")


def _failed(message_id: str, exc: Exception, failures: dict[str, None]) -> None:
    transient = is_transient(exc)
    log.log(
        logging.WARNING if transient else logging.ERROR,
        json.dumps(
            {
                "event": "retry" if transient else "error",
                "id": message_id,
                "error": f"{type(exc).__name__}: {exc}",
            }
        ),
        exc_info=not transient,
    )
    failures[message_id] = None


def handle(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """One SQS batch: every drop read, the accepted ones fanned in; the messages that truly
    failed come back in ``batchItemFailures`` (ReportBatchItemFailures)."""
    failures: dict[str, None] = {}  # message ids, in order, once each
    drops: list[Drop] = []
    for message in event.get("Records", []) or []:
        try:
            drops += drops_of(message)
        except Exception as exc:  # every message gets an answer; the batch never fails whole
            _failed(str(message.get("messageId")), exc, failures)
    batch_id = ids.new_batch_id()
    accepted: list[Accepted] = []
    seen: set[str] = set()
    for drop in drops:
        if drop.ikey in seen or drop.message_id in failures:
            continue  # one event delivered twice in one batch: once is enough
        seen.add(drop.ikey)
        try:
            read = read_drop(rt, drop, batch_id)
        except Exception as exc:
            _failed(drop.message_id, exc, failures)
            continue
        if isinstance(read, Accepted):
            accepted.append(read)
    accepted = [item for item in accepted if item.drop.message_id not in failures]
    if len(accepted) == 1:
        try:
            for message_id in submit_one(rt, accepted[0]):
                failures[message_id] = None
        except Exception as exc:
            _failed(accepted[0].drop.message_id, exc, failures)
    elif accepted:
        try:
            for message_id in fan_in(rt, accepted):
                failures[message_id] = None
        except Exception as exc:
            for item in accepted:
                _failed(item.drop.message_id, exc, failures)
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (SQS event source with ``ReportBatchItemFailures``)."""
    return handle(runtime(), event)

"""The events Lambda: Batch's "Batch Job State Change" events, through SQS, update job records.

The flock's EventBridge rule sends the events of its job queues to an SQS queue; each message's
body is one EventBridge event. For each:

- parse it (shepard.joblayer.batch_events) and apply it to the job's record
  (JobStore.apply_batch_event: conditional, so duplicates and out-of-order deliveries change
  nothing, and a finished record is never moved back);
- after a final FAILED event, offer the job to the retry ladder
  (``shepard.joblayer.retry.after_failure``, when the job layer has it);
- when the flock has notifications, publish a failed job and a completed batch.

A message that is not a Batch event is logged and dropped (it would never succeed). A transient
failure (throttling, 5xx) or an unexpected error puts that message, and only it, in
``batchItemFailures``: SQS delivers it again, then moves it to the dead-letter queue.

The local flock's executor calls ``handle_event`` in-process with the same events.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from shepard.joblayer.batch import BatchSubmitter, is_transient
from shepard.joblayer.batch_events import BatchEvent, NotABatchEvent
from shepard.joblayer.notify import Notifier
from shepard.joblayer.records import Phase, Result
from shepard.joblayer.settings import FlockSettings, PerEnvironment
from shepard.joblayer.store import JobRecord, JobStore

log = logging.getLogger("shepard.events")
log.setLevel(logging.INFO)


class RetryLadder(Protocol):
    """What ``shepard.joblayer.retry`` offers: ``RetryPolicy.from_settings(settings)`` and
    ``after_failure(...)``, which returns the new Batch job id when it resubmitted the job."""

    RetryPolicy: Any

    def after_failure(
        self,
        store: JobStore,
        submitter: BatchSubmitter,
        record: JobRecord,
        event: BatchEvent,
        policy: Any,
    ) -> str | None: ...


def retry_ladder() -> RetryLadder | None:
    """The job layer's retry module, or None while it does not exist."""
    try:
        return cast(RetryLadder, importlib.import_module("shepard.joblayer.retry"))
    except ModuleNotFoundError as exc:
        if exc.name != "shepard.joblayer.retry":
            raise
        return None


@dataclass
class Runtime:
    """What one Lambda container keeps between invocations."""

    settings: FlockSettings
    store: JobStore
    notifier: Notifier | None = None
    submitter: BatchSubmitter | None = None
    ladder: RetryLadder | None = None

    @classmethod
    def from_settings(
        cls, settings: FlockSettings, env: Mapping[str, str] | None = None, **clients: Any
    ) -> Runtime:
        """``clients``: ``dynamodb``, ``batch``, ``sns`` (boto3 clients), for tests and the
        local flock; else made from the environment."""
        env = os.environ if env is None else env
        store = JobStore(
            settings.table_name,
            clients.get("dynamodb"),
            days_to_keep_finished_jobs=settings.days_to_keep_finished_jobs,
        )
        topic = env.get("SHEPARD_NOTIFY_TOPIC_ARN", "")
        notifier = Notifier(topic, settings.flock, clients.get("sns")) if topic else None
        ladder = retry_ladder()
        submitter = (
            BatchSubmitter(settings.job_queue, settings.job_definition, clients.get("batch"))
            if ladder is not None
            else None
        )
        return cls(settings, store, notifier, submitter, ladder)


_RUNTIME: PerEnvironment[Runtime] = PerEnvironment(Runtime.from_settings)


def runtime() -> Runtime:
    return _RUNTIME.get()


def _retry(rt: Runtime, record: JobRecord, event: BatchEvent) -> str | None:
    """Offer a failed job to the retry ladder; the new Batch job id when it resubmitted."""
    if rt.ladder is None or rt.submitter is None:
        return None
    policy = rt.ladder.RetryPolicy.from_settings(rt.settings)
    new_id = rt.ladder.after_failure(rt.store, rt.submitter, record, event, policy)
    return str(new_id) if new_id else None


def handle_event(rt: Runtime, body: Mapping[str, Any]) -> bool:
    """One EventBridge event; True when the job's record took it."""
    try:
        event = BatchEvent.from_event(body)
    except NotABatchEvent as exc:
        log.warning(json.dumps({"event": "not a batch event", "why": str(exc)}))
        return False
    taken = rt.store.apply_batch_event(event)
    log.info(
        json.dumps(
            {
                "event": "taken" if taken else "ignored",
                "job_id": event.shepard_job_id,
                "batch_job_id": event.batch_job_id,
                "status": event.status,
                "attempt": event.attempt,
                "reason": event.status_reason,
            }
        )
    )
    if not taken or not event.final or event.shepard_job_id is None:
        return taken
    record = rt.store.get(event.shepard_job_id)
    if record is None:
        return taken
    if event.status == "FAILED":
        resubmitted = _retry(rt, record, event)
        if resubmitted:
            log.info(
                json.dumps(
                    {"event": "resubmitted", "job_id": record.job_id, "batch_job_id": resubmitted}
                )
            )
            return taken
    if rt.notifier is not None and record.phase is Phase.FINISHED:
        if record.result is Result.FAILED:
            rt.notifier.job_failed(record)
        if record.batch_id:
            rt.notifier.batch_if_done(rt.store, record.batch_id)
    return taken


def handle(rt: Runtime, event: Mapping[str, Any]) -> dict[str, Any]:
    failures = []
    for message in event.get("Records", []) or []:
        try:
            body = json.loads(message.get("body") or "")
        except json.JSONDecodeError:
            log.warning(json.dumps({"event": "unreadable message", "id": message.get("messageId")}))
            continue
        try:
            if isinstance(body, Mapping):
                handle_event(rt, body)
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

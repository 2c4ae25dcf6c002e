"""The API Lambda: a job from a JSON payload, by Lambda invoke or through the function URL.

Invoke (what ``shepard-tf batch_via_api --json_payload '{...}'`` sends): the event IS the job's
variables object; a list of objects is an array job. The answer is ``{"job_id": ..., "UUID": ...}``
or ``{"error": ..., "statusCode": 400}`` (no job). Through the function URL (IAM auth) the same
payload is the POST body; the answer is HTTP 200 with that JSON, or 400/405/503 with the error.
Request and response are fixed in docs/contracts.md, section 10.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from botocore.exceptions import ClientError

from shepard.joblayer.batch import TransientFailure, is_transient
from shepard.joblayer.ids import new_batch_id
from shepard.joblayer.service import JobOutcome, JobService, Outcome
from shepard.joblayer.settings import PerEnvironment
from shepard.joblayer.variables import JobRejected, parse_json

log = logging.getLogger("shepard.api")
log.setLevel(logging.INFO)

IDEMPOTENCY_HEADER = "idempotency-key"

_SERVICE: PerEnvironment[JobService] = PerEnvironment(JobService.from_settings)


def service() -> JobService:
    """The container's job service (boto3 clients made once, again if the environment moved)."""
    return _SERVICE.get()


def _answer(outcome: JobOutcome) -> tuple[int, dict[str, Any]]:
    if outcome.outcome is Outcome.REJECTED:
        return 400, {"error": outcome.reason, "statusCode": 400, "rejected_job_id": outcome.job_id}
    if outcome.outcome is Outcome.FAILED:
        return 502, {"error": outcome.reason, "statusCode": 502, "job_id": outcome.job_id}
    body: dict[str, Any] = {
        "job_id": outcome.job_id,
        "UUID": outcome.job_id,
        "status": outcome.outcome.value,
        "batch_job_id": outcome.batch_job_id,
    }
    if outcome.array_size is not None:
        body["array_size"] = outcome.array_size
    if outcome.batch_id is not None:
        body["batch_id"] = outcome.batch_id
    if outcome.parts:  # more than 10,000 children: several array jobs
        body["array_parts"] = [
            {"job_id": p.job_id, "batch_job_id": p.batch_job_id, "array_size": p.array_size}
            for p in outcome.parts
        ]
    return 200, body


# A request may wrap its variables to give the job options that are not variables (so never
# environment variables of the payload): {"variables": {...}, "timeout_seconds": N}.
OPTIONS = ("timeout_seconds",)
MIN_TIMEOUT_SECONDS = 60  # AWS Batch's minimum attempt duration


def unwrap(payload: object) -> tuple[object, int | None]:
    """The variables and the timeout override of a request; raises JobRejected for a bad one.

    A request whose only keys are ``variables`` (an object or a list) and the options is an
    envelope; any other object is the variables themselves, as before.
    """
    if not (
        isinstance(payload, dict)
        and isinstance(payload.get("variables"), dict | list)
        and set(payload) <= {"variables", *OPTIONS}
    ):
        return payload, None
    timeout = payload.get("timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < MIN_TIMEOUT_SECONDS
    ):
        raise JobRejected(
            f"timeout_seconds must be a whole number of seconds, at least {MIN_TIMEOUT_SECONDS} "
            f"(AWS Batch's minimum), not {timeout!r}"
        )
    if timeout is not None and isinstance(payload["variables"], list):
        raise JobRejected(
            "timeout_seconds is for one job; an array job takes the flock's job.timeout_seconds"
        )
    return payload["variables"], timeout


def submit_payload(
    jobs: JobService, payload: object, *, idempotency_key: str | None = None
) -> tuple[int, dict[str, Any]]:
    """A decoded payload (object, or list of objects) to a job; (HTTP status, answer)."""
    if isinstance(payload, str):  # a JSON document sent as a JSON string
        try:
            payload = parse_json(payload, source="the payload")
        except JobRejected as exc:
            return 400, {"error": exc.reason, "statusCode": 400}
    try:
        payload, timeout_seconds = unwrap(payload)
    except JobRejected as exc:
        return 400, {"error": exc.reason, "statusCode": 400}
    try:
        if isinstance(payload, list):
            if idempotency_key is not None:
                return 400, {
                    "error": "an idempotency key is for one job, not an array job; leave it out",
                    "statusCode": 400,
                }
            outcome = jobs.submit_array(payload, is_invoked=True, batch_id=new_batch_id())
        else:
            outcome = jobs.submit(
                payload,
                is_invoked=True,
                idempotency_key=idempotency_key,
                batch_id=new_batch_id(),
                timeout_seconds=timeout_seconds,
            )
    except (TransientFailure, ClientError) as exc:
        if not is_transient(exc):
            raise
        log.warning(json.dumps({"event": "throttled", "error": str(exc)}))
        return 503, {
            "error": f"AWS is throttling job submission ({exc}); no job was made: try again",
            "statusCode": 503,
        }
    status, answer = _answer(outcome)
    log.info(json.dumps({"event": outcome.outcome.value, "job_id": outcome.job_id}))
    return status, answer


def _is_http(event: object) -> bool:
    return (
        isinstance(event, dict)
        and isinstance(event.get("requestContext"), dict)
        and isinstance(event["requestContext"].get("http"), dict)
        and "rawPath" in event
    )


def _http(status: int, answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(answer),
        "isBase64Encoded": False,
    }


def handle_http(jobs: JobService, event: dict[str, Any]) -> dict[str, Any]:
    method = str(event["requestContext"]["http"].get("method", "")).upper()
    if method != "POST":
        return _http(
            405,
            {"error": f"{method} is not allowed; POST the job's variables", "statusCode": 405},
        )
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return _http(400, {"error": "the body is not valid base64 UTF-8", "statusCode": 400})
    try:
        payload = parse_json(raw, source="the request body")
    except JobRejected as exc:
        return _http(400, {"error": exc.reason, "statusCode": 400})
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    key = headers.get(IDEMPOTENCY_HEADER)
    status, answer = submit_payload(jobs, payload, idempotency_key=f"api:{key}" if key else None)
    return _http(status, answer)


def handle(jobs: JobService, event: object) -> dict[str, Any]:
    if _is_http(event):
        assert isinstance(event, dict)
        return handle_http(jobs, event)
    _, answer = submit_payload(jobs, event)
    return answer


def handler(event: object, context: Any) -> dict[str, Any]:
    """Lambda entry point: invoke (event = variables) or function URL (payload format 2.0)."""
    return handle(service(), event)

"""Job ids: 32 lowercase hex characters; array children ``<parent>-<index>``. Batch ids:
``b-<UTC yyyymmddTHHMMSS>-<6 hex>``, one per submission (``batch``, the API, an array)."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime

JOB_ID_PATTERN = re.compile(r"^[0-9a-f]{32}(-[0-9]{1,5})?$")
BATCH_ID_PATTERN = re.compile(r"^b-[0-9]{8}T[0-9]{6}-[0-9a-f]{6}$")


def new_job_id() -> str:
    """A fresh random job id (``uuid4().hex``)."""
    return uuid.uuid4().hex


def job_id_for(idempotency_key: str) -> str:
    """The job id of a request with this idempotency key: the same key, the same id."""
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]


def child_job_id(parent: str, index: int) -> str:
    """The id of child ``index`` of array job ``parent`` (``AWS_BATCH_JOB_ARRAY_INDEX``)."""
    if index < 0:
        raise ValueError(f"array index must not be negative, got {index}")
    return f"{parent}-{index}"


def is_job_id(text: str) -> bool:
    """Whether ``text`` looks like a job id (plain or array child)."""
    return bool(JOB_ID_PATTERN.match(text))


def new_batch_id(now: datetime | None = None) -> str:
    """A fresh batch id, ``b-<UTC yyyymmddTHHMMSS>-<6 hex>``: it sorts by when it was made, and
    the random part keeps two submissions in one second apart."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"b-{moment.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def is_batch_id(text: str) -> bool:
    """Whether ``text`` looks like a batch id."""
    return bool(BATCH_ID_PATTERN.match(text))

"""A job's log: which CloudWatch stream holds it, and one poller that reads (and follows) it.

On AWS a job's lines are in the flock's log group ``/aws/batch/<flock>`` (terraform/modules/
batch), in the stream Batch names per attempt (``LOG_STREAM`` of the record, or its ATTEMPTS
entry). GetLogEvents is read from the head, page after page by ``nextForwardToken``: the end of
the stream is the page whose token is the one sent. ``follow`` keeps one poller going, never
more, and backs off (doubling, up to a minute) when CloudWatch Logs throttles (its
GetLogEvents quota is 10 requests a second per account and region, shared with everyone); it
stops once the job is finished and the stream is read to its end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shepard.joblayer.store import JobRecord

POLL_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 60.0


def log_group(flock: str) -> str:
    """The flock's job log group (terraform/modules/batch: ``/aws/batch/<flock name>``)."""
    return f"/aws/batch/{flock}"


class Throttled(Exception):
    """CloudWatch Logs answered ThrottlingException: wait, then ask again."""


class NoStream(LookupError):
    """The record names no log stream (for that attempt)."""


def stream_of(record: JobRecord, attempt: int | None = None) -> str:
    """The log stream of ``attempt`` (1-based; None: the latest the record knows)."""
    attempts: Sequence[Mapping[str, Any]] = record.attempts
    if attempt is not None:
        for entry in attempts:
            if entry.get("number") == attempt and entry.get("log_stream"):
                return str(entry["log_stream"])
        known = [int(e["number"]) for e in attempts if e.get("number") is not None]
        raise NoStream(
            f"job {record.job_id} has no log stream for attempt {attempt}"
            + (f" (its attempts: {', '.join(map(str, known))})" if known else "")
        )
    if record.log_stream:
        return record.log_stream
    for entry in reversed(attempts):
        if entry.get("log_stream"):
            return str(entry["log_stream"])
    raise NoStream(f"job {record.job_id} has no log stream yet (it has not started on Batch)")


Page = tuple[Sequence[Mapping[str, Any]], str | None]


def follow_stream(
    fetch: Callable[[str | None], Page],
    emit: Callable[[str], None],
    *,
    follow: bool,
    finished: Callable[[], bool],
    sleep: Callable[[float], None],
    poll: float = POLL_SECONDS,
    max_backoff: float = MAX_BACKOFF_SECONDS,
) -> int:
    """Print every event of the stream through ``emit``; with ``follow``, keep reading until
    ``finished()`` and the stream's end. ``fetch(token)`` is one GetLogEvents page (raising
    Throttled when throttled). Returns how many lines were emitted."""
    token: str | None = None
    backoff = poll
    emitted = 0
    done_seen = False
    while True:
        try:
            events, next_token = fetch(token)
        except Throttled:
            backoff = min(max_backoff, backoff * 2)
            sleep(backoff)
            continue
        backoff = poll
        for event in events:
            emit(str(event.get("message", "")).rstrip("\n"))
            emitted += 1
        at_end = not events and (next_token is None or next_token == token)
        token = next_token or token
        if not at_end:
            continue
        if not follow or done_seen:
            return emitted
        # Read once more after the job finished: its last lines may land after the event.
        done_seen = finished()
        if not done_seen:
            sleep(poll)


def follow_file(
    read_from: Callable[[int], bytes],
    emit: Callable[[str], None],
    *,
    follow: bool,
    finished: Callable[[], bool],
    sleep: Callable[[float], None],
    poll: float = 0.5,
) -> int:
    """The same for a local job's log file: ``read_from(offset)`` returns the bytes past
    ``offset`` (empty at the end). Only whole lines are printed until the job finished."""
    offset = 0
    pending = b""
    emitted = 0
    done_seen = False
    while True:
        chunk = read_from(offset)
        offset += len(chunk)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            emit(line.decode("utf-8", errors="replace"))
            emitted += 1
        if chunk:
            continue
        if not follow or done_seen:
            if pending:
                emit(pending.decode("utf-8", errors="replace"))
                emitted += 1
            return emitted
        done_seen = finished()
        if not done_seen:
            sleep(poll)

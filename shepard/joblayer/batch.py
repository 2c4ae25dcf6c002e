"""SubmitJob: the one place the job layer talks to AWS Batch.

Only throttling and 5xx answers are retried (exponential backoff with jitter, ``sleep`` passed
in); every other error is raised at once, so a bad queue ARN fails in one call, not after a minute
of retries. The SubmitJob environment carries ``SHEPARD_JOB_ID`` alone: the user's variables stay in
the job record, where the worker reads them.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

from shepard.joblayer import clients

MAX_ARRAY_SIZE = 10_000
MAX_JOB_NAME = 128
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "ProvisionedThroughputExceededException",
        "SlowDown",
    }
)
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")

# Retries are ours (counted and tested), so the botocore client does not retry on its own.
NO_SDK_RETRIES = clients.CALLER_RETRIES


def array_parts(total: int, most: int = MAX_ARRAY_SIZE) -> list[range]:
    """The indexes of ``total`` array children cut into as few arrays as Batch allows (at most
    ``most`` children each), as even as can be, so no part is a lone child (Batch's arrays have
    2 or more): 10,000 is one part, 10,001 two of 5,001 and 5,000."""
    if total < 1:
        return []
    count = -(-total // most)
    size, extra = divmod(total, count)
    parts, start = [], 0
    for number in range(count):
        end = start + size + (1 if number < extra else 0)
        parts.append(range(start, end))
        start = end
    return parts


class TransientFailure(Exception):
    """AWS stayed throttled or failing after the retries: try the whole request again later."""


def is_transient(exc: BaseException) -> bool:
    """Throttling, a 5xx answer or a dropped connection: worth trying again later."""
    if isinstance(exc, TransientFailure | ConnectionError | ReadTimeoutError):
        return True
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return code in THROTTLING_CODES or status == 429 or status >= 500
    return False


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and is_transient(exc)


def job_name(job_id: str, tag: str | None = None) -> str:
    """A Batch job name (up to 128 letters, digits, ``-``, ``_``; alphanumeric first) from the TAG.

    Falls back to the job id when there is no TAG or nothing of it survives.
    """
    if tag:
        cleaned = _NOT_NAME.sub("_", tag).lstrip("_-")[:MAX_JOB_NAME]
        if cleaned:
            return cleaned
    return job_id[:MAX_JOB_NAME]


class BatchSubmitter:
    """Submits jobs to one queue with one job definition."""

    def __init__(
        self,
        job_queue: str,
        job_definition: str,
        client: Any = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 6,
        base_delay: float = 0.25,
        max_delay: float = 8.0,
    ) -> None:
        self.job_queue = job_queue
        self.job_definition = job_definition
        self.client: Any = (
            client if client is not None else clients.client("batch", config=NO_SDK_RETRIES)
        )
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.calls = 0

    def request(
        self,
        job_id: str,
        *,
        tag: str | None = None,
        array_size: int | None = None,
        timeout_seconds: int | None = None,
    ) -> dict[str, Any]:
        """The SubmitJob parameters for a job (``array_size`` 2..10000 for an array job;
        ``timeout_seconds`` overrides the job definition's attempt timeout)."""
        params: dict[str, Any] = {
            "jobName": job_name(job_id, tag),
            "jobQueue": self.job_queue,
            "jobDefinition": self.job_definition,
            "containerOverrides": {"environment": [{"name": "SHEPARD_JOB_ID", "value": job_id}]},
        }
        if array_size is not None:
            if not 2 <= array_size <= MAX_ARRAY_SIZE:
                raise ValueError(
                    f"an array job has 2 to {MAX_ARRAY_SIZE} children, not {array_size}"
                )
            params["arrayProperties"] = {"size": array_size}
        if timeout_seconds is not None:
            params["timeout"] = {"attemptDurationSeconds": timeout_seconds}
        return params

    def submit(
        self,
        job_id: str,
        *,
        tag: str | None = None,
        array_size: int | None = None,
        timeout_seconds: int | None = None,
    ) -> str:
        """Submit the job; returns Batch's job id. Raises ClientError or TransientFailure."""
        params = self.request(
            job_id, tag=tag, array_size=array_size, timeout_seconds=timeout_seconds
        )
        for attempt in range(1, self.max_attempts + 1):
            self.calls += 1
            try:
                answer = self.client.submit_job(**params)
            except ClientError as exc:
                if not _retryable(exc):
                    raise
                if attempt == self.max_attempts:
                    code = exc.response.get("Error", {}).get("Code", "error")
                    raise TransientFailure(
                        f"AWS Batch answered {code} to {self.max_attempts} SubmitJob attempts"
                    ) from exc
                delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                self.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 (jitter)
                continue
            return str(answer["jobId"])
        raise AssertionError("unreachable")  # pragma: no cover

"""The local flock's side of ``shepard-tf cancel``: a cancelled job's worker is stopped.

On AWS, TerminateJob stops a running job's container. moto's Batch runs nothing, so the
executor asks the job table, about once a second, which of the jobs it holds are recorded
cancelled: a queued one is dropped before it starts, a running one's worker (process or
container) gets SIGTERM, as TerminateJob would send; the worker, finding its record cancelled,
stops its payload and uploads nothing.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from shepard.joblayer.store import JobStore
from shepard.local.outputs import FlockOutputs

log = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 1.0


class LocalCancels:
    def __init__(
        self,
        *,
        dynamodb: Any,
        outputs: Callable[[], FlockOutputs | None],
        interval: float = CHECK_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dynamodb = dynamodb
        self._outputs = outputs
        self._interval = interval
        self._clock = clock
        self._last = float("-inf")
        self._signalled: set[str] = set()
        self.dropped = 0
        self.stopped = 0

    def sweep(
        self,
        pending: deque[Any],
        running: Iterable[str],
        signal_worker: Callable[[str, int], bool],
    ) -> None:
        """Drop the cancelled queued runs, SIGTERM the cancelled running workers (once)."""
        now = self._clock()
        if now - self._last < self._interval:
            return
        self._last = now
        outputs = self._outputs()
        running_ids = [job_id for job_id in running if job_id not in self._signalled]
        ids = [run.job_id for run in pending] + running_ids
        if outputs is None or not ids:
            return
        try:
            cancelled = JobStore(outputs.table_name, self._dynamodb).cancelled_among(ids)
        except Exception:
            log.exception("executor: could not read which jobs are cancelled; trying again")
            return
        if not cancelled:
            return
        for run in [run for run in pending if run.job_id in cancelled]:
            pending.remove(run)
            self.dropped += 1
            log.info("job %s: cancelled before it started; not run", run.job_id)
        for job_id in running_ids:
            if job_id in cancelled and signal_worker(job_id, signal.SIGTERM):
                self._signalled.add(job_id)
                self.stopped += 1
                log.info("job %s: cancelled; its worker was sent SIGTERM", job_id)

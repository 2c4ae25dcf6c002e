"""The local flock runs an interrupted job again, as Batch's retry strategy would.

On Batch a job whose host was taken back (status reason ``Host EC2*``) runs again while its
retry strategy has attempts left; a terminated job does not. The worker knows which it was (a
Spot notice came first, or not) and leaves the record ``PHASE=queued``, ``RESULT=interrupted``
when the strategy runs it again, or ends it. Here, after a worker exits, a record left queued
and interrupted gets its next attempt (``AWS_BATCH_JOB_ATTEMPT`` one higher), unless the job
definition's attempts are spent: then it ends ``interrupted`` with that reason, so no record
waits forever.

It also serves the local instance metadata (:mod:`shepard.local.metadata`) that
``shepard-tf local interrupt`` uses to simulate a reclaim.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shepard.joblayer import contract
from shepard.joblayer.records import Phase, Result
from shepard.joblayer.store import JobStore
from shepard.local.metadata import LocalMetadata
from shepard.local.outputs import FlockOutputs
from shepard.local.settings import Paths

if TYPE_CHECKING:
    from shepard.local.executor import JobRun

log = logging.getLogger(__name__)

IMDS_ENDPOINT = "SHEPARD_IMDS_ENDPOINT"
POLL_SECONDS = "SHEPARD_SPOT_POLL_SECONDS"
RETRY_ATTEMPTS = contract.RETRY_ATTEMPTS
LOCAL_POLL_SECONDS = "0.2"  # a local "reclaim" comes seconds after its notice, not minutes
METADATA_FILE = "metadata.json"  # under the state folder's root: where `local interrupt` looks


def max_attempts(job_environment: dict[str, str]) -> int:
    """The job definition's ``retry_strategy.attempts`` (as the flock gives it to the worker)."""
    text = job_environment.get(RETRY_ATTEMPTS, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else 1


class LocalRetries:
    """What the executor calls: a worker's extra environment, after a worker exits, and the
    metadata endpoint's interrupt (SIGTERM to a running worker)."""

    def __init__(
        self,
        *,
        dynamodb: Any,
        outputs: Callable[[], FlockOutputs | None],
        paths: Paths,
        signal_worker: Callable[[str, int], bool],
        requeue: Callable[[JobRun], None],
    ) -> None:
        self._dynamodb = dynamodb
        self._outputs = outputs
        self._paths = paths
        self._signal_worker = signal_worker
        self._requeue = requeue
        self._metadata: LocalMetadata | None = None
        self._lock = threading.Lock()
        self.retried = 0

    # -- the metadata endpoint --------------------------------------------------------------

    def _endpoint(self) -> LocalMetadata:
        with self._lock:
            if self._metadata is None:
                self._metadata = LocalMetadata(
                    self._interrupt, file=self._paths.root / METADATA_FILE
                ).start()
            return self._metadata

    def worker_environment(self, run: JobRun) -> dict[str, str]:
        """Point a job's worker at its own "host" metadata (a new attempt: no notice there)."""
        metadata = self._endpoint()
        metadata.clear_notice(run.job_id)
        return {IMDS_ENDPOINT: metadata.job_url(run.job_id), POLL_SECONDS: LOCAL_POLL_SECONDS}

    def _interrupt(self, job_id: str, warning: float) -> str | None:
        """SIGTERM the job's worker ``warning`` seconds from now; why not, if it cannot be."""
        if not self._signal_worker(job_id, 0):
            return (
                f"job {job_id} has no running worker on this local flock (only a running job "
                "can be interrupted; see `shepard-tf query --status running`)"
            )

        def terminate() -> None:
            if self._signal_worker(job_id, signal.SIGTERM):
                log.info("job %s: SIGTERM after the interruption notice (simulated)", job_id)

        timer = threading.Timer(warning, terminate)
        timer.daemon = True
        timer.start()
        log.info("job %s: Spot interruption notice; SIGTERM in %.1f s (simulated)", job_id, warning)
        return None

    def stop(self) -> None:
        with self._lock:
            if self._metadata is not None:
                self._metadata.stop()
                self._metadata = None

    # -- after a worker exits ---------------------------------------------------------------

    def after_exit(self, run: JobRun, code: int) -> None:
        """Run again a job its worker left queued and interrupted, as the retry strategy says."""
        if code < 128:
            return  # not interrupted: succeeded, failed, or not its job
        outputs = self._outputs()
        if outputs is None:
            return
        store = JobStore(outputs.table_name, self._dynamodb, index=outputs.table_status_index)
        try:
            record = store.get(run.job_id)
            if record is None or record.result is not Result.INTERRUPTED:
                return
            if record.phase is not Phase.QUEUED:
                return  # ended by its worker: not to be retried
            attempts = max_attempts(outputs.job_environment)
            if run.attempt >= attempts:
                reason = (
                    f"{record.reason or 'interrupted'}; but it has had all {attempts} attempt(s) "
                    "of its retry strategy"
                )
                store.finish_interrupted(run.job_id, reason)
                log.info("job %s: interrupted, not retried: %s", run.job_id, reason)
                return
        except Exception:
            log.exception("job %s: could not decide on its retry", run.job_id)
            return
        self.retried += 1
        log.info("job %s: interrupted; attempt %d starts", run.job_id, run.attempt + 1)
        self._requeue(dataclasses.replace(run, attempt=run.attempt + 1))

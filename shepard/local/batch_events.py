"""The local flock's Batch events: what AWS Batch would send, handed to the events handler.

On AWS, Batch sends a "Batch Job State Change" event for every state a job goes through and the
events Lambda applies it to the job record (lambdas/events/handler.py). moto's Batch sends none,
so the local executor, which stands in for Batch, emits the same events (same shape, same
handler, in-process): RUNNABLE when it finds a job, STARTING and RUNNING when it starts its
worker, SUCCEEDED or FAILED when the worker exits, RUNNABLE again when an interrupted job is
retried. A job whose worker cannot be started therefore ends ``failed`` with the reason within
seconds instead of staying ``queued``.

The events are applied by one background thread, in the order they were emitted, so the
executor's loop never waits on the job table.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shepard.joblayer import contract as c
from shepard.joblayer.batch_events import DETAIL_TYPE, SOURCE
from shepard.joblayer.settings import FlockSettings, SettingsError
from shepard.local.outputs import FlockOutputs

if TYPE_CHECKING:
    from shepard.local.executor import JobRun

log = logging.getLogger(__name__)

ACCOUNT = "123456789012"
Sink = Callable[[Mapping[str, Any]], bool]


def event_for(
    status: str,
    run: JobRun,
    *,
    queue_arn: str | None,
    region: str,
    reason: str | None = None,
    exit_code: int | None = None,
    finished_attempts: int | None = None,
) -> dict[str, Any]:
    """The EventBridge event AWS Batch would send for ``run`` entering ``status``.

    ``finished_attempts``: how many attempts have ended (Batch's ``attempts`` list); by
    default the run's earlier attempts, plus this one for SUCCEEDED and FAILED.
    """
    final = status in ("SUCCEEDED", "FAILED")
    attempt = int(getattr(run, "attempt", 1))  # AWS_BATCH_JOB_ATTEMPT of this run
    done = finished_attempts if finished_attempts is not None else attempt - 1 + int(final)
    environment = [{"name": k, "value": v} for k, v in sorted(run.environment.items())]
    if not any(e["name"] == c.JOB_ID for e in environment):
        parent = run.job_id.split("-", 1)[0] if run.array_index is not None else run.job_id
        environment.append({"name": c.JOB_ID, "value": parent})
    last: dict[str, Any] = {"container": {}}
    if exit_code is not None:
        last["container"]["exitCode"] = exit_code
    if reason is not None:
        last["statusReason"] = reason
    attempts = [{"container": {}} for _ in range(max(0, done - 1))] + ([last] if done else [])
    job_arn = f"arn:aws:batch:{region}:{ACCOUNT}:job/{run.batch_job_id}"
    detail: dict[str, Any] = {
        "jobArn": job_arn,
        "jobName": str(run.described.get("jobName") or run.job_id),
        "jobId": run.batch_job_id,
        "jobQueue": queue_arn or str(run.described.get("jobQueue") or ""),
        "status": status,
        "attempts": attempts,
        "container": {"environment": environment},
        "parameters": {},
    }
    if reason is not None:
        detail["statusReason"] = reason
    if exit_code is not None and final:
        detail["container"]["exitCode"] = exit_code
    if run.array_index is not None:
        detail["arrayProperties"] = {"index": run.array_index}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [job_arn],
        "detail": detail,
    }


def handler_sink(dynamodb: Any, batch: Any, outputs: FlockOutputs) -> Sink:
    """The events handler of lambdas/events, with the flock's settings and these clients."""
    from lambdas.events import handler

    settings = FlockSettings.from_env(outputs.lambda_environment)
    runtime = handler.Runtime.from_settings(
        settings, env=outputs.lambda_environment, dynamodb=dynamodb, batch=batch
    )
    return lambda body: handler.handle_event(runtime, body)


def _ignore(body: Mapping[str, Any]) -> bool:
    return False


class LocalBatchEvents:
    """Emits the local flock's Batch events to the events handler, from one thread."""

    def __init__(
        self,
        *,
        dynamodb: Any,
        batch: Any,
        outputs: Callable[[], FlockOutputs | None],
        sink: Callable[[FlockOutputs], Sink] | None = None,
    ) -> None:
        self._dynamodb = dynamodb
        self._batch = batch
        self._outputs = outputs
        self._make_sink = sink or (lambda o: handler_sink(self._dynamodb, self._batch, o))
        self._sinks: dict[str, Sink] = {}
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.applied = 0

    def emit(
        self,
        status: str,
        run: JobRun,
        *,
        reason: str | None = None,
        exit_code: int | None = None,
        finished_attempts: int | None = None,
    ) -> None:
        outputs = self._outputs()
        if outputs is None:
            return
        body = event_for(
            status,
            run,
            queue_arn=outputs.job_queue_arn,
            region=outputs.region,
            reason=reason,
            exit_code=exit_code,
            finished_attempts=finished_attempts,
        )
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._apply_all, name="batch-events", daemon=True
                )
                self._thread.start()
        self._queue.put(body)

    def _sink(self) -> Sink | None:
        outputs = self._outputs()
        if outputs is None:
            return None
        sink = self._sinks.get(outputs.table_name)
        if sink is None:
            try:
                sink = self._make_sink(outputs)
            except SettingsError as error:
                # Outputs without the Lambdas' environment (an older flock): said once.
                log.warning("batch events: not applied to %s: %s", outputs.table_name, error)
                sink = _ignore
            self._sinks = {outputs.table_name: sink}
        return sink

    def _apply_all(self) -> None:
        while True:
            body = self._queue.get()
            try:
                if body is None:
                    return
                sink = self._sink()
                if sink is not None:
                    sink(body)
                    self.applied += 1
            except Exception:
                log.exception(
                    "batch events: applying %s of %s failed",
                    body["detail"]["status"] if body else "?",
                    body["detail"]["jobId"] if body else "?",
                )
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every event emitted so far is applied."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.join()

    def close(self) -> None:
        """Apply what is queued, then stop the thread."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)

    # -- what the executor calls ------------------------------------------------------------

    def worker_exited(self, run: JobRun, code: int, *, retried: bool) -> None:
        """A worker ended: SUCCEEDED, FAILED, or (an interrupted job run again) RUNNABLE."""
        if retried:
            self.emit("RUNNABLE", run, finished_attempts=int(getattr(run, "attempt", 1)))
        elif code == 0:
            self.emit("SUCCEEDED", run, exit_code=0)
        else:
            self.emit(
                "FAILED",
                run,
                exit_code=code,
                reason=(
                    f"its worker exited with code {code} before finishing the job "
                    f"(the job's log: shepard-tf logs {run.job_id})"
                ),
            )

    def start_failed(self, run: JobRun, error: BaseException) -> None:
        """The executor could not start the job's worker at all."""
        self.emit(
            "FAILED",
            run,
            reason=(
                f"Task failed to start: the local flock could not start its worker: "
                f"{type(error).__name__}: {error}"
            ),
        )


_CURRENT: LocalBatchEvents | None = None


def attach(events: LocalBatchEvents | None) -> None:
    """Make ``events`` the one ``emit`` uses (the local flock's executor attaches its own)."""
    global _CURRENT
    _CURRENT = events


def emit(
    status: str, run: JobRun, *, reason: str | None = None, exit_code: int | None = None
) -> None:
    """Emit a Batch event for ``run`` through the executor's events (nothing when none)."""
    if _CURRENT is not None:
        _CURRENT.emit(status, run, reason=reason, exit_code=exit_code)

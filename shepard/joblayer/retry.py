"""Retries shepard makes after Batch ends a job FAILED: the ladder to on-demand, and memory raised.

The events handler calls :func:`after_failure` once it has recorded a final FAILED event. Two
failures are worth another Batch job, with the same record (one UUID across queues):

- **a Spot reclaim** (Batch's status reason ``Host EC2*``, or the worker's recorded cause
  ``spot reclaim``) on a flock with ``spot: {attempts: N, then: on_demand}``: Batch's own retry
  strategy has given up (it retries ``Host EC2*`` up to ``job_execution.retry.attempts``), so the
  job is submitted again: to the Spot queue while it has been reclaimed fewer than N times
  (RECLAIMS), to the on-demand queue (the flock's second queue over its ``type: ec2``
  environments) from the Nth reclaim on;
- **out of memory** (exit code 137 with an out-of-memory reason, from Batch's container reason
  or from the worker, which records the payload's ``out of memory``) on a flock with
  ``oom: {retry: true}``: the job is submitted again on the same queue with its memory multiplied
  by ``oom.factor``, up to the ceiling (the largest instance's usable memory, and the flock's
  ``oom.max_memory_mib``). A job already at the ceiling is not retried.

The record goes back to PHASE queued (RESULT, REASON of the failure kept in REASON's note,
EXIT_CODE and END_TIME removed) in one conditional write that only a record still showing this
Batch job's failure passes: a second delivery of the same event resubmits nothing. ATTEMPTS,
ATTEMPT and RECLAIMS are kept; JOB_QUEUE, MEMORY_MIB and then BATCH_JOB_ID say where it went.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from shepard.joblayer.batch import BatchSubmitter, TransientFailure, is_transient
from shepard.joblayer.batch_events import BatchEvent
from shepard.joblayer.records import Result
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.store import JobRecord, JobStore

OOM_EXIT_CODE = 137
# Batch's container reason for a container the kernel killed for memory, and the worker's reason
# for a payload the Docker engine reports OOMKilled (worker/shepard_worker/runners.py).
OOM_MARKERS = ("outofmemoryerror", "out of memory", "oomkilled")
RECLAIM_PREFIX = "Host EC2"
SPOT_RECLAIM = "spot reclaim"
FAILED = "FAILED"
# What may be retried: a record Batch failed (events) or whose worker finished it failed or
# interrupted. Never one that succeeded, was cancelled or rejected.
RETRYABLE = (Result.FAILED, Result.INTERRUPTED)


@dataclass(frozen=True)
class RetryPolicy:
    """What the flock allows (flock.yaml ``spot`` and ``oom``), as the Lambdas' environment says."""

    spot_attempts: int = 0  # reclaims before the on-demand queue; 0: no ladder
    on_demand_queue: str = ""  # ARN (or name) of the on-demand queue; "": none
    oom_factor: int = 0  # memory multiplier of an out-of-memory retry; 0: no such retry
    oom_max_memory_mib: int = 0  # the most a retry asks for; 0: no ceiling known (no retry)
    job_memory_mib: int = 0  # the job definition's memory: a job's unless raised

    @property
    def ladder(self) -> bool:
        return self.spot_attempts > 0 and bool(self.on_demand_queue)

    @property
    def oom(self) -> bool:
        return self.oom_factor >= 2 and self.oom_max_memory_mib > 0

    @property
    def on_demand_queue_name(self) -> str:
        return queue_name(self.on_demand_queue)

    @classmethod
    def from_settings(cls, settings: FlockSettings) -> RetryPolicy:
        """The policy of a Lambda (or the local flock), from its flock settings."""
        return cls(
            spot_attempts=settings.spot_attempts,
            on_demand_queue=settings.on_demand_job_queue,
            oom_factor=settings.oom_factor,
            oom_max_memory_mib=settings.oom_max_memory_mib,
            job_memory_mib=settings.job_memory_mib,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryPolicy:
        return cls.from_settings(FlockSettings.from_env(env))


@dataclass(frozen=True)
class Retry:
    """One resubmission decided: where, with how much memory, and why."""

    queue: str  # what SubmitJob gets (a name or an ARN)
    reclaims: int  # RECLAIMS after this failure
    memory_mib: int | None  # raised memory, None to keep the job's
    reason: str  # REASON while it waits again (the worker's claim removes it)


def queue_name(queue: str) -> str:
    """A queue's name from its ARN (``arn:...:job-queue/<name>``) or its name."""
    return queue.rsplit("/", 1)[-1]


def is_reclaim(record: JobRecord, event: BatchEvent) -> bool:
    """Batch says the host was taken back, or the worker recorded a Spot reclaim."""
    if (event.status_reason or "").startswith(RECLAIM_PREFIX):
        return True
    latest = record.attempts[-1] if record.attempts else {}
    return latest.get("cause") == SPOT_RECLAIM


def is_out_of_memory(record: JobRecord, event: BatchEvent) -> bool:
    """Exit code 137 with an out-of-memory reason: Batch's (the worker container killed) or the
    worker's (the payload container killed, recorded in EXIT_CODE and REASON)."""
    for code, reasons in (
        (event.exit_code, (event.container_reason, event.status_reason)),
        (record.exit_code, (record.reason,)),
    ):
        text = " ".join(r for r in reasons if r).lower()
        if code == OOM_EXIT_CODE and any(marker in text for marker in OOM_MARKERS):
            return True
    return False


def _reclaims(record: JobRecord, event: BatchEvent) -> int:
    """RECLAIMS counting this failure: the worker counts the reclaims it sees (a notice or a
    SIGTERM); a host lost without a word adds one here."""
    latest = record.attempts[-1] if record.attempts else {}
    seen = latest.get("cause") == SPOT_RECLAIM and latest.get("number") == event.attempt
    return record.reclaims if seen else record.reclaims + 1


def decide(record: JobRecord, event: BatchEvent, policy: RetryPolicy) -> Retry | None:
    """The resubmission a failure calls for, or None (pure: reads nothing, writes nothing)."""
    here = event.job_queue or record.job_queue or ""
    on_demand = policy.on_demand_queue_name
    if policy.oom and is_out_of_memory(record, event):
        current = record.memory_mib or policy.job_memory_mib
        if current <= 0:
            return None
        raised = min(current * policy.oom_factor, policy.oom_max_memory_mib)
        if raised <= current:
            return None
        return Retry(
            queue=here,
            reclaims=record.reclaims,
            memory_mib=raised,
            reason=(
                f"killed for memory with {current} MiB (exit code {OOM_EXIT_CODE}); submitted "
                f"again with {raised} MiB (oom.factor {policy.oom_factor}, ceiling "
                f"{policy.oom_max_memory_mib} MiB)"
            ),
        )
    if policy.ladder and is_reclaim(record, event) and queue_name(here) != on_demand:
        reclaims = _reclaims(record, event)
        moved = reclaims >= policy.spot_attempts
        where = "the on-demand queue" if moved else "the Spot queue again"
        return Retry(
            queue=policy.on_demand_queue if moved else here,
            reclaims=reclaims,
            memory_mib=None,
            reason=(
                f"Spot took its host back ({reclaims} of spot.attempts {policy.spot_attempts} "
                f"reclaims); submitted to {where}"
            ),
        )
    return None


class _Resubmitter(BatchSubmitter):
    """The flock's submitter, sent to another queue, with the job's resources overridden."""

    def __init__(self, base: BatchSubmitter, queue: str, resources: list[dict[str, str]]) -> None:
        super().__init__(
            queue,
            base.job_definition,
            base.client,
            sleep=base.sleep,
            max_attempts=base.max_attempts,
            base_delay=base.base_delay,
            max_delay=base.max_delay,
        )
        self.resources = resources

    def request(self, job_id: str, **kwargs: Any) -> dict[str, Any]:
        params = super().request(job_id, **kwargs)
        params["jobQueue"] = self.job_queue
        if self.resources:
            overrides = params.setdefault("containerOverrides", {})
            overrides["resourceRequirements"] = self.resources
        return params


def resource_requirements(record: JobRecord, memory_mib: int | None) -> list[dict[str, str]]:
    """SubmitJob's ``resourceRequirements`` override: the raised memory (or the one an earlier
    retry raised), and the vCPUs and GPUs the job was given (so a retry keeps them)."""
    out: list[dict[str, str]] = []
    if record.vcpus:
        out.append({"type": "VCPU", "value": str(record.vcpus)})
    memory = memory_mib or record.memory_mib
    if memory:
        out.append({"type": "MEMORY", "value": str(memory)})
    if record.gpus:
        out.append({"type": "GPU", "value": str(record.gpus)})
    return out


def after_failure(
    store: JobStore,
    submitter: BatchSubmitter,
    record: JobRecord,
    event: BatchEvent,
    policy: RetryPolicy,
) -> str | None:
    """Resubmit a job Batch ended FAILED when the flock allows it (see the module's text):
    returns the new Batch job id, or None when nothing was submitted.

    Raises TransientFailure (or a transient ClientError) when Batch stayed throttled: the record
    is put back as it was, so a new delivery of the event tries again.
    """
    if event.status != FAILED or record.result not in RETRYABLE:
        return None
    if record.batch_job_id and record.batch_job_id != event.batch_job_id:
        return None  # a late event of a Batch job the record has moved on from
    retry = decide(record, event, policy)
    if retry is None:
        return None
    if not retry.queue:  # the event named no queue: the flock's own
        retry = replace(retry, queue=submitter.job_queue)
    requeued = store.requeue_for_retry(
        record.job_id,
        event.batch_job_id,
        queue=queue_name(retry.queue),
        reclaims=retry.reclaims,
        memory_mib=retry.memory_mib,
        reason=retry.reason,
    )
    if requeued is None:
        return None  # another delivery of this event resubmitted it already
    resubmitter = _Resubmitter(
        submitter, retry.queue, resource_requirements(requeued, retry.memory_mib)
    )
    try:
        batch_job_id = resubmitter.submit(record.job_id, tag=record.tag)
    except (ClientError, TransientFailure) as exc:
        if is_transient(exc):
            store.undo_requeue(record, event.batch_job_id)
            raise
        assert isinstance(exc, ClientError)
        error = exc.response.get("Error", {})
        store.finish(
            record.job_id,
            Result.FAILED,
            reason=(
                f"while submitting the job again ({retry.reason}): AWS Batch answered "
                f"{error.get('Code', 'error')}: {error.get('Message', '')}. Check the queue "
                f"{queue_name(retry.queue)} and the job definition, then submit the job again."
            ),
            exit_code=record.exit_code,
        )
        return None
    submitter.calls += resubmitter.calls
    store.set_batch_job_id(record.job_id, batch_job_id)
    return batch_job_id

"""From a job request to a Batch job: validate, record, submit (shared by both Lambdas).

The order is the fix for the original's race: the record is written (conditionally, keyed by the
request's idempotency key) BEFORE SubmitJob, so a worker always finds its record, and a second
delivery of the same request finds the record and submits nothing. A request that can never run
becomes a finished record with RESULT ``rejected`` and the reason, so nothing is lost silently.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from shepard.joblayer.batch import (
    BatchSubmitter,
    TransientFailure,
    array_parts,
    is_transient,
)
from shepard.joblayer.ids import child_job_id, job_id_for, new_job_id
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.store import (
    Clock,
    JobRecord,
    JobStore,
    created_at_text,
    expires_at,
    seed_time_text,
    utc_now,
)
from shepard.joblayer.variables import (
    JobRejected,
    check_request_size,
    find_tag,
    validate_variables,
)

# A record without a Batch job id older than this is a submission that died half way (a Lambda
# timeout between the two writes): the next delivery of its request submits it. Younger, it is
# a concurrent duplicate delivery still in flight, and is left alone.
RESUBMIT_AFTER = timedelta(minutes=2)


class Outcome(StrEnum):
    SUBMITTED = "submitted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    FAILED = "failed"


@dataclass(frozen=True)
class JobOutcome:
    """What became of one request."""

    job_id: str
    outcome: Outcome
    reason: str | None = None
    batch_job_id: str | None = None
    array_size: int | None = None
    batch_id: str | None = None  # BATCH_ID of the submission it came in
    # An array of more than 10,000 children is several Batch array jobs: one outcome each.
    parts: tuple[JobOutcome, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.outcome in (Outcome.SUBMITTED, Outcome.DUPLICATE)


def _submit_error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return (
        f"while submitting the job to AWS Batch: {error.get('Code', 'error')}: "
        f"{error.get('Message', '')}. Check the flock's job queue and job definition."
    )


class JobService:
    def __init__(
        self,
        settings: FlockSettings,
        store: JobStore,
        submitter: BatchSubmitter,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.store = store
        self.submitter = submitter
        self.clock = clock

    @classmethod
    def from_settings(
        cls,
        settings: FlockSettings,
        *,
        batch_client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> JobService:
        """The service of a Lambda container: clients from the factory, one retry policy."""
        return cls(
            settings,
            JobStore(
                settings.table_name, days_to_keep_finished_jobs=settings.days_to_keep_finished_jobs
            ),
            BatchSubmitter(settings.job_queue, settings.job_definition, batch_client, sleep=sleep),
        )

    # -- one job --------------------------------------------------------------------------------

    def submit(
        self,
        request: object,
        *,
        is_invoked: bool,
        idempotency_key: str | None = None,
        input_zip_name: str | None = None,
        batch_id: str | None = None,
        timeout_seconds: int | None = None,
        input_zip_size: int | None = None,
    ) -> JobOutcome:
        """Validate a request (a decoded JSON object), record it, submit it to Batch.

        ``input_zip_size``: the dropped zip's size from its S3 event (INPUT_ZIP_SIZE).

        ``timeout_seconds`` (the API request's) replaces the flock's job timeout for this job;
        the record's TIMEOUT_SECONDS says which one it got.

        Raises TransientFailure (or a transient ClientError) when AWS was throttled or failing:
        the caller should retry the whole request; the record is removed so the retry starts over.
        """
        job_id = job_id_for(idempotency_key) if idempotency_key else new_job_id()
        try:
            variables = validate_variables(request)
            check_request_size(variables)
        except JobRejected as exc:
            return self.reject(
                exc.reason,
                job_id=job_id,
                is_invoked=is_invoked,
                idempotency_key=idempotency_key,
                input_zip_name=input_zip_name,
                batch_id=batch_id,
            )
        unplaceable = self.unplaceable()
        if unplaceable:
            return self.reject(
                unplaceable,
                job_id=job_id,
                is_invoked=is_invoked,
                idempotency_key=idempotency_key,
                input_zip_name=input_zip_name,
                batch_id=batch_id,
            )
        now = self.clock()
        record = JobRecord(
            job_id=job_id,
            created_at=created_at_text(now),
            variables=variables,
            tag=find_tag(variables),
            is_invoked=is_invoked,
            input_zip_name=input_zip_name,
            input_zip_size=input_zip_size,
            idempotency_key=idempotency_key,
            expires_at=expires_at(now, self.settings.days_to_keep_failed_launch_indexes),
            batch_id=batch_id,
            timeout_seconds=timeout_seconds or self.settings.job_timeout_seconds,
        )
        if not self.store.create(record):
            existing = self.store.get(job_id)
            if existing is None or not self._half_submitted(existing):
                return self._duplicate(job_id, existing)
            record = existing
        return self._submit_recorded(record)

    def unplaceable(self) -> str | None:
        """Why no compute environment can ever place the flock's jobs (shepard/joblayer/fit.py),
        or None; an unreadable SHEPARD_JOB_RESOURCES refuses nothing."""
        from shepard.joblayer.fit import FlockResources, ResourcesError

        try:
            resources = FlockResources.from_json(self.settings.job_resources)
        except ResourcesError:
            return None
        return resources.refusal() if resources is not None else None

    def _half_submitted(self, record: JobRecord) -> bool:
        if record.phase is not Phase.QUEUED or record.batch_job_id or record.result:
            return False
        try:
            created = datetime.strptime(record.created_at, "%Y-%m-%dT%H:%M:%S.%f%z")
        except ValueError:
            return False
        return self.clock() - created > RESUBMIT_AFTER

    def _duplicate(self, job_id: str, existing: JobRecord | None) -> JobOutcome:
        batch_id = existing.batch_id if existing else None
        if existing is not None and existing.result is Result.REJECTED:
            return JobOutcome(job_id, Outcome.REJECTED, existing.reason, batch_id=batch_id)
        return JobOutcome(
            job_id,
            Outcome.DUPLICATE,
            existing.reason if existing else None,
            existing.batch_job_id if existing else None,
            batch_id=batch_id,
        )

    def _submit_recorded(self, record: JobRecord) -> JobOutcome:
        job_id = record.job_id
        try:
            # The job definition carries the flock's timeout; only an override is sent.
            timeout = record.timeout_seconds
            override = (
                {}
                if timeout in (None, self.settings.job_timeout_seconds)
                else {"timeout_seconds": timeout}
            )
            batch_job_id = self.submitter.submit(job_id, tag=record.tag, **override)
        except (ClientError, TransientFailure) as exc:
            if is_transient(exc):
                self.store.delete_unsubmitted(job_id)
                raise
            assert isinstance(exc, ClientError)
            reason = _submit_error(exc)
            self.store.finish(
                job_id,
                Result.FAILED,
                reason=reason,
                days_to_keep=self.settings.days_to_keep_failed_launch_indexes,
            )
            return JobOutcome(job_id, Outcome.FAILED, reason, batch_id=record.batch_id)
        self.store.set_batch_job_id(job_id, batch_job_id)
        return JobOutcome(
            job_id, Outcome.SUBMITTED, batch_job_id=batch_job_id, batch_id=record.batch_id
        )

    def reject(
        self,
        reason: str,
        *,
        job_id: str | None = None,
        is_invoked: bool,
        idempotency_key: str | None = None,
        input_zip_name: str | None = None,
        batch_id: str | None = None,
    ) -> JobOutcome:
        """Record a request that can never run (RESULT rejected, with the reason)."""
        job_id = job_id or (job_id_for(idempotency_key) if idempotency_key else new_job_id())
        now = self.clock()
        record = JobRecord(
            job_id=job_id,
            status=Status.DONE,
            phase=Phase.FINISHED,
            created_at=created_at_text(now),
            result=Result.REJECTED,
            reason=reason,
            is_invoked=is_invoked,
            input_zip_name=input_zip_name,
            idempotency_key=idempotency_key,
            expires_at=expires_at(now, self.settings.days_to_keep_failed_launch_indexes),
            batch_id=batch_id,
        )
        if not self.store.create(record):
            return self._duplicate(job_id, self.store.get(job_id))
        return JobOutcome(job_id, Outcome.REJECTED, reason, batch_id=batch_id)

    # -- array jobs -----------------------------------------------------------------------------

    def submit_array(
        self,
        requests: Sequence[object],
        *,
        is_invoked: bool = True,
        batch_id: str | None = None,
    ) -> JobOutcome:
        """One Batch array job for 2..10,000 requests; one child record each. More than 10,000
        are cut into as few arrays as Batch allows (``batch.array_parts``), one SubmitJob each;
        the outcome is the first part's, with every part in ``parts``.

        A list of one request is an ordinary job. Any bad request rejects the whole array (its
        index is named): one rejected record, no child records, nothing submitted.
        """
        if len(requests) == 1:
            return self.submit(requests[0], is_invoked=is_invoked, batch_id=batch_id)
        if len(requests) < 2:
            return self.reject(
                f"an array job takes 2 or more variable objects, not {len(requests)}; "
                "send one object for one job",
                is_invoked=is_invoked,
                batch_id=batch_id,
            )
        all_variables: list[dict[str, str]] = []
        for index, request in enumerate(requests):
            try:
                variables = validate_variables(request)
                check_request_size(variables)
            except JobRejected as exc:
                return self.reject(
                    f"array item {index}: {exc.reason}", is_invoked=is_invoked, batch_id=batch_id
                )
            all_variables.append(variables)
        unplaceable = self.unplaceable()
        if unplaceable:
            return self.reject(unplaceable, is_invoked=is_invoked, batch_id=batch_id)
        parts: list[JobOutcome] = []
        for indexes in array_parts(len(all_variables)):
            part = self._submit_array_part(
                [all_variables[i] for i in indexes], is_invoked=is_invoked, batch_id=batch_id
            )
            parts.append(part)
            if part.outcome is not Outcome.SUBMITTED:
                break
        if len(parts) == 1:
            return parts[0]
        first, last = parts[0], parts[-1]
        if last.outcome is not Outcome.SUBMITTED:
            done = ", ".join(p.job_id for p in parts[:-1])
            reason = (
                f"{last.reason} (array part {len(parts)} of {len(array_parts(len(requests)))}; "
                f"the parts before it were submitted: {done})"
            )
            return replace(last, reason=reason, parts=tuple(parts))
        return replace(first, array_size=len(all_variables), parts=tuple(parts))

    def _submit_array_part(
        self, all_variables: Sequence[dict[str, str]], *, is_invoked: bool, batch_id: str | None
    ) -> JobOutcome:
        """Record 2..10,000 validated children and submit them as one Batch array job."""
        parent = new_job_id()
        now = self.clock()
        stamp = created_at_text(now)
        children = [
            JobRecord(
                job_id=child_job_id(parent, index),
                created_at=stamp,
                variables=variables,
                tag=find_tag(variables),
                is_invoked=is_invoked,
                array_parent=parent,
                array_index=index,
                expires_at=expires_at(now, self.settings.days_to_keep_failed_launch_indexes),
                batch_id=batch_id,
                timeout_seconds=self.settings.job_timeout_seconds,
            )
            for index, variables in enumerate(all_variables)
        ]
        self.store.put_many(children)
        try:
            batch_job_id = self.submitter.submit(
                parent, tag=find_tag(all_variables[0]), array_size=len(children)
            )
        except (ClientError, TransientFailure) as exc:
            reason = (
                _submit_error(exc)
                if isinstance(exc, ClientError)
                else f"while submitting the job to AWS Batch: {exc}. Try again later."
            )
            finished_at = self.clock()
            self.store.put_many(
                replace(
                    child,
                    status=Status.DONE,
                    phase=Phase.FINISHED,
                    result=Result.FAILED,
                    reason=reason,
                    end_time=seed_time_text(finished_at),
                )
                for child in children
            )
            return JobOutcome(
                parent, Outcome.FAILED, reason, array_size=len(children), batch_id=batch_id
            )
        return JobOutcome(
            parent,
            Outcome.SUBMITTED,
            batch_job_id=batch_job_id,
            array_size=len(children),
            batch_id=batch_id,
        )

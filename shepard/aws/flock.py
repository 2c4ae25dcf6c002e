"""One typed method per AWS call the CLI makes. Nothing else in the CLI touches a boto3 client.

Every method wraps its call in :func:`aws_errors`, so a failure reaches the user as
``while <doing X>: <cause>. <what to do>.``
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shepard.aws.errors import aws_errors
from shepard.aws.session import AwsSettings, assume, base_session, client, session
from shepard.errors import BackendError
from shepard.joblayer import calls
from shepard.joblayer.calls import RegistryLogin, S3Object, SecretSettings
from shepard.joblayer.contract import BATCH_INDEX
from shepard.joblayer.records import Phase, Result
from shepard.joblayer.store import JobRecord, JobStore

if TYPE_CHECKING:
    from shepard.joblayer.why import BatchView

SECRET_LIMIT = 64 * 1024  # Secrets Manager's SecretString limit

__all__ = ["SECRET_LIMIT", "Aws", "Invocation", "RegistryLogin", "S3Object"]


@dataclass(frozen=True)
class Invocation:
    status_code: int
    payload: Any
    function_error: str | None


class Aws:
    """The AWS account (or emulator) of one CLI run."""

    def __init__(self, settings: AwsSettings) -> None:
        self.settings = settings
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            if self._session is None:
                with aws_errors("loading AWS credentials"):
                    self._session = session(self.settings)
            self._clients[service] = client(self._session, self.settings, service)
        return self._clients[service]

    @property
    def region(self) -> str | None:
        if self._session is None:
            with aws_errors("loading AWS credentials"):
                self._session = session(self.settings)
        region: str | None = self._session.region_name
        return region

    # -- STS ----------------------------------------------------------------------------------
    def caller_identity(self) -> dict[str, str]:
        with aws_errors("asking AWS who you are (sts get-caller-identity)"):
            answer = self._client("sts").get_caller_identity()
        return {"account": answer["Account"], "arn": answer["Arn"]}

    def assume_role(self, arn: str, *, duration_seconds: int) -> Any:
        """Assume ``arn`` with the base credentials (never with a cached role)."""
        with aws_errors("loading AWS credentials"):
            base = base_session(self.settings)
        return assume(self.settings, base, arn, duration_seconds=duration_seconds)

    # -- S3 -----------------------------------------------------------------------------------
    def upload_file(
        self,
        path: Path,
        bucket: str,
        key: str,
        on_bytes: Callable[[int], None] | None = None,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        with aws_errors(f"uploading {path.name} to s3://{bucket}/{key}"):
            calls.upload(self._client("s3"), path, bucket, key, on_bytes, metadata=metadata)

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[S3Object]:
        with aws_errors(f"listing s3://{bucket}/{prefix}"):
            yield from calls.list_objects(self._client("s3"), bucket, prefix)

    def download_file(
        self,
        bucket: str,
        key: str,
        path: Path,
        on_bytes: Callable[[int], None] | None = None,
        *,
        size: int | None = None,
    ) -> None:
        """``size`` (from the listing): a small object is one GetObject."""
        with aws_errors(f"downloading s3://{bucket}/{key}"):
            calls.download(self._client("s3"), bucket, key, path, on_bytes, size=size)

    # -- Lambda -------------------------------------------------------------------------------
    def invoke(self, function: str, payload: Any) -> Invocation:
        with aws_errors(f"invoking the API Lambda {function}"):
            answer = self._client("lambda").invoke(
                FunctionName=function,
                InvocationType="RequestResponse",
                Payload=json.dumps(payload).encode(),
            )
            raw = answer["Payload"].read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        return Invocation(int(answer.get("StatusCode", 0)), body, answer.get("FunctionError"))

    # -- DynamoDB -----------------------------------------------------------------------------
    def query_phase(
        self,
        table: str,
        index: str,
        phase: str,
        result: str | None = None,
        *,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Jobs in one phase through the phase index (a Query, never a Scan), as plain JSON;
        the newest ``limit`` (pages of the Query until that many), or all of them."""
        store = JobStore(table, self._client("dynamodb"), index=index)
        with aws_errors(f"querying the job table {table} ({index} = {phase})"):
            records = store.query_phase(
                Phase(phase), result=Result(result) if result is not None else None, limit=limit
            )
        return [record.to_plain() for record in records]

    def job_store(self, table: str) -> JobStore:
        """The job table through the CLI's own DynamoDB client (wrap its calls in aws_errors)."""
        return JobStore(table, self._client("dynamodb"))

    def query_batch(self, table: str, batch_id: str) -> list[JobRecord]:
        """The jobs of one submission through the batch index (a Query, never a Scan)."""
        with aws_errors(f"querying the job table {table} ({BATCH_INDEX} = {batch_id})"):
            return self.job_store(table).query_batch(batch_id)

    def get_job(self, table: str, job_id: str) -> JobRecord | None:
        with aws_errors(f"reading job {job_id} from the job table {table}"):
            return self.job_store(table).get(job_id)

    def cancel_job_record(self, table: str, job_id: str, reason: str) -> JobRecord | None:
        """Record a job cancelled (conditional: None when it had finished already)."""
        with aws_errors(f"recording job {job_id} cancelled in the job table {table}"):
            return self.job_store(table).cancel(job_id, reason)

    # -- Batch --------------------------------------------------------------------------------
    def cancel_batch_job(self, batch_job_id: str, reason: str) -> None:
        """CancelJob: a job not yet STARTING/RUNNING leaves the queue (an array parent takes
        its children)."""
        with aws_errors(f"cancelling the AWS Batch job {batch_job_id}"):
            self._client("batch").cancel_job(jobId=batch_job_id, reason=reason[:1024])

    def terminate_batch_job(self, batch_job_id: str, reason: str) -> None:
        """TerminateJob: a STARTING/RUNNING job is stopped (its container gets SIGTERM)."""
        with aws_errors(f"terminating the AWS Batch job {batch_job_id}"):
            self._client("batch").terminate_job(jobId=batch_job_id, reason=reason[:1024])

    def find_array_job(self, queue: str, name: str, size: int) -> str | None:
        """The Batch id of the one unfinished array job of ``size`` children named ``name`` in
        ``queue`` (ListJobs by name), or None when there is none or more than one."""
        found: list[str] = []
        with aws_errors(f"looking for the array job {name} in the job queue {queue}"):
            pages = self._client("batch").get_paginator("list_jobs")
            for page in pages.paginate(
                jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}]
            ):
                for job in page.get("jobSummaryList", []):
                    if (
                        job.get("status") not in ("SUCCEEDED", "FAILED")
                        and (job.get("arrayProperties") or {}).get("size") == size
                    ):
                        found.append(str(job["jobId"]))
        return found[0] if len(found) == 1 else None

    def batch_job_statuses(self, batch_job_ids: list[str]) -> dict[str, str]:
        """Batch's status of each job id it still knows (DescribeJobs, 100 ids a call)."""
        statuses: dict[str, str] = {}
        with aws_errors("describing AWS Batch jobs"):
            for start in range(0, len(batch_job_ids), 100):
                answer = self._client("batch").describe_jobs(
                    jobs=batch_job_ids[start : start + 100]
                )
                for job in answer.get("jobs", []):
                    statuses[str(job["jobId"])] = str(job.get("status", ""))
        return statuses

    # -- CloudWatch Logs ----------------------------------------------------------------------
    def log_events(
        self, group: str, stream: str, next_token: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One GetLogEvents page from the start of the stream: (events, nextForwardToken).
        Throttling is raised as it is (the caller backs off)."""
        kwargs: dict[str, Any] = {
            "logGroupName": group,
            "logStreamName": stream,
            "startFromHead": True,
        }
        if next_token:
            kwargs["nextToken"] = next_token
        answer = self._client("logs").get_log_events(**kwargs)
        return list(answer.get("events", [])), answer.get("nextForwardToken")

    # -- Secrets Manager ----------------------------------------------------------------------
    def put_secret(
        self,
        name: str,
        value: str,
        *,
        kms_key_id: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Store ``value`` as the secret's current version, creating the secret if needed
        (with ``kms_key_id`` and ``tags``: ``calls.put_secret``)."""
        with aws_errors(f"storing the secret {name}"):
            return calls.put_secret(
                self._client("secretsmanager"), name, value, kms_key_id=kms_key_id, tags=tags
            )

    def secret_settings(self, name: str) -> SecretSettings | None:
        """The secret's KMS key and tags; None when it does not exist."""
        with aws_errors(f"reading the settings of the secret {name}"):
            return calls.secret_settings(self._client("secretsmanager"), name)

    # -- ECR ----------------------------------------------------------------------------------
    def registry_login(self) -> RegistryLogin:
        with aws_errors("getting an ECR login token"):
            login = calls.registry_login(self._client("ecr"))
        if login is None:
            raise BackendError(
                "while getting an ECR login token: ECR returned none. Check ECR permissions."
            )
        return login

    # -- why ----------------------------------------------------------------------------------
    def batch_view(self) -> BatchView:
        """The read calls of ``why`` (Batch's describes, CloudWatch GetLogEvents); wrap its
        calls in aws_errors."""
        from shepard.joblayer.why import BatchView

        return BatchView(self._client("batch"), self._client("logs"))

"""The job table: one record per job (docs/contracts.md, section 5), written with conditions.

Every write that decides who owns a job is a conditional write, so two deliveries of one S3 event
make one record and two workers never both run one job. ``JobStore`` is the only code that knows
the table's attribute names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from shepard.joblayer import clients
from shepard.joblayer.batch_events import BatchEvent
from shepard.joblayer.batch_events import outcome as batch_outcome
from shepard.joblayer.contract import BATCH_INDEX, PHASE_INDEX
from shepard.joblayer.records import Phase, Result, Status

Item = dict[str, Any]
Clock = Callable[[], datetime]


class JobNotFound(LookupError):
    """No record with that job id."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def created_at_text(moment: datetime) -> str:
    """``CREATED_AT``: ISO-8601 UTC with microseconds, so that it sorts as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seed_time_text(moment: datetime) -> str:
    """``START_TIME``/``END_TIME``: the seed's ``YYYYMMDDTHHMMSSZ``."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def expires_at(moment: datetime, days: int) -> int:
    return int((moment + timedelta(days=days)).timestamp())


@dataclass(frozen=True)
class JobRecord:
    """One job record; field names follow the attributes of contracts section 5."""

    job_id: str  # UUID
    status: Status = Status.NOT_YET_INITIATED  # JOB_STATUS
    phase: Phase = Phase.QUEUED  # PHASE
    created_at: str = ""  # CREATED_AT
    result: Result | None = None  # RESULT
    exit_code: int | None = None  # EXIT_CODE
    reason: str | None = None  # REASON
    variables: Mapping[str, str] = field(default_factory=dict)  # VARIABLES
    tag: str | None = None  # TAG
    is_invoked: bool = False  # IS_INVOKED ("True"/"False")
    input_zip_name: str | None = None  # INPUT_ZIP_NAME
    # INPUT_ZIP_SIZE: the zip's size from its S3 event (the worker then reads it in one GET)
    input_zip_size: int | None = None
    idempotency_key: str | None = None  # IDEMPOTENCY_KEY
    batch_job_id: str | None = None  # BATCH_JOB_ID
    array_parent: str | None = None  # ARRAY_PARENT
    array_index: int | None = None  # ARRAY_INDEX
    start_time: str | None = None  # START_TIME
    end_time: str | None = None  # END_TIME
    attempt: int = 0  # ATTEMPT
    batch_attempt: int | None = None  # BATCH_ATTEMPT (AWS_BATCH_JOB_ATTEMPT of the claimer)
    outputs: tuple[str, ...] = ()  # OUTPUTS
    error_zip: str | None = None  # ERROR_ZIP
    expires_at: int | None = None  # EXPIRES_AT
    # -- operating jobs (docs/contracts.md section 5; each written by the one owner named) -----
    batch_id: str | None = None  # BATCH_ID: the submission it came in (batch, API, array, drop)
    batch_status: str | None = None  # BATCH_STATUS: Batch's last state seen (events handler)
    batch_reason: str | None = None  # BATCH_REASON: Batch's statusReason (events handler)
    log_stream: str | None = None  # LOG_STREAM: the CloudWatch stream of the latest attempt
    job_queue: str | None = None  # JOB_QUEUE: the queue name it was last submitted to
    vcpus: int | None = None  # VCPUS requested (fit check, why, OOM retry)
    memory_mib: int | None = None  # MEMORY_MIB requested
    gpus: int | None = None  # GPUS requested
    timeout_seconds: int | None = None  # TIMEOUT_SECONDS: the attempt timeout it was given
    reclaims: int = 0  # RECLAIMS: Spot reclaims / host losses so far (not application retries)
    # ATTEMPTS: one map per attempt, keys of ATTEMPT_KEYS
    attempts: tuple[Mapping[str, Any], ...] = ()
    usage: Mapping[str, Any] = field(default_factory=dict)  # USAGE: keys of USAGE_KEYS

    @property
    def succeeded(self) -> bool:
        return self.result is Result.SUCCEEDED

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> JobRecord:
        """Read a DynamoDB item (low-level attribute values)."""

        def s(name: str) -> str | None:
            value = item.get(name)
            return None if value is None else str(value["S"])

        def n(name: str) -> int | None:
            value = item.get(name)
            return None if value is None else int(value["N"])

        result = s("RESULT")
        return cls(
            job_id=str(item["UUID"]["S"]),
            status=Status(s("JOB_STATUS") or Status.NOT_YET_INITIATED.value),
            phase=Phase(s("PHASE") or Phase.QUEUED.value),
            created_at=s("CREATED_AT") or "",
            result=Result(result) if result else None,
            exit_code=n("EXIT_CODE"),
            reason=s("REASON"),
            variables={k: str(v["S"]) for k, v in item.get("VARIABLES", {}).get("M", {}).items()},
            tag=s("TAG"),
            is_invoked=s("IS_INVOKED") == "True",
            input_zip_name=s("INPUT_ZIP_NAME"),
            input_zip_size=n("INPUT_ZIP_SIZE"),
            idempotency_key=s("IDEMPOTENCY_KEY"),
            batch_job_id=s("BATCH_JOB_ID"),
            array_parent=s("ARRAY_PARENT"),
            array_index=n("ARRAY_INDEX"),
            start_time=s("START_TIME"),
            end_time=s("END_TIME"),
            attempt=n("ATTEMPT") or 0,
            batch_attempt=n("BATCH_ATTEMPT"),
            outputs=tuple(str(v["S"]) for v in item.get("OUTPUTS", {}).get("L", [])),
            error_zip=s("ERROR_ZIP"),
            expires_at=n("EXPIRES_AT"),
            batch_id=s("BATCH_ID"),
            batch_status=s("BATCH_STATUS"),
            batch_reason=s("BATCH_REASON"),
            log_stream=s("LOG_STREAM"),
            job_queue=s("JOB_QUEUE"),
            vcpus=n("VCPUS"),
            memory_mib=n("MEMORY_MIB"),
            gpus=n("GPUS"),
            timeout_seconds=n("TIMEOUT_SECONDS"),
            reclaims=n("RECLAIMS") or 0,
            attempts=tuple(_plain(v) for v in item.get("ATTEMPTS", {}).get("L", [])),
            usage=_plain(item["USAGE"]) if "USAGE" in item else {},
        )

    def to_plain(self) -> dict[str, Any]:
        """The record as JSON-ready values under the table's attribute names (``query --json``)."""
        return {name: _plain(value) for name, value in self.to_item().items()}

    def to_item(self) -> Item:
        """The DynamoDB item (low-level attribute values); absent fields are left out."""
        item: Item = {
            "UUID": {"S": self.job_id},
            "JOB_STATUS": {"S": self.status.value},
            "PHASE": {"S": self.phase.value},
            "CREATED_AT": {"S": self.created_at},
            "VARIABLES": {"M": {k: {"S": v} for k, v in self.variables.items()}},
            "IS_INVOKED": {"S": "True" if self.is_invoked else "False"},
            "ATTEMPT": {"N": str(self.attempt)},
        }
        strings = {
            "RESULT": self.result.value if self.result else None,
            "REASON": self.reason,
            "TAG": self.tag,
            "INPUT_ZIP_NAME": self.input_zip_name,
            "IDEMPOTENCY_KEY": self.idempotency_key,
            "BATCH_JOB_ID": self.batch_job_id,
            "ARRAY_PARENT": self.array_parent,
            "START_TIME": self.start_time,
            "END_TIME": self.end_time,
            "ERROR_ZIP": self.error_zip,
            "BATCH_ID": self.batch_id,
            "BATCH_STATUS": self.batch_status,
            "BATCH_REASON": self.batch_reason,
            "LOG_STREAM": self.log_stream,
            "JOB_QUEUE": self.job_queue,
        }
        for name, text in strings.items():
            if text is not None:
                item[name] = {"S": text}
        numbers = {
            "EXIT_CODE": self.exit_code,
            "INPUT_ZIP_SIZE": self.input_zip_size,
            "ARRAY_INDEX": self.array_index,
            "EXPIRES_AT": self.expires_at,
            "BATCH_ATTEMPT": self.batch_attempt,
            "VCPUS": self.vcpus,
            "MEMORY_MIB": self.memory_mib,
            "GPUS": self.gpus,
            "TIMEOUT_SECONDS": self.timeout_seconds,
        }
        for name, number in numbers.items():
            if number is not None:
                item[name] = {"N": str(number)}
        if self.outputs:
            item["OUTPUTS"] = {"L": [{"S": key} for key in self.outputs]}
        if self.reclaims:
            item["RECLAIMS"] = {"N": str(self.reclaims)}
        if self.attempts:
            item["ATTEMPTS"] = {"L": [to_attribute(a) for a in self.attempts]}
        if self.usage:
            item["USAGE"] = to_attribute(self.usage)
        return item


# The keys of one ATTEMPTS entry (absent when unknown). number: Batch's attempt (1-based);
# started/ended: seed time text; lifecycle: "spot" | "on_demand" | "local"; cause: for an
# interruption "spot reclaim" | "host terminated" | "job terminated", else Batch's reason.
ATTEMPT_KEYS = (
    "number",
    "started",
    "ended",
    "exit_code",
    "reason",
    "cause",
    "queue",
    "instance_type",
    "lifecycle",
    "host",
    "log_stream",
)
# The keys of USAGE, written when a job ends (docs/cost.md states the method).
USAGE_KEYS = (
    "seconds",
    "vcpu_seconds",
    "memory_gib_seconds",
    "instance_type",
    "lifecycle",
    "cost_usd",
)


def to_attribute(value: Any) -> dict[str, Any]:
    """A plain value (str, int, float, bool, None, list, mapping) as a low-level attribute."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, int | float):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, Mapping):
        return {"M": {str(k): to_attribute(v) for k, v in value.items()}}
    return {"L": [to_attribute(v) for v in value]}


def _plain(value: Mapping[str, Any]) -> Any:
    """One low-level attribute value (S, N, M, L, BOOL, NULL) as a plain Python value."""
    if "S" in value:
        return value["S"]
    if "N" in value:
        text = value["N"]
        return float(text) if any(c in text for c in ".eE") else int(text)
    if "BOOL" in value:
        return bool(value["BOOL"])
    if "NULL" in value:
        return None
    if "M" in value:
        return {k: _plain(v) for k, v in value["M"].items()}
    return [_plain(v) for v in value["L"]]


# fanin: the attribute of a claim item naming the record that holds the job.
CLAIM_ATTRIBUTE = "SAME_AS"
# fanin: the attribute of an array's marker saying its SubmitJob answered.
SUBMITTED_ATTRIBUTE = "SUBMITTED_AT"
# fanin: what became of one drop's claim (JobStore.claim_drops).
WON, DUPLICATE, IN_FLIGHT = "won", "duplicate", "in flight"


@dataclass(frozen=True)
class Claimed:
    """The records a fan-in wrote, and the claim ids found in flight (retry those later)."""

    records: list[JobRecord]
    in_flight: list[str]


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class JobStore:
    """Typed access to the job table through a low-level boto3 DynamoDB client.

    The only code that reads or writes the table: the Lambdas, the worker, the CLI's ``query``
    and the local flock's executor all go through it.
    """

    def __init__(
        self,
        table_name: str,
        client: Any = None,
        *,
        index: str = PHASE_INDEX,
        days_to_keep_finished_jobs: int = 30,
        clock: Clock = utc_now,
    ) -> None:
        self.table_name = table_name
        self.index = index
        self.client: Any = client if client is not None else clients.client("dynamodb")
        self.days_to_keep_finished_jobs = days_to_keep_finished_jobs
        self.clock = clock

    # -- writes made by the Lambdas ------------------------------------------------------------

    def create(self, job: JobRecord) -> bool:
        """Write a new record; False (and nothing written) when that job id exists already."""
        job = job if job.created_at else replace(job, created_at=created_at_text(self.clock()))
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=job.to_item(),
                ConditionExpression="attribute_not_exists(#id)",
                ExpressionAttributeNames={"#id": "UUID"},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def put_many(self, jobs: Iterable[JobRecord]) -> int:
        """Write records (array children) with BatchWriteItem, unconditionally; returns how many."""
        stamp = created_at_text(self.clock())
        requests = [
            {
                "PutRequest": {
                    "Item": (job if job.created_at else replace(job, created_at=stamp)).to_item()
                }
            }
            for job in jobs
        ]
        for start in range(0, len(requests), 25):
            pending: list[dict[str, Any]] = requests[start : start + 25]
            for _ in range(10):
                if not pending:
                    break
                answer = self.client.batch_write_item(RequestItems={self.table_name: pending})
                pending = answer.get("UnprocessedItems", {}).get(self.table_name, [])
            if pending:
                raise RuntimeError(
                    f"while writing array job records: {len(pending)} writes stayed unprocessed "
                    "after 10 tries (table throttled)"
                )
        return len(requests)

    def delete_unsubmitted(self, job_id: str) -> bool:
        """Remove a queued record that never reached Batch (so a retried request starts afresh)."""
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key={"UUID": {"S": job_id}},
                ConditionExpression="#p = :queued AND attribute_not_exists(#b)",
                ExpressionAttributeNames={"#p": "PHASE", "#b": "BATCH_JOB_ID"},
                ExpressionAttributeValues={":queued": {"S": Phase.QUEUED.value}},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def set_batch_job_id(self, job_id: str, batch_job_id: str) -> None:
        self._update(job_id, "SET #b = :b", {"#b": "BATCH_JOB_ID"}, {":b": {"S": batch_job_id}})

    # -- reads ---------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        answer = self.client.get_item(
            TableName=self.table_name, Key={"UUID": {"S": job_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return JobRecord.from_item(item) if item else None

    def query_phase(
        self,
        phase: Phase,
        *,
        result: Result | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[JobRecord]:
        """Records in one phase (with that result, if given), newest first unless told, through
        the phase index: a Query, never a Scan."""
        records: list[JobRecord] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": self.index,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": "PHASE"},
            "ExpressionAttributeValues": {":p": {"S": phase.value}},
            "ScanIndexForward": not newest_first,
        }
        if result is not None:
            kwargs["FilterExpression"] = "#r = :r"
            kwargs["ExpressionAttributeNames"]["#r"] = "RESULT"
            kwargs["ExpressionAttributeValues"][":r"] = {"S": result.value}
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(records)
            answer = self.client.query(**kwargs)
            for item in answer.get("Items", []):
                record = self._whole(item, phase)
                if record is not None:
                    records.append(record)
            last = answer.get("LastEvaluatedKey")
            if not last or (limit is not None and len(records) >= limit):
                return records
            kwargs["ExclusiveStartKey"] = last

    def _whole(self, item: Item, phase: Phase) -> JobRecord | None:
        """The record of an index item; read from the table when the index projects keys only
        (None if it left ``phase`` meanwhile)."""
        if "JOB_STATUS" in item:
            return JobRecord.from_item(item)
        record = self.get(str(item["UUID"]["S"]))
        return record if record is not None and record.phase is phase else None

    def iter_all(self) -> Iterator[JobRecord]:
        kwargs: dict[str, Any] = {"TableName": self.table_name}
        while True:
            answer = self.client.scan(**kwargs)
            for item in answer.get("Items", []):
                if CLAIM_ATTRIBUTE not in item:  # a fan-in claim is not a job
                    yield JobRecord.from_item(item)
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def scan_all(self) -> list[JobRecord]:
        """Every record (a full scan: for ``query --all``, not for the hot path)."""
        return list(self.iter_all())

    # -- writes made by the worker -------------------------------------------------------------

    def claim(
        self,
        job_id: str,
        *,
        batch_job_id: str | None = None,
        batch_attempt: int | None = None,
        attempt: Mapping[str, Any] | None = None,
    ) -> JobRecord | None:
        """Take a queued (or interrupted) job for this worker; None if it is not claimable.

        ``attempt``: an ATTEMPTS entry (keys of ATTEMPT_KEYS, ``number`` among them) appended by
        the same write, ``started`` now (``start_attempt`` without its read and second write;
        ``claimed_attempt`` below tidies an entry the events handler made first).

        ``batch_job_id`` (the worker's ``AWS_BATCH_JOB_ID``) is recorded when given: array
        children learn theirs only here. ``batch_attempt`` (``AWS_BATCH_JOB_ATTEMPT``) lets a
        later Batch attempt take over a job left ``running`` by a host that died without a
        SIGTERM (a Spot reclaim can do that): the record remembers the attempt that claimed it,
        and only a strictly later attempt of Batch's retry strategy may claim it again. A second
        worker of the same attempt still cannot, so no job runs twice at once.
        """
        now = self.clock()
        names = {
            "#id": "UUID",
            "#phase": "PHASE",
            "#status": "JOB_STATUS",
            "#start": "START_TIME",
            "#attempt": "ATTEMPT",
            "#result": "RESULT",
            "#reason": "REASON",
        }
        values: dict[str, Any] = {
            ":running": {"S": Phase.RUNNING.value},
            ":queued": {"S": Phase.QUEUED.value},
            ":in_progress": {"S": Status.IN_PROGRESS.value},
            ":interrupted": {"S": Result.INTERRUPTED.value},
            ":start": {"S": seed_time_text(now)},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
        }
        extra = ""
        takeover = ""
        if batch_job_id:
            extra = ", #batch = :batch"
            names["#batch"] = "BATCH_JOB_ID"
            values[":batch"] = {"S": batch_job_id}
        if batch_attempt is not None:
            extra += ", #battempt = :battempt"
            takeover = " OR (#phase = :running AND #battempt < :battempt)"
            names["#battempt"] = "BATCH_ATTEMPT"
            values[":battempt"] = {"N": str(batch_attempt)}
        if attempt is not None:
            entry = {k: v for k, v in attempt.items() if v is not None and k in ATTEMPT_KEYS}
            entry["started"] = seed_time_text(now)
            extra += ", #attempts = list_append(if_not_exists(#attempts, :no_attempts), :attempt)"
            names["#attempts"] = "ATTEMPTS"
            values[":no_attempts"] = {"L": []}
            values[":attempt"] = {"L": [to_attribute(entry)]}
        answer = self._update_if(
            job_id,
            UpdateExpression=(
                "SET #phase = :running, #status = :in_progress, #start = :start, "
                f"#attempt = if_not_exists(#attempt, :zero) + :one{extra} "
                "REMOVE #result, #reason"
            ),
            ConditionExpression=(
                f"attribute_exists(#id) AND (#phase = :queued OR #result = :interrupted{takeover})"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return None if answer is None else JobRecord.from_item(answer["Attributes"])

    def set_status(self, job_id: str, status: Status) -> None:
        self._update(job_id, "SET #s = :s", {"#s": "JOB_STATUS"}, {":s": {"S": status.value}})

    def finish(
        self,
        job_id: str,
        result: Result,
        *,
        exit_code: int | None = None,
        reason: str | None = None,
        outputs: Iterable[str] = (),
        error_zip: str | None = None,
        status: Status = Status.DONE,
        days_to_keep: int | None = None,
    ) -> None:
        """Mark a job finished with its result; the record expires after the flock's retention."""
        expression, names, values = self._finish_parts(
            result,
            exit_code=exit_code,
            reason=reason,
            outputs=outputs,
            error_zip=error_zip,
            status=status,
            days_to_keep=days_to_keep,
        )
        self._update(job_id, expression, names, values)

    def _finish_parts(
        self,
        result: Result,
        *,
        exit_code: int | None = None,
        reason: str | None = None,
        outputs: Iterable[str] = (),
        error_zip: str | None = None,
        status: Status = Status.DONE,
        days_to_keep: int | None = None,
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        """The update expression, names and values of ``finish``."""
        now = self.clock()
        days = self.days_to_keep_finished_jobs if days_to_keep is None else days_to_keep
        sets = [
            "#phase = :finished",
            "#result = :result",
            "#status = :status",
            "#end = :end",
            "#expires = :expires",
        ]
        names = {
            "#phase": "PHASE",
            "#result": "RESULT",
            "#status": "JOB_STATUS",
            "#end": "END_TIME",
            "#expires": "EXPIRES_AT",
        }
        values: dict[str, Any] = {
            ":finished": {"S": Phase.FINISHED.value},
            ":result": {"S": result.value},
            ":status": {"S": status.value},
            ":end": {"S": seed_time_text(now)},
            ":expires": {"N": str(expires_at(now, days))},
        }
        optional: dict[str, tuple[str, dict[str, Any] | None]] = {
            "EXIT_CODE": ("#code", {"N": str(exit_code)} if exit_code is not None else None),
            "REASON": ("#reason", {"S": reason} if reason is not None else None),
            "ERROR_ZIP": ("#ezip", {"S": error_zip} if error_zip is not None else None),
        }
        keys = list(outputs)
        if keys:
            optional["OUTPUTS"] = ("#outputs", {"L": [{"S": key} for key in keys]})
        for attribute, (alias, value) in optional.items():
            if value is not None:
                sets.append(f"{alias} = :{alias[1:]}")
                names[alias] = attribute
                values[f":{alias[1:]}"] = value
        return "SET " + ", ".join(sets), names, values

    def mark_interrupted(self, job_id: str, reason: str) -> None:
        """Put a job back in the queue after an interruption (Spot reclaim), for Batch's retry."""
        self._update(
            job_id,
            "SET #phase = :queued, #result = :interrupted, #reason = :reason",
            {"#phase": "PHASE", "#result": "RESULT", "#reason": "REASON"},
            {
                ":queued": {"S": Phase.QUEUED.value},
                ":interrupted": {"S": Result.INTERRUPTED.value},
                ":reason": {"S": reason},
            },
        )

    def _update_if(self, job_id: str, **request: Any) -> dict[str, Any] | None:
        """UpdateItem on one record; its answer, or None when the request's
        ConditionExpression did not hold."""
        try:
            answer: dict[str, Any] = self.client.update_item(
                TableName=self.table_name, Key={"UUID": {"S": job_id}}, **request
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return None
            raise
        return answer

    def _update(
        self, job_id: str, expression: str, names: dict[str, str], values: dict[str, Any]
    ) -> None:
        updated = self._update_if(
            job_id,
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(#id)",
            ExpressionAttributeNames={**names, "#id": "UUID"},
            ExpressionAttributeValues=values,
        )
        if updated is None:
            raise JobNotFound(
                f"while updating job {job_id}: the job table {self.table_name} has no "
                "record with that id. Check the id (shepard-tf query)."
            )

    # -- ops: batches and cancel ---------------------------------------------------------------

    def query_batch(self, batch_id: str) -> list[JobRecord]:
        """Every record of one submission, oldest first, through the batch index: a Query (paged
        with LastEvaluatedKey), never a Scan."""
        records: list[JobRecord] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": BATCH_INDEX,
            "KeyConditionExpression": "#b = :b",
            "ExpressionAttributeNames": {"#b": "BATCH_ID"},
            "ExpressionAttributeValues": {":b": {"S": batch_id}},
        }
        while True:
            answer = self.client.query(**kwargs)
            records.extend(JobRecord.from_item(item) for item in answer.get("Items", []))
            last = answer.get("LastEvaluatedKey")
            if not last:
                return records
            kwargs["ExclusiveStartKey"] = last

    def batch_counts(self, batch_id: str) -> dict[str, int]:
        """How many jobs of one submission are ``queued`` or ``running``, and how many finished
        with each RESULT (``succeeded``, ``failed``...); only the non-zero ones."""
        return self.count_by_result(self.query_batch(batch_id))

    @staticmethod
    def count_by_result(records: Iterable[JobRecord]) -> dict[str, int]:
        """``queued``/``running`` for unfinished records (by PHASE), else their RESULT."""
        counts: dict[str, int] = {}
        for record in records:
            if record.phase is Phase.FINISHED:
                key = record.result.value if record.result else Phase.FINISHED.value
            else:
                key = record.phase.value
            counts[key] = counts.get(key, 0) + 1
        return counts

    def cancel(self, job_id: str, reason: str) -> JobRecord | None:
        """Record a job cancelled (RESULT cancelled, REASON, END_TIME): the new record, or None
        when it is finished already or has no record. Conditional, so a job that finished while
        it was being cancelled keeps its own result."""
        now = self.clock()
        answer = self._update_if(
            job_id,
            UpdateExpression=(
                "SET #phase = :finished, #result = :cancelled, #status = :done, "
                "#reason = :reason, #end = :end, #expires = :expires"
            ),
            ConditionExpression="attribute_exists(#id) AND #phase <> :finished",
            ExpressionAttributeNames={
                "#id": "UUID",
                "#phase": "PHASE",
                "#result": "RESULT",
                "#status": "JOB_STATUS",
                "#reason": "REASON",
                "#end": "END_TIME",
                "#expires": "EXPIRES_AT",
            },
            ExpressionAttributeValues={
                ":finished": {"S": Phase.FINISHED.value},
                ":cancelled": {"S": Result.CANCELLED.value},
                ":done": {"S": Status.DONE.value},
                ":reason": {"S": reason},
                ":end": {"S": seed_time_text(now)},
                ":expires": {"N": str(expires_at(now, self.days_to_keep_finished_jobs))},
            },
            ReturnValues="ALL_NEW",
        )
        return None if answer is None else JobRecord.from_item(answer["Attributes"])

    def cancelled_among(self, job_ids: Iterable[str]) -> set[str]:
        """Which of these jobs are recorded cancelled (BatchGetItem, 100 keys a call, only
        UUID and RESULT read): the local flock's executor stops their workers."""
        ids = list(dict.fromkeys(job_ids))
        found: set[str] = set()
        for start in range(0, len(ids), 100):
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": [{"UUID": {"S": job_id}} for job_id in ids[start : start + 100]],
                    "ProjectionExpression": "#id, #result",
                    "ExpressionAttributeNames": {"#id": "UUID", "#result": "RESULT"},
                }
            }
            for _ in range(10):
                answer = self.client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    if item.get("RESULT", {}).get("S") == Result.CANCELLED.value:
                        found.add(str(item["UUID"]["S"]))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
        return found

    # -- events: Batch's own view of a job -----------------------------------------------------

    def apply_batch_event(self, event: BatchEvent) -> bool:
        """Record what Batch says of a job: True when the record took the event.

        Writes BATCH_STATUS, BATCH_REASON, LOG_STREAM and JOB_QUEUE, conditionally:
        - the record exists and belongs to this Batch job (a job resubmitted to another queue
          has a new BATCH_JOB_ID, and the old job's late events are ignored);
        - the event ranks above the last one taken for that Batch job (batch_events.rank), so a
          duplicate or an event delivered after a later one changes nothing.
        A FAILED event (final for the Batch job) then finishes a record its worker did not
        finish (never ran, or was killed): PHASE finished, RESULT failed (cancelled for the
        queue's time limit), Batch's reason as REASON, JOB_STATUS ``<done>``. That second write
        is conditional on PHASE not finished, so it never moves a finished record back; the
        worker's own JOB_STATUS strings are never touched while the record is not finished.
        """
        job_id = event.shepard_job_id
        if not job_id:
            return False
        names = {
            "#id": "UUID",
            "#bj": "BATCH_JOB_ID",
            "#bs": "BATCH_STATUS",
            "#ej": "BATCH_EVENT_JOB",
            "#er": "BATCH_EVENT_RANK",
        }
        values: dict[str, Any] = {
            ":bj": {"S": event.batch_job_id},
            ":bs": {"S": event.status},
            ":er": {"N": str(event.rank)},
        }
        sets = ["#bs = :bs", "#ej = :bj", "#er = :er"]
        removes: list[str] = []
        optional = {
            "BATCH_REASON": ("#br", event.status_reason),
            "LOG_STREAM": ("#ls", event.log_stream),
            "JOB_QUEUE": ("#jq", event.job_queue),
        }
        for attribute, (alias, text) in optional.items():
            names[alias] = attribute
            if text is not None:
                sets.append(f"{alias} = :{alias[1:]}")
                values[f":{alias[1:]}"] = {"S": text}
            elif attribute == "BATCH_REASON":
                removes.append(alias)
            else:
                del names[alias]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            answer = self.client.update_item(
                TableName=self.table_name,
                Key={"UUID": {"S": job_id}},
                UpdateExpression=expression,
                ConditionExpression=(
                    "attribute_exists(#id) "
                    "AND (attribute_not_exists(#bj) OR #bj = :bj) "
                    "AND (attribute_not_exists(#er) OR #ej <> :bj OR #er < :er)"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        record = JobRecord.from_item(answer["Attributes"])
        if event.status == "FAILED" and record.phase is not Phase.FINISHED:
            self._finish_failed_by_batch(record, event)
        self._note_batch_attempt(record, event)
        return True

    def _finish_failed_by_batch(self, record: JobRecord, event: BatchEvent) -> bool:
        """Finish a record Batch failed while its worker could not (see apply_batch_event)."""
        result, reason = batch_outcome(event, timeout_seconds=record.timeout_seconds)
        now = self.clock()
        names = {
            "#id": "UUID",
            "#bj": "BATCH_JOB_ID",
            "#phase": "PHASE",
            "#result": "RESULT",
            "#reason": "REASON",
            "#status": "JOB_STATUS",
            "#end": "END_TIME",
            "#expires": "EXPIRES_AT",
        }
        values: dict[str, Any] = {
            ":bj": {"S": event.batch_job_id},
            ":finished": {"S": Phase.FINISHED.value},
            ":result": {"S": result.value},
            ":reason": {"S": reason},
            ":done": {"S": Status.DONE.value},
            ":end": {"S": seed_time_text(now)},
            ":expires": {"N": str(expires_at(now, self.days_to_keep_finished_jobs))},
        }
        sets = (
            "#phase = :finished, #result = :result, #reason = :reason, #status = :done, "
            "#end = :end, #expires = :expires"
        )
        if event.exit_code is not None:
            names["#code"] = "EXIT_CODE"
            values[":code"] = {"N": str(event.exit_code)}
            sets += ", #code = :code"
        updated = self._update_if(
            record.job_id,
            UpdateExpression="SET " + sets,
            ConditionExpression=(
                "attribute_exists(#id) AND #phase <> :finished "
                "AND (attribute_not_exists(#bj) OR #bj = :bj)"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        return updated is not None

    def _note_batch_attempt(self, record: JobRecord, event: BatchEvent) -> None:
        """Fill the attempt's queue, host and log stream (JobStore.note_attempt, when the
        attempts' section provides it; the attempt is the one running, or the one just ended)."""
        note = getattr(self, "note_attempt", None)
        if note is None or event.status not in ("STARTING", "RUNNING", "SUCCEEDED", "FAILED"):
            return
        number = event.attempt if event.final else event.attempt + 1
        fields = {
            "queue": event.job_queue,
            "host": event.instance,
            "log_stream": event.log_stream,
        }
        fields = {k: v for k, v in fields.items() if v is not None}
        if number >= 1 and fields:
            note(record.job_id, number, **fields)

    # -- fanin: zip drops fanned in to one array job ---------------------------------------------

    def create_claimed(
        self,
        pairs: Sequence[tuple[str, JobRecord]],
        *,
        workers: int = 8,
        take_over_after: timedelta | None = None,
    ) -> list[JobRecord]:
        """The records :meth:`claim_drops` wrote, in order."""
        return self.claim_drops(pairs, workers=workers, take_over_after=take_over_after).records

    def claim_drops(
        self,
        pairs: Sequence[tuple[str, JobRecord]],
        *,
        workers: int = 8,
        take_over_after: timedelta | None = None,
    ) -> Claimed:
        """Write each ``(claim id, record)`` pair unless its claim is taken; the records written,
        in order, and the claims found in flight.

        A claim is an item at the id a drop's idempotency key gives (``ids.job_id_for``), with
        ``SAME_AS`` naming the record that holds the job and ``CLAIMED_AT``; it has no PHASE,
        CREATED_AT or BATCH_ID, so no index and no resubmission sees it. Claims are conditional
        PutItems (``workers`` at a time); a claim that exists already (a second delivery, or the
        plain record or rejection of the same drop) means a duplicate, and its record is not
        written. Then the records of the claims won go in BatchWriteItem, 25 a request. If a
        write fails, the claims this call made are removed before the error is raised, so the
        drops' next delivery starts afresh.

        With ``take_over_after``, a claim found whose array was never marked submitted
        (:meth:`mark_array_submitted`: the Lambda that made it died before SubmitJob answered)
        is taken over when it is older than that: conditionally replaced by this call's claim
        (two redeliveries cannot both take it), its old record removed unless a worker took it
        or Batch's events reached it, and the record written again as one of this call's.
        Younger, it is in flight (perhaps a concurrent delivery): left alone and returned in
        ``in_flight``, for a later retry.
        """
        if not pairs:
            return Claimed([], [])
        claimed_at = created_at_text(self.clock())

        def claim(pair: tuple[str, JobRecord]) -> str:
            claim_id, record = pair
            item: Item = {
                "UUID": {"S": claim_id},
                CLAIM_ATTRIBUTE: {"S": record.job_id},
                "CLAIMED_AT": {"S": claimed_at},
            }
            if record.idempotency_key:
                item["IDEMPOTENCY_KEY"] = {"S": record.idempotency_key}
            if record.expires_at is not None:
                item["EXPIRES_AT"] = {"N": str(record.expires_at)}
            try:
                self.client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression="attribute_not_exists(#id)",
                    ExpressionAttributeNames={"#id": "UUID"},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if not _is_condition_failure(exc):
                    raise
                if take_over_after is None:
                    return DUPLICATE
                found: Item | None = exc.response.get("Item")  # type: ignore[assignment]
                return self._take_over(item, found or self._raw(claim_id), take_over_after)
            return WON

        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(pairs)))) as pool:
            futures = [pool.submit(claim, pair) for pair in pairs]
        answers = [f.result() if f.exception() is None else None for f in futures]
        failed = next((f.exception() for f in futures if f.exception() is not None), None)
        records = [record for (_, record), a in zip(pairs, answers, strict=True) if a == WON]
        claims = [claim_id for (claim_id, _), a in zip(pairs, answers, strict=True) if a == WON]
        in_flight = [c for (c, _), a in zip(pairs, answers, strict=True) if a == IN_FLIGHT]
        try:
            if failed is not None:
                raise failed
            self.put_many(records)
        except BaseException:
            self.delete_claimed(records, claims)
            raise
        return Claimed(records, in_flight)

    def _raw(self, key: str) -> Item | None:
        answer = self.client.get_item(
            TableName=self.table_name, Key={"UUID": {"S": key}}, ConsistentRead=True
        )
        item: Item | None = answer.get("Item")
        return item

    def _take_over(self, item: Item, old: Item | None, after: timedelta) -> str:
        """DUPLICATE, IN_FLIGHT or WON for a claim found at ``item``'s id (see claim_drops)."""
        if old is None:
            return IN_FLIGHT  # removed meanwhile (a failed fan-in): the next delivery claims it
        if CLAIM_ATTRIBUTE not in old or SUBMITTED_ATTRIBUTE in old:
            return DUPLICATE  # a plain record or rejection, or a claim marked submitted
        old_child = old[CLAIM_ATTRIBUTE]["S"]
        parent = old_child.rsplit("-", 1)[0]
        marker = self._raw(parent)
        if marker is not None and SUBMITTED_ATTRIBUTE in marker:
            return DUPLICATE
        try:
            claimed = datetime.strptime(old["CLAIMED_AT"]["S"], "%Y-%m-%dT%H:%M:%S.%f%z")
        except (KeyError, ValueError):
            return DUPLICATE
        if self.clock() - claimed <= after:
            return IN_FLIGHT
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="#s = :s AND #c = :c AND attribute_not_exists(#m)",
                ExpressionAttributeNames={
                    "#s": CLAIM_ATTRIBUTE,
                    "#c": "CLAIMED_AT",
                    "#m": SUBMITTED_ATTRIBUTE,
                },
                ExpressionAttributeValues={":s": old[CLAIM_ATTRIBUTE], ":c": old["CLAIMED_AT"]},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return IN_FLIGHT  # another delivery took it over first
            raise
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key={"UUID": {"S": old_child}},
                ConditionExpression=(
                    "attribute_not_exists(#id) OR (#p = :queued AND attribute_not_exists(#b) "
                    "AND attribute_not_exists(#bs))"
                ),
                ExpressionAttributeNames={
                    "#id": "UUID",
                    "#p": "PHASE",
                    "#b": "BATCH_JOB_ID",
                    "#bs": "BATCH_STATUS",
                },
                ExpressionAttributeValues={":queued": {"S": Phase.QUEUED.value}},
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            # Its array did reach Batch after all (a worker took the record, or Batch's events
            # gave it a BATCH_STATUS): the old claim goes back, marked; this drop is a duplicate.
            self.client.put_item(
                TableName=self.table_name,
                Item={**old, SUBMITTED_ATTRIBUTE: {"S": created_at_text(self.clock())}},
            )
            return DUPLICATE
        return WON

    def mark_array_submitted(
        self, parent: str, batch_job_id: str, *, expires: int | None = None
    ) -> None:
        """One item at ``parent`` (the fan-in's array id) saying SubmitJob answered, so its
        claims are never taken over: ``SAME_AS`` (itself: scans leave it out), ``SUBMITTED_AT``,
        ``BATCH_JOB_ID``, ``EXPIRES_AT``. One PutItem an array, none a drop."""
        item: Item = {
            "UUID": {"S": parent},
            CLAIM_ATTRIBUTE: {"S": parent},
            SUBMITTED_ATTRIBUTE: {"S": created_at_text(self.clock())},
        }
        if batch_job_id:
            item["BATCH_JOB_ID"] = {"S": batch_job_id}
        if expires is not None:
            item["EXPIRES_AT"] = {"N": str(expires)}
        self.client.put_item(TableName=self.table_name, Item=item)

    def delete_claimed(self, records: Iterable[JobRecord], claims: Iterable[str]) -> None:
        """Remove records and their claims (a fan-in whose writes or SubmitJob failed
        transiently, so the drops' next delivery starts afresh)."""
        keys = [record.job_id for record in records] + list(claims)
        for start in range(0, len(keys), 25):
            pending: list[dict[str, Any]] = [
                {"DeleteRequest": {"Key": {"UUID": {"S": key}}}} for key in keys[start : start + 25]
            ]
            for _ in range(10):
                if not pending:
                    break
                answer = self.client.batch_write_item(RequestItems={self.table_name: pending})
                pending = answer.get("UnprocessedItems", {}).get(self.table_name, [])

    # -- spot: attempts, interruptions ---------------------------------------------------------

    def start_attempt(self, job_id: str, number: int, **fields: Any) -> None:
        """Open the ATTEMPTS entry of attempt ``number`` (Batch's, 1-based) with ``started`` now
        and ``fields`` (keys of ATTEMPT_KEYS: queue, instance_type, lifecycle, host...).

        An entry of that number the events handler made first (it may see RUNNING before the
        worker starts) is filled in, not doubled."""
        values = {k: v for k, v in fields.items() if v is not None and k in ATTEMPT_KEYS}
        values["started"] = seed_time_text(self.clock())
        # A job resubmitted to another queue starts again at Batch's attempt 1: an entry of that
        # number that a worker started already is an earlier attempt, kept as it is.
        self._write_attempt(job_id, number, values, create=True, fresh_if_started=True)

    def end_attempt(
        self,
        job_id: str,
        number: int,
        *,
        exit_code: int | None = None,
        reason: str | None = None,
        cause: str | None = None,
        reclaimed: bool = False,
    ) -> None:
        """Close attempt ``number``: ``ended`` now, its exit code, reason and cause. A reclaimed
        attempt (the host taken back) adds one to RECLAIMS, which is not the application's
        retry budget."""
        values: dict[str, Any] = {"ended": seed_time_text(self.clock())}
        for key, value in (("exit_code", exit_code), ("reason", reason), ("cause", cause)):
            if value is not None:
                values[key] = value
        self._write_attempt(job_id, number, values, create=True)
        if reclaimed:
            self._update(
                job_id,
                "SET #r = if_not_exists(#r, :zero) + :one",
                {"#r": "RECLAIMS"},
                {":zero": {"N": "0"}, ":one": {"N": "1"}},
            )

    def note_attempt(self, job_id: str, number: int, **fields: Any) -> None:
        """Fill keys of attempt ``number`` (the events handler: queue, host, log stream; the
        entry is made if the worker has not opened it yet)."""
        values = {k: v for k, v in fields.items() if v is not None and k in ATTEMPT_KEYS}
        if values:
            self._write_attempt(job_id, number, values, create=True)

    def finish_interrupted(self, job_id: str, reason: str, *, exit_code: int | None = None) -> None:
        """An interruption that will not be retried: the job ends (PHASE finished, RESULT
        interrupted) with its cause in REASON, unless it was cancelled meanwhile."""
        record = self.get(job_id)
        if record is not None and record.result is Result.CANCELLED:
            return
        self.finish(job_id, Result.INTERRUPTED, exit_code=exit_code, reason=reason)

    def _write_attempt(
        self,
        job_id: str,
        number: int,
        values: Mapping[str, Any],
        *,
        create: bool,
        fresh_if_started: bool = False,
    ) -> None:
        """Set ``values`` in the last ATTEMPTS entry numbered ``number`` (appended when there is
        none): conditional on the list being as read, tried again when another writer won."""
        for _ in range(5):
            record = self.get(job_id)
            if record is None:
                raise JobNotFound(
                    f"while recording attempt {number} of job {job_id}: the job table "
                    f"{self.table_name} has no record with that id. Check the id."
                )
            attempts = list(record.attempts)
            numbered = [i for i, entry in enumerate(attempts) if entry.get("number") == number]
            index = numbered[-1] if numbered else None
            if index is not None and fresh_if_started and "started" in attempts[index]:
                index = None
            names: dict[str, str] = {"#id": "UUID", "#a": "ATTEMPTS"}
            expression_values: dict[str, Any] = {":n": {"N": str(len(attempts))}}
            if index is None:
                if not create:
                    return
                entry = {"number": number, **values}
                expression = "SET #a = list_append(if_not_exists(#a, :empty), :new)"
                expression_values[":empty"] = {"L": []}
                expression_values[":new"] = {"L": [to_attribute(entry)]}
                condition = "attribute_exists(#id) AND " + (
                    "size(#a) = :n" if attempts else "attribute_not_exists(#a)"
                )
                if not attempts:
                    del expression_values[":n"]
            else:
                sets = []
                for i, (key, value) in enumerate(values.items()):
                    names[f"#k{i}"] = key
                    expression_values[f":v{i}"] = to_attribute(value)
                    sets.append(f"#a[{index}].#k{i} = :v{i}")
                expression = "SET " + ", ".join(sets)
                condition = "attribute_exists(#id) AND size(#a) = :n"
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"UUID": {"S": job_id}},
                    UpdateExpression=expression,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=expression_values,
                )
                return
            except ClientError as exc:
                if not _is_condition_failure(exc):
                    raise
        raise RuntimeError(
            f"while recording attempt {number} of job {job_id}: the record kept changing "
            "(5 tries). The attempt is not recorded; the job itself is unaffected."
        )

    def mark_batch_notified(self, job_id: str) -> bool:
        """Set BATCH_NOTIFIED on a batch's oldest record, once: False when it was set already
        (another handler sent the batch's completion message)."""
        updated = self._update_if(
            job_id,
            UpdateExpression="SET #n = :now",
            ConditionExpression="attribute_exists(#id) AND attribute_not_exists(#n)",
            ExpressionAttributeNames={"#id": "UUID", "#n": "BATCH_NOTIFIED"},
            ExpressionAttributeValues={":now": {"S": seed_time_text(self.clock())}},
        )
        return updated is not None

    # -- ladder: retries after a failure (shepard/joblayer/retry.py) ---------------------------

    # What requeue_for_retry changes, and undo_requeue puts back.
    _RETRY_ATTRIBUTES = (
        "PHASE",
        "JOB_STATUS",
        "RESULT",
        "REASON",
        "EXIT_CODE",
        "END_TIME",
        "ERROR_ZIP",
        "BATCH_JOB_ID",
        "BATCH_STATUS",
        "BATCH_REASON",
        "JOB_QUEUE",
        "RECLAIMS",
        "MEMORY_MIB",
    )

    def requeue_for_retry(
        self,
        job_id: str,
        failed_batch_job_id: str,
        *,
        queue: str,
        reclaims: int,
        memory_mib: int | None,
        reason: str,
    ) -> JobRecord | None:
        """Put a job Batch failed back in the queue before it is submitted again: PHASE queued,
        JOB_STATUS not_yet_initiated, ``reason`` as REASON (the worker's claim removes it), the new
        JOB_QUEUE, RECLAIMS and MEMORY_MIB (when raised); RESULT, EXIT_CODE, END_TIME, ERROR_ZIP
        and BATCH_JOB_ID go. ATTEMPTS and ATTEMPT stay.

        Conditional on the record still showing this Batch job's failure (finished, failed or
        interrupted, BATCH_JOB_ID that job's or none): None when it does not, so a second
        delivery of one event resubmits nothing."""
        names = {
            "#id": "UUID",
            "#phase": "PHASE",
            "#status": "JOB_STATUS",
            "#result": "RESULT",
            "#reason": "REASON",
            "#code": "EXIT_CODE",
            "#end": "END_TIME",
            "#ezip": "ERROR_ZIP",
            "#bj": "BATCH_JOB_ID",
            "#bs": "BATCH_STATUS",
            "#br": "BATCH_REASON",
            "#queue": "JOB_QUEUE",
            "#reclaims": "RECLAIMS",
        }
        values: dict[str, Any] = {
            ":queued": {"S": Phase.QUEUED.value},
            ":finished": {"S": Phase.FINISHED.value},
            ":initial": {"S": Status.NOT_YET_INITIATED.value},
            ":failed": {"S": Result.FAILED.value},
            ":interrupted": {"S": Result.INTERRUPTED.value},
            ":reason": {"S": reason},
            ":old": {"S": failed_batch_job_id},
            ":submitted": {"S": "SUBMITTED"},
            ":queue": {"S": queue},
            ":reclaims": {"N": str(reclaims)},
        }
        sets = [
            "#phase = :queued",
            "#status = :initial",
            "#reason = :reason",
            "#bs = :submitted",
            "#queue = :queue",
            "#reclaims = :reclaims",
        ]
        if memory_mib is not None:
            names["#memory"] = "MEMORY_MIB"
            values[":memory"] = {"N": str(memory_mib)}
            sets.append("#memory = :memory")
        answer = self._update_if(
            job_id,
            UpdateExpression=(
                "SET " + ", ".join(sets) + " REMOVE #result, #code, #end, #ezip, #bj, #br"
            ),
            ConditionExpression=(
                "attribute_exists(#id) AND #phase = :finished "
                "AND #result IN (:failed, :interrupted) "
                "AND (attribute_not_exists(#bj) OR #bj = :old)"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return None if answer is None else JobRecord.from_item(answer["Attributes"])

    def undo_requeue(self, before: JobRecord, failed_batch_job_id: str) -> None:
        """Put back what requeue_for_retry changed (SubmitJob stayed throttled): the record as
        ``before`` had it, with BATCH_JOB_ID the failed job's, so a new delivery of the event
        finds the failure again. Only while no Batch job took the record meanwhile."""
        item = before.to_item()
        item["BATCH_JOB_ID"] = {"S": failed_batch_job_id}
        names = {"#id": "UUID", "#bj": "BATCH_JOB_ID", "#phase": "PHASE"}
        values: dict[str, Any] = {":queued": {"S": Phase.QUEUED.value}}
        sets: list[str] = []
        removes: list[str] = []
        for i, attribute in enumerate(self._RETRY_ATTRIBUTES):
            alias = f"#u{i}"
            names[alias] = attribute
            if attribute in item:
                values[f":u{i}"] = item[attribute]
                sets.append(f"{alias} = :u{i}")
            else:
                removes.append(alias)
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"UUID": {"S": before.job_id}},
                UpdateExpression=expression,
                ConditionExpression=(
                    "attribute_exists(#id) AND #phase = :queued AND attribute_not_exists(#bj)"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise

    # -- cost: each job's usage and estimated cost -----------------------------------------------

    def record_usage(self, job_id: str, usage: Mapping[str, Any]) -> dict[str, Any]:
        """Add one run's USAGE (keys of ``USAGE_KEYS``) to the job's record and return the
        total: seconds, vCPU-seconds, memory GiB-seconds and cost add up over the job's attempts;
        instance type and lifecycle are the latest run's. A cost of None (no price known) makes
        the total's cost None."""
        unknown = set(usage) - set(USAGE_KEYS)
        if unknown:
            raise ValueError(f"USAGE has no keys {sorted(unknown)}; its keys are {USAGE_KEYS}")
        current = self.get(job_id)
        before = dict(current.usage) if current is not None and current.usage else {}
        total: dict[str, Any] = {key: usage.get(key) for key in USAGE_KEYS}
        if before:
            for key in ("seconds", "vcpu_seconds", "memory_gib_seconds", "cost_usd"):
                mine, theirs = usage.get(key), before.get(key)
                total[key] = None if mine is None or theirs is None else mine + theirs
        values = {":u": {"M": {k: self._usage_attribute(v) for k, v in total.items()}}}
        self._update(job_id, "SET #usage = :u", {"#usage": "USAGE"}, values)
        return total

    @staticmethod
    def _usage_attribute(value: Any) -> dict[str, Any]:
        """A USAGE value; numbers in plain decimal notation (never ``1e-05``)."""
        if isinstance(value, float):
            text = f"{value:.6f}".rstrip("0").rstrip(".")
            return {"N": text if text not in ("", "-0") else "0"}
        return to_attribute(value)

    # -- requests: what one job's worker writes, carried in as few requests as it can ----------

    def claimed_attempt(self, record: JobRecord, number: int) -> int | None:
        """The index in ATTEMPTS of the entry ``claim(attempt=...)`` appended for attempt
        ``number`` (the last entry of ``record``, the claim's answer); None when there is none.

        An entry of that number without ``started`` before it was made by the events handler
        (it may see RUNNING before the worker claims): its keys are folded into the claim's and
        it is dropped, in one more write made only then, so that the attempt is not doubled."""
        attempts = list(record.attempts)
        if not attempts or attempts[-1].get("number") != number or "started" not in attempts[-1]:
            return None
        last = len(attempts) - 1
        stubs = [
            i
            for i, entry in enumerate(attempts[:last])
            if entry.get("number") == number and "started" not in entry
        ]
        if not stubs:
            return last
        merged = {**attempts[stubs[-1]], **attempts[last]}
        kept = [entry for i, entry in enumerate(attempts[:last]) if i != stubs[-1]] + [merged]
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"UUID": {"S": record.job_id}},
                UpdateExpression="SET #a = :kept",
                ConditionExpression="attribute_exists(#id) AND size(#a) = :n",
                ExpressionAttributeNames={"#id": "UUID", "#a": "ATTEMPTS"},
                ExpressionAttributeValues={
                    ":kept": {"L": [to_attribute(entry) for entry in kept]},
                    ":n": {"N": str(len(attempts))},
                },
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return None  # the list changed meanwhile: the attempt ends by its number
            raise
        return len(kept) - 1

    @staticmethod
    def add_usage(before: Mapping[str, Any], usage: Mapping[str, Any]) -> dict[str, Any]:
        """The USAGE total after one more run (as ``record_usage`` adds it up)."""
        unknown = set(usage) - set(USAGE_KEYS)
        if unknown:
            raise ValueError(f"USAGE has no keys {sorted(unknown)}; its keys are {USAGE_KEYS}")
        total: dict[str, Any] = {key: usage.get(key) for key in USAGE_KEYS}
        if before:
            for key in ("seconds", "vcpu_seconds", "memory_gib_seconds", "cost_usd"):
                mine, theirs = usage.get(key), before.get(key)
                total[key] = None if mine is None or theirs is None else mine + theirs
        return total

    def finish_run(
        self,
        job_id: str,
        result: Result,
        *,
        attempt_number: int,
        attempt_index: int | None,
        attempt_fields: Mapping[str, Any],
        usage: Mapping[str, Any] | None = None,
        exit_code: int | None = None,
        reason: str | None = None,
        outputs: Iterable[str] = (),
        error_zip: str | None = None,
        status: Status = Status.DONE,
    ) -> None:
        """``finish``, ``end_attempt`` and the USAGE total (``usage``: the total, see
        ``add_usage``) in one write. The attempt's entry is the one at ``attempt_index`` when it
        still has number ``attempt_number``; otherwise (or with no index) the job is finished
        with its usage and the attempt closed by ``end_attempt``, as two writes."""
        expression, names, values = self._finish_parts(
            result,
            exit_code=exit_code,
            reason=reason,
            outputs=outputs,
            error_zip=error_zip,
            status=status,
        )
        if usage is not None:
            expression += ", #usage = :usage"
            names["#usage"] = "USAGE"
            values[":usage"] = {"M": {k: self._usage_attribute(v) for k, v in usage.items()}}
        ended = {"ended": seed_time_text(self.clock())}
        ended.update({k: v for k, v in attempt_fields.items() if v is not None})
        if attempt_index is not None:
            sets = []
            attempt_names: dict[str, str] = {"#a": "ATTEMPTS", "#anumber": "number"}
            attempt_values: dict[str, Any] = {":anumber": {"N": str(attempt_number)}}
            for i, (key, value) in enumerate(ended.items()):
                attempt_names[f"#ak{i}"] = key
                attempt_values[f":av{i}"] = to_attribute(value)
                sets.append(f"#a[{attempt_index}].#ak{i} = :av{i}")
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"UUID": {"S": job_id}},
                    UpdateExpression=expression + ", " + ", ".join(sets),
                    ConditionExpression=(
                        f"attribute_exists(#id) AND #a[{attempt_index}].#anumber = :anumber"
                    ),
                    ExpressionAttributeNames={**names, **attempt_names, "#id": "UUID"},
                    ExpressionAttributeValues={**values, **attempt_values},
                )
                return
            except ClientError as exc:
                if not _is_condition_failure(exc):
                    raise
        self._update(job_id, expression, names, values)
        fields = {k: v for k, v in attempt_fields.items() if k in ("exit_code", "reason", "cause")}
        self.end_attempt(job_id, attempt_number, **fields)

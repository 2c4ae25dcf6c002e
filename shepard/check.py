"""``shepard-tf check``: every hop of a deployed flock, and which one is broken.

A flock is a chain: a zip in the inputs bucket notifies the SQS queue, the scheduler Lambda reads
the queue (the event source mapping on AWS, the local flock's dispatcher on this machine) and
submits Batch jobs to the job queue, whose compute environments start the sheep that run the
worker, which writes the output zip. A request through the API Lambda joins the chain at the
submission. Each function here checks one hop through clients handed in (boto3 clients, or
anything with the same methods), so each is tested on its own; :func:`run_checks` runs them all
and :func:`run_canary` sends a tiny job through the API and follows it to its output zip, then
drops the same job as a zip in the inputs bucket and waits for its output zip.

Every failed hop says what was found (cause) and what to do (fix), in words a user can act on.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shepard.errors import BadInput
from shepard.joblayer.records import Phase, Result
from shepard.joblayer.store import JobRecord, JobStore

OK = "ok"
FAIL = "FAIL"
SKIPPED = "skipped"

AWS = "aws"
LOCAL = "local"

CANARY_FOLDER = "shepard-check"
CANARY_TAG = "shepard-check"
CANARY_FILE = "canary.txt"
CANARY_SCRIPT = f"""#!/bin/bash
# shepard-tf check's canary: the smallest job that produces an output zip.
set -eu
mkdir -p "$ROOT_OUTPUT_NAME"
echo "shepard-tf check canary $UUID" > "$ROOT_OUTPUT_NAME/{CANARY_FILE}"
"""
LOG_ERROR_PATTERN = '?ERROR ?Traceback ?"Task timed out"'
LOG_WINDOW = timedelta(hours=1)
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Hop:
    """One hop of the flock and what the check found there."""

    name: str
    status: str  # OK, FAIL or SKIPPED
    seconds: float = 0.0
    detail: str = ""  # what was found
    cause: str = ""  # for a failure: what is wrong
    fix: str = ""  # for a failure: what to do

    @property
    def ok(self) -> bool:
        return self.status != FAIL

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "seconds": round(self.seconds, 3)}


@dataclass
class Report:
    """Every hop checked, in the flock's order."""

    flock: str
    target: str
    hops: list[Hop] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(hop.ok for hop in self.hops)

    @property
    def failed(self) -> list[Hop]:
        return [hop for hop in self.hops if not hop.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "flock": self.flock,
            "target": self.target,
            "ok": self.ok,
            "failed": [hop.name for hop in self.failed],
            "hops": [hop.to_json() for hop in self.hops],
        }


@dataclass(frozen=True)
class Clients:
    """The AWS clients the check needs. ``invoke`` calls the API Lambda: on AWS the same Lambda
    client as ``lambda_``; on the local flock, its Lambda endpoint."""

    batch: Any
    s3: Any
    sqs: Any
    lambda_: Any
    invoke: Any
    logs: Any
    dynamodb: Any


@dataclass(frozen=True)
class Target:
    """Where the flock runs, as its flock.yaml says (``target:``), never guessed from an URL.

    On AWS the event source mapping feeds the scheduler; on the local flock its service's
    dispatcher polls the queue instead (and the mapping must stay disabled)."""

    kind: str  # AWS or LOCAL
    flock_file: str = "flock.yaml"
    local_state_dir: Path | None = None
    local_status: Callable[[], Any] | None = None  # shepard.local.status of the state folder

    @property
    def apply_command(self) -> str:
        return f"shepard-tf apply {self.flock_file}"


class _Failed(Exception):
    def __init__(self, cause: str, fix: str, detail: str = "") -> None:
        super().__init__(cause)
        self.cause, self.fix, self.detail = cause, fix, detail


def _aws_text(error: Exception) -> str:
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"{info.get('Code', 'error')}: {info.get('Message', '')}".rstrip(": ")
    return str(error)


@contextmanager
def _timed(name: str, into: list[Hop], clock: Callable[[], float]) -> Iterator[list[str]]:
    """Time one hop; ``raise _Failed`` inside to fail it, else it is ok with the detail given."""
    detail: list[str] = []
    started = clock()
    try:
        try:
            yield detail
        except (ClientError, BotoCoreError) as error:
            raise _Failed(
                f"AWS answered {_aws_text(error)}",
                "Check that your credentials may read the flock (docs/aws.md lists what check"
                " needs) and that the flock is applied in this account and region.",
            ) from None
    except _Failed as failed:
        into.append(
            Hop(
                name,
                FAIL,
                clock() - started,
                failed.detail or "; ".join(detail),
                failed.cause,
                failed.fix,
            )
        )
        return
    into.append(Hop(name, OK, clock() - started, "; ".join(detail)))


def _one(
    name: str, check: Callable[[list[str]], None], clock: Callable[[], float] = time.monotonic
) -> Hop:
    hops: list[Hop] = []
    with _timed(name, hops, clock) as detail:
        check(detail)
    return hops[0]


# --------------------------------------------------------------------------------------------
# Batch


def check_job_queue(batch: Any, queue: str, target: Target) -> Hop:
    """The job queue exists, is ENABLED and VALID."""

    def check(detail: list[str]) -> None:
        found = batch.describe_job_queues(jobQueues=[queue]).get("jobQueues", [])
        if not found:
            raise _Failed(
                f"the job queue {queue} does not exist",
                f"Run `{target.apply_command}` to create it again.",
            )
        q = found[0]
        state, status = q.get("state"), q.get("status")
        detail.append(f"{q.get('jobQueueName', queue)}: {state}, {status}")
        if state != "ENABLED":
            raise _Failed(
                f"the job queue {queue} is {state}: Batch takes no job from it",
                f"Run `{target.apply_command}` (it sets the queue ENABLED again), or"
                f" `aws batch update-job-queue --job-queue {queue} --state ENABLED`.",
                "; ".join(detail),
            )
        if status not in ("VALID", "UPDATING", "CREATING"):
            raise _Failed(
                f"the job queue {queue} is {status}"
                + (f" ({q['statusReason']})" if q.get("statusReason") else ""),
                f"Fix what the reason names, then run `{target.apply_command}`.",
                "; ".join(detail),
            )

    return _one("job queue", check)


def check_compute_environments(batch: Any, queue: str, target: Target) -> Hop:
    """Every compute environment of the job queue is VALID and ENABLED."""

    def check(detail: list[str]) -> None:
        found = batch.describe_job_queues(jobQueues=[queue]).get("jobQueues", [])
        order = found[0].get("computeEnvironmentOrder", []) if found else []
        arns = [entry["computeEnvironment"] for entry in order]
        if not arns:
            raise _Failed(
                f"the job queue {queue} has no compute environment"
                if found
                else f"the job queue {queue} does not exist, so no compute environment is known",
                f"Run `{target.apply_command}`.",
            )
        described = batch.describe_compute_environments(computeEnvironments=arns)
        environments = described.get("computeEnvironments", [])
        problems: list[str] = []
        for env in environments:
            name = env.get("computeEnvironmentName", env.get("computeEnvironmentArn", "?"))
            state, status = env.get("state"), env.get("status")
            detail.append(f"{name}: {state}, {status}")
            if state != "ENABLED":
                problems.append(f"{name} is {state}")
            if status not in ("VALID", "UPDATING", "CREATING"):
                reason = env.get("statusReason")
                problems.append(f"{name} is {status}" + (f" ({reason})" if reason else ""))
        missing = len(arns) - len(environments)
        if missing:
            problems.append(f"{missing} compute environment(s) of the queue no longer exist")
        if problems:
            raise _Failed(
                "; ".join(problems) + ": no sheep can start",
                "An INVALID environment's reason names the cause (often the instance role,"
                " the subnets or an instance type the region lacks): fix it in flock.yaml, then"
                f" run `{target.apply_command}` (it also sets a DISABLED environment ENABLED).",
                "; ".join(detail),
            )

    return _one("compute environments", check)


# --------------------------------------------------------------------------------------------
# S3 -> SQS -> scheduler


def _admits_zips(queue_config: Mapping[str, Any]) -> bool:
    """Whether a notification's key filter lets every ``*.zip`` key through."""
    rules = queue_config.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    by_name = {str(r.get("Name", "")).lower(): str(r.get("Value", "")) for r in rules}
    return not by_name.get("prefix") and ".zip".endswith(by_name.get("suffix", ""))


def check_bucket_notification(s3: Any, bucket: str, queue_arn: str, target: Target) -> Hop:
    """The inputs bucket sends its object-created events to the flock's queue."""

    def check(detail: list[str]) -> None:
        config = s3.get_bucket_notification_configuration(Bucket=bucket)
        wired = [q for q in config.get("QueueConfigurations", []) if q.get("QueueArn") == queue_arn]
        created = [
            q for q in wired if any(e.startswith("s3:ObjectCreated:") for e in q.get("Events", []))
        ]
        if created and not any(_admits_zips(q) for q in created):
            rules = [
                r
                for q in created
                for r in q.get("Filter", {}).get("Key", {}).get("FilterRules", [])
            ]
            shown = ", ".join(f"{r.get('Name')} {r.get('Value')!r}" for r in rules)
            raise _Failed(
                f"the inputs bucket {bucket} notifies the flock's queue only for keys matching"
                f" {shown}: a dropped .zip never becomes a job",
                f"Run `{target.apply_command}`: it puts back the notification of every .zip.",
            )
        if not created:
            elsewhere = [q.get("QueueArn") for q in config.get("QueueConfigurations", [])]
            raise _Failed(
                f"the inputs bucket {bucket} does not notify the flock's queue {queue_arn}"
                + (f" (it notifies {', '.join(map(str, elsewhere))})" if elsewhere else "")
                + ": a dropped zip never becomes a job",
                f"Run `{target.apply_command}`: it puts the notification back. (Anything else that"
                " writes the bucket's notification configuration replaces the flock's.)",
            )
        events = sorted({e for q in created for e in q.get("Events", [])})
        detail.append(f"s3://{bucket} -> {queue_arn.rsplit(':', 1)[-1]} on {', '.join(events)}")

    return _one("bucket notification", check)


def check_queue(sqs: Any, queue_url: str, target: Target) -> Hop:
    """The queue exists, and its policy lets S3 send to it."""

    def check(detail: list[str]) -> None:
        try:
            attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"]).get(
                "Attributes", {}
            )
        except ClientError as error:
            raise _Failed(
                f"the flock's queue {queue_url} cannot be read ({_aws_text(error)})",
                f"Run `{target.apply_command}` if it was deleted.",
            ) from None
        waiting = attributes.get("ApproximateNumberOfMessages", "0")
        detail.append(f"{waiting} message(s) waiting")
        policy = attributes.get("Policy", "")
        if "s3.amazonaws.com" not in policy:
            raise _Failed(
                "the queue's policy does not let S3 send to it: the bucket's events are refused",
                f"Run `{target.apply_command}`: it restores the queue policy.",
                "; ".join(detail),
            )

    return _one("queue", check)


def check_queue_consumer(lambda_: Any, queue_arn: str, scheduler: str, target: Target) -> Hop:
    """Who reads the queue: the event source mapping on AWS, the local dispatcher here."""

    def check(detail: list[str]) -> None:
        mappings = lambda_.list_event_source_mappings(EventSourceArn=queue_arn).get(
            "EventSourceMappings", []
        )
        ours = [m for m in mappings if str(m.get("FunctionArn", "")).endswith(f":{scheduler}")]
        states = [str(m.get("State")) for m in ours]
        if target.kind == LOCAL:
            enabled = [s for s in states if s in ("Enabled", "Enabling")]
            if enabled:
                raise _Failed(
                    "the queue's event source mapping is enabled on the local flock: the emulator"
                    " takes the messages and cannot run the scheduler, so zips are lost",
                    f"Run `{target.apply_command}`: the local flock keeps the mapping disabled.",
                )
            status = target.local_status() if target.local_status is not None else None
            if status is None or not getattr(status, "running", False):
                message = getattr(status, "message", None) or "it is not running"
                raise _Failed(
                    f"the local flock service, whose dispatcher reads the queue, is not running"
                    f" ({message})",
                    f"Run `{target.apply_command}` to start it again; `shepard-tf local status`"
                    " shows what happened.",
                )
            stats = getattr(status, "stats", {}) or {}
            detail.append(
                f"local dispatcher (pid {status.pid}): {stats.get('messages', 0)} message(s)"
                " dispatched"
            )
            return
        if not ours:
            raise _Failed(
                f"no event source mapping connects the queue to the scheduler {scheduler}:"
                " zips are queued and never scheduled",
                f"Run `{target.apply_command}`: it creates the mapping again.",
            )
        detail.append(f"event source mapping {', '.join(states)}")
        if not any(s in ("Enabled", "Enabling", "Updating") for s in states):
            uuid_ = ours[0].get("UUID", "?")
            raise _Failed(
                f"the event source mapping of the queue to {scheduler} is {states[0]}:"
                " the scheduler never reads the queue",
                f"Run `{target.apply_command}`, or `aws lambda update-event-source-mapping"
                f" --uuid {uuid_} --enabled`."
                + (
                    f" Its last result: {ours[0]['LastProcessingResult']}."
                    if ours[0].get("LastProcessingResult")
                    else ""
                ),
                "; ".join(detail),
            )

    return _one("queue -> scheduler", check)


# --------------------------------------------------------------------------------------------
# Lambdas


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)[,.]\d+ ERROR (shepard\S*): (.*)$")


def local_log_errors(log: Path, since: datetime) -> list[str]:
    """ERROR lines of the local flock service's log (where its Lambdas log) since ``since``."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    found: list[str] = []
    for line in lines:
        match = _LOG_LINE.match(line)
        if match and datetime.fromisoformat(match.group(1)) >= since.replace(tzinfo=None):
            found.append(f"{match.group(2)}: {match.group(3)}")
    return found


def check_lambdas(
    lambda_: Any,
    logs: Any,
    functions: Sequence[str],
    target: Target,
    *,
    now: Callable[[], datetime] = datetime.now,
) -> Hop:
    """Each Lambda is Active, and logged no error in the last hour."""

    def check(detail: list[str]) -> None:
        problems: list[str] = []
        errors: list[str] = []
        since = now().astimezone() - LOG_WINDOW
        for name in functions:
            try:
                config = lambda_.get_function(FunctionName=name)["Configuration"]
            except ClientError as error:
                problems.append(f"{name} cannot be read ({_aws_text(error)})")
                continue
            state = config.get("State", "Active")
            update = config.get("LastUpdateStatus", "Successful")
            detail.append(f"{name}: {state}")
            if state not in ("Active", "Pending") or update == "Failed":
                reason = config.get("StateReason") or config.get("LastUpdateStatusReason") or ""
                problems.append(f"{name} is {state}/{update}" + (f" ({reason})" if reason else ""))
            if target.kind == LOCAL:
                continue  # the local flock's Lambdas log to its service log (below)
            group = (config.get("LoggingConfig") or {}).get("LogGroup") or f"/aws/lambda/{name}"
            try:
                events = logs.filter_log_events(
                    logGroupName=group,
                    startTime=int(since.timestamp() * 1000),
                    filterPattern=LOG_ERROR_PATTERN,
                    limit=20,
                ).get("events", [])
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code")
                if code != "ResourceNotFoundException":  # never invoked yet: no log group
                    problems.append(f"the log group {group} cannot be read ({_aws_text(error)})")
                continue
            errors += [f"{name}: {e.get('message', '').strip()}" for e in events]
        if target.kind == LOCAL and target.local_state_dir is not None:
            log = target.local_state_dir / "local" / "service.log"
            errors += local_log_errors(log, since)
        if problems:
            raise _Failed(
                "; ".join(problems),
                f"Run `{target.apply_command}` to deploy the functions again; the reason above"
                " names what AWS could not do.",
                "; ".join(detail),
            )
        if errors:
            where = (
                "`shepard-tf local logs`"
                if target.kind == LOCAL
                else "their CloudWatch log groups (/aws/lambda/<function>)"
            )
            raise _Failed(
                f"{len(errors)} error(s) logged in the last hour; the last: {errors[-1][:300]}",
                f"Read the errors in {where}; a wrong setting is fixed in flock.yaml and"
                f" `{target.apply_command}`, a bug in a payload is fixed in the payload.",
                "; ".join(detail),
            )
        detail.append("no error logged in the last hour")

    return _one("lambdas", check)


# --------------------------------------------------------------------------------------------
# The canary: a tiny job through the API, followed to its output zip


@dataclass(frozen=True)
class CanaryPlan:
    """Where the canary goes (from the flock's outputs)."""

    api_function: str
    quick_deploy_bucket: str
    outputs_bucket: str
    errors_bucket: str
    table_name: str
    # The zip-drop canary (S3 -> SQS -> scheduler): not run when the inputs bucket is not given.
    inputs_bucket: str = ""
    queue_url: str = ""
    dead_letter_queue_url: str = ""


def _invoke_api(invoke: Any, function: str, payload: Mapping[str, str]) -> str:
    """The API Lambda, called as ``batch_via_api`` calls it; the job id it answers."""
    answer = invoke.invoke(
        FunctionName=function,
        InvocationType="RequestResponse",
        Payload=json.dumps(dict(payload)).encode(),
    )
    raw = answer["Payload"].read()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    if answer.get("FunctionError"):
        detail = body.get("errorMessage") if isinstance(body, dict) else body
        raise _Failed(
            f"the API Lambda {function} failed ({detail})",
            "Read its log (CloudWatch /aws/lambda/<function>, or `shepard-tf local logs`);"
            " a missing permission or setting is fixed by applying the flock again.",
        )
    if isinstance(body, dict) and "body" in body and isinstance(body["body"], str):
        with suppress(ValueError):
            body = {**body, **json.loads(body["body"])}
    if not isinstance(body, dict) or int(body.get("statusCode", 200)) >= 400:
        raise _Failed(
            f"the API Lambda {function} refused the canary ({body!r:.300})",
            "Read its log; the flock's API Lambda may be from another version of shepard-tf"
            " (apply the flock again).",
        )
    for key in ("job_id", "UUID", "uuid", "id"):
        if body.get(key):
            return str(body[key])
    raise _Failed(
        f"the API Lambda {function} answered without a job id ({body!r:.300})",
        "Apply the flock again with this version of shepard-tf.",
    )


def _batch_state(batch: Any, batch_job_id: str | None) -> str:
    if not batch_job_id:
        return ""
    try:
        jobs = batch.describe_jobs(jobs=[batch_job_id]).get("jobs", [])
    except (ClientError, BotoCoreError):
        return ""
    if not jobs:
        return f"Batch does not know job {batch_job_id}"
    job = jobs[0]
    reason = job.get("statusReason")
    return f"Batch job {batch_job_id} is {job.get('status')}" + (f" ({reason})" if reason else "")


@dataclass
class _Run:
    """One run of the canaries: where they go, how long they wait, what they wrote."""

    clients: Clients
    plan: CanaryPlan
    target: Target
    folder: str  # the quick-deploy folder of run.sh, and the inputs key's stem
    token: str
    timeout: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    written: list[tuple[str, str]] = field(default_factory=list)  # (bucket, key) to remove


def run_canary(
    clients: Clients,
    plan: CanaryPlan,
    target: Target,
    *,
    timeout: float = 120.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    token: str | None = None,
) -> list[Hop]:
    """Two canary jobs, each a quick-deploy job (a two-line ``run.sh``): one through the API,
    followed hop by hop until its output zip is in the outputs bucket, then (when the first
    passed and the plan names the inputs bucket) one dropped as a zip in the inputs bucket,
    which must come out as an output zip too (S3 -> SQS -> scheduler -> Batch -> worker).
    Each waits at most ``timeout`` seconds. After the first hop that fails, the rest are
    skipped. Everything the canaries wrote to the buckets is removed after; their job records
    stay (tagged ``shepard-check-<token>``)."""
    token = token or uuid.uuid4().hex[:12]
    run = _Run(clients, plan, target, f"{CANARY_FOLDER}/{token}", token, timeout, clock, sleep)
    try:
        hops = _api_canary(run)
        if plan.inputs_bucket:
            names = ["zip canary: zip dropped", "zip canary: output zip"]
            if all(hop.status == OK for hop in hops):
                hops += _zip_canary(run)
            else:
                hops += [Hop(n, SKIPPED, 0.0, "not run: the API canary failed") for n in names]
        return hops
    finally:
        for bucket, key in run.written:
            with suppress(ClientError, BotoCoreError):
                clients.s3.delete_object(Bucket=bucket, Key=key)


def _api_canary(run: _Run) -> list[Hop]:
    clients, plan, target, folder, token = run.clients, run.plan, run.target, run.folder, run.token
    written, timeout, clock, sleep = run.written, run.timeout, run.clock, run.sleep
    deadline = clock() + timeout
    store = JobStore(plan.table_name, clients.dynamodb)
    hops: list[Hop] = []
    job_id = ""
    record: JobRecord | None = None
    names = [
        "canary: script uploaded",
        "canary: API accepted the job",
        "canary: job submitted to Batch",
        "canary: job started",
        "canary: job succeeded",
        "canary: output zip",
    ]

    def wait_for(what: Callable[[JobRecord], bool]) -> JobRecord | None:
        while True:
            found = store.get(job_id)
            if found is not None and (what(found) or found.phase is Phase.FINISHED):
                return found
            if clock() >= deadline:
                return found
            sleep(POLL_SECONDS)

    def timed_out(step: str, found: JobRecord | None) -> _Failed:
        where = _batch_state(clients.batch, found.batch_job_id if found else None)
        if target.kind == LOCAL:
            fix = (
                "Read `shepard-tf local logs` (the dispatcher and executor log every job) and"
                " `shepard-tf local status`."
            )
        else:
            fix = (
                "A compute environment that scales from zero takes 3-10 minutes to start its"
                " first sheep: run `shepard-tf check --timeout 900`. If it still waits, `aws batch"
                " describe-jobs` shows why (RUNNABLE for long: the instance types or the subnets;"
                " STARTING: the worker image cannot be pulled)."
            )
        return _Failed(
            f"the job {job_id} was not {step} within {timeout:.0f} s"
            + (f"; {where}" if where else "")
            + (f"; its record says {found.status.value}" if found is not None else ""),
            fix,
        )

    steps = iter(names)
    with _timed(next(steps), hops, clock) as detail:
        key = f"{folder}/run.sh"
        written.append((plan.quick_deploy_bucket, key))
        try:
            clients.s3.put_object(
                Bucket=plan.quick_deploy_bucket, Key=key, Body=CANARY_SCRIPT.encode()
            )
        except ClientError as error:
            raise _Failed(
                f"s3://{plan.quick_deploy_bucket}/{key} cannot be written ({_aws_text(error)})",
                "Check that your credentials may write the quick-deploy bucket (docs/aws.md"
                " lists what check needs) and may use the flock's KMS key.",
            ) from None
        detail.append(f"s3://{plan.quick_deploy_bucket}/{key}")
    if not hops[-1].ok:
        return _skip_rest(hops, steps)

    with _timed(next(steps), hops, clock) as detail:
        try:
            job_id = _invoke_api(
                clients.invoke,
                plan.api_function,
                {"QUICK_DEPLOY_DIRECTORY": folder, "TAG": f"{CANARY_TAG}-{token}"},
            )
        except ClientError as error:
            raise _Failed(
                f"the API Lambda {plan.api_function} cannot be invoked ({_aws_text(error)})",
                "Check that your credentials may call lambda:InvokeFunction on it"
                " (docs/iam.md), then apply the flock again if it is missing.",
            ) from None
        detail.append(f"job {job_id}")
    if not hops[-1].ok:
        return _skip_rest(hops, steps)

    with _timed(next(steps), hops, clock) as detail:
        record = wait_for(lambda r: bool(r.batch_job_id))
        if record is None:
            raise _Failed(
                f"the API answered job {job_id}, but the job table {plan.table_name} has"
                " no record of it",
                "The API Lambda writes to another table than the one the flock outputs:"
                " apply the flock again.",
            )
        if record.result is Result.REJECTED or (
            record.phase is Phase.FINISHED and not record.batch_job_id
        ):
            raise _Failed(
                f"the job was not submitted: {record.reason or record.status.value}",
                "The reason names the cause (a SubmitJob permission, the job queue or the job"
                f" definition): fix it and run `{target.apply_command}`.",
            )
        if not record.batch_job_id:
            raise timed_out("submitted to Batch", record)
        detail.append(f"Batch job {record.batch_job_id}")
    if not hops[-1].ok:
        return _skip_rest(hops, steps)

    with _timed(next(steps), hops, clock) as detail:
        record = wait_for(lambda r: r.phase is not Phase.QUEUED or bool(r.start_time))
        if record is None or (record.phase is Phase.QUEUED and not record.start_time):
            raise timed_out("started by a worker", record)
        detail.append(f"attempt {record.attempt}" if record.attempt else record.phase.value)
    if not hops[-1].ok:
        return _skip_rest(hops, steps)

    with _timed(next(steps), hops, clock) as detail:
        record = wait_for(lambda r: r.phase is Phase.FINISHED)
        if record is None or record.phase is not Phase.FINISHED:
            raise timed_out("finished", record)
        written += [(plan.outputs_bucket, key) for key in record.outputs]
        if record.error_zip:
            written.append((plan.errors_bucket, record.error_zip))
        if record.result is not Result.SUCCEEDED:
            error_zip = (
                f" The worker's log is in s3://{plan.errors_bucket}/{record.error_zip}."
                if record.error_zip
                else ""
            )
            raise _Failed(
                f"the job {record.result.value if record.result else 'ended'}:"
                f" {record.reason or record.status.value}",
                "The reason names the hop inside the sheep (fetching the quick-deploy folder:"
                " the job role's S3 access; running run.sh: bash in the payload image; pushing"
                " results: the outputs bucket)." + error_zip,
            )
        detail.append(f"{record.result.value}, {record.status.value}")
    if not hops[-1].ok:
        return _skip_rest(hops, steps)

    with _timed(next(steps), hops, clock) as detail:
        assert record is not None
        if not record.outputs:
            raise _Failed(
                "the job succeeded but its record names no output zip",
                "The worker found nothing to push: check that the payload image has bash"
                " and that ROOT_OUTPUT_NAME is writable.",
            )
        for key in record.outputs:
            try:
                head = clients.s3.head_object(Bucket=plan.outputs_bucket, Key=key)
            except ClientError as error:
                raise _Failed(
                    f"s3://{plan.outputs_bucket}/{key}, named by the job's record, cannot be"
                    f" read ({_aws_text(error)})",
                    "Check the outputs bucket's lifecycle rules and that your credentials may"
                    " read it (docs/aws.md lists what check needs).",
                ) from None
            detail.append(f"s3://{plan.outputs_bucket}/{key} ({head.get('ContentLength')} B)")
    return hops


def _skip_rest(hops: list[Hop], steps: Iterator[str]) -> list[Hop]:
    failed = hops[-1].name
    hops += [Hop(name, SKIPPED, 0.0, f"not reached: {failed} failed") for name in steps]
    return hops


def _canary_zip(variables: Mapping[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("inputs.json", json.dumps(dict(variables)))
    return buffer.getvalue()


def _queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    """(messages waiting or in flight, messages) of a queue; (0, 0) when it cannot be read."""
    if not url:
        return 0, 0
    try:
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        ).get("Attributes", {})
    except (ClientError, BotoCoreError):
        return 0, 0
    waiting = int(attributes.get("ApproximateNumberOfMessages", 0))
    return waiting + int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)), waiting


def _scheduler_report(s3: Any, plan: CanaryPlan, key: str) -> dict[str, Any] | None:
    """What the scheduler wrote to the errors bucket about a zip it rejected or could not
    submit (``rejected/<key>.json`` or ``failed/<key>.json``), if anything."""
    for folder in ("rejected", "failed"):
        try:
            body = s3.get_object(Bucket=plan.errors_bucket, Key=f"{folder}/{key}.json")["Body"]
        except (ClientError, BotoCoreError):
            continue
        with suppress(ValueError):
            report: dict[str, Any] = json.loads(body.read())
            report["folder"] = folder
            return report
    return None


def _zip_canary(run: _Run) -> list[Hop]:
    """The canary as a zip drop: the zip's output zip must appear (its name starts with the
    canary's unique tag), else say where the chain stopped."""
    clients, plan, target, folder, token = run.clients, run.plan, run.target, run.folder, run.token
    written, timeout, clock, sleep = run.written, run.timeout, run.clock, run.sleep
    tag = f"{CANARY_TAG}-{token}-zip"
    key = f"{folder}.zip"
    hops: list[Hop] = []
    steps = iter(["zip canary: zip dropped", "zip canary: output zip"])
    with _timed(next(steps), hops, clock) as detail:
        written.append((plan.inputs_bucket, key))
        body = _canary_zip({"QUICK_DEPLOY_DIRECTORY": folder, "TAG": tag})
        try:
            clients.s3.put_object(Bucket=plan.inputs_bucket, Key=key, Body=body)
        except ClientError as error:
            raise _Failed(
                f"s3://{plan.inputs_bucket}/{key} cannot be written ({_aws_text(error)})",
                "Check that your credentials may write the inputs bucket and use the flock's KMS"
                " key (docs/aws.md lists what check needs).",
            ) from None
        detail.append(f"s3://{plan.inputs_bucket}/{key}")
    if not hops[-1].ok:
        return _skip_rest(hops, steps)

    with _timed(next(steps), hops, clock) as detail:
        deadline = clock() + timeout
        prefix = f"{tag}_result@"
        found: list[str] = []
        report: dict[str, Any] | None = None
        while True:
            listed = clients.s3.list_objects_v2(Bucket=plan.outputs_bucket, Prefix=prefix)
            found = [item["Key"] for item in listed.get("Contents", [])]
            report = None if found else _scheduler_report(clients.s3, plan, key)
            if found or report is not None or clock() >= deadline:
                break
            sleep(POLL_SECONDS)
        written += [(plan.outputs_bucket, k) for k in found]
        if report is not None:
            written.append((plan.errors_bucket, f"{report['folder']}/{key}.json"))
            raise _Failed(
                f"the scheduler {report['folder']} the zip: {report.get('reason')}",
                "The reason names the cause; a SubmitJob or table permission is fixed by"
                f" `{target.apply_command}`.",
            )
        if not found:
            raise _Failed(*_zip_stopped_where(clients, plan, target, key, timeout))
        job_id = found[0][len(prefix) :].split("_", 1)[0]
        record = JobStore(plan.table_name, clients.dynamodb).get(job_id)
        if record is not None and record.error_zip:
            written.append((plan.errors_bucket, record.error_zip))
        detail.append(f"job {job_id}: s3://{plan.outputs_bucket}/{found[0]}")
    return hops


def _zip_stopped_where(
    clients: Clients, plan: CanaryPlan, target: Target, key: str, timeout: float
) -> tuple[str, str]:
    """(cause, fix) for a dropped zip that gave no output zip in time: where its event is."""
    in_queue, waiting = _queue_counts(clients.sqs, plan.queue_url)
    dead, _ = _queue_counts(clients.sqs, plan.dead_letter_queue_url)
    logs = "`shepard-tf local logs`" if target.kind == LOCAL else "the scheduler's CloudWatch log"
    lead = f"the zip s3://{plan.inputs_bucket}/{key} gave no output zip within {timeout:.0f} s"
    if dead:
        return (
            f"{lead}; {dead} message(s) are in the dead-letter queue: the scheduler fails on"
            " the bucket's events",
            f"Read {logs}; the messages stay in the dead-letter queue for 14 days.",
        )
    if waiting:
        consumer = (
            "the local flock's dispatcher" if target.kind == LOCAL else "the event source mapping"
        )
        return (
            f"{lead}; {waiting} message(s) wait in the queue: nothing reads them",
            f"Check {consumer} (the `queue -> scheduler` hop) and {logs}.",
        )
    if in_queue:
        return (
            f"{lead}; {in_queue} message(s) are being processed by the scheduler",
            f"Run `shepard-tf check --timeout {max(2 * timeout, 300):.0f}`; read {logs} if it"
            " stays.",
        )
    return (
        f"{lead}; no message waits in the queue or its dead-letter queue, and the scheduler"
        " reported no rejection",
        "Either S3 could not send the event (on AWS: the flock's KMS key policy must let S3 use"
        " the key of the encrypted queue), or a job was submitted and has not finished:"
        f" `shepard-tf query` shows it; read {logs}."
        + (
            " On AWS a cold compute environment needs `--timeout 900`."
            if target.kind == AWS
            else ""
        ),
    )


# --------------------------------------------------------------------------------------------
# All of it


def _output(outputs: Mapping[str, Any], name: str) -> str:
    value = outputs.get(name)
    if not value:
        raise BadInput(
            f"while checking the flock: its Terraform outputs have no {name!r}. Apply the flock"
            " with this version of shepard-tf (`shepard-tf apply FLOCK_YAML`), then check again."
        )
    return str(value)


def run_checks(
    clients: Clients,
    outputs: Mapping[str, Any],
    target: Target,
    *,
    canary: bool = True,
    timeout: float = 120.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Every hop of the flock whose Terraform outputs are ``outputs``; the canary last, and
    only when every hop before it is ok (a broken hop would only make it time out)."""
    report = Report(flock=str(outputs.get("flock_name", "")), target=target.kind)
    queue = _output(outputs, "job_queue_name")
    report.hops += [
        check_compute_environments(clients.batch, queue, target),
        check_job_queue(clients.batch, queue, target),
        check_bucket_notification(
            clients.s3,
            _output(outputs, "inputs_bucket"),
            _output(outputs, "sqs_queue_arn"),
            target,
        ),
        check_queue(clients.sqs, _output(outputs, "sqs_queue_url"), target),
        check_queue_consumer(
            clients.lambda_,
            _output(outputs, "sqs_queue_arn"),
            _output(outputs, "scheduler_function_name"),
            target,
        ),
        check_lambdas(
            clients.lambda_,
            clients.logs,
            [_output(outputs, "scheduler_function_name"), _output(outputs, "api_function_name")],
            target,
        ),
    ]
    if not canary:
        return report
    if not report.ok:
        report.hops.append(
            Hop(
                "canary",
                SKIPPED,
                0.0,
                f"not run: {', '.join(h.name for h in report.failed)} failed",
            )
        )
        return report
    plan = CanaryPlan(
        api_function=_output(outputs, "api_function_name"),
        quick_deploy_bucket=_output(outputs, "quick_deploy_bucket"),
        outputs_bucket=_output(outputs, "outputs_bucket"),
        errors_bucket=_output(outputs, "errors_bucket"),
        table_name=_output(outputs, "table_name"),
        inputs_bucket=_output(outputs, "inputs_bucket"),
        queue_url=_output(outputs, "sqs_queue_url"),
        dead_letter_queue_url=str(outputs.get("dead_letter_queue_url") or ""),
    )
    report.hops += run_canary(clients, plan, target, timeout=timeout, clock=clock, sleep=sleep)
    return report

"""Why a job waits or failed, from its record and what AWS Batch says, in sentences a user acts on.

:class:`BatchView` makes the read calls (DescribeJobs, DescribeJobDefinitions, DescribeJobQueues,
DescribeComputeEnvironments, GetLogEvents: at most six requests, so an answer comes in seconds);
:func:`explain` turns what they answered into a :class:`Diagnosis` without calling anything, so it
is tested on plain data. For a waiting job it sets the job's vCPUs, memory and GPUs against each
compute environment's instance types (:mod:`shepard.joblayer.instances`: memory usable by jobs,
after the ECS agent's share), and reports each environment's state and status reason, its vCPUs
in use against its max, and the queue's state. For a failed job: Batch's reason, the exit code,
the attempts and the last lines of its log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from shepard.joblayer.instances import Fit, fits
from shepard.joblayer.records import Phase, Result
from shepard.joblayer.store import JobRecord

LOG_LINES = 10
DEFAULT_LOG_GROUP = "/aws/batch/job"  # Batch's own group, when the job definition names none
FINAL_BATCH_STATES = frozenset({"SUCCEEDED", "FAILED"})


@dataclass(frozen=True)
class Environment:
    """One compute environment of the job's queue, as DescribeComputeEnvironments tells it."""

    name: str
    order: int
    state: str  # ENABLED | DISABLED
    status: str  # VALID | INVALID | CREATING | UPDATING | DELETING ...
    status_reason: str | None
    kind: str  # EC2 | SPOT | FARGATE | UNMANAGED
    instance_types: tuple[str, ...]
    max_vcpus: int | None
    desired_vcpus: int | None
    fit: Fit | None = None  # None: no request known, or an unmanaged environment

    @property
    def usable(self) -> bool:
        return self.state == "ENABLED" and self.status == "VALID"


@dataclass(frozen=True)
class Diagnosis:
    job_id: str
    state: str  # waiting | running | failed | succeeded | rejected | cancelled | ...
    sentences: tuple[str, ...]  # what to tell the user, most important first
    batch_job_id: str | None = None
    batch_status: str | None = None
    batch_reason: str | None = None
    vcpus: int | None = None
    memory_mib: int | None = None
    gpus: int | None = None
    asks_from: str | None = None  # "record" | "Batch job" | "job definition"
    queue: str | None = None
    queue_state: str | None = None
    queue_status: str | None = None
    environments: tuple[Environment, ...] = ()
    reason: str | None = None
    exit_code: int | None = None
    attempts: tuple[Mapping[str, Any], ...] = ()
    log_lines: tuple[str, ...] = ()
    log_source: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("sentences", "log_lines", "attempts"):
            data[key] = list(data[key])
        data["environments"] = [
            {
                **{k: v for k, v in asdict(env).items() if k != "fit"},
                "fits": None if env.fit is None else env.fit.fits,
                "why_not": None if env.fit is None else env.fit.reason,
                "fitting_instance_types": [] if env.fit is None else list(env.fit.fitting[:5]),
            }
            for env in self.environments
        ]
        return data


@dataclass
class BatchFacts:
    """What the read calls answered (each None or empty when not asked or not found)."""

    job: Mapping[str, Any] | None = None  # DescribeJobs' entry
    definition: Mapping[str, Any] | None = None  # DescribeJobDefinitions' entry
    queue: Mapping[str, Any] | None = None  # DescribeJobQueues' entry
    environments: Sequence[Mapping[str, Any]] = field(default_factory=list)
    log_lines: Sequence[str] = ()
    log_source: str | None = None


def _name(arn: str | None) -> str | None:
    if not arn:
        return None
    return arn.rsplit("/", 1)[-1].split(":", 1)[0] if "/" in arn else arn


def requirements(container: Mapping[str, Any] | None) -> dict[str, int]:
    """VCPU / MEMORY / GPU of a container's resourceRequirements (or the older vcpus/memory)."""
    if not container:
        return {}
    found: dict[str, int] = {}
    for item in container.get("resourceRequirements") or []:
        try:
            found[str(item["type"])] = int(float(item["value"]))
        except (KeyError, TypeError, ValueError):
            continue
    for key, name in (("vcpus", "VCPU"), ("memory", "MEMORY")):
        if name not in found and container.get(key):
            found[name] = int(container[key])
    return found


def what_it_asks(
    record: JobRecord, facts: BatchFacts
) -> tuple[int | None, int | None, int | None, str | None]:
    """The job's vCPUs, MiB and GPUs: the record's (VCPUS/MEMORY_MIB/GPUS) where set, else the
    Batch job's container (the definition plus any overrides), else the job definition's."""
    sources = [
        ("Batch job", requirements((facts.job or {}).get("container"))),
        ("job definition", requirements((facts.definition or {}).get("containerProperties"))),
    ]
    asked = {"VCPU": record.vcpus, "MEMORY": record.memory_mib, "GPU": record.gpus}
    source = "record" if any(v is not None for v in asked.values()) else None
    for name, found in sources:
        for key in asked:
            if asked[key] is None and key in found:
                asked[key] = found[key]
                source = source or name
    gpus = asked["GPU"]
    if gpus is None and (asked["VCPU"] is not None or asked["MEMORY"] is not None):
        gpus = 0
    return asked["VCPU"], asked["MEMORY"], gpus, source


def environments_of(
    facts: BatchFacts, vcpus: int | None, memory_mib: int | None, gpus: int | None
) -> list[Environment]:
    order = {
        str(item.get("computeEnvironment")): int(item.get("order", 0))
        for item in (facts.queue or {}).get("computeEnvironmentOrder") or []
    }
    found = []
    for env in facts.environments:
        arn = str(env.get("computeEnvironmentArn", ""))
        resources = env.get("computeResources") or {}
        types = tuple(str(t) for t in resources.get("instanceTypes") or [])
        fit = None
        if types and vcpus is not None and memory_mib is not None:
            fit = fits(vcpus, memory_mib, gpus or 0, types)
        found.append(
            Environment(
                name=str(env.get("computeEnvironmentName") or _name(arn) or arn),
                order=order.get(arn, order.get(str(env.get("computeEnvironmentName")), 0)),
                state=str(env.get("state", "")),
                status=str(env.get("status", "")),
                status_reason=env.get("statusReason"),
                kind=str(resources.get("type") or env.get("type") or ""),
                instance_types=types,
                max_vcpus=resources.get("maxvCpus"),
                desired_vcpus=resources.get("desiredvCpus"),
                fit=fit,
            )
        )
    return sorted(found, key=lambda e: (e.order, e.name))


def _state(record: JobRecord) -> str:
    if record.phase is Phase.FINISHED:
        return record.result.value if record.result else "finished"
    if record.phase is Phase.RUNNING:
        return "running"
    return "waiting"


def _asks(vcpus: int | None, memory_mib: int | None, gpus: int | None) -> str:
    text = f"{vcpus} vCPUs and {memory_mib} MiB of memory"
    return text + (f" and {gpus} GPUs" if gpus else "")


def _waiting_sentences(
    record: JobRecord,
    facts: BatchFacts,
    environments: list[Environment],
    asks: tuple[int | None, int | None, int | None, str | None],
) -> list[str]:
    vcpus, memory_mib, gpus, source = asks
    said: list[str] = []
    job = facts.job or {}
    status = job.get("status") or record.batch_status
    if not record.batch_job_id and not job:
        said.append(
            "It has not reached AWS Batch yet (its record has no Batch job id): the scheduler "
            "or the API submits it, or an array child learns its id only when it starts."
        )
    elif status:
        line = f"AWS Batch has it as {status}"
        reason = job.get("statusReason") or record.batch_reason
        line += f": {reason}" if reason else ""
        if status in FINAL_BATCH_STATES:
            line += ", yet no worker has claimed its record"
        said.append(line + ".")
    queue = facts.queue
    if queue:
        name = queue.get("jobQueueName")
        if queue.get("state") != "ENABLED":
            said.append(
                f"The job queue {name} is {queue.get('state')}: nothing in it starts. Enable it "
                "(apply the flock again)."
            )
        if queue.get("status") not in (None, "VALID"):
            said.append(
                f"The job queue {name} is {queue.get('status')}"
                + (f": {queue.get('statusReason')}" if queue.get("statusReason") else "")
                + "."
            )
    if vcpus is not None and memory_mib is not None:
        said.append(f"It asks {_asks(vcpus, memory_mib, gpus)} (from its {source}).")
    fitting = [e for e in environments if e.fit is not None and e.fit.fits]
    judged = [e for e in environments if e.fit is not None]
    if judged and not fitting:
        said.append(
            "No compute environment can ever place it. "
            + " ".join(f"Compute environment {e.name}: {e.fit.reason}." for e in judged if e.fit)
            + " Lower batch.desired_ram / desired_cpu / gpus in flock.yaml or add a larger "
            "instance type, apply the flock, and cancel and resubmit this job."
        )
    else:
        for env in judged:
            if env.fit is not None and not env.fit.fits:
                said.append(f"Compute environment {env.name} cannot place it: {env.fit.reason}.")
    for env in environments:
        if env.state != "ENABLED":
            said.append(
                f"Compute environment {env.name} is {env.state or 'not enabled'}: it starts "
                "nothing. Enable it (apply the flock again)."
            )
        if env.status not in ("VALID", ""):
            said.append(
                f"Compute environment {env.name} is {env.status}"
                + (f": {env.status_reason}" if env.status_reason else "")
                + ". Fix what the reason names and apply the flock again."
            )
        if (
            env.usable
            and env.max_vcpus is not None
            and env.desired_vcpus is not None
            and vcpus is not None
            and env.desired_vcpus + vcpus > env.max_vcpus
        ):
            said.append(
                f"Compute environment {env.name} is full: {env.desired_vcpus} of its "
                f"{env.max_vcpus} vCPUs (max_cpu) are in use, and this job needs {vcpus} more. "
                "It starts when others finish; raise batch.max_cpu to run more at once."
            )
    if fitting and all(e.usable for e in fitting) and len(said) <= 2:
        names = ", ".join(f"{e.name} ({e.fit.fitting[0]})" for e in fitting if e.fit)
        smallest = "" if not names else f" The smallest instance that fits: {names}."
        said.append(
            "Nothing stops it: AWS Batch starts an instance for it (usually within a few "
            f"minutes) or it waits its turn in the queue.{smallest}"
        )
    return said


def _attempt_sentence(attempt: Mapping[str, Any]) -> str:
    facts = [
        f"exit code {attempt['exit_code']}" if attempt.get("exit_code") is not None else "",
        str(attempt.get("cause") or attempt.get("reason") or ""),
        " ".join(str(attempt[k]) for k in ("lifecycle", "instance_type") if attempt.get(k)),
        f"queue {attempt['queue']}" if attempt.get("queue") else "",
    ]
    text = "; ".join(f for f in facts if f) or "no details recorded"
    return f"Attempt {attempt.get('number', '?')}: {text}."


def _failed_sentences(record: JobRecord, facts: BatchFacts) -> list[str]:
    job = facts.job or {}
    said = []
    reason = record.reason or record.batch_reason or job.get("statusReason")
    said.append(f"It {_state(record)}" + (f": {reason}." if reason else "."))
    container = job.get("container") or {}
    exit_code = record.exit_code if record.exit_code is not None else container.get("exitCode")
    if exit_code is not None:
        said.append(f"Exit code {exit_code}.")
    if container.get("reason"):
        said.append(f"The container: {container['reason']}.")
        if "OutOfMemory" in str(container["reason"]):
            said.append("It ran out of memory: raise batch.desired_ram in flock.yaml.")
    attempts = record.attempts or tuple(job.get("attempts") or ())
    if len(attempts) > 1:
        said.append(f"It was tried {len(attempts)} times.")
    for attempt in record.attempts:  # the record's ATTEMPTS (Batch's own carry less)
        said.append(_attempt_sentence(attempt))
    if facts.log_lines:
        said.append(f"The last {len(facts.log_lines)} lines of its log ({facts.log_source}):")
    return said


def explain(record: JobRecord, facts: BatchFacts) -> Diagnosis:
    """The diagnosis of one job from its record and what Batch answered (no AWS call)."""
    state = _state(record)
    asks = what_it_asks(record, facts)
    vcpus, memory_mib, gpus, source = asks
    environments = environments_of(facts, vcpus, memory_mib, gpus)
    if state == "waiting":
        sentences = _waiting_sentences(record, facts, environments, asks)
    elif state == "running":
        sentences = [f"It is running (attempt {record.attempt or 1}), since {record.start_time}."]
    elif record.result is Result.SUCCEEDED:
        sentences = ["It succeeded: `shepard-tf retrieve` downloads its outputs."]
    else:
        sentences = _failed_sentences(record, facts)
    job = facts.job or {}
    container = job.get("container") or {}
    queue = facts.queue or {}
    return Diagnosis(
        job_id=record.job_id,
        state=state,
        sentences=tuple(sentences),
        batch_job_id=record.batch_job_id or job.get("jobId"),
        batch_status=job.get("status") or record.batch_status,
        batch_reason=job.get("statusReason") or record.batch_reason,
        vcpus=vcpus,
        memory_mib=memory_mib,
        gpus=gpus,
        asks_from=source,
        queue=queue.get("jobQueueName") or _name(job.get("jobQueue")) or record.job_queue,
        queue_state=queue.get("state"),
        queue_status=queue.get("status"),
        environments=tuple(environments),
        reason=record.reason or record.batch_reason,
        exit_code=record.exit_code if record.exit_code is not None else container.get("exitCode"),
        attempts=tuple(record.attempts or job.get("attempts") or ()),
        log_lines=tuple(facts.log_lines),
        log_source=facts.log_source,
    )


class BatchView:
    """The read calls of ``why`` through the caller's Batch and CloudWatch Logs clients."""

    def __init__(self, batch: Any, logs: Any) -> None:
        self.batch = batch
        self.logs = logs

    def gather(self, record: JobRecord, *, read_log: bool) -> BatchFacts:
        facts = BatchFacts()
        if record.batch_job_id:
            jobs = self.batch.describe_jobs(jobs=[record.batch_job_id]).get("jobs") or []
            facts.job = jobs[0] if jobs else None
        job = facts.job or {}
        definition = job.get("jobDefinition")
        if definition and (record.phase is not Phase.FINISHED):
            found = self.batch.describe_job_definitions(jobDefinitions=[definition])
            definitions = found.get("jobDefinitions") or []
            facts.definition = definitions[0] if definitions else None
        queue = job.get("jobQueue") or record.job_queue
        if queue and record.phase is Phase.QUEUED:
            queues = self.batch.describe_job_queues(jobQueues=[queue]).get("jobQueues") or []
            facts.queue = queues[0] if queues else None
            arns = [
                str(item["computeEnvironment"])
                for item in (facts.queue or {}).get("computeEnvironmentOrder") or []
            ]
            if arns:
                answer = self.batch.describe_compute_environments(computeEnvironments=arns)
                facts.environments = answer.get("computeEnvironments") or []
        stream = record.log_stream or (job.get("container") or {}).get("logStreamName")
        if read_log and stream:
            options = ((job.get("container") or {}).get("logConfiguration") or {}).get(
                "options"
            ) or {}
            group = str(options.get("awslogs-group") or DEFAULT_LOG_GROUP)
            answer = self.logs.get_log_events(
                logGroupName=group, logStreamName=stream, limit=LOG_LINES, startFromHead=False
            )
            facts.log_lines = [str(e.get("message", "")).rstrip("\n") for e in answer["events"]]
            facts.log_source = f"CloudWatch Logs {group} {stream}"
        return facts

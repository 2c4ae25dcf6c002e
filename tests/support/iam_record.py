"""Record every AWS call the flock's parts make while the tests run, for the IAM check.

``install()`` (tests/conftest.py calls it once per session) hooks botocore: every client any
code makes gets two event handlers, ``before-parameter-build`` (the request's parameters) and
``after-call`` / ``after-call-error`` (whether AWS, here moto, accepted it). A call is charged to
the part whose code is on the calling thread's stack, innermost first:

=====================  ====================================================
``scheduler``          ``lambdas.scheduler``
``api``                ``lambdas.api``
``events``             ``lambdas.events`` (also run in-process by the local flock's executor)
``worker``             ``shepard_worker`` (the worker inside a Batch job)
``payload``            a payload process (``SHEPARD_IAM_PART=payload``)
``cli:<command>``      ``shepard.cli.main`` running ``<command>``
=====================  ====================================================

A thread with no part on its stack (the S3 transfer manager's) is charged to the part that
started the thread, or else to the part that made the client. Calls by the tests themselves
(setting up tables, reading results) are not charged.

Tests give their flocks names of their own; the check evaluates the calls against the applied
flock's policies, so the recorder also notes every resource name a part is configured with
(``FlockSettings``, the worker's ``Settings``, the CLI's profile values): ``translation()`` maps
them onto the applied flock's names.

Other processes record into the session's record folder (``SHEPARD_IAM_RECORD_DIR``; the
session's first background run makes it, tests/support/background.py): each appends one JSON line
per call to ``<folder>/<pid>.jsonl`` as the call ends, and ``all_calls()``, ``all_names()`` and
``all_commands()`` merge those files with this process's records for the check at the end of the
session. Two ways in:

* the background runs (tests/support/flock_runner.py) call ``install()`` with
  ``SHEPARD_IAM_SUBPROCESS=1``;
* any Python process started with ``tests/support/iam_site`` on ``PYTHONPATH`` (``SITE_DIR``;
  ``subprocess_environment()`` gives the variables) installs the recorder from that folder's
  ``sitecustomize``, before its own code runs. A payload runs that way with
  ``SHEPARD_IAM_PART=payload``: every call it makes is charged to ``payload``, which the check
  evaluates against the job role (tests/integration/test_payload_iam.py).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

RECORD_DIR_ENV = "SHEPARD_IAM_RECORD_DIR"
PART_ENV = "SHEPARD_IAM_PART"
SUBPROCESS_ENV = "SHEPARD_IAM_SUBPROCESS"
SITE_DIR = Path(__file__).resolve().parent / "iam_site"

# The request parameters that name resources; nothing else is kept.
_RESOURCE_PARAMS = (
    "Bucket", "Key", "VersionId", "CopySource", "TableName", "IndexName", "QueueUrl",
    "QueueName", "jobQueue", "jobDefinition", "jobId", "SecretId", "Name", "repositoryName",
    "registryId", "FunctionName", "logGroupName", "logStreamName", "Resources", "KeyId",
    "RoleName", "RoleArn", "Prefix",
)  # fmt: skip

_PART_MODULES = (
    ("lambdas.scheduler", "scheduler"),
    ("lambdas.api", "api"),
    ("lambdas.events", "events"),
    ("shepard_worker", "worker"),
)


@dataclass
class Call:
    part: str
    service: str
    operation: str
    region: str
    params: dict[str, Any]
    status: int = 0  # HTTP status of the answer; 0 when none came
    error: str = ""  # the error code of a refused call

    @property
    def accepted(self) -> bool:
        """Whether the service did the call, or refused it only for its own content (a failed
        condition): either way AWS would have authorised it first."""
        return 200 <= self.status < 300 or self.error in (
            "ConditionalCheckFailedException",
            "TransactionCanceledException",
        )


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)
    # a resource name a part was configured with -> (where it came from, which field)
    names: dict[str, tuple[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sink: Path | None = None  # a subprocess appends its calls here
    commands: set[str] = field(default_factory=set)  # every CLI command the tests ran

    def add(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)
            if self.sink is not None:
                with self.sink.open("a") as out:
                    out.write(json.dumps({"call": asdict(call)}) + "\n")

    def name(self, value: Any, origin: str, field_name: str) -> None:
        if isinstance(value, str) and value:
            with self.lock:
                # a part's setting says more than the test having made the resource
                if self.names.get(value, ("test", ""))[0] == "test":
                    self.names[value] = (origin, field_name)
                if self.sink is not None:
                    with self.sink.open("a") as out:
                        out.write(json.dumps({"name": [value, origin, field_name]}) + "\n")

    def command(self, name: str) -> None:
        with self.lock:
            self.commands.add(name)
            if self.sink is not None:
                with self.sink.open("a") as out:
                    out.write(json.dumps({"command": name}) + "\n")

    def all_commands(self) -> set[str]:
        found = set(self.commands)
        for line in _subprocess_lines():
            if "command" in line:
                found.add(str(line["command"]))
        return found

    def all_calls(self) -> list[Call]:
        """This process's calls and those the subprocesses wrote."""
        found = list(self.calls)
        for line in _subprocess_lines():
            if "call" in line:
                found.append(Call(**line["call"]))
        return found

    def all_names(self) -> dict[str, tuple[str, str]]:
        found = dict(self.names)
        for line in _subprocess_lines():
            if "name" in line:
                value, origin, field_name = line["name"]
                if found.get(value, ("test", ""))[0] == "test":
                    found[value] = (origin, field_name)
        return found


RECORDER = Recorder()
_installed = False


def _subprocess_lines() -> Iterator[dict[str, Any]]:
    folder = os.environ.get(RECORD_DIR_ENV)
    if not folder or RECORDER.sink is not None:
        return
    for path in sorted(Path(folder).glob("*.jsonl")):
        for text in path.read_text().splitlines():
            if text.strip():
                yield json.loads(text)


# ----------------------------------------------------------------------------------------------
# Which part is calling
# ----------------------------------------------------------------------------------------------


def _cli_command(frame: FrameType) -> str | None:
    args = frame.f_locals.get("args")
    command = getattr(args, "command", None)
    return str(command) if command else None


def part_of_stack(frame: FrameType | None) -> str | None:
    """The part whose code called, innermost frame first; None for the tests' own calls."""
    forced = os.environ.get(PART_ENV)
    if forced:
        return forced
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        for prefix, part in _PART_MODULES:
            if module == prefix or module.startswith(prefix + "."):
                return part
        if module == "shepard.cli" and frame.f_code.co_name == "main":
            command = _cli_command(frame)
            if command:
                return f"cli:{command}"
        frame = frame.f_back
    return None


# ----------------------------------------------------------------------------------------------
# botocore hooks
# ----------------------------------------------------------------------------------------------


def _resource_params(params: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {k: params[k] for k in _RESOURCE_PARAMS if k in params}
    if "RequestItems" in params:
        kept["RequestItems"] = {table: None for table in params["RequestItems"]}
    if "TransactItems" in params:
        kept["TransactItems"] = [
            {kind: {"TableName": body.get("TableName")} for kind, body in item.items()}
            for item in params["TransactItems"]
        ]
    if isinstance(kept.get("CopySource"), Mapping):
        kept["CopySource"] = {k: kept["CopySource"].get(k) for k in ("Bucket", "Key")}
    plain: dict[str, Any] = json.loads(json.dumps(kept, default=str))
    return plain


def _before(params: Mapping[str, Any], model: Any, context: dict[str, Any], **kwargs: Any) -> None:
    part = (
        part_of_stack(sys._getframe(1))
        or getattr(threading.current_thread(), "iam_part", None)
        or context.get("iam_client_part")
    )
    if part is None:
        if model.name.startswith("Create"):  # a resource the test makes for itself
            for key in (
                "repositoryName", "TableName", "Bucket", "Name", "QueueName", "jobQueueName",
                "computeEnvironmentName", "jobDefinitionName", "logGroupName",
            ):  # fmt: skip
                RECORDER.name(params.get(key), "test", model.name)
        return
    service = model.service_model.service_name
    context["iam_call"] = Call(
        part=part,
        service=service,
        operation=model.name,
        region=context.get("iam_region", ""),
        params=_resource_params(params),
    )


def _after(
    http_response: Any = None, parsed: Any = None, context: Any = None, **kwargs: Any
) -> None:
    call = (context or {}).pop("iam_call", None)
    if call is None:
        return
    call.status = int(getattr(http_response, "status_code", 0) or 0)
    if isinstance(parsed, Mapping):
        call.error = str(parsed.get("Error", {}).get("Code", ""))
    RECORDER.add(call)


def _after_error(context: Any = None, **kwargs: Any) -> None:
    call = (context or {}).pop("iam_call", None)
    if call is not None:
        call.error = "no answer"
        RECORDER.add(call)


def _hook_client(client: Any) -> None:
    part = part_of_stack(sys._getframe(2))
    region = client.meta.region_name or ""

    def before(params: Mapping[str, Any], model: Any, context: dict[str, Any], **kw: Any) -> None:
        context.setdefault("iam_client_part", part)
        context.setdefault("iam_region", region)
        _before(params, model, context)

    client.meta.events.register("before-parameter-build", before)
    client.meta.events.register("after-call", _after)
    client.meta.events.register("after-call-error", _after_error)


def _note_fields(origin: str, instance: Any, fields: Mapping[str, str]) -> None:
    for attribute, role in fields.items():
        RECORDER.name(getattr(instance, attribute, None), origin, role)


def subprocess_environment(folder: str | Path, part: str | None = None) -> dict[str, str]:
    """The variables that make a Python process record its calls into ``folder``, charged to
    ``part`` (None: to the part on the calling stack); PYTHONPATH keeps what the caller had."""
    env = {
        RECORD_DIR_ENV: str(folder),
        "PYTHONPATH": os.pathsep.join(
            [str(SITE_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    if part:
        env[PART_ENV] = part
    return env


def record_into(folder: str | Path, *, project: bool = True) -> Path:
    """Install the recorder in this process, its records appended to ``<folder>/<pid>.jsonl``
    (tests/support/iam_site/sitecustomize.py calls it); ``project=False`` hooks botocore only,
    for a process that runs none of shepard's code (a payload)."""
    sink = Path(folder) / f"{os.getpid()}.jsonl"
    install(sink=sink, project=project)
    return sink


def install(*, sink: Path | None = None, project: bool = True) -> None:
    """Hook botocore and, with ``project``, the settings classes and the CLI; idempotent, also
    across copies of this module (sitecustomize loads it by path). ``sink``: append every
    record to that file (by default, with ``SHEPARD_IAM_SUBPROCESS=1``, one in the folder
    ``SHEPARD_IAM_RECORD_DIR`` names)."""
    global _installed
    if _installed:
        return
    _installed = True
    import botocore.session

    folder = os.environ.get(RECORD_DIR_ENV)
    if sink is None and folder and os.environ.get(SUBPROCESS_ENV) == "1":
        sink = Path(folder) / f"{os.getpid()}.jsonl"
    create_client = botocore.session.Session.create_client
    if getattr(create_client, "iam_recording", False):  # another copy of this module hooked it
        return
    RECORDER.sink = sink

    def recording_create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = create_client(self, *args, **kwargs)
        _hook_client(client)
        return client

    recording_create_client.iam_recording = True  # type: ignore[attr-defined]
    botocore.session.Session.create_client = recording_create_client  # type: ignore[method-assign]

    start = threading.Thread.start

    def recording_start(self: threading.Thread) -> None:
        self.iam_part = part_of_stack(sys._getframe(1)) or getattr(  # type: ignore[attr-defined]
            threading.current_thread(), "iam_part", None
        )
        start(self)

    threading.Thread.start = recording_start  # type: ignore[method-assign]
    if project:
        _hook_settings()
        _hook_cli()


def _hook_cli() -> None:
    """Note every command ``shepard.cli.main`` runs, for docs/iam.md's list of the commands
    that make no AWS call."""
    from shepard import cli

    original = cli.main

    def main(argv: Any = None, *args: Any, **kwargs: Any) -> int:
        words = [str(w) for w in (sys.argv[1:] if argv is None else argv)]
        command = next((w for w in words if not w.startswith("-")), None)
        if command:
            RECORDER.command(command)
        return original(argv, *args, **kwargs)

    cli.main = main


_FLOCK_FIELDS = {
    "table_name": "table_name",
    "job_queue": "job_queue",
    "job_definition": "job_definition",
    "inputs_bucket": "inputs_bucket",
    "outputs_bucket": "outputs_bucket",
    "errors_bucket": "errors_bucket",
    "quick_deploy_bucket": "quick_deploy_bucket",
}


def _wrap_init(cls: Any, origin: str, fields: Mapping[str, str]) -> None:
    original = cls.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _note_fields(origin, self, fields)

    cls.__init__ = init


def _hook_settings() -> None:
    from shepard import profiles
    from shepard.joblayer.settings import FlockSettings

    _wrap_init(FlockSettings, "flock", _FLOCK_FIELDS)
    try:
        from shepard_worker.settings import Settings as WorkerSettings
    except ImportError:  # the worker package is not on the path of this process
        pass
    else:
        _wrap_init(WorkerSettings, "flock", {**_FLOCK_FIELDS, "secret_name": "secret_name"})
        original = WorkerSettings.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            image = str(getattr(self, "payload_image", None) or "")
            repository = image.split("/", 1)[-1].split("@")[0].split(":")[0] if image else ""
            RECORDER.name(repository, "flock", "ecr_repository_name")

        WorkerSettings.__init__ = init

    try:
        from shepard_worker.runners import EcrImage
    except ImportError:
        pass
    else:  # the worker's payload image lives in the flock's repository
        _wrap_init(EcrImage, "flock", {"repository": "ecr_repository_name"})

    # `shepard-tf check` names the flock's resources from its Terraform outputs.
    from shepard import check as flock_check

    original_run_checks = flock_check.run_checks

    def run_checks(clients: Any, outputs: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        for key, value in outputs.items():
            RECORDER.name(value, "outputs", key)
        return original_run_checks(clients, outputs, *args, **kwargs)

    flock_check.run_checks = run_checks

    original_get = profiles.Settings.get

    def get(self: Any, name: str) -> str | None:
        value: str | None = original_get(self, name)
        RECORDER.name(value, "profile", name)
        return value

    profiles.Settings.get = get  # type: ignore[method-assign]

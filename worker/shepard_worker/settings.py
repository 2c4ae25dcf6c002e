"""The worker's settings, read once from its environment (docs/contracts.md, section 4)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shepard.errors import BadInput
from shepard.joblayer import contract as c
from shepard.joblayer.ids import child_job_id, is_job_id

RUNNERS = ("docker", "process")
# The names without a default (the job definition and SubmitJob set every one: contract).
REQUIRED = (
    c.JOB_ID,
    c.TABLE_NAME,
    c.INPUTS_BUCKET,
    c.OUTPUTS_BUCKET,
    c.ERROR_BUCKET,
    c.QUICK_DEPLOY_BUCKET,
    c.SECRET_NAME,
    c.WORK_ROOT,
)
_ARRAY_INDEX = re.compile(r"^[0-9]{1,5}$")
_FIX = "Set it in the job definition's environment (docs/contracts.md, section 4)"


def _fail(cause: str, fix: str = _FIX) -> BadInput:
    return BadInput(f"while reading the worker's environment: {cause}. {fix}.")


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise _fail(f"{name} is not set")
    return value


def _flag(env: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    if value.strip().lower() in ("true", "1", "yes"):
        return True
    if value.strip().lower() in ("false", "0", "no"):
        return False
    raise _fail(f'{name} is "{value}", not "True" or "False"', 'Set it to "True" or "False"')


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise _fail(f'{name} is "{text}", not a whole number')
    return int(text)


def job_id_from(env: Mapping[str, str]) -> str:
    """The job's id: ``SHEPARD_JOB_ID``, or ``<parent>-<index>`` for an array child."""
    parent = _required(env, c.JOB_ID)
    index = env.get(c.BATCH_JOB_ARRAY_INDEX, "").strip()
    if index:
        if not _ARRAY_INDEX.match(index):
            raise _fail(f'AWS_BATCH_JOB_ARRAY_INDEX is "{index}", not a job index', "Batch sets it")
        job_id = child_job_id(parent, int(index))
    else:
        job_id = parent
    if not is_job_id(job_id):
        raise _fail(
            f'SHEPARD_JOB_ID "{parent}" is not a job id (32 lowercase hex characters)',
            "The scheduler and the API set it when they submit the job",
        )
    return job_id


@dataclass(frozen=True)
class Settings:
    """Everything the worker reads from its environment."""

    job_id: str
    flock: str
    table_name: str
    inputs_bucket: str
    outputs_bucket: str
    errors_bucket: str
    quick_deploy_bucket: str
    secret_name: str
    work_root: Path
    efs_root: Path | None
    lustre_root: Path | None
    ulimit_nofile: int
    allow_docker_daemon: bool
    runner: str
    payload_image: str | None
    payload_command: tuple[str, ...] | None
    # Batch (ECS) kills the worker 30 s after its SIGTERM: the payload gets 10 s of that to end,
    # which leaves the worker time to mark the job interrupted and clean up.
    stop_grace_seconds: float = 10.0
    days_to_keep_finished_jobs: int = 30
    # Set by Batch: the job's id and which attempt of its retry strategy this is (1, 2, ...).
    batch_job_id: str | None = None
    batch_attempt: int | None = None
    # The docker runner checks the EFS/Lustre roots' file system types (mounts.py). Only the
    # local flock's executor turns it off (SHEPARD_CHECK_MOUNTS=False): its EFS and Lustre roots
    # are plain folders bind-mounted into the worker's container. On Batch it is never set.
    check_mounts: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        uses_efs = _flag(env, c.USES_EFS)
        uses_lustre = _flag(env, c.USES_LUSTRE)
        runner = (env.get(c.RUNNER, "docker").strip() or "docker").lower()
        wanted = [*REQUIRED]
        wanted += [c.EFS_ROOT] if uses_efs else []
        wanted += [c.LUSTRE_ROOT] if uses_lustre else []
        wanted += [c.PAYLOAD_IMAGE] if runner == "docker" else []
        missing = [name for name in wanted if not env.get(name, "").strip()]
        if len(missing) > 1:
            raise _fail(f"{', '.join(missing)} are not set", _FIX.replace("Set it", "Set them"))
        efs_root = Path(_required(env, c.EFS_ROOT)) if uses_efs else None
        lustre_root = Path(_required(env, c.LUSTRE_ROOT)) if uses_lustre else None

        if runner not in RUNNERS:
            raise _fail(f'SHEPARD_RUNNER is "{runner}"', 'Set it to "docker" or "process"')
        image = env.get(c.PAYLOAD_IMAGE, "").strip() or None
        if runner == "docker" and image is None:
            raise _fail("SHEPARD_PAYLOAD_IMAGE is not set (the docker runner needs it)")
        command = _payload_command(env.get(c.PAYLOAD_COMMAND))

        grace_text = env.get(c.STOP_GRACE_SECONDS, "10").strip() or "10"
        try:
            grace = float(grace_text)
        except ValueError:
            raise _fail(f'SHEPARD_STOP_GRACE_SECONDS is "{grace_text}", not a number') from None

        return cls(
            job_id=job_id_from(env),
            flock=env.get(c.FLOCK, "").strip(),
            table_name=_required(env, c.TABLE_NAME),
            inputs_bucket=_required(env, c.INPUTS_BUCKET),
            outputs_bucket=_required(env, c.OUTPUTS_BUCKET),
            errors_bucket=_required(env, c.ERROR_BUCKET),
            quick_deploy_bucket=_required(env, c.QUICK_DEPLOY_BUCKET),
            secret_name=_required(env, c.SECRET_NAME),
            work_root=Path(_required(env, c.WORK_ROOT)),
            efs_root=efs_root,
            lustre_root=lustre_root,
            ulimit_nofile=max(_whole(env, c.ULIMIT_FILENO, 1048576), 1),
            allow_docker_daemon=_flag(env, c.ALLOW_DOCKER_DAEMON),
            runner=runner,
            payload_image=image,
            payload_command=command,
            stop_grace_seconds=max(grace, 0.0),
            days_to_keep_finished_jobs=_whole(env, c.DAYS_TO_KEEP_FINISHED_JOBS, 30),
            batch_job_id=env.get(c.BATCH_JOB_ID, "").strip() or None,
            batch_attempt=_whole(env, c.BATCH_JOB_ATTEMPT, 0) or None,
            check_mounts=_flag(env, c.CHECK_MOUNTS, default=True),
        )


def _payload_command(text: str | None) -> tuple[str, ...] | None:
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise _fail(
            f"SHEPARD_PAYLOAD_COMMAND is not JSON ({error.msg})",
            'Write it as a JSON list of strings, e.g. ["python", "main.py"]',
        ) from None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _fail(
            "SHEPARD_PAYLOAD_COMMAND is not a non-empty JSON list of strings",
            'Write it as a JSON list of strings, e.g. ["python", "main.py"]',
        )
    return tuple(value)

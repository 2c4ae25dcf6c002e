"""The worker's settings: every missing or bad variable is named, with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from shepard_worker.settings import Settings
from shepard_worker.spot import RetryStrategy

from shepard.errors import BadInput, ExitStatus

JOB = "0123456789abcdef0123456789abcdef"
BASE = {
    "SHEPARD_JOB_ID": JOB,
    "SHEPARD_TABLE_NAME": "flock-jobs",
    "INPUTS_BUCKET": "in",
    "OUTPUTS_BUCKET": "out",
    "ERROR_BUCKET": "err",
    "SHEPARD_QUICK_DEPLOY_BUCKET": "qd",
    "SHEPARD_SECRET_NAME": "flock-secrets",
    "SHEPARD_WORK_ROOT": "/mnt/root",
    "SHEPARD_PAYLOAD_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/flock:payload-latest",
    "USES_EFS": "False",
    "USES_LUSTRE": "False",
}


def test_reads_the_contract_environment() -> None:
    settings = Settings.from_env(
        {
            **BASE,
            "USES_EFS": "True",
            "SHEPARD_EFS_ROOT": "/mnt/efs",
            "ULIMIT_FILENO": "65536",
            "SHEPARD_ALLOW_DOCKER_DAEMON": "True",
        }
    )
    assert settings.job_id == JOB
    assert (settings.efs_root, settings.lustre_root) == (Path("/mnt/efs"), None)
    assert settings.ulimit_nofile == 65536
    assert settings.allow_docker_daemon is True
    assert settings.runner == "docker"


def test_array_child_id_adds_the_index() -> None:
    settings = Settings.from_env({**BASE, "AWS_BATCH_JOB_ARRAY_INDEX": "7"})
    assert settings.job_id == f"{JOB}-7"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"SHEPARD_TABLE_NAME": ""}, "SHEPARD_TABLE_NAME is not set. Set it in the job definition"),
        ({"SHEPARD_JOB_ID": "../etc"}, 'SHEPARD_JOB_ID "../etc" is not a job id'),
        ({"USES_EFS": "True"}, "SHEPARD_EFS_ROOT is not set"),
        ({"USES_LUSTRE": "maybe"}, 'USES_LUSTRE is "maybe", not "True" or "False"'),
        ({"ULIMIT_FILENO": "lots"}, 'ULIMIT_FILENO is "lots", not a whole number'),
        ({"SHEPARD_PAYLOAD_IMAGE": ""}, "SHEPARD_PAYLOAD_IMAGE is not set (the docker runner"),
        ({"SHEPARD_RUNNER": "podman"}, 'SHEPARD_RUNNER is "podman". Set it to "docker" or'),
        ({"SHEPARD_PAYLOAD_COMMAND": "python x.py"}, "SHEPARD_PAYLOAD_COMMAND is not JSON"),
        ({"SHEPARD_PAYLOAD_COMMAND": '"python"'}, "not a non-empty JSON list of strings"),
    ],
)
def test_bad_environment_names_the_variable(change: dict[str, str], expected: str) -> None:
    with pytest.raises(BadInput) as caught:
        Settings.from_env({**BASE, **change})
    assert caught.value.message.startswith("while reading the worker's environment: ")
    assert expected in caught.value.message
    assert caught.value.exit_status is ExitStatus.BAD_INPUT


def test_process_runner_takes_a_command_list_and_needs_no_image() -> None:
    env = {**BASE, "SHEPARD_RUNNER": "process", "SHEPARD_PAYLOAD_COMMAND": '["python", "a b.py"]'}
    del env["SHEPARD_PAYLOAD_IMAGE"]
    settings = Settings.from_env(env)
    assert settings.payload_command == ("python", "a b.py")
    assert settings.payload_image is None


def test_python_m_shepard_worker_without_its_environment_says_what_is_missing() -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(root), str(root / "worker")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "shepard_worker"], env=env, capture_output=True, text=True
    )
    assert done.returncode == ExitStatus.BAD_INPUT
    assert done.stderr == (
        "shepard: while reading the worker's environment: SHEPARD_JOB_ID, SHEPARD_TABLE_NAME, "
        "INPUTS_BUCKET, OUTPUTS_BUCKET, ERROR_BUCKET, SHEPARD_QUICK_DEPLOY_BUCKET, "
        "SHEPARD_SECRET_NAME, SHEPARD_WORK_ROOT, SHEPARD_PAYLOAD_IMAGE are not set. "
        "Set them in the job definition's environment (docs/contracts.md, section 4).\n"
    )
    assert done.stdout == ""


def test_the_worker_reads_only_names_of_the_contract() -> None:
    """Every variable the worker looks up is one the job definition, SubmitJob, Batch or the
    local flock sets (shepard/joblayer/contract.py): none is read under a name nobody sets."""
    from collections.abc import Iterator, Mapping

    from shepard.joblayer import contract as c

    class Recording(Mapping[str, str]):
        def __init__(self, values: dict[str, str]) -> None:
            self.values = values
            self.read: set[str] = set()

        def __getitem__(self, key: str) -> str:
            self.read.add(key)
            return self.values[key]

        def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
            self.read.add(key)
            return self.values.get(key, default)

        def __iter__(self) -> Iterator[str]:
            return iter(self.values)

        def __len__(self) -> int:
            return len(self.values)

    env = Recording(
        {
            **BASE,
            "USES_EFS": "True",
            "USES_LUSTRE": "True",
            "SHEPARD_EFS_ROOT": "/mnt/efs",
            "SHEPARD_LUSTRE_ROOT": "/mnt/fsx",
        }
    )
    Settings.from_env(env)
    RetryStrategy.from_env(env)  # the job definition's retry strategy, read beside them
    batch = {c.BATCH_JOB_ID, c.BATCH_JOB_ATTEMPT, c.BATCH_JOB_ARRAY_INDEX}
    known = {*c.JOB_ENVIRONMENT_REQUIRED, *c.JOB_ENVIRONMENT_OPTIONAL, c.JOB_ID, *batch}
    assert env.read - known <= set(c.WORKER_LOCAL)
    assert set(c.JOB_ENVIRONMENT_REQUIRED) <= env.read

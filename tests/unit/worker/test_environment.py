"""The payload's environment: the seed's variables, reserved ones winning over the user's."""

from __future__ import annotations

from pathlib import Path

from shepard_worker.environment import payload_environment
from shepard_worker.workspace import Workspace


def _env(ws: Workspace, variables: dict[str, str], path: str | None) -> dict[str, str]:
    env: dict[str, str] = payload_environment(
        variables=variables,
        job_id="j1",
        start_time="20261125T090000Z",
        job_status="calling_payload_code",
        workspace=ws,
        inputs_bucket="in",
        outputs_bucket="out",
        errors_bucket="err",
        input_zip_name="a.zip",
        is_invoked="False",
        hostname="ip-10-0-0-1",
        ulimit_nofile=1024,
        path=path,
    )
    return env


def test_root_only_flock() -> None:
    ws = Workspace.plan("j1", Path("/mnt/root"), None, None)
    env = _env(ws, {"test1": "x", "uuid": "mine", "Path": "/evil", "TAG": "t"}, None)
    assert env["UUID"] == "j1" and "uuid" not in env and "Path" not in env
    assert env["test1"] == "x" and env["TAG"] == "t"
    assert env["ROOT_INPUT_NAME"] == "/mnt/root/j1/input"
    assert env["ROOT_OUTPUT_NAME"] == "/mnt/root/j1/output"
    assert (env["USES_EFS"], env["USES_LUSTRE"]) == ("False", "False")
    assert not any(k.startswith(("EFS_", "LUSTRE_")) for k in env)
    assert "PATH" not in env  # the image keeps its own
    assert env["HOSTNAME"] == "ip-10-0-0-1" and env["ULIMIT_FILENO"] == "1024"
    assert env["INPUT_ZIP_NAME"] == "a.zip" and env["IS_INVOKED"] == "False"
    assert env["JOB_STATUS"] == "calling_payload_code"


def test_efs_and_lustre_variables_when_present() -> None:
    ws = Workspace.plan("j1", Path("/mnt/root"), Path("/mnt/efs"), Path("/mnt/fsx"))
    env = _env(ws, {}, "/usr/bin:/bin")
    assert env["EFS_INPUT_NAME"] == "/mnt/efs/j1/input"
    assert env["EFS_OUTPUT_NAME"] == "/mnt/efs/j1/output"
    assert env["EFS_READ_ONLY_PATH"] == "/mnt/efs"
    assert env["LUSTRE_INPUT_NAME"] == "/mnt/fsx/j1/input"
    assert env["LUSTRE_OUTPUT_NAME"] == "/mnt/fsx/j1/output"
    assert env["LUSTRE_READ_ONLY_PATH"] == "/mnt/fsx"
    assert (env["USES_EFS"], env["USES_LUSTRE"]) == ("True", "True")
    assert env["PATH"] == "/usr/bin:/bin"

"""The payload's environment: the seed's variables, reserved ones winning over the user's."""

from __future__ import annotations

from pathlib import Path

from shepard_worker.environment import (
    JOB_ROLE_CREDENTIAL_VARIABLES,
    REGION_VARIABLES,
    payload_environment,
)
from shepard_worker.workspace import Workspace

from shepard.joblayer.records import RESERVED_VARIABLES

# What the ECS agent gives the worker's container on Batch, plus the keys of a worker that
# runs with static credentials (a laptop, the local flock): those must never reach the payload.
WORKER_ENVIRON = {
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/0f4d-job-role",
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/abc-123",
    "AWS_ACCESS_KEY_ID": "AKIAWORKER",
    "AWS_SECRET_ACCESS_KEY": "worker-secret",
    "AWS_SESSION_TOKEN": "worker-token",
    "AWS_PROFILE": "worker",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    "SHEPARD_TABLE_NAME": "flock-jobs",
    "PATH": "/worker/bin",
}


def _env(
    ws: Workspace,
    variables: dict[str, str],
    path: str | None,
    worker_environ: dict[str, str] | None = None,
) -> dict[str, str]:
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
        worker_environ=worker_environ,
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


def test_the_payload_gets_the_job_roles_credentials_endpoint_and_region_only() -> None:
    ws = Workspace.plan("j1", Path("/mnt/root"), None, None)
    env = _env(ws, {"test1": "x"}, None, WORKER_ENVIRON)

    assert env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] == "/v2/credentials/0f4d-job-role"
    assert (env["AWS_REGION"], env["AWS_DEFAULT_REGION"]) == ("eu-west-1", "eu-west-1")
    assert env["ECS_CONTAINER_METADATA_URI_V4"] == "http://169.254.170.2/v4/abc-123"
    # Nothing else of the worker's: no static keys, profile, endpoint or its own settings.
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "SHEPARD_TABLE_NAME",
        "PATH",
    ):
        assert name not in env
    assert not any(k.startswith("AWS_CONTAINER_CREDENTIALS_FULL") for k in env)


def test_a_full_uri_endpoint_goes_through_with_its_token() -> None:
    ws = Workspace.plan("j1", Path("/mnt/root"), None, None)
    worker = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "Bearer t0ken",
    }
    env = _env(ws, {}, None, worker)
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://169.254.170.23/v1/credentials"
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] == "Bearer t0ken"
    assert "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" not in env and "AWS_REGION" not in env


def test_a_job_cannot_redirect_the_credentials_endpoint_but_may_choose_its_region() -> None:
    ws = Workspace.plan("j1", Path("/mnt/root"), None, None)
    variables = {
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/someone-else",
        "aws_container_credentials_full_uri": "http://evil.example/creds",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "forged",
        "AWS_REGION": "us-west-2",
        "AWS_ACCESS_KEY_ID": "AKIAUSERCHOSE",  # the job's own keys are the job's business
    }
    env = _env(ws, variables, None, WORKER_ENVIRON)
    assert env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] == "/v2/credentials/0f4d-job-role"
    assert "aws_container_credentials_full_uri" not in env
    assert "AWS_CONTAINER_AUTHORIZATION_TOKEN" not in env
    assert env["AWS_REGION"] == "us-west-2" and env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_ACCESS_KEY_ID"] == "AKIAUSERCHOSE"


def test_the_passed_names_are_not_reserved_names_of_the_seed() -> None:
    # The job layer accepts them as user variables (no reserved-name rule applies); the worker
    # sets them, so they are not documented as reserved.
    assert not set(JOB_ROLE_CREDENTIAL_VARIABLES + REGION_VARIABLES) & RESERVED_VARIABLES


def test_without_an_ecs_agent_the_payload_gets_no_aws_variables() -> None:
    ws = Workspace.plan("j1", Path("/mnt/root"), None, None)
    env = _env(ws, {}, "/usr/bin", {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_REGION": " "})
    assert not any(k.startswith(("AWS_", "ECS_")) for k in env)

"""The job role's credentials as on ECS, in a real payload container.

The local flock's credentials endpoint (shepard.local.credentials) serves the job role, assumed
on the emulator; the worker hands the payload its address and token and nothing else of its own
AWS environment. The payload, boto3 with its default credential chain, asks
``sts get-caller-identity`` and is the job role. Its endpoint is on the host's loopback (the
only http address the SDKs accept besides ECS's own), so the Docker runner starts the payload on
the host's network, where it also reaches the emulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from shepard_worker.environment import payload_environment
from shepard_worker.runners import DockerRunner, RunSpec
from shepard_worker.workspace import Workspace

from shepard.emulator import InProcessEmulator
from shepard.local.credentials import CredentialsServer

from .conftest import SESSION, build_image

pytestmark = pytest.mark.docker

REGION = "us-east-1"
WHOAMI = """\
import json, os
import boto3
identity = boto3.client("sts").get_caller_identity()
print(json.dumps({
    "arn": identity["Arn"],
    "method": boto3.Session().get_credentials().method,
    "aws": sorted(name for name in os.environ if name.startswith("AWS_")),
}))
"""


@pytest.fixture(scope="module")
def whoami_image(
    docker_client: Any, worker_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A payload with boto3 (the worker image's venv) that prints who it is."""
    folder = tmp_path_factory.mktemp("whoami-image")
    (folder / "whoami.py").write_text(WHOAMI)
    (folder / "Dockerfile").write_text(
        f"FROM {worker_image}\nCOPY whoami.py /app/\n"
        'ENTRYPOINT ["/opt/venv/bin/python", "/app/whoami.py"]\n'
    )
    tag: str = build_image(docker_client, folder, f"shepard-test/whoami:{SESSION}")
    yield tag
    docker_client.images.remove(tag, force=True)


def _session() -> Any:
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


def test_the_payload_is_the_job_role_and_never_sees_the_workers_keys(
    docker_client: Any,
    emulator: InProcessEmulator,
    whoami_image: str,
    labels: dict[str, str],
    tmp_path: Path,
) -> None:
    iam = _session().client("iam", endpoint_url=emulator.endpoint_url)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role_name = f"shepard-test-job-role-{SESSION}"
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
    role_arn = role["Role"]["Arn"]
    account = role_arn.split(":")[4]

    with CredentialsServer(
        role_arn=role_arn, endpoint_url=emulator.endpoint_url, session=_session()
    ) as server:
        worker_environ = {
            # what the worker itself runs with: none of it may reach the payload
            "AWS_ACCESS_KEY_ID": "AKIAWORKERSOWNKEY000",
            "AWS_SECRET_ACCESS_KEY": "the-workers-secret",
            "AWS_SESSION_TOKEN": "the-workers-token",
            "AWS_PROFILE": "worker",
            "AWS_ENDPOINT_URL": emulator.endpoint_url,
            "AWS_REGION": REGION,  # ECS sets both; boto3 reads AWS_DEFAULT_REGION
            "AWS_DEFAULT_REGION": REGION,
            **server.environment(),  # what the local flock's executor sets
        }
        workspace = Workspace.plan("job-creds", tmp_path / "root", None, None)
        workspace.create()
        env = payload_environment(
            variables={"AWS_ENDPOINT_URL_STS": emulator.endpoint_url},  # the job's own variable
            job_id="job-creds",
            start_time="20260101T000000Z",
            job_status="calling_payload_code",
            workspace=workspace,
            inputs_bucket="in",
            outputs_bucket="out",
            errors_bucket="err",
            input_zip_name="",
            is_invoked="False",
            hostname="local",
            ulimit_nofile=4096,
            path=None,
            worker_environ=worker_environ,
        )
        lines: list[str] = []
        runner = DockerRunner(docker_client, lock_path=tmp_path / "lock", gpus=False)
        result = runner.run(
            RunSpec(
                env=env,
                mounts=(),
                ulimit_nofile=4096,
                log=lines.append,
                image=whoami_image,
                name=f"shepard-test-creds-{SESSION}",
                labels=labels,
            )
        )
        served = server.requests

    assert result.exit_code == 0, "\n".join(lines)
    answer = json.loads([line for line in lines if line.startswith("{")][-1])
    assert answer["arn"] == f"arn:aws:sts::{account}:assumed-role/{role_name}/shepard-job"
    assert answer["method"] == "container-role"  # botocore's container credentials provider
    assert answer["aws"] == [
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_STS",
        "AWS_REGION",
    ]
    assert served >= 1

"""A local flock in docker mode runs each job as Batch runs it on a sheep.

One local flock for the module (``target: local``, ``local.runner: docker``), applied once with
``images`` naming a worker image and a payload image pushed to the local registry (the stand-in
for ECR): the job definition's image is the worker, its ``SHEPARD_PAYLOAD_IMAGE`` the payload.
What is checked comes from the engine (its events) and from the emulator (the job records, the
result zips), not from the project's own log:

- a job runs in two containers, its worker (the job definition's image) and its payload;
- the payload is the job role (``sts get-caller-identity`` through the flock's credentials
  endpoint) and none of the worker's own AWS keys reach it; its open-files limit is the engine's;
- a job definition whose payload image is not in the registry fails its job with the pull
  error within seconds, and one whose worker image is not there likewise (recorded by the
  executor, as no worker ever ran);
- four jobs submitted together pull each image once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from shepard.emulator import emulator_environment
from shepard.joblayer.records import Phase
from shepard.joblayer.service import JobService
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.store import JobRecord, JobStore

from .conftest import SESSION, build_image

pytestmark = pytest.mark.docker

REGION = "us-east-1"
FLOCK = f"dock{SESSION[:6]}"
FLOCK_YAML = f"""\
name: {FLOCK}
region: {REGION}
target: local
batch:
  instance_types: [c5.large]
  desired_cpu: 1
  desired_ram: 512
s3:
  force_destroy: true
local:
  runner: docker
  max_parallel_jobs: 4
"""
WHOAMI = """\
import json, os, resource
import boto3
identity = boto3.client("sts").get_caller_identity()
document = {
    "arn": identity["Arn"],
    "method": boto3.Session().get_credentials().method,
    "aws": sorted(name for name in os.environ if name.startswith("AWS_")),
    "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
}
print(json.dumps(document), flush=True)
with open(os.path.join(os.environ["ROOT_OUTPUT_NAME"], "identity.json"), "w") as out:
    json.dump(document, out)
"""


@dataclass
class DockerFlock:
    state_dir: Path
    outputs: dict[str, Any]
    endpoint_url: str
    repository: str
    worker_image: str
    payload_image: str
    settings: FlockSettings

    def client(self, service: str) -> Any:
        session = boto3.Session()
        return session.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def store(self) -> JobStore:
        return JobStore(self.settings.table_name, self.client("dynamodb"))

    def submit(self, variables: dict[str, str], job_definition: str | None = None) -> str:
        settings = self.settings
        if job_definition is not None:
            settings = dataclasses.replace(settings, job_definition=job_definition)
        service = JobService.from_settings(settings, batch_client=self.client("batch"))
        service.store = self.store()
        return str(service.submit(variables, is_invoked=True).job_id)

    def wait(self, job_ids: list[str], timeout: float) -> dict[str, JobRecord]:
        store = self.store()
        deadline = time.monotonic() + timeout
        done: dict[str, JobRecord] = {}
        while time.monotonic() < deadline and len(done) < len(job_ids):
            for job_id in job_ids:
                record = store.get(job_id)
                if record is not None and record.phase == Phase.FINISHED:
                    done[job_id] = record
            time.sleep(0.2)
        missing = [j for j in job_ids if j not in done]
        assert not missing, f"not finished in {timeout:.0f} s: {missing}\n" + self.logs(missing)
        return done

    def logs(self, job_ids: list[str]) -> str:
        parts = []
        for job_id in job_ids:
            path = self.state_dir / "local" / "jobs" / f"{job_id}.log"
            parts.append(f"--- {path}\n{path.read_text() if path.exists() else '(none)'}")
        service_log = self.state_dir / "local" / "service.log"
        if service_log.exists():
            parts.append(
                "--- service.log (tail)\n" + "\n".join(service_log.read_text().splitlines()[-30:])
            )
        return "\n".join(parts)

    def definition_with(self, *, image: str | None = None, payload: str | None = None) -> str:
        """A new revision of the flock's job definition with another image (worker/payload)."""
        batch = self.client("batch")
        current = batch.describe_job_definitions(
            jobDefinitions=[self.outputs["job_definition_arn"]]
        )["jobDefinitions"][0]
        props = dict(current["containerProperties"])
        if image is not None:
            props["image"] = image
        if payload is not None:
            props["environment"] = [
                {
                    "name": e["name"],
                    "value": payload if e["name"] == "SHEPARD_PAYLOAD_IMAGE" else e["value"],
                }
                for e in props["environment"]
            ]
        keep = (
            "image",
            "environment",
            "jobRoleArn",
            "resourceRequirements",
            "ulimits",
            "volumes",
            "mountPoints",
        )
        answer = batch.register_job_definition(
            jobDefinitionName=current["jobDefinitionName"],
            type="container",
            containerProperties={k: v for k, v in props.items() if k in keep and v},
        )
        return str(answer["jobDefinitionArn"])


def _push(client: Any, source: str, repository: str, tag: str) -> str:
    client.images.get(source).tag(repository, tag=tag)
    for line in client.images.push(repository, tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    uri = f"{repository}:{tag}"
    client.images.remove(uri)  # only the registry has it now: the flock must pull it
    return uri


@pytest.fixture(scope="module")
def docker_flock(
    docker_client: Any,
    registry: str,
    worker_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DockerFlock]:
    from shepard import deploy

    folder = tmp_path_factory.mktemp("docker-flock")
    repository = f"{registry}/shepard-test-{SESSION}"
    payload_folder = folder / "payload"
    payload_folder.mkdir()
    (payload_folder / "whoami.py").write_text(WHOAMI)
    (payload_folder / "Dockerfile").write_text(
        f"FROM {worker_image}\nCOPY whoami.py /app/\nWORKDIR /app\n"
        'ENTRYPOINT ["/opt/venv/bin/python", "/app/whoami.py"]\n'
    )
    built = build_image(docker_client, payload_folder, f"shepard-test/whoami-flock:{SESSION}")
    # An image of its own (one more label): the engine is shared, and an image id shared with
    # another suite's worker image could lose its tags to that suite's cleanup.
    worker_folder = folder / "worker"
    worker_folder.mkdir()
    (worker_folder / "Dockerfile").write_text(
        f"FROM {worker_image}\nLABEL shepard.test-session={SESSION}\n"
    )
    own_worker = build_image(docker_client, worker_folder, f"shepard-test/worker-flock:{SESSION}")
    worker_uri = _push(docker_client, own_worker, repository, f"worker-{SESSION}")
    payload_uri = _push(docker_client, built, repository, f"payload-{SESSION}")

    flock_file = folder / "flock.yaml"
    flock_file.write_text(FLOCK_YAML)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["SHEPARD_STATE_DIR"] = str(folder / "state")
    env["SHEPARD_CONFIG_DIR"] = str(folder / "profiles")
    progress = io.StringIO()
    started = time.monotonic()
    state_dir: Path | None = None
    try:
        outputs = deploy.apply(
            flock_file,
            env=env,
            auto_approve=True,
            progress=progress,
            images={"worker": worker_uri, "payload": payload_uri},
        )
        print(f"docker_flock: applied in {time.monotonic() - started:.1f} s")
        state_dir = deploy.state_dir_for(flock_file, FLOCK, env)
        service = json.loads((state_dir / "local" / "service.json").read_text())
        endpoint = str(service["endpoint_url"])
        settings = FlockSettings.from_env(
            {str(k): str(v) for k, v in outputs["lambda_environment"].items()}
        )
        with pytest.MonkeyPatch.context() as patch:
            for key in [k for k in os.environ if k.startswith("AWS_")]:
                patch.delenv(key)
            for key, value in emulator_environment(endpoint, REGION).items():
                patch.setenv(key, value)
            yield DockerFlock(
                state_dir=state_dir,
                outputs=outputs,
                endpoint_url=endpoint,
                repository=repository,
                worker_image=worker_uri,
                payload_image=payload_uri,
                settings=settings,
            )
    except BaseException:
        print(progress.getvalue()[-5000:])
        raise
    finally:
        deploy.destroy(flock_file, env=env, auto_approve=True, progress=progress)
        if state_dir is not None:
            for container in docker_client.containers.list(
                all=True, filters={"label": f"shepard.state-dir={state_dir}"}
            ):
                container.remove(force=True)
        for image in (worker_uri, payload_uri, built, own_worker):
            with contextlib.suppress(Exception):  # already gone
                docker_client.images.remove(image, force=True)


def _events(client: Any, since: float, **filters: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = list(
        client.events(since=int(since), until=int(time.time()) + 1, decode=True, filters=filters)
    )
    return found


def test_a_job_runs_in_a_worker_and_a_payload_container_as_the_job_role(
    docker_client: Any, docker_flock: DockerFlock
) -> None:
    started = time.time()
    job_id = docker_flock.submit({"AWS_ENDPOINT_URL_STS": docker_flock.endpoint_url})
    record = docker_flock.wait([job_id], timeout=120)[job_id]
    assert record.result is not None and record.result.value == "succeeded", (
        f"{record.reason}\n" + docker_flock.logs([job_id])
    )

    # Two containers, seen by the engine: the job definition's image and the payload image.
    starts = _events(docker_client, started, type="container", event="start")
    ours = [e for e in starts if e["Actor"]["Attributes"].get("shepard.job") == job_id]
    kinds = sorted(
        (e["Actor"]["Attributes"]["shepard"], e["Actor"]["Attributes"]["image"]) for e in ours
    )
    assert kinds == [
        ("payload", docker_flock.payload_image),
        ("worker", docker_flock.worker_image),
    ]
    destroyed = _events(docker_client, started, type="container", event="destroy")
    assert {e["id"] for e in ours} <= {e["id"] for e in destroyed}  # both removed

    # The payload's result, from the emulator's outputs bucket: it was the job role.
    (key,) = record.outputs
    body = docker_flock.client("s3").get_object(
        Bucket=docker_flock.outputs["outputs_bucket"], Key=key
    )
    with zipfile.ZipFile(io.BytesIO(body["Body"].read())) as result:
        identity = json.loads(result.read("identity.json"))
    iam = docker_flock.client("iam")
    role_arn = iam.list_roles()["Roles"]
    job_role = docker_flock.client("batch").describe_job_definitions(
        jobDefinitions=[docker_flock.outputs["job_definition_arn"]]
    )["jobDefinitions"][0]["containerProperties"]["jobRoleArn"]
    role_name = job_role.rsplit("/", 1)[-1]
    assert role_name in {r["RoleName"] for r in role_arn}
    account = job_role.split(":")[4]
    assert identity["arn"] == f"arn:aws:sts::{account}:assumed-role/{role_name}/shepard-job"
    assert identity["method"] == "container-role"
    # Nothing of the worker's own AWS environment (its keys, its endpoint) reached the payload.
    assert identity["aws"] == [
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_STS",
        "AWS_REGION",
    ]
    # The engine's open-files limit, not the job definition's 1048576; the job's log says why.
    job_log = (docker_flock.state_dir / "local" / "jobs" / f"{job_id}.log").read_text()
    assert identity["nofile"] < 1048576
    assert f"ULIMIT_FILENO 1048576 lowered to {identity['nofile']}" in job_log
    assert "JOB_STATUS" in job_log  # the worker container's own output is in the job's log


def test_a_missing_payload_image_fails_the_job_with_the_pull_error(
    docker_flock: DockerFlock,
) -> None:
    missing = f"{docker_flock.repository}:payload-missing"
    definition = docker_flock.definition_with(payload=missing)
    started = time.monotonic()
    job_id = docker_flock.submit({}, job_definition=definition)
    record = docker_flock.wait([job_id], timeout=60)[job_id]
    elapsed = time.monotonic() - started
    assert record.result is not None and record.result.value == "failed"
    assert record.reason is not None
    assert f"while pulling the payload image {missing}" in record.reason, record.reason
    assert "manifest unknown" in record.reason or "not found" in record.reason
    assert elapsed < 30, f"took {elapsed:.1f} s"


def test_a_missing_worker_image_fails_the_job_instead_of_leaving_it_queued(
    docker_flock: DockerFlock,
) -> None:
    missing = f"{docker_flock.repository}:worker-missing"
    definition = docker_flock.definition_with(image=missing)
    started = time.monotonic()
    job_id = docker_flock.submit({}, job_definition=definition)
    record = docker_flock.wait([job_id], timeout=60)[job_id]
    elapsed = time.monotonic() - started
    assert record.result is not None and record.result.value == "failed"
    assert record.reason is not None
    assert f"while pulling the worker image {missing}" in record.reason, record.reason
    assert elapsed < 30, f"took {elapsed:.1f} s"


def test_four_jobs_submitted_together_pull_each_image_once(
    docker_client: Any, docker_flock: DockerFlock
) -> None:
    for image in (docker_flock.worker_image, docker_flock.payload_image):
        with contextlib.suppress(Exception):  # not here: nothing to remove
            docker_client.images.remove(image)
    started = time.time()
    job_ids = [
        docker_flock.submit({"AWS_ENDPOINT_URL_STS": docker_flock.endpoint_url, "N": str(n)})
        for n in range(4)
    ]
    records = docker_flock.wait(job_ids, timeout=180)
    assert {r.result.value for r in records.values() if r.result} == {"succeeded"}, [
        r.reason for r in records.values()
    ]
    pulls = [e["Actor"]["ID"] for e in _events(docker_client, started, type="image", event="pull")]
    assert pulls.count(docker_flock.payload_image) == 1, pulls
    assert pulls.count(docker_flock.worker_image) == 1, pulls

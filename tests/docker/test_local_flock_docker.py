"""A local flock in docker mode runs each job as Batch runs it on a sheep.

The session's local flock (tests/docker/conftest.py ``docker_flock``: examples/testing-setup
with ``local.runner: docker``, applied through the CLI, its images pushed to the local registry
that stands in for ECR): the job definition's image is the worker, its ``SHEPARD_PAYLOAD_IMAGE``
the payload. These tests register revisions of its job definition (another payload, a missing
image) and submit through the job layer. What is checked comes from the engine (its events) and
from the emulator (the job records, the result zips), not from the project's own log:

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
from typing import Any

import pytest

from shepard.emulator import emulator_environment
from shepard.joblayer.records import Phase
from shepard.joblayer.service import JobService
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.store import JobRecord, JobStore

from .conftest import FLOCK_REGION, SESSION, DockerFlock, build_image

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

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
class JobLayer:
    """The session's docker flock, driven through the job layer, with a payload of its own
    (``whoami``, pushed to the flock's repository) in a revision of its job definition."""

    flock: DockerFlock
    settings: FlockSettings
    whoami_image: str
    whoami_definition: str

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self.flock.outputs)

    @property
    def repository(self) -> str:
        return str(self.flock.repository)

    @property
    def worker_image(self) -> str:
        return str(self.flock.worker_image)

    @property
    def endpoint_url(self) -> str:
        return str(self.flock.endpoint_url)

    def client(self, service: str) -> Any:
        return self.flock.client(service)

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
        return str(self.flock.logs(job_ids))

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
def job_layer(
    docker_client: Any, docker_flock: DockerFlock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JobLayer]:
    """The whoami payload (FROM the flock's worker image, which has boto3) pushed to the
    flock's repository, a job definition revision running it, and this process's AWS
    environment pointed at the flock's emulator while the module runs."""
    folder = tmp_path_factory.mktemp("whoami")
    (folder / "whoami.py").write_text(WHOAMI)
    (folder / "Dockerfile").write_text(
        f"FROM {docker_flock.worker_image}\nCOPY whoami.py /app/\nWORKDIR /app\n"
        'ENTRYPOINT ["/opt/venv/bin/python", "/app/whoami.py"]\n'
    )
    built = build_image(docker_client, folder, f"shepard-test/whoami-flock:{SESSION}")
    whoami = _push(docker_client, built, docker_flock.repository, f"whoami-{SESSION}")
    docker_flock.extra_images += [built, whoami]
    settings = FlockSettings.from_env(
        {str(k): str(v) for k, v in docker_flock.outputs["lambda_environment"].items()}
    )
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("AWS_")]:
            patch.delenv(key)
        for key, value in emulator_environment(docker_flock.endpoint_url, FLOCK_REGION).items():
            patch.setenv(key, value)
        layer = JobLayer(docker_flock, settings, whoami, "")
        layer.whoami_definition = layer.definition_with(payload=whoami)
        yield layer


def _events(client: Any, since: float, **filters: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = list(
        client.events(since=int(since), until=int(time.time()) + 1, decode=True, filters=filters)
    )
    return found


def test_a_job_runs_in_a_worker_and_a_payload_container_as_the_job_role(
    docker_client: Any, job_layer: JobLayer
) -> None:
    started = time.time()
    job_id = job_layer.submit(
        {"AWS_ENDPOINT_URL_STS": job_layer.endpoint_url}, job_layer.whoami_definition
    )
    record = job_layer.wait([job_id], timeout=120)[job_id]
    assert record.result is not None and record.result.value == "succeeded", (
        f"{record.reason}\n" + job_layer.logs([job_id])
    )

    # Two containers, seen by the engine: the job definition's image and the payload image.
    starts = _events(docker_client, started, type="container", event="start")
    ours = [e for e in starts if e["Actor"]["Attributes"].get("shepard.job") == job_id]
    kinds = sorted(
        (e["Actor"]["Attributes"]["shepard"], e["Actor"]["Attributes"]["image"]) for e in ours
    )
    assert kinds == [
        ("payload", job_layer.whoami_image),
        ("worker", job_layer.worker_image),
    ]
    destroyed = _events(docker_client, started, type="container", event="destroy")
    assert {e["id"] for e in ours} <= {e["id"] for e in destroyed}  # both removed

    # The payload's result, from the emulator's outputs bucket: it was the job role.
    (key,) = record.outputs
    body = job_layer.client("s3").get_object(Bucket=job_layer.outputs["outputs_bucket"], Key=key)
    with zipfile.ZipFile(io.BytesIO(body["Body"].read())) as result:
        identity = json.loads(result.read("identity.json"))
    iam = job_layer.client("iam")
    role_arn = iam.list_roles()["Roles"]
    job_role = job_layer.client("batch").describe_job_definitions(
        jobDefinitions=[job_layer.outputs["job_definition_arn"]]
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
    job_log = (job_layer.flock.state_dir / "local" / "jobs" / f"{job_id}.log").read_text()
    assert identity["nofile"] < 1048576
    assert f"ULIMIT_FILENO 1048576 lowered to {identity['nofile']}" in job_log
    assert "JOB_STATUS" in job_log  # the worker container's own output is in the job's log


@pytest.mark.parametrize(
    ("role", "field"),
    [("payload", "payload"), ("worker", "image")],
    ids=["payload image", "worker image"],
)
def test_a_missing_image_fails_the_job_with_the_pull_error_instead_of_leaving_it_queued(
    job_layer: JobLayer, role: str, field: str
) -> None:
    missing = f"{job_layer.repository}:{role}-missing"
    definition = job_layer.definition_with(**{field: missing})
    started = time.monotonic()
    job_id = job_layer.submit({}, job_definition=definition)
    record = job_layer.wait([job_id], timeout=60)[job_id]
    elapsed = time.monotonic() - started
    assert record.result is not None and record.result.value == "failed"
    assert record.reason is not None
    assert f"while pulling the {role} image {missing}" in record.reason, record.reason
    if role == "payload":  # the registry's own words reach the record
        assert "manifest unknown" in record.reason or "not found" in record.reason
    assert elapsed < 30, f"took {elapsed:.1f} s"


def test_four_jobs_submitted_together_pull_each_image_once(
    docker_client: Any, job_layer: JobLayer
) -> None:
    for image in (job_layer.worker_image, job_layer.whoami_image):
        with contextlib.suppress(Exception):  # not here: nothing to remove
            docker_client.images.remove(image)  # this tag only: the image may have others
    started = time.time()
    job_ids = [
        job_layer.submit(
            {"AWS_ENDPOINT_URL_STS": job_layer.endpoint_url, "N": str(n)},
            job_layer.whoami_definition,
        )
        for n in range(4)
    ]
    records = job_layer.wait(job_ids, timeout=180)
    assert {r.result.value for r in records.values() if r.result} == {"succeeded"}, [
        r.reason for r in records.values()
    ]
    pulls = [e["Actor"]["ID"] for e in _events(docker_client, started, type="image", event="pull")]
    assert pulls.count(job_layer.whoami_image) == 1, pulls
    assert pulls.count(job_layer.worker_image) == 1, pulls

"""The local flock's images stage against a real engine and the local registry: the first run
builds and pushes the payload (testing-setup's code/) and the worker image, a second run with the
same code builds and pushes nothing, a changed code/ gives a new payload tag and pushes only it.

What was built and pushed is read from the engine's events (tag and push of this flock's
repository) and from the registry's own API, not from what the stage says about itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from shepard.deploy import IMAGES_FILE, load_flock
from shepard.deploy.images import LocalImages
from shepard.images import BASE_IMAGE_VARIABLE, REGISTRY_VARIABLE
from tests.docker.conftest import SESSION

pytestmark = pytest.mark.docker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testing-setup"
NAME = f"imgs-{SESSION}"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass
class Run:
    images: dict[str, str]
    built: list[str]
    pushed: list[str]
    tagged: set[str]  # engine events: images tagged into this flock's repository
    pushes: set[str]  # engine events: pushes of this flock's repository
    said: str


@dataclass
class Deployment:
    folder: Path
    env: dict[str, str]
    registry: str
    client: Any

    @property
    def repository(self) -> str:
        return f"{self.registry}/{NAME}"

    def run_stage(self) -> Run:
        """One images stage as `apply` runs it; the engine's events during it."""
        flock = load_flock(self.folder / "flock.yaml", self.env)
        stream = io.StringIO()
        stage = LocalImages(stream=stream)
        tfvars: dict[str, Any] = {}
        started_ns = time.time_ns()
        since = int(started_ns / 1e9) - 1
        stage.run(flock, tfvars, self.env)
        assert stage.published is not None, stream.getvalue()
        assert tfvars["images"] == stage.published.images
        remembered = json.loads((flock.state_dir / IMAGES_FILE).read_text())
        assert remembered == stage.published.images
        tagged, pushes = set(), set()
        for event in self.client.api.events(
            since=since, until=int(time.time()) + 1, filters={"type": "image"}, decode=True
        ):
            if int(event.get("timeNano", 0)) < started_ns:
                continue
            name = str(event.get("Actor", {}).get("Attributes", {}).get("name", ""))
            subject = str(event.get("id", ""))
            if event.get("Action") == "tag" and name.startswith(self.repository + ":"):
                tagged.add(name)
            if event.get("Action") == "push" and subject.startswith(self.repository + ":"):
                pushes.add(subject)
        return Run(
            dict(stage.published.images),
            list(stage.published.built),
            list(stage.published.pushed),
            tagged,
            pushes,
            stream.getvalue(),
        )

    def registry_tags(self) -> dict[str, str]:
        """Tag -> manifest digest, from the registry's API."""
        try:
            with urllib.request.urlopen(
                f"http://{self.registry}/v2/{NAME}/tags/list", timeout=10
            ) as answer:
                tags = json.load(answer).get("tags") or []
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return {}
            raise
        return {tag: self.digest(tag) for tag in tags}

    def digest(self, tag: str) -> str:
        request = urllib.request.Request(
            f"http://{self.registry}/v2/{NAME}/manifests/{tag}",
            method="HEAD",
            headers={"Accept": MANIFEST},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return str(answer.headers["Docker-Content-Digest"])


@pytest.fixture
def deployment(
    docker_client: Any, base_image: str, registry: str, tmp_path: Path
) -> Iterator[Deployment]:
    """testing-setup copied under a session-unique name (its own repository in the registry);
    its images and manifests are removed afterwards."""
    folder = tmp_path / "testing-setup"
    shutil.copytree(EXAMPLE / "code", folder / "code")
    text = (EXAMPLE / "flock.yaml").read_text()
    (folder / "flock.yaml").write_text(text.replace("name: testing", f"name: {NAME}"))
    env = {
        "SHEPARD_STATE_DIR": str(tmp_path / "state"),
        REGISTRY_VARIABLE: registry,
        BASE_IMAGE_VARIABLE: base_image,
    }
    made = Deployment(folder, env, registry, docker_client)
    try:
        yield made
    finally:
        for digest in made.registry_tags().values():
            request = urllib.request.Request(
                f"http://{registry}/v2/{NAME}/manifests/{digest}", method="DELETE"
            )
            with contextlib.suppress(OSError):
                urllib.request.urlopen(request, timeout=10).close()
        # Only this repository's tags, by name and without force: the same image (the layer
        # cache gives the worker image one id across builds) may carry other tests' tags.
        for image in docker_client.images.list(name=made.repository):
            for tag in image.tags:
                if tag.startswith(made.repository + ":"):
                    with contextlib.suppress(docker.errors.APIError):  # a container uses it
                        docker_client.images.remove(tag)


def test_unchanged_code_builds_and_pushes_nothing_and_new_code_only_the_payload(
    deployment: Deployment, docker_client: Any
) -> None:
    repository = deployment.repository

    first = deployment.run_stage()
    payload, worker = first.images["payload"], first.images["worker"]
    assert payload.startswith(f"{repository}:payload-") and worker.startswith(
        f"{repository}:worker-"
    )
    assert len(payload.rpartition(":payload-")[2]) == 12
    assert first.built == [payload, worker] and first.pushed == [payload, worker]
    assert first.tagged == {payload, worker}  # seen by the engine: both built...
    assert first.pushes == {payload, worker}  # ...and both pushed
    tags = deployment.registry_tags()
    assert set(tags) == {payload.rpartition(":")[2], worker.rpartition(":")[2]}
    assert f"payload image {payload}: pushing to the local registry" in first.said
    assert "Step 1/" in first.said and "layer " in first.said  # build and push progress

    second = deployment.run_stage()
    assert second.images == first.images
    assert second.built == [] and second.pushed == []
    assert second.tagged == set() and second.pushes == set()  # nothing built, nothing pushed
    assert deployment.registry_tags() == tags  # the same manifests
    assert second.said.splitlines() == [
        f"payload image {payload}: unchanged, in the local registry already",
        f"worker image {worker}: unchanged, in the local registry already",
    ]

    code = deployment.folder / "code" / "testing_code.py"
    code.write_text(code.read_text() + "\n# changed\n")
    third = deployment.run_stage()
    assert third.images["worker"] == worker
    assert third.images["payload"] != payload
    assert third.images["payload"].startswith(f"{repository}:payload-")
    assert third.built == [third.images["payload"]] and third.pushed == third.built
    assert third.pushes == {third.images["payload"]}
    assert set(deployment.registry_tags()) == set(tags) | {
        third.images["payload"].rpartition(":")[2]
    }


def test_the_pushed_payload_image_is_the_testing_setup_payload_on_the_base_python(
    deployment: Deployment, docker_client: Any
) -> None:
    pushed = deployment.run_stage().images["payload"]
    docker_client.images.remove(pushed, force=True)
    docker_client.images.pull(pushed)  # from the registry, as the worker does
    env = {"test1": "test1", "test2": "test2", "test3": "test3", "test4": "0"}
    env |= {"ROOT_INPUT_NAME": "/tmp/in", "ROOT_OUTPUT_NAME": "/tmp/out"}
    out = docker_client.containers.run(pushed, environment=env, remove=True, network_mode="none")
    assert out.decode().strip() == (
        "testing_code: all four variables set; wrote /tmp/out/hello_world.json"
    )
    config = docker_client.images.get(pushed).attrs["Config"]
    assert config["Entrypoint"] == ["python3"] and config["Cmd"] == ["/testing_code.py"]

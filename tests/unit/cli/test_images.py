"""Image tags, registries and the publish logic, where no Docker engine is needed.

The real build and push (engine + local registry) are tests/docker/test_images_push.py. The fake
client here stands in for the engine only in the tests of the decisions publish makes and of
the deploy command (tests/unit/cli/test_deploy_command.py).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from shepard import images
from shepard.deploy import load_flock
from shepard.deploy.images import LocalImages, repository_name
from shepard.errors import BackendError, BadInput, ShepardError
from shepard.joblayer.calls import RegistryLogin
from shepard.worker_image import WORKER_FILES

REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/flock"
LOGIN = RegistryLogin("AWS", "token", "https://123456789012.dkr.ecr.us-east-1.amazonaws.com")
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "testing-setup"


@dataclass
class FakeImages:
    builds: list[dict[str, Any]] = field(default_factory=list)
    pushes: list[dict[str, Any]] = field(default_factory=list)
    present: dict[str, str] = field(default_factory=dict)  # name -> id

    def get(self, name: str) -> Any:
        if name not in self.present:
            raise docker.errors.ImageNotFound(name)
        return type("Image", (), {"id": self.present[name]})()


@dataclass
class FakeApi:
    """The low-level calls publish makes: build, push, inspect_distribution."""

    images: FakeImages
    push_error: str | None = None
    in_registry: set[str] = field(default_factory=set)

    def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.images.builds.append(kwargs)
        yield {"stream": "Step 1/2 : FROM base\n"}
        yield {"stream": " ---> abc\n"}
        yield {"stream": "Step 2/2 : COPY . /\n"}
        yield {"aux": {"ID": f"sha256:{len(self.images.builds):064x}"}}

    def push(self, repository: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.images.pushes.append({"repository": repository, **kwargs})
        yield {"status": "Preparing", "id": "l1"}
        if self.push_error:
            yield {"error": self.push_error}
            return
        yield {"status": "Pushed", "id": "l1"}
        yield {"status": f"{kwargs['tag']}: digest: sha256:0 size: 529"}
        self.in_registry.add(f"{repository}:{kwargs['tag']}")

    def inspect_distribution(self, uri: str, auth_config: Any = None) -> dict[str, Any]:
        if uri not in self.in_registry:
            raise docker.errors.NotFound("manifest unknown")
        return {"Descriptor": {}}


@dataclass
class FakeDocker:
    images: FakeImages = field(default_factory=FakeImages)
    api: FakeApi = field(init=False)

    def __post_init__(self) -> None:
        self.api = FakeApi(self.images)

    def close(self) -> None:
        return None


def _code(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "Dockerfile").write_text("ARG BASE_IMAGE=python:3.12-slim\nFROM ${BASE_IMAGE}\n")
    (code / "app.py").write_text("print('hi')\n")
    return code


def _plain() -> tuple[images.ImageProgress, io.StringIO]:
    stream = io.StringIO()
    return images.ImageProgress(stream), stream


def test_the_tag_is_the_content_of_the_context_and_the_base_image(tmp_path: Path) -> None:
    code = _code(tmp_path)
    engine = FakeDocker()
    engine.images.present["base:1"] = "sha256:" + "1" * 64
    tag = images.payload_image(engine, code, base_image="base:1").tag
    assert tag.startswith("payload-") and len(tag) == len("payload-") + 12
    int(tag.removeprefix("payload-"), 16)
    assert images.payload_image(engine, code, base_image="base:1").tag == tag
    (code / "__pycache__").mkdir()
    (code / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"junk")
    assert images.payload_image(engine, code, base_image="base:1").tag == tag
    engine.images.present["base:1"] = "sha256:" + "2" * 64  # the base was rebuilt
    rebased = images.payload_image(engine, code, base_image="base:1").tag
    assert rebased != tag
    (code / "app.py").write_text("print('changed')\n")
    assert images.payload_image(engine, code, base_image="base:1").tag not in (tag, rebased)
    (code / "app.py").write_text("print('hi')\n")
    (code / "app.py").chmod(0o755)  # the executable bit is content too
    assert images.payload_image(engine, code, base_image="base:1").tag != rebased


def test_the_worker_tag_follows_the_files_its_dockerfile_copies(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for name in WORKER_FILES:
        path = root / name
        if name in ("shepard/joblayer", "worker/shepard_worker"):
            path.mkdir(parents=True, exist_ok=True)
            (path / "mod.py").write_text("x = 1\n")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# {name}\n")
    engine = FakeDocker()
    tag = images.worker_image(engine, base_image="base:1", repo_root=root).tag
    assert tag.startswith("worker-")
    (root / "README.md").write_text("not copied into the image\n")
    assert images.worker_image(engine, base_image="base:1", repo_root=root).tag == tag
    (root / "worker" / "shepard_worker" / "mod.py").write_text("x = 2\n")
    assert images.worker_image(engine, base_image="base:1", repo_root=root).tag != tag
    (root / "worker" / "Dockerfile").unlink()
    with pytest.raises(BadInput, match=r"worker/Dockerfile missing"):
        images.worker_image(engine, repo_root=root)


def test_ecr_login_becomes_the_registry_auth_of_the_push() -> None:
    import moto

    from shepard.joblayer import calls, clients

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    try:
        with moto.mock_aws():
            login = calls.registry_login(clients.client("ecr", region="us-east-1"))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert login is not None
    registry = images.ecr_registry(REPO, login)
    assert registry.auth == {
        "username": "AWS",
        "password": login.password,
        "serveraddress": login.registry,
    }
    assert login.registry.startswith("https://") and login.password
    assert registry.uri("payload-0123456789ab") == f"{REPO}:payload-0123456789ab"
    assert registry.push and registry.label == "ECR"


def test_ecr_token_parsing() -> None:
    from shepard.joblayer.calls import registry_login

    token = base64.b64encode(b"AWS:pass:with:colons").decode()

    class Ecr:
        def get_authorization_token(self) -> dict[str, Any]:
            return {
                "authorizationData": [
                    {"authorizationToken": token, "proxyEndpoint": "https://1.dkr.ecr/x"}
                ]
            }

    login = registry_login(Ecr())
    assert login == RegistryLogin("AWS", "pass:with:colons", "https://1.dkr.ecr/x")


def test_publish_builds_and_pushes_what_the_registry_lacks_and_nothing_else(
    tmp_path: Path,
) -> None:
    engine = FakeDocker()
    registry = images.ecr_registry(REPO, LOGIN)
    payload = images.payload_image(engine, _code(tmp_path))
    progress, stream = _plain()
    first = images.publish(engine, [payload], registry, progress)
    uri = f"{REPO}:{payload.tag}"
    assert first.images == {"payload": uri}
    assert first.built == [uri] and first.pushed == [uri]
    (build,) = engine.images.builds
    assert build["tag"] == uri and build["dockerfile"] == "Dockerfile"
    assert build["pull"] is False and build["buildargs"] is None
    (pushed,) = engine.images.pushes
    assert (pushed["repository"], pushed["tag"]) == (REPO, payload.tag)
    assert pushed["auth_config"] == dict(registry.auth or {})
    assert stream.getvalue().splitlines() == [
        f"payload image {uri}: building",
        "  Step 1/2 : FROM base",
        "  Step 2/2 : COPY . /",
        f"payload image {uri}: pushing to ECR",
        "  layer l1: pushed",
        f"  {payload.tag}: digest: sha256:0 size: 529",
    ]
    progress, stream = _plain()
    again = images.publish(engine, [payload], registry, progress)
    assert again.images == first.images and again.built == [] and again.pushed == []
    assert len(engine.images.builds) == 1 and len(engine.images.pushes) == 1
    assert stream.getvalue() == f"payload image {uri}: unchanged, in ECR already\n"


def test_without_a_registry_the_images_stay_in_the_engine(tmp_path: Path) -> None:
    engine = FakeDocker()
    registry = images.local_registry("127.0.0.1:1", "flock", reachable=False)
    payload = images.payload_image(engine, _code(tmp_path), base_image="base:1")
    done = images.publish(engine, [payload], registry, _plain()[0])
    assert done.built == [f"127.0.0.1:1/flock:{payload.tag}"] and done.pushed == []
    assert engine.images.builds[0]["buildargs"] == {"BASE_IMAGE": "base:1"}
    assert engine.images.pushes == []


def test_a_refused_push_and_a_missing_dockerfile_are_messages(tmp_path: Path) -> None:
    engine = FakeDocker()
    engine.api.push_error = "denied: not authorized"
    registry = images.ecr_registry(REPO, LOGIN)
    with pytest.raises(BackendError) as info:
        images.push(engine, f"{REPO}:payload-abc", registry, lambda event: None)
    assert info.value.message.startswith(
        f"while pushing {REPO}:payload-abc to ECR: denied: not authorized. Check"
    )
    code = _code(tmp_path)
    (code / "Dockerfile").rename(code / "Dockerfile.txt")
    assert images.find_dockerfile(code) == "Dockerfile.txt"
    (code / "Dockerfile.txt").unlink()
    with pytest.raises(BadInput, match=r"no Dockerfile or Dockerfile\.txt"):
        images.find_dockerfile(code)


def test_no_docker_engine_is_a_clear_message(tmp_path: Path) -> None:
    socket = f"unix://{tmp_path}/docker.sock"
    with pytest.raises(ShepardError) as info:
        images.docker_client({"DOCKER_HOST": socket}, required=True)
    assert info.value.message == (
        f"while building the payload image: no Docker engine answers at {socket}."
        " Start Docker, or set DOCKER_HOST"
    )
    assert images.docker_client({"DOCKER_HOST": socket}, required=False) is None


def _local_flock(tmp_path: Path, extra: str = "") -> Any:
    folder = tmp_path / "setup"
    folder.mkdir(parents=True)
    text = (EXAMPLE / "flock.yaml").read_text().replace("name: testing", "name: my--flock-")
    (folder / "flock.yaml").write_text(text + extra)
    return load_flock(folder / "flock.yaml", {"SHEPARD_STATE_DIR": str(tmp_path / "state")})


def test_a_local_flock_without_an_engine_builds_nothing_and_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    flock = _local_flock(tmp_path)
    stream = io.StringIO()
    tfvars: dict[str, Any] = {}
    env = {"DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    LocalImages(stream=stream).run(flock, tfvars, env)
    assert stream.getvalue() == (
        f"images: no Docker engine answers at unix://{tmp_path}/none.sock, so none are built: "
        "the local flock runs jobs as processes\n"
    )
    assert "images" not in tfvars
    stream = io.StringIO()
    LocalImages(stream=stream).run(_local_flock(tmp_path / "p", "  runner: process\n"), {}, env)
    assert stream.getvalue() == "images: local.runner is process, so the local flock builds none\n"


def test_the_local_repository_is_named_as_terraform_names_it(tmp_path: Path) -> None:
    flock = _local_flock(tmp_path)
    assert repository_name(flock) == "my-flock"  # trim(replace(name, "/-+/", "-"), "-")
    named = _local_flock(tmp_path / "n", "ecr:\n  repo_name: team/payloads\n")
    assert repository_name(named) == "team/payloads"

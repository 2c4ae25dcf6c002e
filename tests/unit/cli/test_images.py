"""Image building and pushing for deploy, checked against a fake Docker client object."""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shepard import images
from shepard.aws.flock import RegistryLogin
from shepard.console import Console
from shepard.deploy import load_flock, target_for
from shepard.errors import BackendError, BadInput, ShepardError

REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/flock"
LOGIN = RegistryLogin("AWS", "token", "https://123456789012.dkr.ecr.us-east-1.amazonaws.com")


@dataclass
class FakeImages:
    builds: list[dict[str, Any]] = field(default_factory=list)
    pushes: list[dict[str, Any]] = field(default_factory=list)
    push_error: str | None = None

    def build(self, **kwargs: Any) -> tuple[object, list[object]]:
        self.builds.append(kwargs)
        return object(), []

    def push(self, repository: str, **kwargs: Any) -> list[dict[str, str]]:
        self.pushes.append({"repository": repository, **kwargs})
        if self.push_error:
            return [{"status": "Preparing"}, {"error": self.push_error}]
        return [{"status": "Pushed"}]


@dataclass
class FakeDocker:
    images: FakeImages = field(default_factory=FakeImages)


def _layout(tmp_path: Path, dockerfile: str = "Dockerfile") -> tuple[Path, Path]:
    code = tmp_path / "deploy" / "code"
    code.mkdir(parents=True)
    (code / dockerfile).write_text("FROM python:3.11-slim\nCOPY app.py /app.py\n")
    (code / "app.py").write_text("print('hi')\n")
    root = tmp_path / "repo"
    (root / "worker" / "shepard_worker").mkdir(parents=True)
    (root / "worker" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (root / "worker" / "shepard_worker" / "run.py").write_text("x = 1\n")
    (root / "shepard" / "joblayer").mkdir(parents=True)
    (root / "shepard" / "joblayer" / "store.py").write_text("y = 2\n")
    (root / "pyproject.toml").write_text("[project]\n")
    return code, root


def _console() -> Console:
    return Console(out=io.StringIO(), err=io.StringIO(), inp=io.StringIO())


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.txt"])
def test_build_and_push_payload_and_worker(tmp_path: Path, dockerfile: str) -> None:
    code, root = _layout(tmp_path, dockerfile)
    docker = FakeDocker()
    pushed = images.build_and_push(
        docker, code_dir=code, repository_url=REPO, login=LOGIN, console=_console(), repo_root=root
    )
    payload, worker = docker.images.builds
    assert payload["path"] == str(code) and payload["dockerfile"] == dockerfile
    assert payload["pull"] is False  # a local base image is used as it is
    assert worker["path"] == str(root) and worker["dockerfile"] == "worker/Dockerfile"
    assert pushed["payload"] == payload["tag"] and pushed["worker"] == worker["tag"]
    assert (
        pushed["payload"].startswith(f"{REPO}:payload-")
        and len(pushed["payload"]) == len(f"{REPO}:payload-") + 16
    )
    assert [(p["repository"], p["tag"]) for p in docker.images.pushes] == [
        (REPO, pushed["payload"].rsplit(":", 1)[1]),
        (REPO, pushed["worker"].rsplit(":", 1)[1]),
    ]
    assert docker.images.pushes[0]["auth_config"] == {"username": "AWS", "password": "token"}


def test_tag_follows_content(tmp_path: Path) -> None:
    code, _ = _layout(tmp_path)
    spec = images.payload_spec(code)
    first = images.image_uri(REPO, spec)
    assert images.image_uri(REPO, spec) == first  # same content, same tag
    (code / "app.py").write_text("print('changed')\n")
    assert images.image_uri(REPO, spec) != first
    (code / "__pycache__").mkdir()
    (code / "__pycache__" / "x.pyc").write_bytes(b"junk")
    second = images.image_uri(REPO, spec)
    assert images.image_uri(REPO, spec) == second


def test_missing_dockerfile_and_failed_push_are_messages(tmp_path: Path) -> None:
    code, _root = _layout(tmp_path)
    (code / "Dockerfile").unlink()
    with pytest.raises(BadInput, match=r"no Dockerfile or Dockerfile\.txt"):
        images.payload_spec(code)
    with pytest.raises(BadInput, match="worker image"):
        images.worker_spec(tmp_path / "nowhere")
    docker = FakeDocker(FakeImages(push_error="denied: not authorized"))
    with pytest.raises(BackendError, match=r"while pushing .*denied"):
        images.push(docker, f"{REPO}:payload-abc", LOGIN)


def test_no_docker_engine_is_a_clear_message(tmp_path: Path) -> None:
    socket = f"unix://{tmp_path}/docker.sock"
    with pytest.raises(ShepardError) as info:
        images.docker_client({"DOCKER_HOST": socket}, required=True)
    assert info.value.message == (
        f"while building the payload image: no Docker engine answers at {socket}."
        " Start Docker, or set DOCKER_HOST"
    )
    assert images.docker_client({"DOCKER_HOST": socket}, required=False) is None


def test_the_flock_target_decides_whether_images_need_an_engine() -> None:
    root = Path(__file__).resolve().parents[3]
    flock = load_flock(root / "examples" / "testing-setup" / "flock.yaml", {})
    assert flock.target == "local"
    assert target_for(flock, {}).needs_docker is False  # jobs run as processes without one
    assert target_for(dataclasses.replace(flock, target="aws"), {}).needs_docker is True

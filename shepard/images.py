"""Build the payload and worker images with the Docker SDK and push them to the flock's ECR.

Images are tagged by content: the hash of the build context, so an unchanged folder is not pushed
again under a new name and the job definition changes only when the code does. A base image that
is already present locally is used as it is (``pull=False``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shepard.aws.flock import RegistryLogin
from shepard.console import Console
from shepard.errors import BackendError, BadInput, ShepardError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DOCKERFILE_NAMES = ("Dockerfile", "Dockerfile.txt")
# What the worker image is built from (repo root context): the worker and the shared job layer.
WORKER_SOURCES = ("worker", "shepard/joblayer", "pyproject.toml")
_SKIP_PARTS = {"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache", ".shepard"}


@dataclass(frozen=True)
class ImageSpec:
    """One image to build: context folder, Dockerfile (relative to it) and what to hash."""

    role: str  # "payload" | "worker"
    context: Path
    dockerfile: str
    sources: tuple[Path, ...]


def docker_client(env: Mapping[str, str], *, required: bool) -> Any:
    """A client whose engine answers a ping; None (or an error if required) when none does."""
    import docker

    url = env.get("DOCKER_HOST") or DEFAULT_SOCKET
    try:
        client = docker.DockerClient(base_url=url, timeout=10)
        client.ping()
        return client
    except Exception:
        if not required:
            return None
        raise ShepardError(
            f"while building the payload image: no Docker engine answers at {url}."
            " Start Docker, or set DOCKER_HOST"
        ) from None


def _files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(
                p for p in path.rglob("*") if p.is_file() and not (_SKIP_PARTS & set(p.parts))
            )
    return sorted(set(found))


def context_hash(root: Path, sources: Iterable[Path]) -> str:
    """sha256 over (relative path, mode bit x, content) of every file: the image's tag."""
    digest = hashlib.sha256()
    for path in _files(sources):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(b"x" if path.stat().st_mode & 0o111 else b"-")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def payload_spec(code_dir: Path) -> ImageSpec:
    if not code_dir.is_dir():
        raise BadInput(
            f"while building the payload image: {code_dir} does not exist. The deployment folder"
            " needs a code/ folder with a Dockerfile."
        )
    for name in DOCKERFILE_NAMES:
        if (code_dir / name).is_file():
            return ImageSpec("payload", code_dir, name, (code_dir,))
    raise BadInput(
        f"while building the payload image: {code_dir} has no Dockerfile or Dockerfile.txt."
        " Add one."
    )


def worker_spec(repo_root: Path = REPO_ROOT) -> ImageSpec:
    dockerfile = repo_root / "worker" / "Dockerfile"
    if not dockerfile.is_file():
        raise BadInput(
            f"while building the worker image: {dockerfile} is missing. Deploy from a checkout"
            " of shepard-tf, or pass --skip_images and set images in flock.yaml."
        )
    sources = tuple(repo_root / s for s in WORKER_SOURCES)
    return ImageSpec("worker", repo_root, "worker/Dockerfile", sources)


def image_uri(repository_url: str, spec: ImageSpec) -> tuple[str, str]:
    tag = f"{spec.role}-{context_hash(spec.context, spec.sources)[:16]}"
    return f"{repository_url}:{tag}", tag


def build(client: Any, spec: ImageSpec, uri: str) -> None:
    import docker

    try:
        client.images.build(
            path=str(spec.context), dockerfile=spec.dockerfile, tag=uri, pull=False, rm=True
        )
    except docker.errors.BuildError as exc:
        tail = "\n".join(
            str(line.get("stream") or line.get("error") or "").rstrip()
            for line in list(exc.build_log)[-8:]
            if isinstance(line, dict)
        )
        raise BadInput(
            f"while building the {spec.role} image from {spec.context / spec.dockerfile}:"
            f" {exc.msg}. Fix the Dockerfile; the build ended with:\n{tail}"
        ) from None
    except docker.errors.APIError as exc:
        raise BackendError(
            f"while building the {spec.role} image: the Docker engine said {exc}. Check Docker."
        ) from None


def push(client: Any, uri: str, login: RegistryLogin) -> None:
    repository, _, tag = uri.rpartition(":")
    auth = {"username": login.username, "password": login.password}
    try:
        for line in client.images.push(
            repository, tag=tag, auth_config=auth, stream=True, decode=True
        ):
            if isinstance(line, dict) and line.get("error"):
                raise BackendError(
                    f"while pushing {uri}: {line['error']}. Check the ECR repository and that"
                    " your credentials may push to it."
                )
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(f"while pushing {uri}: {exc}. Check Docker and ECR.") from None


def build_and_push(
    client: Any,
    *,
    code_dir: Path,
    repository_url: str,
    login: RegistryLogin,
    console: Console,
    repo_root: Path = REPO_ROOT,
) -> dict[str, str]:
    """Build and push the payload and worker images; return ``{"payload": uri, "worker": uri}``."""
    pushed: dict[str, str] = {}
    for spec in (payload_spec(code_dir), worker_spec(repo_root)):
        uri, _tag = image_uri(repository_url, spec)
        console.note(f"building the {spec.role} image {uri}")
        build(client, spec, uri)
        console.note(f"pushing {uri}")
        push(client, uri, login)
        pushed[spec.role] = uri
    return pushed

"""Build the payload and worker images with the Docker SDK and push them to the flock's registry.

One path for every registry: :func:`publish` takes the images to make and a :class:`Registry`
(a repository URL and the login it needs) and, for each image, asks the registry for its tag
first. A tag is the hash of the image's content (its build context and the id of its base
image), so an image the registry holds already is neither built nor pushed again: a second
deploy of unchanged code does nothing. On AWS the registry is the flock's ECR repository, logged
in with ``ecr:GetAuthorizationToken`` (:func:`ecr_registry`); a local flock pushes to the local
registry that stands in for ECR (:func:`local_registry`, no login).

Build and push show progress (:class:`ImageProgress`): a rich display on a terminal, plain lines
(the build's steps, each layer pushed) in logs and pipes.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from shepard.errors import BackendError, BadInput, ShepardError
from shepard.joblayer.calls import RegistryLogin
from shepard.worker_image import REPO_ROOT, WORKER_FILES, build_worker_image, docker_build

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DOCKERFILE_NAMES = ("Dockerfile", "Dockerfile.txt")
TAG_HEX = 12  # `payload-<12 hex>`: 48 bits of the content hash
# What worker/Dockerfile starts from when no base is given (its BASE_IMAGE default).
WORKER_DEFAULT_BASE = "python:3.12-slim"
# The local flock: its registry (standing in for ECR) and its offline base image.
LOCAL_REGISTRY = "127.0.0.1:5000"
REGISTRY_VARIABLE = "SHEPARD_REGISTRY"
LOCAL_BASE_IMAGE = "shepard-base:bookworm"
BASE_IMAGE_VARIABLE = "SHEPARD_BASE_IMAGE"
_SKIP_PARTS = {"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache", ".shepard"}
_STEP = re.compile(r"^Step (\d+)/(\d+) :")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

Progress = Callable[[str], None]


# -- the engine ---------------------------------------------------------------------------------


def docker_client(env: Mapping[str, str], *, required: bool) -> Any:
    """A client whose engine answers a ping; None (or an error if required) when none does."""
    import docker

    url = engine_url(env)
    try:
        client = docker.DockerClient(base_url=url, timeout=120)
        client.ping()
        return client
    except Exception:
        if not required:
            return None
        raise ShepardError(
            f"while building the payload image: no Docker engine answers at {url}."
            " Start Docker, or set DOCKER_HOST"
        ) from None


def engine_url(env: Mapping[str, str]) -> str:
    return env.get("DOCKER_HOST") or DEFAULT_SOCKET


def image_id(client: Any, name: str) -> str | None:
    """The id of ``name`` in the engine, None when it is not there."""
    import docker

    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        return None


# -- registries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    """Where images go: ``repository`` (``host[:port]/name``) and the login it needs."""

    repository: str
    auth: Mapping[str, str] | None = None
    label: str = "the registry"  # for messages: "ECR", "the local registry"
    push: bool = True  # False: no registry answers; the images stay in this engine

    def uri(self, tag: str) -> str:
        return f"{self.repository}:{tag}"


def ecr_registry(repository_url: str, login: RegistryLogin) -> Registry:
    """The flock's ECR repository, with the login of ``ecr:GetAuthorizationToken``."""
    auth = {
        "username": login.username,
        "password": login.password,
        "serveraddress": login.registry,
    }
    return Registry(repository_url, auth, "ECR")


def registry_address(env: Mapping[str, str]) -> str:
    return env.get(REGISTRY_VARIABLE) or LOCAL_REGISTRY


def registry_answers(address: str, timeout: float = 3.0) -> bool:
    """True when a registry (Docker's distribution API v2) answers at ``address``."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=timeout):
            return True
    except urllib.error.HTTPError as error:
        return error.code == 401  # a registry that wants a login still answers
    except OSError:
        return False


def local_registry(address: str, repository_name: str, *, reachable: bool = True) -> Registry:
    """The local registry standing in for ECR: no login. Unreachable: images stay local."""
    return Registry(f"{address}/{repository_name}", None, "the local registry", reachable)


def in_registry(client: Any, registry: Registry, uri: str) -> bool:
    """Whether the registry holds ``uri`` (asked through the engine, with the login); without
    a registry to push to, whether the engine holds it."""
    import docker

    if not registry.push:
        return image_id(client, uri) is not None
    try:
        client.api.inspect_distribution(uri, auth_config=dict(registry.auth or {}) or None)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as error:
        if error.status_code in (401, 403):
            raise BackendError(
                f"while looking for {uri} in {registry.label}: {error.explanation}. Check that "
                "your credentials may read and push to the repository."
            ) from None
        return False  # anything else: build and push, which say what is wrong
    return True


# -- content tags -------------------------------------------------------------------------------


def _files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(
                p
                for p in path.rglob("*")
                if p.is_file() and not (_SKIP_PARTS & set(p.parts)) and p.suffix != ".pyc"
            )
    return sorted(set(found))


def context_hash(root: Path, sources: Iterable[Path]) -> str:
    """sha256 over (relative path, mode bit x, content) of every file under ``sources``."""
    digest = hashlib.sha256()
    for path in _files(sources):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(b"x" if path.stat().st_mode & 0o111 else b"-")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def content_tag(role: str, context: str, base: str) -> str:
    """``<role>-<12 hex>``: the hash of the build context's hash and the base image's id."""
    digest = hashlib.sha256(f"{context}\0{base}".encode()).hexdigest()
    return f"{role}-{digest[:TAG_HEX]}"


def _base_identity(client: Any, base_image: str | None) -> str:
    """The base image's id when the engine has it, else its name (it will be pulled)."""
    if not base_image:
        return ""
    return image_id(client, base_image) or base_image


# -- the images ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """One image to make: its role, its content tag, and how to build it as a given URI."""

    role: str  # "payload" | "worker"
    tag: str
    build: Callable[[str, Progress], None]


def find_dockerfile(code_dir: Path) -> str:
    if not code_dir.is_dir():
        raise BadInput(
            f"while building the payload image: {code_dir} does not exist. The deployment folder"
            " needs a code/ folder with a Dockerfile."
        )
    for name in DOCKERFILE_NAMES:
        if (code_dir / name).is_file():
            return name
    raise BadInput(
        f"while building the payload image: {code_dir} has no Dockerfile or Dockerfile.txt."
        " Add one."
    )


def payload_image(client: Any, code_dir: Path, *, base_image: str | None = None) -> Image:
    """The payload image of ``code_dir``; ``base_image`` goes to the build argument BASE_IMAGE
    (the local flock's offline base; None: the Dockerfile's own FROM)."""
    dockerfile = find_dockerfile(code_dir)
    tag = content_tag(
        "payload", context_hash(code_dir, [code_dir]), _base_identity(client, base_image)
    )

    def build(uri: str, progress: Progress) -> None:
        build_payload(client, code_dir, dockerfile, uri, base_image=base_image, progress=progress)

    return Image("payload", tag, build)


def worker_image(
    client: Any, *, base_image: str | None = None, repo_root: Path = REPO_ROOT
) -> Image:
    """The worker image (worker/Dockerfile through :func:`build_worker_image`)."""
    base = base_image or WORKER_DEFAULT_BASE
    sources = [repo_root / name for name in WORKER_FILES]
    missing = [str(path) for path in sources if not path.exists()]
    if missing:
        raise BadInput(
            f"while building the worker image: {', '.join(missing)} missing. Deploy from a "
            "checkout of shepard-tf, or pass --skip_images and set images in flock.yaml."
        )
    tag = content_tag("worker", context_hash(repo_root, sources), _base_identity(client, base))

    def build(uri: str, progress: Progress) -> None:
        build_worker_image(client, base_image=base, tag=uri, progress=progress, repo_root=repo_root)

    return Image("worker", tag, build)


def build_payload(
    client: Any,
    code_dir: Path,
    dockerfile: str,
    uri: str,
    *,
    base_image: str | None,
    progress: Progress,
) -> None:
    """``docker build`` of the code folder as ``uri``, its output streamed to ``progress``."""
    docker_build(
        client,
        path=code_dir,
        dockerfile=dockerfile,
        tag=uri,
        buildargs={"BASE_IMAGE": base_image} if base_image else None,
        progress=progress,
        doing=f"building the payload image from {code_dir / dockerfile}",
        fix="Fix the Dockerfile",
    )


def push(
    client: Any, uri: str, registry: Registry, on_event: Callable[[dict[str, Any]], None]
) -> None:
    """Push ``uri`` to ``registry`` with its login; every status the engine sends goes to
    ``on_event``. The same call for ECR and the local registry."""
    repository, _, tag = uri.rpartition(":")
    try:
        for event in client.api.push(
            repository,
            tag=tag,
            auth_config=dict(registry.auth or {}) or None,
            stream=True,
            decode=True,
        ):
            if not isinstance(event, dict):
                continue
            if event.get("error"):
                raise BackendError(
                    f"while pushing {uri} to {registry.label}: {str(event['error']).strip()}. "
                    "Check the repository and that your credentials may push to it."
                )
            on_event(event)
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(
            f"while pushing {uri} to {registry.label}: {exc}. Check Docker and the registry."
        ) from None


@dataclass
class Published:
    """What :func:`publish` did: the URI of each image, and which were built and pushed."""

    images: dict[str, str] = field(default_factory=dict)
    built: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)


def publish(
    client: Any, images: Sequence[Image], registry: Registry, progress: ImageProgress
) -> Published:
    """Make each image present in ``registry`` under its content tag: an image the registry
    holds already is left alone; any other is built and pushed."""
    done = Published()
    for image in images:
        uri = registry.uri(image.tag)
        done.images[image.role] = uri
        if in_registry(client, registry, uri):
            where = registry.label if registry.push else "this Docker engine"
            progress.note(f"{image.role} image {uri}: unchanged, in {where} already")
            continue
        with progress.building(image.role, uri) as on_line:
            image.build(uri, on_line)
        done.built.append(uri)
        if registry.push:
            with progress.pushing(image.role, uri, registry.label) as on_event:
                push(client, uri, registry, on_event)
            done.pushed.append(uri)
    return done


def _short(line: str, width: int = 100) -> str:
    """A build step on one line: runs of spaces folded, long ones cut."""
    line = " ".join(line.split())
    return line if len(line) <= width else line[: width - 3] + "..."


# -- progress -----------------------------------------------------------------------------------


class _Plain(AbstractContextManager[Any]):
    def __init__(self, enter: Any, exit_note: Callable[[], None] | None = None) -> None:
        self._enter, self._exit_note = enter, exit_note

    def __enter__(self) -> Any:
        return self._enter

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None and self._exit_note is not None:
            self._exit_note()


@dataclass
class ImageProgress:
    """Build and push progress: a rich bar on a terminal (build steps, bytes pushed); plain
    lines otherwise (each build step, each layer pushed, the digest)."""

    stream: IO[str] = field(default_factory=lambda: sys.stderr)
    rich: bool = False

    @classmethod
    def for_stream(cls, stream: IO[str], env: Mapping[str, str]) -> ImageProgress:
        from shepard.tf.progress import wants_rich

        return cls(stream, wants_rich(stream, env))

    def note(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def building(self, role: str, uri: str) -> AbstractContextManager[Progress]:
        self.note(f"{role} image {uri}: building")
        if self.rich:
            return self._rich_build(role)

        def on_line(line: str) -> None:
            if _STEP.match(line) or line.startswith("worker image:"):
                self.note(f"  {_short(line)}")

        return _Plain(on_line)

    def pushing(
        self, role: str, uri: str, label: str
    ) -> AbstractContextManager[Callable[[dict[str, Any]], None]]:
        self.note(f"{role} image {uri}: pushing to {label}")
        if self.rich:
            return self._rich_push(role)
        layers: dict[str, str] = {}

        def on_event(event: dict[str, Any]) -> None:
            status, layer = str(event.get("status") or ""), str(event.get("id") or "")
            if layer and (status in ("Pushed", "Layer already exists") or "Mounted" in status):
                if layers.get(layer) != status:
                    layers[layer] = status
                    self.note(f"  layer {layer}: {status.lower()}")
            elif status.startswith(f"{uri.rpartition(':')[2]}: digest:"):
                self.note(f"  {status}")

        return _Plain(on_event)

    # rich: one bar per step of the build, one of bytes for the push
    def _bar(self, columns: Sequence[Any]) -> Any:
        from rich.console import Console as RichConsole
        from rich.progress import Progress as RichProgress

        console = RichConsole(file=self.stream, highlight=False, soft_wrap=False)
        return RichProgress(*columns, console=console, transient=False)

    def _rich_build(self, role: str) -> AbstractContextManager[Progress]:
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn

        bar = self._bar(
            [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
        )
        return _RichSession(bar, f"building the {role} image", _build_updater)

    def _rich_push(self, role: str) -> AbstractContextManager[Callable[[dict[str, Any]], None]]:
        from rich.progress import BarColumn, DownloadColumn, TextColumn, TransferSpeedColumn

        bar = self._bar(
            [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn()]
        )
        return _RichSession(bar, f"pushing the {role} image", _push_updater)


def _build_updater(bar: Any, task: Any) -> Progress:
    def on_line(line: str) -> None:
        step = _STEP.match(line)
        if step:
            bar.update(task, completed=int(step.group(1)) - 1, total=int(step.group(2)))
            bar.console.print(f"  {_short(line)}", highlight=False, markup=False)

    return on_line


def _push_updater(bar: Any, task: Any) -> Callable[[dict[str, Any]], None]:
    layers: dict[str, tuple[int, int]] = {}

    def on_event(event: dict[str, Any]) -> None:
        layer, detail = str(event.get("id") or ""), event.get("progressDetail") or {}
        status = str(event.get("status") or "")
        if not layer:
            return
        done, total = layers.get(layer, (0, 0))
        if isinstance(detail, dict) and detail.get("total"):
            done, total = int(detail.get("current") or 0), int(detail["total"])
        elif status in ("Pushed", "Layer already exists") or "Mounted" in status:
            done = total
        layers[layer] = (done, total)
        bar.update(
            task,
            completed=sum(d for d, _ in layers.values()),
            total=sum(t for _, t in layers.values()) or None,
        )

    return on_event


class _RichSession(AbstractContextManager[Any]):
    def __init__(self, bar: Any, description: str, updater: Callable[[Any, Any], Any]) -> None:
        self._bar, self._description, self._updater = bar, description, updater

    def __enter__(self) -> Any:
        self._bar.start()
        task = self._bar.add_task(self._description, total=None)
        self._task = task
        return self._updater(self._bar, task)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            total = self._bar.tasks[0].total
            self._bar.update(self._task, completed=total or 1, total=total or 1)
        self._bar.stop()

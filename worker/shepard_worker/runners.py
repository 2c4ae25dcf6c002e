"""How the payload runs: a sibling Docker container on Batch, or a process for the local flock.

Both take the same :class:`RunSpec` (the image or the command, the environment, the folders, the
open-files limit, where the log goes) and return a :class:`RunResult`. ``stop()`` may be called
from a signal handler while ``run()`` is streaming the log: it asks the payload to end, then kills
it after a grace period, and ``run()`` returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import os
import re
import resource
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from shepard.errors import BackendError, ShepardError

DOCKER_SOCKET = "/var/run/docker.sock"
_ECR = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"
    r"(?P<repository>[a-z0-9][a-z0-9._/-]*?)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?$"
)
_MAX_LINE = 64 * 1024
# `shepard-tf deploy` tags the payload images it pushes `payload-<hash>` (shepard/images.py) in
# the flock's repository, which also holds the worker's `worker-<hash>` images.
PAYLOAD_TAG_PREFIX = "payload-"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
OUT_OF_MEMORY = "out of memory"
DISK_FULL = "the disk is full (No space left on device)"
_ENOSPC = "no space left on device"  # strerror(ENOSPC), in any tool's message

LogSink = Callable[[str], None]


@dataclass(frozen=True)
class Mount:
    """A host folder mounted at the same path in the payload (``read_only`` for the FS roots)."""

    path: Path
    read_only: bool = False


@dataclass(frozen=True)
class RunSpec:
    env: dict[str, str]
    mounts: tuple[Mount, ...]
    ulimit_nofile: int
    log: LogSink
    image: str | None = None
    command: tuple[str, ...] | None = None  # None: the image's own command
    workdir: Path | None = None  # None: the image's own working directory
    allow_docker_daemon: bool = False
    user: str | None = None  # "uid:gid" for the payload container; None: the image's own user
    cpus: float | None = None  # the job's vCPUs (None: no limit)
    memory_mib: int | None = None  # the job's memory (None: no limit)
    gpu_ids: tuple[str, ...] = ()  # the GPUs Batch gave the job (empty: every GPU)
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    reason: str = ""  # why it ended, when not a plain exit (a signal, out of memory)
    stopped: bool = False  # stop() ended it


def disk_full(mounts: Iterable[Mount]) -> bool:
    """Whether a folder the payload may write to has no space left (read on the worker's side,
    which sees the same paths)."""
    for mount in mounts:
        if mount.read_only:
            continue
        with contextlib.suppress(OSError):
            if os.statvfs(mount.path).f_bavail == 0:
                return True
    return False


class _WatchedLog:
    """The job's log, noting whether the payload said its disk was full (ENOSPC)."""

    def __init__(self, log: LogSink) -> None:
        self._log = log
        self.no_space = False

    def __call__(self, line: str) -> None:
        if not self.no_space and _ENOSPC in line.lower():
            self.no_space = True
        self._log(line)


def failure_reason(code: int, *, oom_killed: bool, no_space: bool, engine_message: str) -> str:
    """Why a payload ended with ``code`` (empty for a plain exit): out of memory (the engine's
    OOMKilled), a full disk (ENOSPC in its output, or no space left in its folders), or what
    the engine said."""
    if oom_killed:
        return OUT_OF_MEMORY
    if code != 0 and no_space:
        return DISK_FULL
    return engine_message


class Runner(Protocol):
    def run(self, spec: RunSpec) -> RunResult: ...

    def stop(self, grace_seconds: float) -> None: ...


def _stream_lines(chunks: Iterable[bytes], log: LogSink) -> None:
    """Split a byte stream into lines for the log, without holding more than one line."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        while True:
            newline = pending.find(b"\n")
            if newline < 0:
                if len(pending) > _MAX_LINE:
                    log(pending.decode("utf-8", "replace"))
                    pending = b""
                break
            log(pending[:newline].rstrip(b"\r").decode("utf-8", "replace"))
            pending = pending[newline + 1 :]
    if pending:
        log(pending.decode("utf-8", "replace"))


def _read_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read1(_MAX_LINE):  # type: ignore[attr-defined]
        yield chunk


# --------------------------------------------------------------------------------------------
# Process runner (local flock, tests)


def nofile_limit(wanted: int) -> tuple[int, int]:
    """``(soft, hard)`` for RLIMIT_NOFILE: ``wanted``, capped at this process's hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    return soft, hard


def _prepare_child(limits: tuple[int, int]) -> None:
    """In the payload process before exec: its open-files limit, and death with the worker."""
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)
    # If the worker itself is killed (SIGKILL), the payload must not live on as an orphan.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ProcessRunner:
    """Runs the payload command as a child process in its own process group."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def run(self, spec: RunSpec) -> RunResult:
        if not spec.command:
            raise BackendError(
                "while starting the payload: the process runner has no command. "
                "Set SHEPARD_PAYLOAD_COMMAND to a JSON list, or use QUICK_DEPLOY_DIRECTORY."
            )
        limits = nofile_limit(spec.ulimit_nofile)
        with self._lock:
            if self._stopped:
                return RunResult(128 + signal.SIGTERM, "stopped before it started", True)
        try:
            process = subprocess.Popen(
                list(spec.command),
                env=spec.env,
                cwd=spec.workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: _prepare_child(limits),
            )
        except OSError as error:
            return RunResult(127, f"could not start {spec.command[0]!r}: {error.strerror}")
        with self._lock:
            self._process = process
            stopped_early = self._stopped
        if stopped_early:  # stop() came while the process was starting
            self._signal(signal.SIGTERM)
        assert process.stdout is not None
        log = _WatchedLog(spec.log)
        try:
            _stream_lines(_read_chunks(process.stdout), log)
        except BaseException:
            self._signal(signal.SIGKILL)  # the worker is failing: the payload must not outlive it
            raise
        finally:
            code = process.wait()
            process.stdout.close()
            with self._lock:
                self._process = None
        if code < 0:
            return RunResult(128 - code, f"killed by signal {-code}", self._stopped)
        no_space = log.no_space or (code != 0 and disk_full(spec.mounts))
        reason = failure_reason(code, oom_killed=False, no_space=no_space, engine_message="")
        return RunResult(code, reason, self._stopped)

    def _signal(self, signum: int) -> None:
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)

    def stop(self, grace_seconds: float) -> None:
        with self._lock:
            self._stopped = True
        self._signal(signal.SIGTERM)
        timer = threading.Timer(grace_seconds, self._signal, args=(signal.SIGKILL,))
        timer.daemon = True
        timer.start()


# --------------------------------------------------------------------------------------------
# Docker runner (Batch)


def has_gpus() -> bool:
    """GPUs are there when ``nvidia-smi`` is (the GPU AMI puts it on the worker's PATH)."""
    return shutil.which("nvidia-smi") is not None


def loopback_credentials(env: Mapping[str, str]) -> bool:
    """Whether the job role's credentials endpoint is on the host's loopback interface
    (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` at 127.0.0.1: the local flock's endpoint, which
    boto3 accepts over http only on a loopback address or ECS's own)."""
    uri = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
    try:
        host = urlsplit(uri).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def payload_network(env: Mapping[str, str]) -> str:
    """``bridge`` (Batch), or ``host`` when the credentials endpoint is on the host's loopback
    (the local flock): a bridge container could not reach it."""
    return "host" if loopback_credentials(env) else "bridge"


def container_spec(spec: RunSpec, *, gpus: bool) -> dict[str, Any]:
    """The keyword arguments of ``docker.containers.create`` for this payload (pure)."""
    from docker.types import DeviceRequest, Ulimit

    volumes: dict[str, dict[str, str]] = {
        str(m.path): {"bind": str(m.path), "mode": "ro" if m.read_only else "rw"}
        for m in spec.mounts
    }
    if spec.allow_docker_daemon:
        volumes[DOCKER_SOCKET] = {"bind": DOCKER_SOCKET, "mode": "rw"}
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "environment": dict(spec.env),
        "volumes": volumes,
        "ulimits": [Ulimit(name="nofile", soft=spec.ulimit_nofile, hard=spec.ulimit_nofile)],
        "privileged": spec.allow_docker_daemon,
        "init": True,  # signals reach the payload, zombies are reaped
        # Docker's default bridge, never the host's network (where Batch runs the worker): with
        # the launch template's IMDS hop limit of 1 a bridge container cannot reach the instance
        # metadata service (the instance role), while the ECS agent's NAT rule for 169.254.170.2
        # (PREROUTING, docker0) still takes it to the job role's credentials endpoint. The one
        # exception is a credentials endpoint on the host's loopback (the local flock, no IMDS):
        # only the host's network reaches it (worker/README.md).
        "network_mode": payload_network(spec.env),
        "labels": {"shepard": "payload", **spec.labels},
    }
    if spec.command is not None:
        kwargs["command"] = list(spec.command)
    if spec.workdir is not None:
        kwargs["working_dir"] = str(spec.workdir)
    if spec.name is not None:
        kwargs["name"] = spec.name
    if spec.user is not None:
        kwargs["user"] = spec.user
    if spec.cpus:
        kwargs["nano_cpus"] = int(spec.cpus * 1_000_000_000)
    if spec.memory_mib:
        kwargs["mem_limit"] = f"{spec.memory_mib}m"
    if gpus:
        request = (
            DeviceRequest(device_ids=list(spec.gpu_ids), capabilities=[["gpu"]])
            if spec.gpu_ids
            else DeviceRequest(count=-1, capabilities=[["gpu"]])
        )
        kwargs["device_requests"] = [request]
    return kwargs


def ecr_registry_id(image: str) -> str | None:
    """The account id of an ECR image reference, or None for any other registry."""
    match = _ECR.match(image.split("@", 1)[0])
    return match.group("account") if match else None


@dataclass(frozen=True)
class EcrImage:
    registry_id: str
    repository: str
    tag: str


def ecr_tagged_image(image: str) -> EcrImage | None:
    """An ECR reference by tag (``<account>.dkr.ecr.<region>.amazonaws.com/<repo>[:tag]``)."""
    match = _ECR.match(image) if "@" not in image else None
    if match is None:
        return None
    return EcrImage(
        match.group("account"), match.group("repository"), match.group("tag") or "latest"
    )


def split_reference(image: str) -> tuple[str, str | None]:
    """``(repository, tag)`` of an image reference (tag None when pinned by digest or absent)."""
    if "@" in image:
        return image.split("@", 1)[0], None
    repository, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:  # "host:5000/name" has a port, not a tag
        return image, None
    return repository, tag


@dataclass(frozen=True)
class LocalImage:
    """An image on this instance: its id and its ``repository:tag`` names."""

    id: str
    tags: tuple[str, ...]


def images_to_prune(
    current: str,
    current_id: str,
    images: Iterable[LocalImage],
    in_use: Collection[str],
    replaced: Collection[str] = (),
) -> list[LocalImage]:
    """The old payload images of the current image's repository that may go (pure).

    An image goes when it is not the current payload image, no container (running, stopped or
    just created by another job) uses it, and every name it has is ``<repository>:payload-*``
    (so the worker's images and any other repository's are never touched); an image with no
    name goes only when this worker replaced it because its tag moved (``replaced``).
    """
    repository, _ = split_reference(current)
    prefix = f"{repository}:{PAYLOAD_TAG_PREFIX}"
    chosen = []
    for image in images:
        if image.id == current_id or image.id in in_use:
            continue
        if not all(tag.startswith(prefix) for tag in image.tags):
            continue
        if image.tags or image.id in replaced:
            chosen.append(image)
    return chosen


class DockerRunner:
    """Starts the payload image as a sibling container through the host's Docker socket."""

    def __init__(
        self,
        client: Any,
        *,
        lock_path: Path,
        ecr_login: Callable[[str], tuple[str, str, str]] | None = None,
        ecr_digest: Callable[[EcrImage], str | None] | None = None,
        gpus: bool | None = None,
    ) -> None:
        self._client = client
        self._lock_path = lock_path
        self._ecr_login = ecr_login
        self._ecr_digest = ecr_digest
        self._gpus = has_gpus() if gpus is None else gpus
        self._container: Any = None
        self._stopped = False
        self._guard = threading.Lock()
        self._replaced: set[str] = set()  # ids of images whose tag moved to a newer image

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **kwargs: Any) -> DockerRunner:
        """A runner on the engine that ``DOCKER_HOST`` (default: the local socket) names."""
        import docker

        try:
            client = docker.from_env(environment=dict(environ))
        except docker.errors.DockerException as error:
            raise BackendError(
                f"while connecting to the Docker engine: {error}. Mount the host's "
                f"{DOCKER_SOCKET} into the worker container (the job definition does)."
            ) from error
        return cls(client, **kwargs)

    def _is_current(self, image: str, log: LogSink) -> bool:
        """Whether the instance has ``image``, and (for an ECR tag) the digest the tag names now."""
        import docker

        try:
            local = self._client.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        tagged = ecr_tagged_image(image)
        if tagged is None or self._ecr_digest is None:
            return True
        # A tag such as payload-latest moves with every deploy: compare digests, not names.
        try:
            digest = self._ecr_digest(tagged)
        except ShepardError as error:
            log(f"shepard: using the cached {image}: {error.message}")
            return True
        repo_digests = (getattr(local, "attrs", None) or {}).get("RepoDigests") or []
        if digest is None or any(str(d).endswith(f"@{digest}") for d in repo_digests):
            return True
        log(f"shepard: {image} now names {digest}; the cached image is older")
        if getattr(local, "id", None):
            self._replaced.add(str(local.id))
        return False

    @contextlib.contextmanager
    def _images_locked(self) -> Iterator[None]:
        """The instance's image lock (a file in /mnt/root, shared by every job's worker): pulls,
        container creation and pruning never overlap, so no image is removed between another
        job's pull and the creation of its container."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def ensure_image(self, image: str, log: LogSink) -> None:
        """Pull the image once per instance (and again when its ECR tag moved): under a lock
        file, so that jobs starting together on one instance pull it once."""
        with self._images_locked():
            self._ensure_image(image, log)

    def _ensure_image(self, image: str, log: LogSink) -> None:
        import docker

        if self._is_current(image, log):
            log(f"shepard: image {image} is cached on this instance")
            return
        auth: dict[str, str] | None = None
        registry = ecr_registry_id(image)
        if registry is not None and self._ecr_login is not None:
            username, password, _ = self._ecr_login(registry)
            auth = {"username": username, "password": password}
        log(f"shepard: pulling {image}")
        try:
            self._client.images.pull(image, auth_config=auth)
        except docker.errors.APIError as error:
            raise BackendError(
                f"while pulling the payload image {image}: {error}. Check that `shepard-tf "
                "deploy` pushed it and that the job role may pull from the flock's ECR repository."
            ) from error

    def prune_images(self, image: str, log: LogSink) -> list[str]:
        """Remove the old payload images of ``image``'s repository (``images_to_prune``) and
        return their names. Best effort: an image Docker refuses to remove stays, and no error
        reaches the job."""
        import docker

        removed: list[str] = []
        try:
            with self._images_locked():
                repository, _ = split_reference(image)
                current_id = str(self._client.images.get(image).id)
                local = [
                    LocalImage(str(found.id), tuple(found.tags))
                    for found in self._client.images.list(name=repository)
                ]
                in_use = {
                    str(c.attrs.get("ImageID") or c.attrs.get("Image") or "")
                    for c in self._client.containers.list(all=True, sparse=True)
                }
                for old in images_to_prune(image, current_id, local, in_use, self._replaced):
                    try:
                        # By name: the last name removed deletes the image (removing by id
                        # would need force for an image with several names).
                        for name in old.tags or (old.id,):
                            self._client.images.remove(name)
                    except docker.errors.APIError as error:
                        log(f"shepard: kept the old payload image {old.id[:19]}: {error}")
                        continue
                    self._replaced.discard(old.id)
                    removed.append(", ".join(old.tags) or old.id)
        except Exception as error:  # best effort: pruning must never fail a finished job
            log(f"shepard: could not prune old payload images (the job is not affected): {error}")
        if removed:
            log(f"shepard: removed old payload images: {'; '.join(removed)}")
        return removed

    def run(self, spec: RunSpec) -> RunResult:
        import docker

        if not spec.image:
            raise BackendError(
                "while starting the payload: the docker runner has no image. "
                "Set SHEPARD_PAYLOAD_IMAGE in the job definition."
            )
        kwargs = container_spec(spec, gpus=self._gpus)
        with self._images_locked():
            self._ensure_image(spec.image, spec.log)
            try:
                container = self._client.containers.create(**kwargs)
            except docker.errors.APIError as error:
                raise BackendError(
                    f"while creating the payload container from {spec.image}: {error}. "
                    "Check the image and the Docker engine's log."
                ) from error
        with self._guard:
            self._container = container
            stopped_early = self._stopped
        try:
            if stopped_early:
                return RunResult(143, "stopped before it started", True)
            try:
                container.start()
            except docker.errors.APIError as error:
                raise BackendError(
                    f"while starting the payload container from {spec.image}: "
                    f"{getattr(error, 'explanation', None) or error}. Check the job's settings "
                    "(its nofile limit, memory and command) and the Docker engine's log."
                ) from error
            log = _WatchedLog(spec.log)
            _stream_lines(container.logs(stream=True, follow=True), log)
            status = container.wait()
            code = int(status.get("StatusCode", 1))
            container.reload()
            state = getattr(container, "attrs", {}).get("State", {})
            reason = failure_reason(
                code,
                oom_killed=bool(state.get("OOMKilled")),
                no_space=log.no_space or (code != 0 and disk_full(spec.mounts)),
                engine_message=str((status.get("Error") or {}).get("Message") or ""),
            )
            return RunResult(code, reason, self._stopped)
        finally:
            with self._guard:
                self._container = None
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
            if not self._stopped:  # a stopping worker has seconds left, not time to prune
                self.prune_images(spec.image, spec.log)

    def stop(self, grace_seconds: float) -> None:
        with self._guard:
            self._stopped = True
            container = self._container
        if container is None:
            return

        def _stop() -> None:
            import docker

            with contextlib.suppress(docker.errors.APIError):
                container.stop(timeout=max(int(grace_seconds), 1))

        threading.Thread(target=_stop, daemon=True).start()

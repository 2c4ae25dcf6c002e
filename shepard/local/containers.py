"""The local flock's docker mode: each job's worker runs as a container, as Batch runs it.

On a sheep, ECS starts the job definition's image (the worker) on the host's network with the
host's Docker socket and the ``/mnt/root`` (and ``/mnt/efs``) folders bind-mounted, the job
definition's environment plus the job's overrides, the job's vCPUs and memory as its limits, and
the job role's credentials endpoint; the worker then pulls the payload image and runs it as a
sibling container. :class:`DockerJobs` does the same here:

- the image is the job definition's ``containerProperties.image``, resolved from the job's own
  ``jobDefinition`` (``DescribeJobs`` -> ``DescribeJobDefinitions``), pulled when missing;
- the work root (``<state>/local/work``) and the EFS folder are bind-mounted at the SAME paths on
  both sides, so the paths the worker hands the payload container are valid on the host;
- the worker gets the emulator's endpoint and keys (for itself) and, from one
  :class:`~shepard.local.credentials.CredentialsServer` per flock, the job role's credentials
  endpoint, which is all of AWS the payload gets;
- ``ULIMIT_FILENO`` is capped to what the engine allows (read once, from a probe container), and
  the job's log says so;
- the worker container's output goes to ``jobs/<job id>.log``; afterwards its exit code and
  ``OOMKilled`` are read and it is removed.

A worker container that cannot be pulled, created or started never runs the worker, so the
job would stay queued: the failure is recorded through :class:`~shepard.joblayer.store.JobStore`
instead (claimed, then finished ``failed`` with the engine's error as its reason), as the worker
would have recorded it.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shepard.errors import BackendError, ShepardError
from shepard.joblayer import contract as c

log = logging.getLogger(__name__)

DOCKER_SOCKET = "/var/run/docker.sock"
# The worker's switch (worker/shepard_worker/settings.py): the local flock's EFS folder is a
# plain folder, not an nfs4 mount, so the worker must not refuse it.
CHECK_MOUNTS = c.CHECK_MOUNTS
# What of the service's AWS environment the WORKER gets (never the payload: the worker hands it
# only the job role's credentials endpoint and the region).
WORKER_AWS = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)
DEFAULT_NOFILE = 1048576
NOT_READY_RECHECK_SECONDS = 30.0
STOP_GRACE_SECONDS = 10


@dataclass(frozen=True)
class JobDefinition:
    """What Batch reads from a job definition to start its container."""

    arn: str
    image: str
    environment: dict[str, str]
    job_role_arn: str | None
    vcpus: float | None
    memory_mib: int | None
    nofile: int | None

    @classmethod
    def from_described(cls, described: Mapping[str, Any]) -> JobDefinition:
        props = described.get("containerProperties") or {}
        requirements = _requirements(props)
        nofile = None
        for limit in props.get("ulimits") or []:
            if limit.get("name") == "nofile":
                nofile = int(limit.get("hardLimit") or limit.get("softLimit") or 0) or None
        return cls(
            arn=str(described.get("jobDefinitionArn") or ""),
            image=str(props.get("image") or ""),
            environment={
                str(e["name"]): str(e["value"])
                for e in props.get("environment") or []
                if "name" in e and "value" in e
            },
            job_role_arn=props.get("jobRoleArn") or None,
            vcpus=_float(requirements.get("VCPU")) or _float(props.get("vcpus")),
            memory_mib=_int(requirements.get("MEMORY")) or _int(props.get("memory")),
            nofile=nofile,
        )


def _requirements(container: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(r.get("type")): str(r.get("value"))
        for r in container.get("resourceRequirements") or []
        if r.get("type") and r.get("value") is not None
    }


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number else None


def job_limits(described_job: Mapping[str, Any], definition: JobDefinition) -> tuple[float, int]:
    """``(vCPUs, MiB)`` of a described Batch job: its own (overrides), else its definition's."""
    container = described_job.get("container") or {}
    requirements = _requirements(container)
    vcpus = _float(requirements.get("VCPU")) or _float(container.get("vcpus")) or definition.vcpus
    memory = _int(requirements.get("MEMORY")) or _int(container.get("memory"))
    memory = memory or definition.memory_mib
    return (vcpus or 1.0), (memory or 2048)


def capped_nofile(wanted: int, engine_limit: int | None) -> int:
    """``wanted`` open files, at most what the engine's containers may have."""
    return wanted if engine_limit is None else max(1, min(wanted, engine_limit))


def worker_container_spec(
    *,
    image: str,
    env: Mapping[str, str],
    name: str,
    folders: tuple[Path, ...],
    vcpus: float,
    memory_mib: int,
    nofile: int,
    labels: Mapping[str, str],
) -> dict[str, Any]:
    """The keyword arguments of ``docker.containers.create`` for a job's worker (pure).

    As ECS starts a Batch job's container on a sheep: root, the host's network, the Docker
    socket, the job's folders at the same paths on both sides, the job's limits.
    """
    from docker.types import Ulimit

    volumes = {DOCKER_SOCKET: {"bind": DOCKER_SOCKET, "mode": "rw"}}
    volumes.update({str(p): {"bind": str(p), "mode": "rw"} for p in folders})
    return {
        "image": image,
        "environment": dict(env),
        "name": name,
        "user": "0:0",
        "network_mode": "host",
        "volumes": volumes,
        "nano_cpus": int(vcpus * 1_000_000_000),
        "mem_limit": f"{memory_mib}m",
        "ulimits": [Ulimit(name="nofile", soft=nofile, hard=nofile)],
        "labels": {"shepard": "worker", **labels},
        "detach": True,
    }


class ContainerJob:
    """One job's worker container, started and watched by a thread.

    Looks like the ``subprocess.Popen`` of a worker process to the executor: ``poll()``,
    ``wait()``, ``send_signal()``, ``kill()``, ``returncode``.
    """

    def __init__(self, name: str, body: Callable[[ContainerJob], int], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.pid = 0  # no process of ours: the engine's
        self.returncode: int | None = None
        self.container: Any = None
        self._stop_requested: int | None = None
        self._lock = threading.Lock()
        self._body = body
        self._thread = threading.Thread(target=self._run, name=f"job-{name}", daemon=True)

    def start(self) -> ContainerJob:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            code = self._body(self)
        except Exception as error:  # never leave the executor waiting on a dead thread
            log.exception("worker container %s: %s", self.name, error)
            code = 1
        self.returncode = code

    def poll(self) -> int | None:
        return None if self._thread.is_alive() else self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise subprocess.TimeoutExpired(self.name, timeout or 0)
        return int(self.returncode if self.returncode is not None else 1)

    def attach(self, container: Any) -> bool:
        """Remember the started container; False when a stop came first (then it is stopped)."""
        with self._lock:
            self.container = container
            stopped = self._stop_requested
        if stopped is not None:
            self._signal_container(stopped)
        return stopped is None

    @property
    def stopping(self) -> bool:
        return self._stop_requested is not None

    def send_signal(self, signum: int) -> None:
        with self._lock:
            self._stop_requested = signum
            container = self.container
        if container is not None:
            self._signal_container(signum, container)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _signal_container(self, signum: int, container: Any = None) -> None:
        import docker

        target = container if container is not None else self.container
        if target is None:
            return
        with contextlib.suppress(docker.errors.APIError):
            target.kill(signal=signal.Signals(signum).name)


class RecordFailure(Protocol):
    """Records a job failed (``worker_ran``: only if its worker left it running)."""

    def __call__(
        self,
        job: str,
        batch_job: str | None,
        why: str,
        /,
        *,
        exit_code: int | None = None,
        worker_ran: bool = False,
    ) -> None: ...


@dataclass(frozen=True)
class ContainerOrder:
    """Everything one worker container needs, decided by the executor."""

    job_id: str
    batch_job_id: str
    definition: JobDefinition
    env: dict[str, str]
    vcpus: float
    memory_mib: int
    nofile: int  # what the job definition asks (capped to the engine's limit at start)
    folders: tuple[Path, ...]
    log_path: Path
    labels: dict[str, str]


class DockerJobs:
    """Starts the workers of a local flock's jobs as containers on one Docker engine."""

    def __init__(
        self,
        *,
        client: Any = None,
        credentials: Callable[[str], Mapping[str, str]],
        record_failure: RecordFailure,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._record_failure = record_failure
        self._engine_limit: int | None = None
        self._engine_limit_read = False
        self._limit_lock = threading.Lock()
        self._pull_lock = threading.Lock()
        self._ready: dict[tuple[str, ...], tuple[float, str | None]] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            import docker

            try:
                self._client = docker.from_env(timeout=120)
            except docker.errors.DockerException as error:
                raise BackendError(
                    f"while connecting to the Docker engine for the job's worker container: "
                    f"{error}. Start one (`scripts/engine.sh up`) or set `local.runner: process`."
                ) from None
        return self._client

    # -- images -----------------------------------------------------------------------------

    def _present(self, image: str) -> str | None:
        """None when the engine has ``image`` or its registry does; else why not."""
        import docker

        try:
            self.client.images.get(image)
            return None
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.DockerException as error:
            return f"the Docker engine does not answer ({error})"
        try:
            self.client.api.inspect_distribution(image)
            return None
        except docker.errors.DockerException as error:
            explanation = getattr(error, "explanation", None) or str(error)
            return f"{image} is neither on this machine nor in its registry ({explanation})"

    def images_missing(self, images: tuple[str, ...]) -> str | None:
        """Why the flock's images cannot run here (None: they can); cached, and checked again
        after a while when they were missing (a deploy may push them)."""
        now = time.monotonic()
        known = self._ready.get(images)
        if known is not None and (known[1] is None or now - known[0] < NOT_READY_RECHECK_SECONDS):
            return known[1]
        why = None
        for image in images:
            if not image:
                why = "the job definition names no image"
                break
            why = self._present(image)
            if why is not None:
                break
        self._ready[images] = (now, why)
        return why

    def _pull(self, image: str, write: Callable[[str], None]) -> None:
        """Pull the worker image when the engine lacks it (once, even for jobs starting
        together), as the ECS agent does before it starts a job's container."""
        import docker

        with self._pull_lock:
            try:
                self.client.images.get(image)
                return
            except docker.errors.ImageNotFound:
                pass
            write(f"shepard-local: pulling the worker image {image}")
            repository, tag = _split(image)
            try:
                self.client.images.pull(repository, tag=tag)
            except docker.errors.DockerException as error:
                explanation = getattr(error, "explanation", None) or str(error)
                raise BackendError(
                    f"while pulling the worker image {image} (the job definition's image): "
                    f"{explanation}. Check that `shepard-tf apply` pushed it to the registry."
                ) from None

    # -- the engine's open-files limit -------------------------------------------------------

    def engine_nofile_limit(self, image: str) -> int | None:
        """The hard open-files limit the engine's containers get (read once, from a probe
        container of ``image``); None when it cannot be read."""
        with self._limit_lock:
            if not self._engine_limit_read:
                self._engine_limit_read = True
                self._engine_limit = self._probe_limit(image)
                log.info("the Docker engine's open-files limit: %s", self._engine_limit)
            return self._engine_limit

    def _probe_limit(self, image: str) -> int | None:
        try:
            output = self.client.containers.run(
                image,
                entrypoint=["/bin/sh", "-c", "ulimit -Hn"],
                command=[],
                remove=True,
                network_mode="none",
                labels={"shepard": "probe"},
            )
        except Exception as error:
            log.warning("could not read the Docker engine's open-files limit: %s", error)
            return None
        text = output.decode(errors="replace").strip() if isinstance(output, bytes) else ""
        if text == "unlimited":
            return None
        return int(text) if text.isdigit() else None

    # -- one job ----------------------------------------------------------------------------

    def start(self, order: ContainerOrder) -> ContainerJob:
        name = f"shepard-worker-{order.job_id}"
        return ContainerJob(name, lambda job: self._run(job, order), order.log_path).start()

    def _run(self, job: ContainerJob, order: ContainerOrder) -> int:
        import docker

        with order.log_path.open("a", encoding="utf-8", errors="replace") as out:

            def write(line: str) -> None:
                out.write(line + "\n")
                out.flush()

            try:
                container = self._create(job, order, write)
            except ShepardError as error:
                write(f"shepard-local: {error.message}")
                self._record_failure(order.job_id, order.batch_job_id, error.message)
                return 1
            try:
                if not job.attach(container):
                    write("shepard-local: stopped before the worker started")
                try:
                    container.start()
                except docker.errors.APIError as error:
                    reason = (
                        f"the worker container of image {order.definition.image} could not "
                        f"start: {getattr(error, 'explanation', None) or error}"
                    )
                    write(f"shepard-local: {reason}")
                    self._record_failure(order.job_id, order.batch_job_id, reason)
                    return 1
                with contextlib.suppress(docker.errors.APIError):
                    for chunk in container.logs(stream=True, follow=True):
                        out.write(chunk.decode("utf-8", errors="replace"))
                        out.flush()
                status = container.wait()
                code = int(status.get("StatusCode", 1))
                container.reload()
                state = (getattr(container, "attrs", None) or {}).get("State") or {}
                if state.get("OOMKilled"):
                    write(
                        f"shepard-local: the worker container was killed for memory (the job's "
                        f"{order.memory_mib} MiB)"
                    )
                    self._record_failure(
                        order.job_id,
                        order.batch_job_id,
                        f"the worker container ran out of memory ({order.memory_mib} MiB, "
                        "the job's memory)",
                        exit_code=code,
                        worker_ran=True,
                    )
                return code
            finally:
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)

    def _create(
        self, job: ContainerJob, order: ContainerOrder, write: Callable[[str], None]
    ) -> Any:
        import docker

        image = order.definition.image
        if not image:
            raise BackendError(
                f"while starting the worker of job {order.job_id}: its job definition "
                f"{order.definition.arn} names no image. Apply the flock again."
            )
        self._pull(image, write)
        env = dict(order.env)
        limit = self.engine_nofile_limit(image)
        nofile = capped_nofile(order.nofile, limit)
        wanted = int(env.get(c.ULIMIT_FILENO, "") or order.nofile)
        payload_nofile = capped_nofile(wanted, limit)
        if payload_nofile < wanted:
            write(
                f"shepard-local: ULIMIT_FILENO {wanted} lowered to {payload_nofile}, the most "
                "open files this Docker engine gives a container (read once from a probe "
                "container; a sheep gives the job definition's limit)"
            )
        env[c.ULIMIT_FILENO] = str(payload_nofile)
        if order.definition.job_role_arn:
            env.update(self._credentials(order.definition.job_role_arn))
        spec = worker_container_spec(
            image=image,
            env=env,
            name=job.name,
            folders=order.folders,
            vcpus=order.vcpus,
            memory_mib=order.memory_mib,
            nofile=nofile,
            labels=order.labels,
        )
        spec.pop("detach")
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.client.containers.get(job.name).remove(force=True)  # left by a killed service
        try:
            return self.client.containers.create(**spec)
        except docker.errors.APIError as error:
            raise BackendError(
                f"while creating the worker container of image {image}: "
                f"{getattr(error, 'explanation', None) or error}. Check the Docker engine's log."
            ) from None


def _split(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image, None
    repository, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:
        return image, None
    return repository, tag

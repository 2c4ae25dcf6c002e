"""The worker's DockerRunner against a real Docker engine: the payload contract in a container.

ENTRYPOINT + CMD, WORKDIR and copied files; stdout and stderr in the job's log; the exit code;
the ``nofile`` limit; the container removed; out of memory and a full disk recorded with their
reason; a missing image a failure with the pull error; four jobs starting together pull once
(counted from the engine's events).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from shepard_worker.runners import DISK_FULL, OUT_OF_MEMORY, DockerRunner, Mount, RunSpec

from shepard.errors import BackendError

pytestmark = pytest.mark.docker


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    @property
    def payload(self) -> list[str]:
        """The payload's own lines (not the runner's "shepard: ..." notes)."""
        return [line for line in self.lines if not line.startswith("shepard: ")]


def _runner(client: Any, tmp_path: Path) -> DockerRunner:
    return DockerRunner(client, lock_path=tmp_path / ".shepard-image-pull.lock", gpus=False)


def _spec(image: str, log: Log, labels: dict[str, str], **changes: Any) -> RunSpec:
    fields: dict[str, Any] = {
        "env": {},
        "mounts": (),
        "ulimit_nofile": 4096,
        "log": log,
        "image": image,
        "name": f"shepard-test-{uuid.uuid4().hex[:12]}",
        "labels": labels,
    }
    fields.update(changes)
    return RunSpec(**fields)


def _containers(client: Any, labels: dict[str, str]) -> list[Any]:
    found: list[Any] = client.containers.list(
        all=True, filters={"label": f"shepard.test={labels['shepard.test']}"}
    )
    return found


def test_entrypoint_cmd_workdir_files_logs_exit_code_limit_and_removal(
    docker_client: Any, contract_image: str, labels: dict[str, str], job_dir: Path, tmp_path: Path
) -> None:
    log = Log()
    spec = _spec(
        contract_image,
        log,
        labels,
        env={"HELLO": "a b; $(rm -rf /)", "OUT": str(job_dir), "EXIT": "3"},
        mounts=(Mount(job_dir),),
        ulimit_nofile=1234,
    )

    result = _runner(docker_client, tmp_path).run(spec)

    assert (result.exit_code, result.reason, result.stopped) == (3, "", False)
    # stdout in order; stderr in the same log (the engine does not order the two streams)
    assert [line for line in log.payload if line != "to stderr"] == [
        "argv ['from-cmd']",  # ENTRYPOINT ["python3", "main.py"] + CMD ["from-cmd"]
        "cwd /app",  # WORKDIR
        "data copied into the image",  # COPY
        "nofile 1234 1234",
        "HELLO a b; $(rm -rf /)",  # a value, never a shell string
    ]
    assert log.payload.count("to stderr") == 1
    assert (job_dir / "result.txt").read_text() == "written in the container\n"
    assert _containers(docker_client, labels) == []


def test_a_command_replaces_cmd_and_keeps_the_entrypoint(
    docker_client: Any, contract_image: str, labels: dict[str, str], tmp_path: Path
) -> None:
    log = Log()
    spec = _spec(contract_image, log, labels, command=("given", "args"))

    result = _runner(docker_client, tmp_path).run(spec)

    assert result.exit_code == 0
    assert log.payload[0] == "argv ['given', 'args']"


def test_a_payload_killed_for_memory_fails_with_137_and_out_of_memory(
    docker_client: Any, plain_image: str, labels: dict[str, str], tmp_path: Path
) -> None:
    log = Log()
    grow = "print('growing', flush=True); s = 'x' * (1 << 30); print('survived')"
    spec = _spec(plain_image, log, labels, memory_mib=64, command=("python3", "-c", grow))

    result = _runner(docker_client, tmp_path).run(spec)

    assert (result.exit_code, result.reason) == (137, OUT_OF_MEMORY)
    assert log.payload == ["growing"]
    assert _containers(docker_client, labels) == []


@pytest.fixture
def small_disk(job_dir: Path) -> Any:
    """A 4 MiB file system at the job's output folder (a tmpfs; mounting needs root)."""
    output = job_dir / "output"
    output.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield output
    finally:
        subprocess.run(["umount", "-l", str(output)], check=False)


FILL = """\
import os, sys
print("filling", flush=True)
try:
    with open(os.path.join(sys.argv[1], "big.bin"), "wb") as f:
        for _ in range(64):
            f.write(b"x" * (1 << 20))
            f.flush()
except OSError as error:
    if sys.argv[2] == "quiet":
        sys.exit(1)
    raise
print("it fitted")
"""


@pytest.mark.parametrize("how", ["says", "quiet"])
def test_a_payload_that_fills_its_disk_fails_with_the_disk_full_reason(
    docker_client: Any,
    plain_image: str,
    labels: dict[str, str],
    small_disk: Path,
    tmp_path: Path,
    how: str,
) -> None:
    """Detected from the payload's output (ENOSPC's message, "says") or, when it printed
    nothing about it ("quiet"), from its writable folders having no space left."""
    log = Log()
    spec = _spec(
        plain_image,
        log,
        labels,
        mounts=(Mount(small_disk),),
        command=("python3", "-c", FILL, str(small_disk), how),
    )

    result = _runner(docker_client, tmp_path).run(spec)

    assert (result.exit_code, result.reason) == (1, DISK_FULL)
    assert log.payload[0] == "filling"
    assert ("No space left on device" in "\n".join(log.payload)) is (how == "says")


def test_a_missing_image_is_a_failure_with_the_pull_error(
    docker_client: Any, registry: str, labels: dict[str, str], tmp_path: Path
) -> None:
    log = Log()
    image = f"{registry}/shepard-test/missing:{uuid.uuid4().hex[:8]}"

    started = time.monotonic()
    with pytest.raises(BackendError) as raised:
        _runner(docker_client, tmp_path).run(_spec(image, log, labels))

    assert time.monotonic() - started < 60
    message = raised.value.message
    assert message.startswith(f"while pulling the payload image {image}: ")
    assert "manifest unknown" in message or "not found" in message
    assert "shepard-tf deploy" in message
    assert _containers(docker_client, labels) == []


def test_a_container_the_engine_cannot_start_is_a_failure_with_its_reason(
    docker_client: Any, contract_image: str, labels: dict[str, str], tmp_path: Path
) -> None:
    """A nofile limit above the kernel's maximum: the engine refuses to start the container."""
    with pytest.raises(BackendError) as raised:
        _runner(docker_client, tmp_path).run(
            _spec(contract_image, Log(), labels, ulimit_nofile=1 << 31)
        )

    message = raised.value.message
    assert message.startswith(f"while starting the payload container from {contract_image}: ")
    assert "rlimit" in message
    assert _containers(docker_client, labels) == []


@pytest.fixture
def pushed_image(docker_client: Any, registry: str, contract_image: str) -> Any:
    """The contract image in the registry only (removed from this machine): a job must pull."""
    repository = f"{registry}/shepard-test/pull-once"
    tag = uuid.uuid4().hex[:8]
    image = f"{repository}:{tag}"
    docker_client.images.get(contract_image).tag(repository, tag)
    for line in docker_client.images.push(repository, tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    docker_client.images.remove(image)
    yield image
    with contextlib.suppress(docker.errors.APIError):
        docker_client.images.remove(image, force=True)


def test_four_jobs_starting_together_pull_the_image_once(
    docker_client: Any, pushed_image: str, labels: dict[str, str], tmp_path: Path
) -> None:
    """Four workers (each its own client and runner, one lock file as on one instance) start
    at the same moment; the engine's events show one pull."""

    lock = tmp_path / "mnt-root" / ".shepard-image-pull.lock"
    start = threading.Barrier(4)
    results: dict[int, Any] = {}
    logs = {n: Log() for n in range(4)}

    def job(n: int) -> None:
        client = docker.from_env(timeout=120)
        try:
            runner = DockerRunner(client, lock_path=lock, gpus=False)
            spec = _spec(pushed_image, logs[n], labels, command=(f"job-{n}",))
            start.wait()
            results[n] = runner.run(spec)
        except Exception as error:
            results[n] = error
        finally:
            client.close()

    since = int(time.time()) - 1
    threads = [threading.Thread(target=job, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    until = int(time.time()) + 1

    assert [getattr(results[n], "exit_code", results[n]) for n in range(4)] == [0, 0, 0, 0]
    for n in range(4):
        assert f"argv ['job-{n}']" in logs[n].payload
    events = docker_client.events(
        since=since, until=until, filters={"type": "image", "event": "pull"}, decode=True
    )
    pulls = [e for e in events if e.get("id") == pushed_image]
    assert len(pulls) == 1, pulls
    notes = [line for n in range(4) for line in logs[n].lines if line.startswith("shepard: ")]
    assert notes.count(f"shepard: pulling {pushed_image}") == 1
    assert notes.count(f"shepard: image {pushed_image} is cached on this instance") == 3
    assert _containers(docker_client, labels) == []

"""The runners: the Docker container's settings (pure), the Docker runner against a fake client
(no engine here), and the process runner for real."""

from __future__ import annotations

import base64
import resource
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest
from docker.types import DeviceRequest, Ulimit
from shepard_worker.runners import (
    DISK_FULL,
    OUT_OF_MEMORY,
    DockerRunner,
    EcrImage,
    LocalImage,
    Mount,
    ProcessRunner,
    RunSpec,
    container_spec,
    disk_full,
    ecr_registry_id,
    ecr_tagged_image,
    failure_reason,
    images_to_prune,
    nofile_limit,
    payload_network,
    split_reference,
)

from shepard.errors import BackendError

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/flock:payload-latest"


def _spec(**changes: Any) -> RunSpec:
    fields: dict[str, Any] = {
        "env": {"UUID": "j1", "test1": "a b; $(rm -rf /)"},
        "mounts": (
            Mount(Path("/mnt/efs"), read_only=True),
            Mount(Path("/mnt/root/j1/input")),
            Mount(Path("/mnt/root/j1/output")),
        ),
        "ulimit_nofile": 1048576,
        "log": lambda line: None,
        "image": IMAGE,
        "name": "shepard-j1",
        "labels": {"shepard.job": "j1"},
    }
    fields.update(changes)
    return RunSpec(**fields)


def test_container_spec_mounts_only_the_job_folders_and_limits_files() -> None:
    spec = container_spec(_spec(), gpus=False)
    assert spec["image"] == IMAGE
    assert spec["environment"] == {"UUID": "j1", "test1": "a b; $(rm -rf /)"}
    assert spec["volumes"] == {
        "/mnt/efs": {"bind": "/mnt/efs", "mode": "ro"},
        "/mnt/root/j1/input": {"bind": "/mnt/root/j1/input", "mode": "rw"},
        "/mnt/root/j1/output": {"bind": "/mnt/root/j1/output", "mode": "rw"},
    }
    assert spec["ulimits"] == [Ulimit(name="nofile", soft=1048576, hard=1048576)]
    assert spec["privileged"] is False
    assert "device_requests" not in spec
    assert "command" not in spec and "working_dir" not in spec  # the image's own
    assert "user" not in spec
    assert spec["labels"] == {"shepard": "payload", "shepard.job": "j1"}


def test_container_spec_gpus_docker_daemon_and_quick_deploy() -> None:
    spec = container_spec(
        _spec(
            allow_docker_daemon=True,
            command=("bash", "/mnt/root/j1/input/my code/run.sh"),
            workdir=Path("/mnt/root/j1/input/my code"),
            user="10001:10001",
        ),
        gpus=True,
    )
    assert spec["device_requests"] == [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    assert spec["privileged"] is True
    assert spec["volumes"]["/var/run/docker.sock"] == {"bind": "/var/run/docker.sock", "mode": "rw"}
    assert spec["command"] == ["bash", "/mnt/root/j1/input/my code/run.sh"]  # a list, no shell
    assert spec["working_dir"] == "/mnt/root/j1/input/my code"
    assert spec["user"] == "10001:10001"


def test_ecr_tagged_image() -> None:
    assert ecr_tagged_image(IMAGE) == EcrImage("123456789012", "flock", "payload-latest")
    assert ecr_tagged_image(IMAGE.split(":")[0] + "/a/b") is not None
    assert ecr_tagged_image(IMAGE.rsplit(":", 1)[0]) == EcrImage("123456789012", "flock", "latest")
    assert ecr_tagged_image(IMAGE.rsplit(":", 1)[0] + "@sha256:abc") is None  # pinned already
    assert ecr_tagged_image("python:3.12-slim") is None


def test_ecr_registry_id() -> None:
    assert ecr_registry_id(IMAGE) == "123456789012"
    assert ecr_registry_id("python:3.12-slim") is None
    assert ecr_registry_id("evil.com/123456789012.dkr.ecr.us-east-1.amazonaws.com/x") is None


class FakeContainer:
    def __init__(self, kwargs: dict[str, Any], output: list[bytes], code: int) -> None:
        self.kwargs = kwargs
        self.output = output
        self.code = code
        self.calls: list[str] = []
        self.attrs: dict[str, Any] = {"State": {"OOMKilled": code == 137}}
        self.release = threading.Event()

    def start(self) -> None:
        self.calls.append("start")

    def logs(self, *, stream: bool, follow: bool) -> Iterator[bytes]:
        assert stream and follow
        yield from self.output
        self.release.wait(10)

    def wait(self) -> dict[str, Any]:
        self.calls.append("wait")
        return {"StatusCode": self.code}

    def reload(self) -> None:
        pass

    def stop(self, timeout: int) -> None:
        self.calls.append(f"stop {timeout}")
        self.code = 143
        self.release.set()

    def remove(self, *, force: bool) -> None:
        self.calls.append(f"remove force={force}")


class FakeClient:
    """The parts of ``docker.DockerClient`` the runner uses."""

    def __init__(
        self, *, cached: bool, output: list[bytes], code: int = 0, digest: str = "sha256:old"
    ) -> None:
        self.cached = cached
        self.digest = digest
        self.pulls: list[tuple[str, Any]] = []
        self.output = output
        self.code = code
        self.created: list[FakeContainer] = []
        # Looked up at call time, so that a test can replace one of the methods.
        self.images = SimpleNamespace(
            get=lambda image: self.get(image),
            pull=lambda image, auth_config=None: self.pull(image, auth_config),
            list=lambda name: self.list_images(name),
            remove=lambda name: self.remove(name),
        )
        self.containers = SimpleNamespace(create=self.create, list=self.list_containers)
        self.local: dict[str, list[str]] = {}  # image id -> names, for images.list
        self.in_use: list[str] = []  # image ids of the engine's containers
        self.removed: list[str] = []

    def get(self, image: str) -> Any:
        if not self.cached:
            raise docker.errors.ImageNotFound(image)
        repository = image.rsplit(":", 1)[0]
        image_id = self.digest if self.digest.startswith("sha256:") else f"sha256:{self.digest}"
        return SimpleNamespace(id=image_id, attrs={"RepoDigests": [f"{repository}@{self.digest}"]})

    def list_images(self, name: str) -> list[Any]:
        return [
            SimpleNamespace(id=image_id, tags=names)
            for image_id, names in self.local.items()
            if any(n.rpartition(":")[0] == name for n in names) or not names
        ]

    def list_containers(self, *, all: bool, sparse: bool) -> list[Any]:
        assert all and sparse
        return [SimpleNamespace(attrs={"ImageID": image_id}) for image_id in self.in_use]

    def remove(self, name: str) -> None:
        self.removed.append(name)

    def pull(self, image: str, auth_config: Any = None) -> object:
        self.pulls.append((image, auth_config))
        self.cached = True
        self.digest = "sha256:new"
        return object()

    def create(self, **kwargs: Any) -> FakeContainer:
        container = FakeContainer(kwargs, self.output, self.code)
        if self.code != 143:
            container.release.set()
        self.created.append(container)
        return container


def _ecr_login(registry: str) -> tuple[str, str, str]:
    assert registry == "123456789012"
    token = base64.b64encode(b"AWS:pw").decode()
    return "AWS", "pw", f"https://{registry}.dkr.ecr.us-east-1.amazonaws.com ({token})"


def test_docker_runner_pulls_once_with_an_ecr_login_and_streams_lines(tmp_path: Path) -> None:
    client = FakeClient(cached=False, output=[b"hello\nwor", b"ld\n", b"no newline"], code=3)
    runner = DockerRunner(client, lock_path=tmp_path / "pull.lock", ecr_login=_ecr_login, gpus=True)
    lines: list[str] = []

    result = runner.run(_spec(log=lines.append))
    again = runner.run(_spec(log=lines.append))

    assert client.pulls == [(IMAGE, {"username": "AWS", "password": "pw"})]  # once
    assert result.exit_code == 3 and again.exit_code == 3
    assert [line for line in lines if not line.startswith("shepard:")] == [
        "hello",
        "world",
        "no newline",
    ] * 2
    container = client.created[0]
    assert container.calls == ["start", "wait", "remove force=True"]
    assert container.kwargs["device_requests"] == [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    assert container.kwargs["name"] == "shepard-j1"


def test_docker_runner_stop_stops_the_container(tmp_path: Path) -> None:
    client = FakeClient(cached=True, output=[b"working\n"], code=143)
    runner = DockerRunner(client, lock_path=tmp_path / "pull.lock", gpus=False)
    threading.Timer(0.2, runner.stop, args=(5,)).start()

    result = runner.run(_spec())

    assert client.pulls == []
    assert result.stopped and result.exit_code == 143
    assert client.created[0].calls == ["start", "stop 5", "wait", "remove force=True"]


def test_docker_runner_pull_failure_is_a_clear_error(tmp_path: Path) -> None:
    client = FakeClient(cached=False, output=[])

    def fail(image: str, auth_config: Any = None) -> None:
        raise docker.errors.APIError("manifest unknown")

    client.pull = fail  # type: ignore[method-assign]
    runner = DockerRunner(client, lock_path=tmp_path / "pull.lock", gpus=False)
    with pytest.raises(BackendError, match=r"while pulling the payload image .*manifest unknown"):
        runner.run(_spec(image="python:3.12-slim"))


def test_process_runner_sets_the_file_limit_and_streams_output() -> None:
    lines: list[str] = []
    code = "import resource,sys; print(resource.getrlimit(resource.RLIMIT_NOFILE)[0]); sys.exit(4)"
    result = ProcessRunner().run(
        _spec(command=(sys.executable, "-c", code), ulimit_nofile=256, log=lines.append, env={})
    )
    assert result.exit_code == 4 and not result.stopped
    assert lines == ["256"]


def test_nofile_limit_is_capped_at_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, kept = nofile_limit(10**12)
    assert kept == hard
    assert soft == (10**12 if hard == resource.RLIM_INFINITY else hard)
    assert nofile_limit(64) == (64, hard)


def test_process_runner_stop_terminates_then_kills() -> None:
    runner = ProcessRunner()
    # The payload ignores SIGTERM: the runner kills it after the grace period.
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)"
    )
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        runner.stop(0.5)

    started = time.monotonic()
    result = runner.run(_spec(command=(sys.executable, "-c", code), env={}, log=log))
    assert time.monotonic() - started < 10
    assert result.stopped and result.exit_code == 137 and result.reason == "killed by signal 9"


def test_process_runner_missing_program() -> None:
    result = ProcessRunner().run(_spec(command=("/nonexistent/payload",), env={}))
    assert result.exit_code == 127 and "could not start" in result.reason


def test_docker_runner_pulls_again_when_the_ecr_tag_moved(tmp_path: Path) -> None:
    client = FakeClient(cached=True, output=[], digest="sha256:old")
    asked: list[EcrImage] = []

    def current_digest(image: EcrImage) -> str:
        asked.append(image)
        return "sha256:new"

    runner = DockerRunner(
        client,
        lock_path=tmp_path / "pull.lock",
        ecr_login=_ecr_login,
        ecr_digest=current_digest,
        gpus=False,
    )
    lines: list[str] = []
    runner.ensure_image(IMAGE, lines.append)
    runner.ensure_image(IMAGE, lines.append)

    assert asked == [EcrImage("123456789012", "flock", "payload-latest")] * 2
    assert client.pulls == [(IMAGE, {"username": "AWS", "password": "pw"})]  # once: now current
    assert "the cached image is older" in lines[0]


def test_container_spec_is_what_the_docker_sdk_accepts() -> None:
    # The SDK's own translation of create() arguments into the Engine API request (no engine
    # needed): an unknown argument raises TypeError, and the host config shows the real binds.
    from docker.models.containers import _create_container_args

    spec = container_spec(_spec(allow_docker_daemon=False, user="10001:10001"), gpus=True)
    request = _create_container_args({**spec, "version": "1.44"})
    host = request["host_config"]
    assert sorted(host["Binds"]) == [
        "/mnt/efs:/mnt/efs:ro",
        "/mnt/root/j1/input:/mnt/root/j1/input:rw",
        "/mnt/root/j1/output:/mnt/root/j1/output:rw",
    ]
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1048576, "Hard": 1048576}]
    assert host["DeviceRequests"][0]["Count"] == -1
    assert host["DeviceRequests"][0]["Capabilities"] == [["gpu"]]
    assert "Privileged" not in host  # the SDK leaves it out when False
    assert host["Init"] is True
    # The default bridge: the ECS agent's NAT reaches the job role's credentials from there,
    # and the IMDS hop limit of 1 keeps the instance role out of reach.
    assert host["NetworkMode"] == "bridge"
    assert request["user"] == "10001:10001"


def test_container_spec_gives_the_payload_the_jobs_limits_and_gpus() -> None:
    spec = container_spec(_spec(cpus=2.0, memory_mib=7000, gpu_ids=("GPU-a", "GPU-b")), gpus=True)
    assert spec["nano_cpus"] == 2_000_000_000
    assert spec["mem_limit"] == "7000m"
    assert spec["device_requests"] == [
        DeviceRequest(device_ids=["GPU-a", "GPU-b"], capabilities=[["gpu"]])
    ]
    assert "nano_cpus" not in container_spec(_spec(), gpus=False)


# -- pruning old payload images (issue 8.6). The selection is pure and tested as such; the
# Docker calls around it run against the fake client only (no engine on the test machine).

REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/flock"


def test_split_reference() -> None:
    assert split_reference(f"{REPO}:payload-abc") == (REPO, "payload-abc")
    assert split_reference(f"{REPO}@sha256:abc") == (REPO, None)
    assert split_reference("registry:5000/team/app") == ("registry:5000/team/app", None)
    assert split_reference("python") == ("python", None)


def test_images_to_prune_takes_only_unused_old_payload_images_of_the_repository() -> None:
    images = [
        LocalImage("sha256:new", (f"{REPO}:payload-new",)),  # the current payload image
        LocalImage("sha256:old", (f"{REPO}:payload-old",)),  # goes
        LocalImage("sha256:two", (f"{REPO}:payload-a", f"{REPO}:payload-b")),  # goes
        LocalImage("sha256:busy", (f"{REPO}:payload-busy",)),  # another job's container
        LocalImage("sha256:worker", (f"{REPO}:worker-abc",)),  # the worker's image
        LocalImage("sha256:mixed", (f"{REPO}:payload-m", "python:3.12")),  # also another repo's
        LocalImage("sha256:other", ("other/flock:payload-x",)),  # another repository
        LocalImage("sha256:bare", ()),  # no name, not known to be a payload
        LocalImage("sha256:moved", ()),  # its tag moved to sha256:new on this worker's pull
    ]
    chosen = images_to_prune(
        f"{REPO}:payload-new",
        "sha256:new",
        images,
        in_use={"sha256:busy", "sha256:worker-running"},
        replaced={"sha256:moved"},
    )
    assert [image.id for image in chosen] == ["sha256:old", "sha256:two", "sha256:moved"]


def test_images_to_prune_keeps_the_current_image_under_any_name() -> None:
    # The same image id under an old tag is the current image: it stays.
    images = [LocalImage("sha256:new", (f"{REPO}:payload-old",))]
    assert images_to_prune(f"{REPO}:payload-new", "sha256:new", images, in_use=()) == []


def test_docker_runner_prunes_old_payload_images_after_a_job(tmp_path: Path) -> None:
    client = FakeClient(cached=True, output=[], digest="new")
    client.local = {
        "sha256:new": [IMAGE],
        "sha256:old": [f"{REPO}:payload-0123"],
        "sha256:busy": [f"{REPO}:payload-4567"],
        "sha256:worker": [f"{REPO}:worker-89ab"],
    }
    client.in_use = ["sha256:busy", "sha256:worker"]
    runner = DockerRunner(client, lock_path=tmp_path / "pull.lock", gpus=False)
    lines: list[str] = []

    result = runner.run(_spec(log=lines.append))

    assert result.exit_code == 0
    assert client.removed == [f"{REPO}:payload-0123"]
    assert f"shepard: removed old payload images: {REPO}:payload-0123" in lines


def test_docker_runner_prunes_the_image_its_moved_tag_replaced(tmp_path: Path) -> None:
    client = FakeClient(cached=True, output=[], digest="old")
    runner = DockerRunner(
        client, lock_path=tmp_path / "pull.lock", ecr_digest=lambda _: "new", gpus=False
    )
    client.local = {"sha256:new": [IMAGE], "sha256:old": []}  # the pull left the old one bare

    runner.run(_spec())

    assert client.pulls == [(IMAGE, None)]
    assert client.removed == ["sha256:old"]


def test_pruning_never_fails_the_job(tmp_path: Path) -> None:
    client = FakeClient(cached=True, output=[b"done\n"], code=0)

    def broken(name: str) -> list[Any]:
        raise docker.errors.APIError("engine busy")

    client.list_images = broken  # type: ignore[method-assign]
    runner = DockerRunner(client, lock_path=tmp_path / "pull.lock", gpus=False)
    lines: list[str] = []

    result = runner.run(_spec(log=lines.append))

    assert result.exit_code == 0 and not result.stopped
    assert any("could not prune old payload images" in line for line in lines)
    assert client.removed == []


# -- the payload's network, and why it ended -----------------------------------------------------


@pytest.mark.parametrize(
    ("env", "network"),
    [
        ({}, "bridge"),
        ({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"}, "bridge"),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/x"}, "bridge"),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "https://creds.example.com/x"}, "bridge"),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://[::1"}, "bridge"),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:4000/v2/credentials/x"}, "host"),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://localhost:4000/x"}, "host"),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://[::1]:4000/x"}, "host"),
    ],
)
def test_the_payload_joins_the_hosts_network_only_for_a_loopback_credentials_endpoint(
    env: dict[str, str], network: str
) -> None:
    assert payload_network(env) == network
    assert container_spec(_spec(env=env), gpus=False)["network_mode"] == network


def test_failure_reasons() -> None:
    plain = {"oom_killed": False, "no_space": False, "engine_message": ""}
    assert failure_reason(1, **plain) == ""
    assert failure_reason(137, **{**plain, "oom_killed": True}) == OUT_OF_MEMORY
    assert failure_reason(1, **{**plain, "no_space": True}) == DISK_FULL
    assert failure_reason(0, **{**plain, "no_space": True}) == ""  # it coped: not a failure
    assert failure_reason(1, **{**plain, "engine_message": "boom"}) == "boom"


def test_disk_full_reads_only_the_writable_folders(tmp_path: Path) -> None:
    assert not disk_full([Mount(tmp_path)])
    assert not disk_full([Mount(tmp_path / "gone")])  # unreadable: not evidence
    # /proc has no free blocks, but it is mounted read-only: not the payload's disk
    assert not disk_full([Mount(Path("/proc"), read_only=True)])
    assert disk_full([Mount(Path("/proc"))])


def test_the_process_runner_names_a_full_disk(tmp_path: Path) -> None:
    lines: list[str] = []
    fill = "open('/dev/full', 'wb').write(b'x' * 65536)"
    result = ProcessRunner().run(
        _spec(command=(sys.executable, "-c", fill), log=lines.append, workdir=tmp_path, mounts=())
    )
    assert (result.exit_code, result.reason) == (1, DISK_FULL)
    assert any("No space left on device" in line for line in lines)

"""Fixtures of the docker-mode tests: the engine, the local registry, the offline base image and
tiny payload images built from it.

Every test here carries the ``docker`` marker. Without an engine (or without the base image, or
the registry for the tests that pull) the tests SKIP and say what to start:
``scripts/engine.sh up`` and ``scripts/engine.sh base-image``.

``docker_flock`` is the session's one local flock in docker mode (an apply costs over a minute
and a half): examples/testing-setup, applied through the CLI in a process of its own from the end
of collection (tests/support/background.py) when an engine, the base image and the registry
answer, shared by the tests that need a flock (test_local_flock_docker.py,
test_testing_setup_docker.py), which run after the tests that need none.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import background

BASE_IMAGE = os.environ.get("SHEPARD_BASE_IMAGE", "shepard-base:bookworm")
REGISTRY = os.environ.get("SHEPARD_REGISTRY", "127.0.0.1:5000")
SESSION = uuid.uuid4().hex[:8]  # labels and names what this session made, to remove it after
TEST_LABEL = "shepard.test-session"

CONTRACT_MAIN = """\
import os, resource, sys
print("argv", sys.argv[1:], flush=True)
print("cwd", os.getcwd(), flush=True)
print("data", open("data.txt").read().strip(), flush=True)
print("nofile", *resource.getrlimit(resource.RLIMIT_NOFILE), flush=True)
print("to stderr", file=sys.stderr, flush=True)
print("HELLO", os.environ.get("HELLO"), flush=True)
out = os.environ.get("OUT")
if out:
    with open(os.path.join(out, "result.txt"), "w") as f:
        f.write("written in the container\\n")
sys.exit(int(os.environ.get("EXIT", "0")))
"""
CONTRACT_DOCKERFILE = """\
FROM {base}
WORKDIR /app
COPY main.py data.txt ./
ENTRYPOINT ["python3", "main.py"]
CMD ["from-cmd"]
"""


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of the engine, or a SKIP that says how to start one."""
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as error:
        pytest.skip(
            f"no Docker engine answers ({type(error).__name__}: {error}); start one with "
            "`scripts/engine.sh up` (or run `make test-docker`)"
        )
    try:
        yield client
    finally:
        for container in client.containers.list(
            all=True, filters={"label": f"{TEST_LABEL}={SESSION}"}
        ):
            container.remove(force=True)
        client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    import docker

    try:
        docker_client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"the base image {BASE_IMAGE} is missing: `scripts/engine.sh base-image`")
    return BASE_IMAGE


@pytest.fixture(scope="session")
def registry(docker_client: Any) -> str:
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=3):
            pass
    except OSError as error:
        pytest.skip(f"no registry answers at {REGISTRY} ({error}): `scripts/engine.sh up`")
    return REGISTRY


def build_image(client: Any, folder: Path, tag: str) -> str:
    """Build ``folder`` (its Dockerfile) as ``tag`` offline; return the tag."""
    client.images.build(path=str(folder), tag=tag, pull=False, rm=True, forcerm=True)
    return tag


@pytest.fixture(scope="session")
def contract_image(
    docker_client: Any, base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A payload image with ENTRYPOINT + CMD, WORKDIR and copied files (see CONTRACT_MAIN)."""
    folder = tmp_path_factory.mktemp("contract-image")
    (folder / "Dockerfile").write_text(CONTRACT_DOCKERFILE.format(base=base_image))
    (folder / "main.py").write_text(CONTRACT_MAIN)
    (folder / "data.txt").write_text("copied into the image\n")
    tag = build_image(docker_client, folder, f"shepard-test/contract:{SESSION}")
    yield tag
    docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="session")
def plain_image(
    docker_client: Any, contract_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The contract image without its ENTRYPOINT: a test's command runs as given."""
    folder = tmp_path_factory.mktemp("plain-image")
    (folder / "Dockerfile").write_text(f'FROM {contract_image}\nENTRYPOINT []\nCMD ["python3"]\n')
    tag = build_image(docker_client, folder, f"shepard-test/plain:{SESSION}")
    yield tag
    docker_client.images.remove(tag, force=True)


@pytest.fixture
def labels() -> dict[str, str]:
    """Labels for one test's containers: the session's, and the test's own."""
    return {TEST_LABEL: SESSION, "shepard.test": uuid.uuid4().hex[:12]}


@pytest.fixture
def job_dir(tmp_path: Path) -> Iterator[Path]:
    """A job folder the payload writes into (as root): removed whatever it holds."""
    folder = tmp_path / "job"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def worker_image(docker_client: Any, base_image: str) -> str:
    """The worker image, built offline from the base image (wheels downloaded on the host once,
    then cached; Docker's layer cache makes a rebuild quick)."""
    from shepard.worker_image import build_worker_image

    tag = "shepard-worker:test"
    build_worker_image(docker_client, base_image=base_image, tag=tag, progress=lambda line: None)
    return tag


# -- the session's local flock in docker mode -------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testing-setup"
FLOCK_REGION = "us-east-1"
FLOCK_NAME = f"tsd{SESSION}"  # its own registry repository and state folder
OUTPUT_FILE_BYTES = 2 * 1024**3
# The seed's Hello World ends with `dd if=/dev/zero of=outputFile bs=2G count=1` in
# ROOT_OUTPUT_NAME; examples/testing-setup leaves that out to keep `make demo` quick. The copy the
# docker tests deploy writes it back, in 1 MiB blocks (dd's bs=2G reads 2 GiB - 4 KiB at most).
SEED_OUTPUT = """\
    chunk = bytes(1024 * 1024)
    with open(outputs / "outputFile", "wb") as output_file:
        for _ in range({blocks}):
            output_file.write(chunk)
"""
SEED_OUTPUT_ANCHOR = '    print(f"testing_code: all four variables set;'


@dataclass
class DockerFlock:
    """The testing-setup flock applied in docker mode through the CLI, and how to reach it."""

    folder: Path  # the copy of examples/testing-setup
    flock_file: Path
    env: dict[str, str]  # the environment its CLI commands run with
    state_dir: Path
    outputs: dict[str, Any]
    endpoint_url: str
    repository: str  # the flock's registry repository (host:port/name)
    worker_image: str  # the job definition's image, pushed by apply
    payload_image: str  # its SHEPARD_PAYLOAD_IMAGE, built from code/ and pushed by apply
    apply_seconds: float
    extra_images: list[str] = field(default_factory=list)  # pushed by tests: removed after

    def cli(self, *args: str) -> str:
        """``shepard-tf ARGS`` in process, as a user runs it; its output, or a failed test."""
        from shepard.cli import main as cli_main

        out, err = io.StringIO(), io.StringIO()
        status = cli_main(list(args), self.env, stdout=out, stderr=err)
        assert status == 0, f"shepard-tf {' '.join(args)} exited {status}:\n{err.getvalue()}"
        return out.getvalue()

    def client(self, service: str) -> Any:
        import boto3

        return boto3.Session().client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.endpoint_url,
            region_name=FLOCK_REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def logs(self, job_ids: list[str]) -> str:
        parts = []
        for job_id in job_ids:
            path = self.state_dir / "local" / "jobs" / f"{job_id}.log"
            parts.append(f"--- {path}\n{path.read_text() if path.exists() else '(none)'}")
        service_log = self.state_dir / "local" / "service.log"
        if service_log.exists():
            tail = service_log.read_text().splitlines()[-30:]
            parts.append("--- service.log (tail)\n" + "\n".join(tail))
        return "\n".join(parts)


def testing_setup_copy(folder: Path, name: str) -> Path:
    """examples/testing-setup copied into ``folder`` as flock ``name`` in docker mode, its
    payload writing the seed's 2 GiB ``outputFile``; returns the flock file."""
    shutil.copytree(EXAMPLE / "code", folder / "code")
    shutil.copytree(EXAMPLE / "test_payloads", folder / "test_payloads")
    shutil.copytree(EXAMPLE / "test_secrets", folder / "test_secrets")
    code = folder / "code" / "testing_code.py"
    text = code.read_text()
    assert SEED_OUTPUT_ANCHOR in text, f"{EXAMPLE}/code/testing_code.py changed: update conftest"
    code.write_text(
        text.replace(
            SEED_OUTPUT_ANCHOR,
            SEED_OUTPUT.format(blocks=OUTPUT_FILE_BYTES // (1024 * 1024)) + SEED_OUTPUT_ANCHOR,
            1,
        )
    )
    flock = (EXAMPLE / "flock.yaml").read_text()
    assert "\nname: testing\n" in flock and "\nlocal:\n" in flock
    flock = flock.replace("\nname: testing\n", f"\nname: {name}\n")
    flock = flock.replace("\nlocal:\n", "\nlocal:\n  runner: docker\n")
    (folder / "flock.yaml").write_text(flock)
    return folder / "flock.yaml"


def _remove_repository(client: Any, repository: str) -> None:
    """This flock's tags in the engine (by name, never an image id with force: other tags of
    the same image stay) and its manifests in the registry."""
    registry, _, name = repository.partition("/")
    for image in client.images.list(name=repository):
        for tag in image.tags:
            if tag.startswith(repository + ":"):
                with contextlib.suppress(Exception):  # a container still holds it
                    client.images.remove(tag)
    try:
        with urllib.request.urlopen(f"http://{registry}/v2/{name}/tags/list", timeout=10) as got:
            tags = json.load(got).get("tags") or []
    except OSError:
        return
    for tag in tags:
        request = urllib.request.Request(
            f"http://{registry}/v2/{name}/manifests/{tag}",
            method="HEAD",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(request, timeout=10) as answer:
                digest = answer.headers["Docker-Content-Digest"]
            delete = urllib.request.Request(
                f"http://{registry}/v2/{name}/manifests/{digest}", method="DELETE"
            )
            urllib.request.urlopen(delete, timeout=10).close()


DOCKER_FLOCK = "docker_flock"


def _engine_ready() -> bool:
    """Whether the docker_flock's tests can run: an engine answers, it has the base image, and
    the registry answers (else its fixtures skip, and nothing is applied)."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        try:
            client.ping()
            client.images.get(BASE_IMAGE)
        finally:
            client.close()
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=3):
            pass
    except Exception:
        return False
    return True


def _prepare_docker_flock(folder: Path, env: dict[str, str]) -> tuple[list[str], list[str]]:
    """A copy of examples/testing-setup in docker mode in ``folder``, and its environment (no
    AWS setting but fake credentials: the service is its emulator)."""
    from shepard.images import BASE_IMAGE_VARIABLE, REGISTRY_VARIABLE

    flock_file = testing_setup_copy(folder / "testing-setup", FLOCK_NAME)
    env |= {
        "SHEPARD_STATE_DIR": str(folder / "state"),
        "SHEPARD_CONFIG_DIR": str(folder / "profiles"),
        REGISTRY_VARIABLE: REGISTRY,
        BASE_IMAGE_VARIABLE: BASE_IMAGE,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": FLOCK_REGION,
        "AWS_DEFAULT_REGION": FLOCK_REGION,
    }
    return background.cli_apply(flock_file), []  # the local destroy shortcut stops it


def _remove_what_it_made(
    client: Any, state_dir: Path, repository: str, extra_images: list[str]
) -> None:
    """Its service, its containers, the images tests pushed, its registry repository."""
    import shepard.local

    shepard.local.stop(state_dir)  # whatever destroy left running
    for container in client.containers.list(
        all=True, filters={"label": f"shepard.state-dir={state_dir}"}
    ):
        container.remove(force=True)
    for image in extra_images:
        with contextlib.suppress(Exception):  # already gone
            client.images.remove(image)
    _remove_repository(client, repository)


def _stop_unused_flock(flock: background.Flock) -> None:
    """A session that ended before the fixture took the flock over (interrupted, ``-x``)."""
    import docker

    from shepard.deploy import state_dir_for

    client = docker.from_env(timeout=120)
    try:
        flock_file = flock.folder / "testing-setup" / "flock.yaml"
        state_dir = state_dir_for(flock_file, FLOCK_NAME, flock.env)
        _remove_what_it_made(client, state_dir, f"{REGISTRY}/{FLOCK_NAME}", [])
    finally:
        client.close()


# The session's one docker-mode flock is applied (over a minute and a half, images built and
# pushed) from the end of collection, while the tests that need no flock run; only when an
# engine, the base image and the registry answer.
background.register(
    DOCKER_FLOCK,
    "docker_flock",
    _prepare_docker_flock,
    emulator=False,
    when=_engine_ready,
    cleanup=_stop_unused_flock,
)


@pytest.fixture(scope="session")
def docker_flock(docker_client: Any, base_image: str, registry: str) -> Iterator[DockerFlock]:
    """ONE local flock in docker mode for the session: a copy of examples/testing-setup
    (``local.runner: docker``), applied through the CLI in the background from the end of
    collection (the images built from its code/ and the worker files, pushed to the local
    registry); at the end the local destroy shortcut stops its service (no Terraform
    destroy)."""
    from shepard.deploy import IMAGES_FILE, state_dir_for

    assert (base_image, registry) == (BASE_IMAGE, REGISTRY), "the background apply used these"
    job = background.get(DOCKER_FLOCK)
    flock_file = job.folder / "testing-setup" / "flock.yaml"
    env = job.env
    state_dir = state_dir_for(flock_file, FLOCK_NAME, env)
    repository = f"{registry}/{FLOCK_NAME}"
    made: DockerFlock | None = None
    try:
        try:
            apply_seconds = job.applied()
        except background.RunFailed as error:
            pytest.fail(f"`shepard-tf apply` of the docker flock: {error}", pytrace=False)
        print(
            f"\ndocker_flock: `shepard-tf apply` took {apply_seconds:.1f} s (in the background; "
            f"tests waited {job.waited:.1f} s for it)"
        )
        service = json.loads((state_dir / "local" / "service.json").read_text())
        images = json.loads((state_dir / IMAGES_FILE).read_text())
        made = DockerFlock(
            folder=flock_file.parent,
            flock_file=flock_file,
            env=env,
            state_dir=state_dir,
            outputs=json.loads((state_dir / "outputs.json").read_text()),
            endpoint_url=str(service["endpoint_url"]),
            repository=repository,
            worker_image=images["worker"],
            payload_image=images["payload"],
            apply_seconds=apply_seconds,
        )
        yield made
    finally:
        from shepard.cli import main as cli_main

        try:
            stopped = io.StringIO()
            if cli_main(["destroy", str(flock_file), "--auto-approve"], env, stdout=stopped) != 0:
                print(stopped.getvalue()[-3000:])
        finally:
            extra = made.extra_images if made is not None else []
            _remove_what_it_made(docker_client, state_dir, repository, extra)
            job.stop(cleanup=False)

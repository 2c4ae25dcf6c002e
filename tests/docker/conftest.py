"""Fixtures of the docker-mode tests: the engine, the local registry, the offline base image and
tiny payload images built from it.

Every test here carries the ``docker`` marker. Without an engine (or without the base image, or
the registry for the tests that pull) the tests SKIP and say what to start:
``scripts/engine.sh up`` and ``scripts/engine.sh base-image``.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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

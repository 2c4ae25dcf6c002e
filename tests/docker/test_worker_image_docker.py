"""The worker image, built offline from shepard-base with the Docker SDK, runs the worker."""

from __future__ import annotations

from typing import Any

import pytest

from shepard.worker_image import build_worker_image

pytestmark = pytest.mark.docker


def test_the_worker_image_holds_the_worker_and_its_packages_in_a_venv(
    docker_client: Any, worker_image: str
) -> None:
    probe = (
        "import sys, boto3, docker, shepard_worker.run, shepard.joblayer.store; "
        "print(sys.prefix, boto3.__version__ > '1.34', docker.__version__ >= '7')"
    )
    out = docker_client.containers.run(
        worker_image, ["-c", probe], entrypoint=["python"], remove=True, network_mode="none"
    )
    assert out.decode().split() == ["/opt/venv", "True", "True"]
    config = docker_client.images.get(worker_image).attrs["Config"]
    assert config["Entrypoint"] == ["/opt/venv/bin/python", "-m", "shepard_worker"]


def test_the_worker_in_its_image_names_a_missing_setting_and_exits_2(
    docker_client: Any, worker_image: str
) -> None:
    container = docker_client.containers.run(worker_image, detach=True, network_mode="none")
    try:
        status = container.wait(timeout=60)
        err = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 2
    assert err.startswith("shepard: ")
    assert "Traceback" not in err


def test_a_second_build_reuses_the_cached_wheels_and_layers(
    docker_client: Any, base_image: str, worker_image: str
) -> None:
    lines: list[str] = []
    image_id = build_worker_image(
        docker_client, base_image=base_image, tag=worker_image, progress=lines.append
    )
    assert image_id == docker_client.images.get(worker_image).id
    assert any(line.startswith("worker image: using the cached wheels in ") for line in lines)
    assert not any("downloading" in line for line in lines)
    assert "Using cache" in "\n".join(lines)

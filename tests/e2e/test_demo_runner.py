"""How `make demo` chooses its runner and what it says, against a real engine where one answers
and a socket where none does."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.demo import choose_runner
from shepard.errors import ShepardError
from shepard.images import docker_client


def _no_engine(tmp_path: Path) -> dict[str, str]:
    return {"DOCKER_HOST": f"unix://{tmp_path / 'no-engine.sock'}"}


def test_without_an_engine_jobs_run_as_processes_and_the_demo_says_how_to_start_one(
    tmp_path: Path,
) -> None:
    choice = choose_runner(_no_engine(tmp_path))
    assert choice.runner == "process"
    assert choice.line == (
        "Jobs run as processes: no Docker engine answers (start one with scripts/engine.sh up)"
    )


def test_asking_for_docker_without_an_engine_is_refused_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(ShepardError, match=r"asks for docker, but no Docker engine answers"):
        choose_runner(_no_engine(tmp_path), requested="docker")


def test_process_requested_never_asks_the_engine(tmp_path: Path) -> None:
    choice = choose_runner(_no_engine(tmp_path), requested="process")
    assert (choice.runner, choice.pin) == ("process", True)


def test_an_unknown_runner_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ShepardError, match=r"SHEPARD_DEMO_RUNNER is 'vm'"):
        choose_runner({**_no_engine(tmp_path), "SHEPARD_DEMO_RUNNER": "vm"})


def _engine_env() -> dict[str, str]:
    client = docker_client({}, required=False)
    if client is None:
        pytest.skip("no Docker engine answers at /var/run/docker.sock (scripts/engine.sh up)")
    client.close()
    return {}


@pytest.mark.docker
def test_with_an_engine_and_its_base_image_jobs_run_in_containers() -> None:
    env = _engine_env()
    choice = choose_runner(env)
    if choice.runner != "docker":
        pytest.skip(f"the engine has no base image: {choice.line}")
    assert choice.line.startswith("Jobs run in Docker containers (engine ")


@pytest.mark.docker
def test_an_engine_without_the_base_image_runs_processes_and_says_how_to_build_it() -> None:
    env = {**_engine_env(), "SHEPARD_BASE_IMAGE": "shepard-test/no-such-base:none"}
    choice = choose_runner(env)
    assert choice.runner == "process"
    assert "has no base image shepard-test/no-such-base:none" in choice.line
    assert "scripts/engine.sh base-image" in choice.line

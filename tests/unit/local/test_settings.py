"""How many jobs the local flock runs at once, and its settings from flock.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from shepard.config import load_flock
from shepard.local.settings import LocalSettings, parallelism, settings_from_config

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("cpus", "vcpus", "cap", "expected"),
    [
        (2, 2, 4, 1),  # this machine, the default job size
        (2, 1, 4, 2),
        (16, 2, 4, 4),  # capped by local.max_parallel_jobs
        (16, 4, 64, 4),
        (2, 8, 4, 1),  # a job bigger than the machine still runs, one at a time
        (None, 1, 4, 1),  # cpu_count unknown
        (8, 1.5, 8, 4),  # fractional vCPUs round up
    ],
)
def test_parallelism(cpus: int | None, vcpus: float, cap: int, expected: int) -> None:
    assert parallelism(cpus, vcpus, cap) == expected


def test_settings_from_the_testing_setup_flock() -> None:
    config = load_flock(ROOT / "examples" / "testing-setup" / "flock.yaml")
    settings = settings_from_config(config)
    assert settings.flock_name == "testing"
    assert settings.code_dir == str(ROOT / "examples" / "testing-setup" / "code")
    assert settings.vcpus == 1
    assert settings.max_parallel_jobs == 2
    assert settings.command is None


def test_settings_round_trip(tmp_path: Path) -> None:
    settings = LocalSettings("f", "eu-west-1", "/c", 2, 3, ["a", "b"], "process")
    settings.write(tmp_path / "s.json")
    assert LocalSettings.read(tmp_path / "s.json") == settings


@pytest.mark.parametrize(
    ("setting", "engine", "expected"),
    [
        ("auto", True, "docker"),
        ("auto", False, "process"),
        ("process", True, "process"),
        ("docker", False, "docker"),  # asked for: the worker then fails the job with the reason
    ],
)
def test_runner_choice(setting: str, engine: bool, expected: str) -> None:
    from shepard.local.service import choose_runner

    assert choose_runner(setting, engine) == expected

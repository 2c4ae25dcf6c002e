"""Fixtures shared by every suite.

One moto server per test session (``emulator``); ``aws`` resets it before a test and points boto3
(and Terraform, through the environment) at it. Offline Terraform runs use ``tf_env``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.tf.mirror import find_plugin_dir, write_cli_config

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"


@pytest.fixture(scope="session")
def emulator() -> Iterator[InProcessEmulator]:
    server = InProcessEmulator().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws(emulator: InProcessEmulator, monkeypatch: pytest.MonkeyPatch) -> InProcessEmulator:
    """A freshly reset emulator, with this process's AWS environment pointed at it."""
    emulator.reset()
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in emulator_environment(emulator.endpoint_url, REGION).items():
        monkeypatch.setenv(key, value)
    return emulator


@pytest.fixture(scope="session")
def plugin_dir() -> Path:
    return find_plugin_dir()


@pytest.fixture(scope="session")
def tf_cli_config(plugin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cli_config(plugin_dir, tmp_path_factory.mktemp("tfcli") / "terraformrc")


@pytest.fixture
def tf_env(tf_cli_config: Path) -> dict[str, str]:
    """Environment for an offline Terraform run: fake credentials, no endpoint, the mirror."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "TF_CLI_CONFIG_FILE": str(tf_cli_config),
            "TF_IN_AUTOMATION": "1",
            "AWS_ACCESS_KEY_ID": "offline",
            "AWS_SECRET_ACCESS_KEY": "offline",
            "AWS_REGION": REGION,
        }
    )
    return env

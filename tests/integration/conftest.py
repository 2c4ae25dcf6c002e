"""Session fixture ``applied_flock``: a minimal flock applied for real, through shepard.deploy.

Interface (kept stable: other suites use it)::

    def test_something(applied_flock, monkeypatch):
        applied_flock.outputs       # dict: the flock's Terraform outputs as plain values
                                    #   (every output of docs/contracts.md section 2)
        applied_flock.endpoint_url  # str: its own emulator, e.g. "http://127.0.0.1:40123"
        applied_flock.env           # dict[str, str]: a full environment for the CLI / deploy:
                                    #   AWS_ENDPOINT_URL + fake credentials + AWS_REGION
        applied_flock.flock_file    # Path: the flock.yaml that was applied
        applied_flock.state_dir     # Path: its state folder (<tmp>/.shepard/<name>/)
        applied_flock.name          # str: the flock's name ("itest-flock")
        applied_flock.region        # str: "us-east-1"
        applied_flock.timings       # dict[str, float]: seconds of init/plan/apply/output
        applied_flock.lambda_zips   # dict[str, str]: sha256 of each Lambda zip as applied
        applied_flock.activate(monkeypatch)  # point this process's boto3 at its emulator

The flock runs on its OWN moto server, in a process of its own (a ``SubprocessEmulator``): moto
keeps its resources in module globals, so a server thread in this process would be wiped by every
reset of the session ``emulator`` that the ``aws`` fixture does before each test.
Treat it as shared: add objects and jobs, never delete its resources. Its buckets are
``force_destroy`` so the teardown can empty them. At session end it is destroyed through
``shepard.deploy.destroy`` and the teardown checks that nothing is left (the Terraform state is
empty and, when ``tests/support/flock_checks.py`` exists, ``assert_flock_gone``). The apply takes
about 80 s against moto, the destroy about 80 s.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shepard.emulator import SubprocessEmulator, emulator_environment
from tests.support import iam_check

FLOCK_NAME = "itest-flock"
REGION = "us-east-1"
FLOCK_YAML = f"""\
# The minimal flock the integration suites share (tests/integration/conftest.py).
name: {FLOCK_NAME}
region: {REGION}
batch:
  instance_types: [c5.large]
s3:
  force_destroy: true
"""


@dataclass
class AppliedFlock:
    outputs: dict[str, Any]
    endpoint_url: str
    env: dict[str, str]
    flock_file: Path
    state_dir: Path
    name: str = FLOCK_NAME
    region: str = REGION
    timings: dict[str, float] = field(default_factory=dict)
    lambda_zips: dict[str, str] = field(default_factory=dict)

    def activate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point this process's boto3 (and anything reading os.environ) at the flock's emulator."""
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            monkeypatch.delenv(key, raising=False)
        for key, value in emulator_environment(self.endpoint_url, self.region).items():
            monkeypatch.setenv(key, value)


def flock_environment(endpoint_url: str) -> dict[str, str]:
    """This process's environment without any AWS setting, pointed at ``endpoint_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SHEPARD_STATE"))}
    env.update(emulator_environment(endpoint_url, REGION))
    return env


def _report(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)


def _state_resources(state_dir: Path) -> list[str]:
    state_file = state_dir / "terraform.tfstate"
    if not state_file.is_file():
        return []
    state = json.loads(state_file.read_text())
    return [
        f"{r['type']}.{r['name']}" for r in state.get("resources", []) if r["mode"] == "managed"
    ]


@pytest.fixture(scope="session")
def applied_flock(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[AppliedFlock]:
    from shepard import deploy

    folder = tmp_path_factory.mktemp("applied-flock")
    server = SubprocessEmulator(log_path=folder / "moto.log").start()
    flock_file = folder / "flock.yaml"
    flock_file.write_text(FLOCK_YAML)
    env = flock_environment(server.endpoint_url)
    log = io.StringIO()
    flock: AppliedFlock | None = None
    try:
        started = time.monotonic()
        recorded = deploy.Timings()
        outputs = deploy.apply(
            flock_file, env=env, auto_approve=True, progress=log, timings=recorded
        )
        timings = dict(recorded.seconds)
        _report(
            pytestconfig,
            f"applied_flock: applied in {time.monotonic() - started:.1f}s "
            + " ".join(f"{k}={v:.1f}s" for k, v in timings.items()),
        )
        state_dir = deploy.state_dir_for(flock_file, FLOCK_NAME, env)
        # The policies as applied, for the session's IAM conformance check (tests/conftest.py).
        iam_check.APPLIED = iam_check.FlockPolicies.from_state_file(
            state_dir / "terraform.tfstate", outputs
        )
        flock = AppliedFlock(
            outputs=outputs,
            endpoint_url=server.endpoint_url,
            env=env,
            flock_file=flock_file,
            state_dir=state_dir,
            timings=timings,
            lambda_zips={
                p.stem: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted((state_dir / "lambda").glob("*.zip"))
            },
        )
        yield flock
    finally:
        try:
            started = time.monotonic()
            deploy.destroy(flock_file, env=env, auto_approve=True, progress=log)
            _report(pytestconfig, f"applied_flock: destroyed in {time.monotonic() - started:.1f}s")
            state_dir = deploy.state_dir_for(flock_file, FLOCK_NAME, env)
            left = _state_resources(state_dir)
            assert not left, f"destroy left resources in the Terraform state: {left}"
            if flock is not None:
                _assert_gone_in_emulator(flock)
        finally:
            server.stop()


def _assert_gone_in_emulator(flock: AppliedFlock) -> None:
    try:
        from tests.support.flock_checks import assert_flock_gone
    except ImportError:
        return
    saved = dict(os.environ)
    try:
        os.environ.update(emulator_environment(flock.endpoint_url, flock.region))
        assert_flock_gone(flock.outputs)
    finally:
        os.environ.clear()
        os.environ.update(saved)

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
``force_destroy`` so the destroy can empty them.

The apply (about 90 s against moto) and the destroy (about 80 s) run through ``shepard.deploy``
in a process of their own (tests/support/background.py): the apply starts when collection ends,
the tests that use the flock run after the other integration tests, and the destroy starts as
soon as the last of them is done, while the unit suites run. The fixture's teardown waits for
the destroy and checks that nothing is left (the Terraform state is empty and
``assert_flock_gone``), then kills the flock's emulator.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shepard.emulator import emulator_environment
from tests.support import background, iam_check

FLOCK_NAME = background.MINIMAL_NAME
REGION = background.REGION
FLOCK_YAML = background.MINIMAL_YAML


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
def applied_flock(pytestconfig: pytest.Config) -> Iterator[AppliedFlock]:
    """The minimal flock, applied through shepard.deploy in a process of its own: the apply
    started when the session's collection ended (tests/support/background.py)."""
    from shepard import deploy

    job = background.get(background.MINIMAL)
    flock_file = job.folder / "flock.yaml"
    env = flock_environment(job.server.endpoint_url)
    flock: AppliedFlock | None = None
    try:
        try:
            job.applied()
        except background.RunFailed as error:
            pytest.fail(str(error), pytrace=False)
        applied = background.read_json(job.folder / "applied.json")
        outputs, timings = applied["outputs"], applied["timings"]
        _report(
            pytestconfig,
            f"applied_flock: applied in {applied['seconds']:.1f}s "
            + " ".join(f"{k}={v:.1f}s" for k, v in timings.items())
            + f" (in the background; tests waited {job.waited:.1f}s for it)",
        )
        state_dir = deploy.state_dir_for(flock_file, FLOCK_NAME, env)
        # The policies as applied, for the session's IAM conformance check (tests/conftest.py).
        iam_check.APPLIED = iam_check.FlockPolicies.from_state_file(
            state_dir / "terraform.tfstate", outputs
        )
        flock = AppliedFlock(
            outputs=outputs,
            endpoint_url=job.server.endpoint_url,
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
            if flock is not None:
                # Started after the flock's last test (background.item_done); waited for here.
                seconds = job.destroyed()
                _report(
                    pytestconfig,
                    f"applied_flock: re-applied, planned and destroyed in {seconds:.1f}s"
                    " (in the background)",
                )
                left = _state_resources(flock.state_dir)
                assert not left, f"destroy left resources in the Terraform state: {left}"
                _assert_gone_in_emulator(flock)
        finally:
            job.stop()


def _assert_gone_in_emulator(flock: AppliedFlock) -> None:
    from tests.support.flock_checks import assert_flock_gone

    saved = dict(os.environ)
    try:
        os.environ.update(emulator_environment(flock.endpoint_url, flock.region))
        assert_flock_gone(flock.outputs)
    finally:
        os.environ.clear()
        os.environ.update(saved)

"""The session's slow Terraform runs, started early in processes of their own.

An apply or destroy against moto takes 80-110 s, nearly all of it spent waiting on the
provider's SQS and Batch waiters. Run in the foreground they leave both cores idle; started at
the end of collection (``start``), in a process group of their own, they overlap the tests that
need no flock. The fixtures that hand a flock to tests (``applied_flock``, ``full_flock``) wait
for their apply; ``order`` puts the tests that use them after the other integration tests, so
that the wait is usually over, and before the unit and Terraform suites, which then overlap the
destroys (``item_done`` starts a flock's destroy once its last test has run).

Each flock has its own moto server (``SubprocessEmulator``): the session ``emulator`` is reset
before every test that uses ``aws``. The server is killed at the end of the session, which
removes whatever is left in it; the destroys run because they are tested, not to clean up.
A local flock (``register(..., emulator=False)``) starts its own service instead; its
``cleanup`` stops that service (``stop_local_services``) when the flock is stopped, whatever
state its run was left in. ``when`` keeps a flock from starting in a session that cannot use
it (no Docker engine: its tests skip).

The runs record the AWS calls of the CLI commands they make, as the session does in process
(tests/support/iam_record.py): their calls go to ``SHEPARD_IAM_RECORD_DIR``, which the session's
IAM check reads at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shepard.emulator import SubprocessEmulator, emulator_environment
from tests.support.iam_record import RECORD_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).resolve().parent / "flock_runner.py"
REGION = "us-east-1"
WAIT_LIMIT = 900.0  # seconds; an apply against moto takes about 100 s

MINIMAL = "applied_flock"  # tests/integration/conftest.py
FULL = "full_flock"  # tests/integration/test_full_flock_apply.py
# The fixture name that makes a test need each flock.
FIXTURE_OF = {MINIMAL: "applied_flock", FULL: "full_flock"}
# Suites that need no flock and keep both cores busy: they run after the flocks' users, while
# the destroys run.
TAIL_SUITES = ("tests/unit/", "tests/terraform/", "tests/support/")


class RunFailed(Exception):
    """A background Terraform run failed: the message is its log's tail."""


@dataclass
class Run:
    """One command in a process group of its own; its output goes to ``log``."""

    what: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    started: float = 0.0
    finished: float | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Run:
        self.started = time.monotonic()
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env | recording_environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: kill() takes Terraform with it
            )
        return self

    def wait(self, timeout: float = WAIT_LIMIT) -> float:
        """Block until it ends; the seconds it ran. Raises RunFailed with the log's tail."""
        assert self._process is not None, f"{self.what} was never started"
        try:
            code = self._process.wait(timeout=max(timeout - self.elapsed(), 1.0))
        except subprocess.TimeoutExpired:
            self.kill()
            raise RunFailed(f"{self.what} did not finish within {timeout:.0f} s") from None
        if self.finished is None:
            self.finished = time.monotonic()
        if code != 0:
            tail = self.log.read_text(errors="replace")[-4000:]
            raise RunFailed(f"{self.what} failed (exit status {code}); its log ends:\n{tail}")
        # The runner's own count (its last line): the process may have ended long before.
        said = re.search(r": ([0-9.]+) s\s*$", self.log.read_text(errors="replace"))
        return float(said.group(1)) if said else self.finished - self.started

    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


@dataclass
class Flock:
    """A flock applied in the background (to its own emulator unless it is a local flock, whose
    service is its emulator), destroyed when asked."""

    name: str
    folder: Path
    server: SubprocessEmulator | None
    apply_argv: list[str]
    destroy_argv: list[str]
    env: dict[str, str]
    apply: Run | None = None
    destroy: Run | None = None
    waited: float = 0.0  # how long a test waited for the apply
    destroy_waited: float = 0.0  # how long the session waited for the destroy
    cleanup: Cleanup | None = None
    stopped: bool = False

    def start_apply(self) -> None:
        self.apply = Run(f"the apply of {self.name}", self.apply_argv, self.env, self.log("apply"))
        self.apply.start()

    def applied(self) -> float:
        """Wait for the apply; its seconds."""
        if self.apply is None:
            self.start_apply()
        assert self.apply is not None
        started = time.monotonic()
        try:
            return self.apply.wait()
        finally:
            self.waited += time.monotonic() - started

    def start_destroy(self) -> None:
        if self.destroy is not None or not self.destroy_argv:
            return
        if self.apply is not None and self.apply.running():
            self.applied()
        self.destroy = Run(
            f"the destroy of {self.name}", self.destroy_argv, self.env, self.log("destroy")
        )
        self.destroy.start()

    def destroyed(self) -> float:
        """Start the destroy if nobody has, wait for it; its seconds."""
        self.start_destroy()
        assert self.destroy is not None
        started = time.monotonic()
        try:
            return self.destroy.wait()
        finally:
            self.destroy_waited += time.monotonic() - started

    def wait_for(self, name: str, timeout: float = WAIT_LIMIT) -> Path | None:
        """``<folder>/<name>``, which the destroy run writes before it destroys (starting that
        run if nobody has); None when the run ended without writing it."""
        self.start_destroy()
        assert self.destroy is not None
        path = self.folder / name
        started = time.monotonic()
        deadline = started + timeout
        try:
            while not path.is_file():
                if not self.destroy.running() or time.monotonic() > deadline:
                    return path if path.is_file() else None
                time.sleep(0.5)
            return path
        finally:
            self.destroy_waited += time.monotonic() - started

    def log(self, what: str) -> Path:
        return self.folder / f"{what}.log"

    def log_tail(self, what: str, size: int = 4000) -> str:
        path = self.log(what)
        return path.read_text(errors="replace")[-size:] if path.is_file() else "(no log)"

    def summary(self) -> str:
        """One line: how long its runs took and how long the session waited for them (what
        says whether a flock is on the session's critical path)."""

        def said(run: Run | None, waited: float) -> str:
            if run is None:
                return "not run"
            state = "running" if run.running() else f"{run.elapsed():.0f} s"
            return f"{state} (tests waited {waited:.0f} s)"

        return (
            f"{self.name}: apply {said(self.apply, self.waited)}, "
            f"destroy {said(self.destroy, self.destroy_waited)}"
        )

    @property
    def endpoint_url(self) -> str:
        assert self.server is not None, f"{self.name} is a local flock: it has no moto server"
        return self.server.endpoint_url

    def stop(self, *, cleanup: bool = True) -> None:
        """Kill its runs, run its cleanup (unless its fixture did that itself), stop its
        emulator, remove its folder; once."""
        if self.stopped:
            return
        self.stopped = True
        SUMMARY.append(self.summary())
        try:
            for run in (self.apply, self.destroy):
                if run is not None:
                    run.kill()
            if cleanup and self.cleanup is not None:
                self.cleanup(self)
        finally:
            if self.server is not None:
                self.server.stop()
            shutil.rmtree(self.folder, ignore_errors=True)


Cleanup = Callable[[Flock], None]


def stop_local_services(flock: Flock) -> None:
    """Stop every local flock service whose state folder is under the flock's folder (a run
    killed mid-apply leaves its service running: it has a session of its own)."""
    import shepard.local

    for service in sorted(flock.folder.glob("**/local/service.json")):
        shepard.local.stop(service.parent.parent)


FLOCKS: dict[str, Flock] = {}
SUMMARY: list[str] = []  # a line per stopped flock, for the session's terminal summary
_LAST_USER: dict[str, str] = {}  # flock -> nodeid of the last test that uses it
_LOCAL: set[str] = set()  # flocks without a moto server of their own
_WHEN: dict[str, Callable[[], bool]] = {}  # flock -> whether this session can use it
_CLEANUP: dict[str, Cleanup] = {}
_RECORDS: list[Path] = []  # the folder this module made for the runs' IAM records


def _runner(*args: str) -> list[str]:
    return [sys.executable, str(RUNNER), *args]


def environment_for(endpoint_url: str | None) -> dict[str, str]:
    """This process's environment without any AWS setting, pointed at ``endpoint_url`` (none:
    no AWS setting at all), with the repository on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SHEPARD_STATE"))}
    if endpoint_url is not None:
        env.update(emulator_environment(endpoint_url, REGION))
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "worker"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return env


def recording_environment() -> dict[str, str]:
    """What makes a run record its AWS calls where the session's IAM check reads them
    (tests/support/iam_record.py); the folder is made on first use."""
    folder = os.environ.get(RECORD_DIR_ENV)
    if not folder:
        made = Path(tempfile.mkdtemp(prefix="shepard-iam-records-"))
        _RECORDS.append(made)
        folder = os.environ[RECORD_DIR_ENV] = str(made)
    return {RECORD_DIR_ENV: folder, "SHEPARD_IAM_SUBPROCESS": "1"}


def remove_records() -> None:
    """After the session's IAM check: the records folder this module made, if it made one."""
    for folder in _RECORDS:
        if os.environ.get(RECORD_DIR_ENV) == str(folder):
            del os.environ[RECORD_DIR_ENV]
        shutil.rmtree(folder, ignore_errors=True)
    _RECORDS.clear()


def _new_flock(name: str, prepare: Prepare) -> Flock:
    folder = Path(tempfile.mkdtemp(prefix=f"shepard-{name}-"))
    server = None
    try:
        if name not in _LOCAL:
            server = SubprocessEmulator(log_path=folder / "moto.log").start()
        env = environment_for(server.endpoint_url if server is not None else None)
        apply_argv, destroy_argv = prepare(folder, env)
    except BaseException:
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Flock(name, folder, server, apply_argv, destroy_argv, env, cleanup=_CLEANUP.get(name))


Prepare = Callable[[Path, dict[str, str]], tuple[list[str], list[str]]]

MINIMAL_NAME = "itest-flock"
MINIMAL_YAML = f"""\
# The minimal flock the integration suites share (tests/integration/conftest.py).
name: {MINIMAL_NAME}
region: {REGION}
batch:
  instance_types: [c5.xlarge]  # 8 GiB: the default 7000 MiB job fits (the fit check)
s3:
  force_destroy: true
"""
# What the re-apply before the minimal flock's destroy gave (tests/integration/test_deploy.py).
REAPPLIED = "reapplied.json"
FULL_CASE = ROOT / "tests" / "terraform" / "cases" / "full.tfvars.json"


def _prepare_minimal(folder: Path, env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Through shepard.deploy, as a user applies it: ``<folder>/flock.yaml``."""
    flock_file = folder / "flock.yaml"
    flock_file.write_text(MINIMAL_YAML)
    return (
        _runner("deploy-apply", str(flock_file), str(folder / "applied.json")),
        _runner("deploy-destroy", str(flock_file), str(folder / REAPPLIED)),
    )


def full_tfvars(zips: dict[str, Path]) -> dict[str, Any]:
    """The full case of tests/terraform/cases with what the emulator can run: Lustre off (moto
    never makes it AVAILABLE), a new VPC, EFS, Spot and GPU compute environments, the local
    flock's overlay."""
    from shepard.deploy import emulator_overlay

    values: dict[str, Any] = json.loads(FULL_CASE.read_text())
    values.update(
        {
            "region": REGION,
            "availability_zones": [f"{REGION}a", f"{REGION}b"],
            **emulator_overlay(),  # what the local flock's overlay sets for the emulator
            "lustre": {"create": False},
            "efs": {"create": True},
            "network": {"allow_ssh": True, "ssh_cidr": "203.0.113.0/24"},
        }
    )
    values["lambda"].update({"scheduler_zip": str(zips["scheduler"]), "api_zip": str(zips["api"])})
    return values


def _prepare_full(folder: Path, env: dict[str, str]) -> tuple[list[str], list[str]]:
    """terraform/flock with plain Terraform, from a copy (Terraform writes into the folder)."""
    from shepard.tf.mirror import find_plugin_dir, write_cli_config
    from tests.support.flock_checks import copy_terraform_tree, write_lambda_zips

    root = copy_terraform_tree(folder) / "flock"
    zips = write_lambda_zips(folder / "lambda")
    (root / "flock.auto.tfvars.json").write_text(json.dumps(full_tfvars(zips)))
    config = write_cli_config(find_plugin_dir(), folder / "terraformrc")
    env.update({"TF_CLI_CONFIG_FILE": str(config), "TF_IN_AUTOMATION": "1"})
    return (
        _runner("terraform-apply", str(root), str(folder / "outputs.json")),
        _runner("terraform-destroy", str(root)),
    )


RECIPES: dict[str, Prepare] = {MINIMAL: _prepare_minimal, FULL: _prepare_full}


def register(
    flock: str,
    fixture: str,
    prepare: Prepare,
    *,
    emulator: bool = True,
    when: Callable[[], bool] | None = None,
    cleanup: Cleanup | None = None,
) -> None:
    """A test module's own flock (at import, before collection ends): started in the
    background like the others when a collected test uses ``fixture``.

    ``emulator=False``: no moto server of its own (a local flock starts its service); ``when``:
    asked at the end of collection, False leaves the flock unstarted (its fixture skips, or
    starts it when asked); ``cleanup``: called with the flock when it is stopped."""
    RECIPES[flock] = prepare
    FIXTURE_OF[flock] = fixture
    if not emulator:
        _LOCAL.add(flock)
    if when is not None:
        _WHEN[flock] = when
    if cleanup is not None:
        _CLEANUP[flock] = cleanup


def cli_apply(flock_file: Path) -> list[str]:
    """The argv of ``shepard-tf apply FLOCK_YAML --auto-approve`` run through shepard.cli."""
    return _runner("cli-apply", str(flock_file))


def call(function: str, *args: str) -> list[str]:
    """The argv that calls ``function`` (``"package.module:name"``, importable from the
    repository's root) with the string arguments ``args``; it raises to fail."""
    return _runner("call", function, *args)


# ----------------------------------------------------------------------------------------------
# The session: which flocks, in which order, when to destroy
# ----------------------------------------------------------------------------------------------


def needed(items: Iterable[pytest.Item]) -> dict[str, list[pytest.Item]]:
    """The tests that use each flock before its destroy."""
    users: dict[str, list[pytest.Item]] = {}
    for item in items:
        if item.get_closest_marker("after_destroy") is not None:
            continue
        names = getattr(item, "fixturenames", ())
        for flock, fixture in FIXTURE_OF.items():
            if fixture in names:
                users.setdefault(flock, []).append(item)
    return users


def order(items: list[pytest.Item]) -> None:
    """In place: the tests that need no flock and are not CPU-bound suites first, then the
    flocks' users (their applies had that long), then the unit and Terraform suites (the
    destroys run meanwhile), and the tests that wait for a destroy last."""
    users = {id(item) for group in needed(items).values() for item in group}

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("after_destroy") is not None:
            return 3
        if id(item) in users:
            return 1
        if item.nodeid.startswith(TAIL_SUITES):
            return 2
        return 0

    items.sort(key=rank)  # stable: the order within each group is kept


def start(items: Sequence[pytest.Item]) -> None:
    """Start the apply of every flock a collected test needs; remember each one's last user
    (none when only tests that wait for its destroy use it: they start the destroy)."""
    for flock, group in needed(items).items():
        _LAST_USER[flock] = group[-1].nodeid
    wanted = {
        f
        for f, fixture in FIXTURE_OF.items()
        for i in items
        if fixture in getattr(i, "fixturenames", ())
    }
    for flock in sorted(wanted):
        if flock in _WHEN and not _WHEN[flock]():
            continue  # its tests skip, or its fixture starts it when asked
        get(flock)


def get(flock: str) -> Flock:
    """The flock whose apply started at collection (or starts now)."""
    if flock not in FLOCKS:
        FLOCKS[flock] = _new_flock(flock, RECIPES[flock])
        FLOCKS[flock].start_apply()
    return FLOCKS[flock]


def item_done(nodeid: str) -> None:
    """After each test: a flock whose last user this was starts its destroy."""
    for flock, last in _LAST_USER.items():
        if last == nodeid and flock in FLOCKS:
            # A failed apply: its users have said so, and so does the fixture's teardown.
            with contextlib.suppress(RunFailed):
                FLOCKS[flock].start_destroy()


def stop_all() -> None:
    for flock in FLOCKS.values():
        flock.stop()
    FLOCKS.clear()


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())

"""Fixtures shared by every suite, and the session's IAM conformance check.

One moto server per test session (``emulator``); ``aws`` resets it before a test and points boto3
(and Terraform, through the environment) at it. Offline Terraform runs use ``tf_env``.

IAM conformance (tests/support/iam_check.py): every AWS call the flock's parts make during the
session is recorded; when the session applied a flock (``applied_flock``), each call is evaluated
against that flock's policies at the end, and a denied call fails the session. With
``SHEPARD_IAM_WRITE_DOC=1`` (``make iam-doc``) the session writes docs/iam.md instead of checking
the CLI's calls against it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.tf.mirror import find_plugin_dir, write_cli_config

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
WRITE_DOC_ENV = "SHEPARD_IAM_WRITE_DOC"
RECORDS_OUT_ENV = "SHEPARD_IAM_RECORDS_OUT"  # a file: the session's recorded calls, as JSON
LAZY = "_shepard_rebuild_on_use"  # a reset backend's (region, account) until it is used again
FULL_RESET_ENV = "SHEPARD_TESTS_FULL_MOTO_RESET"  # "1": moto's own reset (to compare times)


def pytest_configure(config: pytest.Config) -> None:
    from tests.support import iam_record

    iam_record.install()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests.support import background

    background.order(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the applies of the flocks the collected tests need (tests/support/background.py)."""
    from tests.support import background

    if not session.config.option.collectonly:
        background.start(session.items)


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    from tests.support import background

    background.item_done(nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests.support import background, iam_check
    from tests.support.iam_record import RECORDER

    background.stop_all()
    calls, names = RECORDER.all_calls(), RECORDER.all_names()
    commands = RECORDER.all_commands()
    dump = os.environ.get(RECORDS_OUT_ENV)
    if dump:
        Path(dump).write_text(iam_check.dump_records(calls, names, iam_check.APPLIED, commands))
    if iam_check.APPLIED is None:
        return
    write = os.environ.get(WRITE_DOC_ENV) == "1"
    report = iam_check.session_report(
        calls, names, iam_check.APPLIED, write_doc=write, commands=commands
    )
    iam_check.LAST_REPORT = report
    iam_check.conclude(session, report)


def pytest_unconfigure(config: pytest.Config) -> None:
    from tests.support import background

    background.remove_records()  # the background runs' IAM records, read at sessionfinish


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.support import background, iam_check

    if background.SUMMARY:
        terminalreporter.section("background flocks (tests/support/background.py)")
        for line in background.SUMMARY:
            terminalreporter.write_line(line)

    report = iam_check.LAST_REPORT
    if report is None:
        return
    terminalreporter.section("IAM conformance", red=not report.ok, green=report.ok)
    for line in report.lines():
        terminalreporter.write_line(line)
    if os.environ.get(WRITE_DOC_ENV) == "1":
        terminalreporter.write_line(f"wrote {iam_check.DOC.relative_to(ROOT)}")


def lighter_moto_reset() -> bool:
    """Make moto's reset (``POST /moto-api/reset``, before every test that uses ``aws``) skip
    work it throws away; True when installed.

    moto 5.2's ``BackendDict.reset`` calls every backend's ``reset``, which builds the backend
    again (``__init__``), and then clears every ``BackendDict``, so the rebuilt backends are
    dropped and made again lazily on first use. The rebuilding is what costs: each IAM backend
    (one per partition, six) loads all 1,582 AWS managed policies, so one reset took 2.4-7.9 s
    here (measured 2026-11-29 on 2 loaded cores) and 0.03-0.1 s without it. The backends' own
    clean-ups (S3's temporary files, Batch's job threads) still run; only the rebuild goes, and
    only while ``BackendDict.reset`` still clears what it resets (checked in its source)."""
    import inspect

    from moto.core.base_backend import BackendDict, BaseBackend

    if os.environ.get(FULL_RESET_ENV) == "1" or "backend.clear()" not in inspect.getsource(
        BackendDict.reset
    ):
        return False

    def reset(self: BaseBackend) -> None:
        # What BaseBackend.reset does, with the rebuild put off until the backend is used again:
        # most are dropped unused, but one can stay reachable (batch_simple's reset reaches
        # batch_backends after they were cleared, and used to leave an empty BatchBackend
        # there: "'BatchBackend' object has no attribute '_compute_environments'").
        self.__dict__ = {LAZY: (self.region_name, self.account_id)}

    def rebuild_on_use(self: BaseBackend, name: str) -> Any:
        where = self.__dict__.pop(LAZY, None)
        if where is None:
            raise AttributeError(name)
        self.__init__(*where)  # type: ignore[misc]
        return getattr(self, name)

    BaseBackend.reset = reset  # type: ignore[method-assign]
    BaseBackend.__getattr__ = rebuild_on_use  # type: ignore[attr-defined]
    _parse_managed_policies_once()
    return True


def _parse_managed_policies_once() -> None:
    """The first IAM call after a reset builds six IAM backends, and each parsed moto's whole
    JSON of AWS managed policies again (1.4 s of 3.5 s in a profile): parse it once. The
    parsed policies are only read (``AWSManagedPolicy.from_data`` copies what it keeps)."""
    import json

    from moto.iam import models

    parsed: list[dict[str, Any]] = []

    def init_aws_policies(self: Any) -> list[Any]:
        if not models.load_iam_aws_managed_policies():
            return []
        if not parsed:
            parsed.append(json.loads(models.aws_managed_policies_data))
        return [
            models.AWSManagedPolicy.from_data(name, self.account_id, self.region_name, data)
            for name, data in parsed[0].items()
        ]

    models.IAMBackend._init_aws_policies = init_aws_policies  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def emulator() -> Iterator[InProcessEmulator]:
    lighter_moto_reset()  # this process's moto only: the session emulator's
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

"""checkov over terraform/: no failed check; every skip is a `#checkov:skip=ID:reason` beside
the resource it concerns.

checkov pins an older boto3, so it lives in its own virtual environment: `make
checkov-install` makes `.venv-checkov`, and `make test` sets CHECKOV to its executable.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.support.flock_checks import TERRAFORM_DIR

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

SKIP_COMMENT = re.compile(r"#checkov:skip=(\S+?):(.*)")


def checkov_binary() -> str:
    binary = os.environ.get("CHECKOV")
    if binary:
        return binary
    if os.environ.get("CI"):
        pytest.fail(
            "CHECKOV is not set: in CI checkov must run (`make checkov-install`, `make test`)"
        )
    pytest.skip("CHECKOV is not set: run `make checkov-install` and `make test` to include checkov")


def test_checkov_finds_nothing_to_fix() -> None:
    binary = checkov_binary()
    result = subprocess.run(
        [
            binary,
            "--directory",
            str(TERRAFORM_DIR),
            "--framework",
            "terraform",
            "--compact",
            "--quiet",
            "--output",
            "json",
            "--skip-download",  # offline: no guideline lookups
            "--skip-path",
            r"\.terraform",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.stdout.strip(), f"checkov printed nothing:\n{result.stderr[-2000:]}"
    reports: Any = json.loads(result.stdout)
    reports = [reports] if isinstance(reports, dict) else reports
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']}): {check['check_name']}"
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    parsing = sum(report.get("summary", {}).get("parsing_errors", 0) for report in reports)
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert parsing == 0, "checkov could not parse some files"
    passed = sum(report.get("summary", {}).get("passed", 0) for report in reports)
    assert passed > 100, f"checkov ran only {passed} checks: did it read terraform/?"


def test_every_skip_gives_a_reason() -> None:
    for path in TERRAFORM_DIR.rglob("*.tf"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if "checkov:skip" in line:
                match = SKIP_COMMENT.search(line)
                assert match and len(match.group(2).strip()) >= 20, (
                    f"{path}:{number}: a checkov skip needs an ID and a reason"
                )

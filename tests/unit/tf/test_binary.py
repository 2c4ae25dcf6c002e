"""Finding terraform and checking its version."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from shepard.errors import ShepardError
from shepard.tf.binary import find_terraform, parse_version


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ('{"terraform_version": "1.11.4", "platform": "linux_amd64"}', (1, 11, 4)),
        ("Terraform v1.5.7\non linux_amd64\n", (1, 5, 7)),
        ('{"terraform_version": "1.10.0-beta1"}', (1, 10, 0)),
        ("Terraform v0.11.14\n", (0, 11, 14)),
    ],
)
def test_parse_version(text: str, version: tuple[int, int, int]) -> None:
    assert parse_version(text) == version


def test_unreadable_version_is_a_clear_error() -> None:
    with pytest.raises(ShepardError, match=r"while checking the Terraform version: cannot read"):
        parse_version("command not found")


def fake_terraform(tmp_path: Path, version_output: str) -> Path:
    script = tmp_path / "terraform"
    script.write_text(f"#!{sys.executable}\nprint({version_output!r})\n")
    script.chmod(0o755)
    return script


def test_missing_terraform_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ShepardError) as caught:
        find_terraform({"PATH": str(tmp_path)})
    assert caught.value.message == (
        "while preparing Terraform: terraform not found on PATH. Install Terraform 1.5 or newer "
        "(https://developer.hashicorp.com/terraform/install) or set SHEPARD_TERRAFORM_BIN"
    )


def test_old_terraform_is_refused(tmp_path: Path) -> None:
    script = fake_terraform(tmp_path, "Terraform v1.4.6")
    with pytest.raises(ShepardError, match=r"is Terraform 1\.4\.6, older than 1\.5"):
        find_terraform({"SHEPARD_TERRAFORM_BIN": str(script), "PATH": ""})


def test_explicit_binary_wins_over_path(tmp_path: Path) -> None:
    script = fake_terraform(tmp_path, '{"terraform_version": "1.9.8"}')
    found = find_terraform({"SHEPARD_TERRAFORM_BIN": str(script), "PATH": os.environ["PATH"]})
    assert (found.path, found.version, found.version_text) == (script, (1, 9, 8), "1.9.8")


def test_explicit_binary_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ShepardError, match=r"SHEPARD_TERRAFORM_BIN=.*is not a file"):
        find_terraform({"SHEPARD_TERRAFORM_BIN": str(tmp_path / "nope")})


def test_the_installed_terraform_is_found_on_path() -> None:
    found = find_terraform({"PATH": os.environ["PATH"]})
    assert found.version >= (1, 5, 0)
    assert found.path.name == "terraform"

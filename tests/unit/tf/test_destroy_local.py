"""Destroying a local flock stops its service and forgets its state, without a Terraform run."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from shepard import deploy
from shepard.errors import ShepardError

FLOCK = """\
name: tiny
region: us-east-1
target: local
batch:
  instance_types: [c5.large]
"""


def _flock(tmp_path: Path) -> tuple[Path, Path]:
    flock_file = tmp_path / "flock.yaml"
    flock_file.write_text(FLOCK)
    state = tmp_path / ".shepard" / "tiny"
    state.mkdir(parents=True)
    for name in ("terraform.tfstate", "terraform.tfstate.backup", "outputs.json"):
        (state / name).write_text("{}")
    return flock_file, state


def test_destroy_forgets_the_state_of_a_flock_whose_service_is_gone(tmp_path: Path) -> None:
    flock_file, state = _flock(tmp_path)
    out = io.StringIO()
    deploy.destroy(
        flock_file, env={"PATH": "/nonexistent"}, auto_approve=True, progress=out
    )  # no terraform on PATH: none is needed
    assert not (state / "terraform.tfstate").exists()
    assert not (state / "terraform.tfstate.backup").exists()
    assert not (state / "outputs.json").exists()
    assert "Destroyed local flock tiny: its service was not running" in out.getvalue()


def test_declining_keeps_everything(tmp_path: Path) -> None:
    flock_file, state = _flock(tmp_path)
    asked: list[str] = []

    def no(question: str) -> bool:
        asked.append(question)
        return False

    with pytest.raises(ShepardError, match=r"not confirmed\. Nothing was destroyed"):
        deploy.destroy(flock_file, env={}, confirm=no, progress=io.StringIO())
    assert asked and "local flock tiny" in asked[0]
    assert (state / "terraform.tfstate").exists()

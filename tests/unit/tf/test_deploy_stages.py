"""The pure stages of shepard.deploy: emulator mode, state folder, remembered images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shepard.deploy import PlanSummary, _merge_images, is_emulator, state_dir_for
from shepard.tf.events import PlannedChange


@pytest.mark.parametrize(
    ("target", "endpoint", "expected"),
    [
        ("local", "", True),
        ("aws", "", False),
        ("aws", "http://127.0.0.1:5000", True),
        ("aws", "http://127.3.4.5:5000", True),
        ("aws", "http://localhost:4566", True),
        ("aws", "http://[::1]:4566", True),
        ("aws", "127.0.0.1:5000", True),
        ("aws", "https://s3.eu-west-1.amazonaws.com", False),
        ("aws", "http://10.0.0.5:5000", False),
        ("aws", "http://localhost.example.com", False),
    ],
)
def test_emulator_mode(target: str, endpoint: str, expected: bool) -> None:
    env = {"AWS_ENDPOINT_URL": endpoint} if endpoint else {}
    assert is_emulator(target, env) is expected


def test_state_dir_beside_the_flock_file_or_under_the_variable(tmp_path: Path) -> None:
    flock_file = tmp_path / "project" / "flock.yaml"
    assert state_dir_for(flock_file, "demo", {}) == tmp_path / "project" / ".shepard" / "demo"
    other = tmp_path / "states"
    assert state_dir_for(flock_file, "demo", {"SHEPARD_STATE_DIR": str(other)}) == other / "demo"


def test_images_are_remembered_for_later_plans(tmp_path: Path) -> None:
    rendered = json.dumps({"name": "demo", "images": {"payload": None, "worker": None}})
    assert _merge_images(tmp_path, rendered, None) == rendered  # nothing pushed yet
    pushed = {"payload": "repo:payload-abc", "worker": "repo:worker-def"}
    first = json.loads(_merge_images(tmp_path, rendered, pushed))
    assert first["images"] == pushed
    # A later plan without images keeps what deploy pushed instead of rolling back to defaults.
    later = json.loads(_merge_images(tmp_path, rendered, None))
    assert later["images"] == pushed
    newer = json.loads(_merge_images(tmp_path, rendered, {"payload": "repo:payload-xyz"}))
    assert newer["images"] == {"payload": "repo:payload-xyz", "worker": "repo:worker-def"}


def test_plan_summary_words() -> None:
    assert PlanSummary(0, 0, 0).describe() == "No changes: the flock matches its configuration."
    assert not PlanSummary(0, 0, 0).has_changes
    replace = PlanSummary(add=1, change=2, destroy=1)
    assert replace.total == 4
    deferred_read = PlannedChange("module.scheduler.data.aws_iam_policy_document.queue", "read")
    assert PlanSummary(0, 1, 0, (PlannedChange("a.b", "update"), deferred_read)).total == 2
    assert replace.describe() == "Plan: 1 to add, 2 to change, 1 to destroy."

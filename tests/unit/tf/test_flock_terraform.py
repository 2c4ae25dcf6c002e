"""The whole deploy pipeline for real, offline and fast: a real flock file, the real stages, and
a root module of ``terraform_data`` resources (Terraform's built-in provider, no AWS, no
emulator) in data/builtin/flock, which ignores the flock's other variables.

What it covers that the emulator suite does not: init only when something changed, a failing
apply shown in Terraform's words, a declined confirmation, Ctrl-C during an apply leaving the
state saved and unlocked, a saved plan applied exactly (and refused when stale or another
flock's), and a flock folder copied with its state.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import pytest

from shepard.deploy import AwsTarget, Deployer, load_flock
from shepard.errors import BackendError, BadInput, ExitStatus, ShepardError

pytestmark = pytest.mark.terraform

MODULE = Path(__file__).parent / "data" / "builtin"
FLOCK = "name: {name}\nregion: us-east-1\nbatch:\n  instance_types: [c5.large]\n"
OUTPUTS = {
    "names": ["pasture-0", "pasture-1", "pasture-2"],
    "nothing": None,
    "images": {},
    "flock_name": "pasture",
    "ecr_repository_url": "123456789012.dkr.ecr.us-east-1.amazonaws.com/pasture",
    "cli_profile": {"shepard_cloudformation_stack_name": "pasture", "shepard_region": "us-east-1"},
}


class Pasture(AwsTarget):
    """AWS, with the test module's own switches (a failing or a slow resource) as overlay."""

    def __init__(self, **switches: Any) -> None:
        self.switches = switches

    def overlay(self, run_env: Mapping[str, str]) -> dict[str, Any] | None:
        return dict(self.switches) or None


def no(question: str) -> bool:
    raise AssertionError(f"asked {question!r} with auto-approve")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_", "SHEPARD_"))}
    env["SHEPARD_TERRAFORM_DIR"] = str(MODULE)
    return env


def flock_file(folder: Path, name: str = "pasture") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "flock.yaml"
    path.write_text(FLOCK.format(name=name))
    return path


def deployer(
    path: Path, env: dict[str, str], stream: IO[str] | None = None, **switches: Any
) -> Deployer:
    return Deployer(
        load_flock(path, env),
        env=env,
        target=Pasture(**switches),
        stream=stream if stream is not None else io.StringIO(),
        confirm=no,
    )


def resources(state_dir: Path) -> list[str]:
    state = json.loads((state_dir / "terraform.tfstate").read_text())
    return sorted(
        f"{r['type']}.{r['name']}[{i['index_key']}]"
        for r in state["resources"]
        for i in r["instances"]
    )


def test_apply_replan_outputs_destroy(tmp_path: Path, env: dict[str, str]) -> None:
    path = flock_file(tmp_path)
    out = io.StringIO()
    first = deployer(path, env, out)
    assert first.outputs() == {}  # nothing applied yet: no outputs, not a dict of Nones
    assert "init" in first.timings.seconds
    outputs = first.apply(auto_approve=True).outputs
    assert outputs == OUTPUTS
    state_dir = first.flock.state_dir
    assert json.loads((state_dir / "outputs.json").read_text()) == outputs
    lines = out.getvalue().splitlines()
    assert lines[:4] == [
        "Planning flock pasture...",
        "Plan: 3 to add, 0 to change, 0 to destroy.",
        # An AWS target's apply says the flock's fixed cost first (docs/cost.md): none here.
        "Fixed cost of this flock when idle: $0.00 a month (prices of 2025-06-01; "
        "`shepard-tf cost` itemizes it)",
        "Applying flock pasture: 3 to do",
    ]
    assert sum(": created (" in line for line in lines) == 3
    assert lines[-1].startswith("Applying flock pasture: 3/3 done in ")
    root = state_dir / "terraform" / "flock"
    assert not (root / "shepard.tfplan").exists()  # the saved plan is not left behind
    assert not (state_dir / "local.auto.tfvars.json").exists()  # no overlay on AWS

    again = deployer(path, env)
    assert not again.plan().summary.has_changes
    assert "init" not in again.timings.seconds  # nothing changed: no second init

    destroy_out = io.StringIO()
    deployer(path, env, destroy_out).destroy(auto_approve=True)
    assert "Destroying flock pasture: 3/3 done in " in destroy_out.getvalue()
    assert resources(state_dir) == []
    assert not (state_dir / "outputs.json").exists()


def test_changed_source_is_copied_and_reinitialised(tmp_path: Path, env: dict[str, str]) -> None:
    source = tmp_path / "terraform"
    shutil.copytree(MODULE, source)
    env = {**env, "SHEPARD_TERRAFORM_DIR": str(source)}
    path = flock_file(tmp_path / "f")
    deployer(path, env).plan()
    (source / "flock" / "extra.tf").write_text('output "extra" {\n  value = "more"\n}\n')
    second = deployer(path, env)
    second.plan()
    assert "init" in second.timings.seconds
    assert (second.flock.state_dir / "terraform" / "flock" / "extra.tf").is_file()


def test_declined_apply_changes_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    path = flock_file(tmp_path)
    asked: list[str] = []
    out = io.StringIO()

    def decline(question: str) -> bool:
        asked.append(question)
        return False

    run = deployer(path, env, out)
    run.confirm = decline
    with pytest.raises(ShepardError, match=r"not confirmed\. Nothing was changed"):
        run.apply()
    assert asked == ["Apply these changes to flock pasture (us-east-1)?"]
    # Before the question, the user saw what would change.
    assert "    + terraform_data.sheep[2] (create)\n" in out.getvalue()
    state = run.flock.state_dir / "terraform.tfstate"
    assert not state.exists() or resources(run.flock.state_dir) == []


def test_failing_apply_shows_terraforms_error(tmp_path: Path, env: dict[str, str]) -> None:
    path = flock_file(tmp_path)
    out = io.StringIO()
    run = deployer(path, env, out, fail=True)
    with pytest.raises(BackendError) as caught:
        run.apply(auto_approve=True)
    message = caught.value.message
    assert message.startswith("while applying flock pasture: Terraform failed:\nError: ")
    assert "local-exec provisioner error" in message
    assert "terraform_data.broken[0]" in message
    assert "Traceback" not in message
    assert "terraform_data.broken[0]: FAILED" in out.getvalue()
    # What succeeded is in the state; the failed resource is tainted there, to be redone.
    assert "terraform_data.sheep[0]" in resources(run.flock.state_dir)


def test_ctrl_c_during_apply_leaves_the_state_saved_and_unlocked(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = flock_file(tmp_path)
    out = io.StringIO()
    applying = threading.Event()

    class Watch(io.StringIO):
        def write(self, text: str) -> int:
            if "Applying flock" in text:
                applying.set()
            return out.write(text)

    def press_ctrl_c() -> None:
        applying.wait(60)
        time.sleep(1.5)  # the sleeping provisioner has started
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    started = time.monotonic()
    run = deployer(path, env, Watch(), sleep_seconds=30)
    with pytest.raises(ShepardError) as caught:
        run.apply(auto_approve=True)
    presser.join()
    assert caught.value.exit_status == ExitStatus.INTERRUPTED
    assert time.monotonic() - started < 25  # Terraform stopped the provisioner, did not wait 30 s
    assert "Interrupted: waiting for Terraform" in out.getvalue()
    # The state is saved (the fast resources are in it) and not locked: a plan runs at once.
    saved = resources(run.flock.state_dir)
    assert {f"terraform_data.sheep[{i}]" for i in range(3)} <= set(saved)
    assert not list(run.flock.state_dir.glob("*.lock.info"))
    assert deployer(path, env).plan().summary.add == 0  # the three sheep were saved


def test_a_saved_plan_is_applied_exactly_once(tmp_path: Path, env: dict[str, str]) -> None:
    path = flock_file(tmp_path)
    plan_file = tmp_path / "ci.tfplan"
    planned = deployer(path, env).plan(out_file=plan_file, show_json=True)
    assert plan_file.is_file() and planned.summary.add == 3
    # The plan as `terraform show -json` gives it.
    assert planned.shown is not None and planned.shown["format_version"]
    addresses = {c["address"] for c in planned.shown["resource_changes"]}
    assert addresses == {f"terraform_data.sheep[{i}]" for i in range(3)}

    out = io.StringIO()
    applied = deployer(path, env, out).apply(plan_file=plan_file)
    assert applied.outputs == OUTPUTS
    assert "Applying flock pasture: 3/3 done in " in out.getvalue()
    assert "Planning" not in out.getvalue()  # applied as saved, not planned again

    # The state moved on since the plan was made: Terraform's "Saved plan is stale", in words.
    with pytest.raises(BadInput) as caught:
        deployer(path, env).apply(plan_file=plan_file)
    assert "is stale" in caught.value.message and "Nothing was changed" in caught.value.message
    assert "shepard-tf plan FLOCK --out" in caught.value.message


def test_a_plan_of_another_flock_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    other_plan = tmp_path / "other.tfplan"
    deployer(flock_file(tmp_path / "other", "meadow"), env).plan(out_file=other_plan)
    path = flock_file(tmp_path / "mine")
    with pytest.raises(BadInput, match="was made for flock 'meadow', not 'pasture'"):
        deployer(path, env).apply(plan_file=other_plan)
    assert not (tmp_path / "mine" / ".shepard" / "pasture" / "terraform.tfstate").exists()


def test_a_folder_copied_with_its_state_is_refused_a_moved_one_adopted(
    tmp_path: Path, env: dict[str, str]
) -> None:
    original = flock_file(tmp_path / "original")
    deployer(original, env).apply(auto_approve=True)
    shutil.copytree(tmp_path / "original", tmp_path / "copy")
    copy = tmp_path / "copy" / "flock.yaml"
    with pytest.raises(BadInput) as caught:
        deployer(copy, env).plan()
    message = caught.value.message
    assert message.startswith("while preparing flock pasture: its state folder ")
    assert f"belongs to the flock file {original.resolve()}" in message
    assert "copied together with its .shepard/" in message
    assert "give the copy another `name`" in message

    # Moved rather than copied: the original is gone, and the state is this folder's now.
    shutil.rmtree(tmp_path / "original")
    out = io.StringIO()
    moved = deployer(copy, env, out)
    assert not moved.plan().summary.has_changes
    assert "moved here" in out.getvalue()

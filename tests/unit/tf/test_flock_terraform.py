"""The whole Terraform pipeline for real, offline and fast: a root module of ``terraform_data``
resources (Terraform's built-in provider, no AWS, no emulator) in data/builtin/flock.

What it covers that the emulator suite does not: init only when something changed, a failing
apply shown in Terraform's words, a declined confirmation, and Ctrl-C during an apply leaving
the state saved and unlocked.
"""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shepard.deploy import Flock, FlockTerraform, Timings, apply_flock, destroy_flock
from shepard.errors import BackendError, ExitStatus, ShepardError

pytestmark = pytest.mark.terraform

MODULE = Path(__file__).parent / "data" / "builtin"


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Flock, Path, dict[str, str]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env["SHEPARD_TERRAFORM_DIR"] = str(MODULE)
    state_dir = tmp_path / ".shepard" / "pasture"
    tfvars = tmp_path / "pasture.tfvars.json"
    tfvars.write_text(json.dumps({"name": "pasture"}))
    flock = Flock(
        name="pasture",
        region="us-east-1",
        target="aws",
        flock_file=tmp_path / "flock.yaml",
        state_dir=state_dir,
    )
    yield flock, tfvars, env


def terraform(flock: Flock, tfvars: Path, env: dict[str, str]) -> FlockTerraform:
    return FlockTerraform(
        name=flock.name,
        region=flock.region,
        state_dir=flock.state_dir,
        env=env,
        tfvars=tfvars,
        timings=Timings(),
    )


def resources(flock: Flock) -> list[str]:
    state = json.loads((flock.state_dir / "terraform.tfstate").read_text())
    return sorted(
        f"{r['type']}.{r['name']}[{i['index_key']}]"
        for r in state["resources"]
        for i in r["instances"]
    )


def test_apply_replan_outputs_destroy(setup: tuple[Flock, Path, dict[str, str]]) -> None:
    flock, tfvars, env = setup
    tf = terraform(flock, tfvars, env)
    tf.prepare()
    assert "init" in tf.timings.seconds
    assert tf.outputs() == {}  # nothing applied yet: no outputs, not a dict of Nones
    out = io.StringIO()
    outputs = apply_flock(flock, tf, env=env, auto_approve=True, confirm=None, stream=out)
    assert outputs == {"names": ["pasture-0", "pasture-1", "pasture-2"], "nothing": None}
    assert json.loads((flock.state_dir / "outputs.json").read_text()) == outputs
    lines = out.getvalue().splitlines()
    assert lines[:3] == [
        "Planning flock pasture...",
        "Plan: 3 to add, 0 to change, 0 to destroy.",
        "Applying flock pasture: 3 to do",
    ]
    assert sum(": created (" in line for line in lines) == 3
    assert lines[-1].startswith("Applying flock pasture: 3/3 done in ")
    assert not (tf.root / "shepard.tfplan").exists()  # the saved plan is not left behind

    again = terraform(flock, tfvars, env)
    again.prepare()
    assert "init" not in again.timings.seconds  # nothing changed: no second init
    assert not again.plan().has_changes

    destroy_out = io.StringIO()
    destroy_flock(flock, again, env=env, auto_approve=True, confirm=None, stream=destroy_out)
    assert "Destroying flock pasture: 3/3 done in " in destroy_out.getvalue()
    assert resources(flock) == []
    assert not (flock.state_dir / "outputs.json").exists()


def test_changed_source_is_copied_and_reinitialised(
    setup: tuple[Flock, Path, dict[str, str]], tmp_path: Path
) -> None:
    flock, tfvars, env = setup
    import shutil

    source = tmp_path / "terraform"
    shutil.copytree(MODULE, source)
    env = {**env, "SHEPARD_TERRAFORM_DIR": str(source)}
    terraform(flock, tfvars, env).prepare()
    (source / "flock" / "extra.tf").write_text('output "extra" {\n  value = "more"\n}\n')
    tf = terraform(flock, tfvars, env)
    tf.prepare()
    assert "init" in tf.timings.seconds
    assert (tf.root / "extra.tf").is_file()


def test_declined_apply_changes_nothing(setup: tuple[Flock, Path, dict[str, str]]) -> None:
    flock, tfvars, env = setup
    tf = terraform(flock, tfvars, env)
    tf.prepare()
    asked: list[str] = []
    out = io.StringIO()

    def decline(question: str) -> bool:
        asked.append(question)
        return False

    with pytest.raises(ShepardError, match=r"not confirmed\. Nothing was changed"):
        apply_flock(flock, tf, env=env, auto_approve=False, confirm=decline, stream=out)
    assert asked == ["Apply these changes to flock pasture (us-east-1)?"]
    # Before the question, the user saw what would change.
    assert "    + terraform_data.sheep[2] (create)\n" in out.getvalue()
    assert not (flock.state_dir / "terraform.tfstate").exists() or resources(flock) == []


def test_failing_apply_shows_terraforms_error(
    setup: tuple[Flock, Path, dict[str, str]],
) -> None:
    flock, tfvars, env = setup
    tfvars.write_text(json.dumps({"name": "pasture", "fail": True}))
    tf = terraform(flock, tfvars, env)
    tf.prepare()
    out = io.StringIO()
    with pytest.raises(BackendError) as caught:
        apply_flock(flock, tf, env=env, auto_approve=True, confirm=None, stream=out)
    message = caught.value.message
    assert message.startswith("while applying flock pasture: Terraform failed:\nError: ")
    assert "local-exec provisioner error" in message
    assert "terraform_data.broken[0]" in message
    assert "Traceback" not in message
    assert "terraform_data.broken[0]: FAILED" in out.getvalue()
    # What succeeded is in the state; the failed resource is tainted there, to be redone.
    assert "terraform_data.sheep[0]" in resources(flock)


def test_ctrl_c_during_apply_leaves_the_state_saved_and_unlocked(
    setup: tuple[Flock, Path, dict[str, str]],
) -> None:
    flock, tfvars, env = setup
    tfvars.write_text(json.dumps({"name": "pasture", "sleep_seconds": 30}))
    tf = terraform(flock, tfvars, env)
    tf.prepare()
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
    with pytest.raises(ShepardError) as caught:
        apply_flock(flock, tf, env=env, auto_approve=True, confirm=None, stream=Watch())
    presser.join()
    assert caught.value.exit_status == ExitStatus.INTERRUPTED
    assert time.monotonic() - started < 25  # Terraform stopped the provisioner, did not wait 30 s
    assert "Interrupted: waiting for Terraform" in out.getvalue()
    # The state is saved (the fast resources are in it) and not locked: a plan runs at once.
    saved = resources(flock)
    assert {f"terraform_data.sheep[{i}]" for i in range(3)} <= set(saved)
    assert not list(flock.state_dir.glob("*.lock.info"))
    tfvars.write_text(json.dumps({"name": "pasture"}))
    summary = terraform(flock, tfvars, env).plan()
    assert summary.add == 0  # the three sheep were saved before the interrupt

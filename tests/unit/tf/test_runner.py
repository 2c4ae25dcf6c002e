"""The subprocess runner: argument lists, -json events, errors, and Ctrl-C forwarded once."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from shepard.errors import BackendError, ExitStatus, ShepardError
from shepard.tf.binary import Terraform
from shepard.tf.events import ApplyStart
from shepard.tf.runner import TerraformRunner

DATA = Path(__file__).parent / "data"


def fake_terraform(tmp_path: Path, body: str) -> Terraform:
    """A stand-in executable for the cases real Terraform cannot be made to produce on demand."""
    script = tmp_path / "terraform"
    script.write_text(f"#!{sys.executable}\nimport sys, os, signal, time, json\n{body}\n")
    script.chmod(0o755)
    return Terraform(path=script, version=(1, 11, 4))


def test_arguments_reach_terraform_unchanged_without_a_shell(tmp_path: Path) -> None:
    tf = fake_terraform(tmp_path, "print(json.dumps(sys.argv[1:])); print(os.getcwd())")
    tricky = "-var=name=$(touch pwned); `id` ' \" *"
    result = TerraformRunner(tf, tmp_path, {"PATH": os.environ["PATH"]}).run(
        ["plan", tricky], doing="planning"
    )
    assert result.stdout.splitlines() == [f'["plan", {json_quote(tricky)}]', str(tmp_path)]
    assert not (tmp_path / "pwned").exists()


def json_quote(text: str) -> str:
    import json

    return json.dumps(text)


def test_json_stream_events_are_delivered_as_they_come(tmp_path: Path) -> None:
    recorded = DATA / "apply.jsonl"
    tf = fake_terraform(tmp_path, f"sys.stdout.write(open({str(recorded)!r}).read())")
    seen: list[object] = []
    result = TerraformRunner(tf, tmp_path, {}).run(
        ["apply", "-json"], doing="applying", json_stream=True, on_event=seen.append
    )
    assert seen == result.events
    assert sum(isinstance(e, ApplyStart) for e in seen) == 2


def test_failure_shows_terraforms_diagnostics_not_a_traceback(tmp_path: Path) -> None:
    recorded = DATA / "apply_error.jsonl"
    tf = fake_terraform(tmp_path, f"sys.stdout.write(open({str(recorded)!r}).read()); sys.exit(1)")
    with pytest.raises(BackendError) as caught:
        TerraformRunner(tf, tmp_path, {}).run(
            ["apply"], doing="applying flock tiny", json_stream=True
        )
    message = caught.value.message
    assert message.startswith("while applying flock tiny: Terraform failed:\nError: creating AWS")
    assert "Table already exists: tiny-jobs" in message
    assert "with aws_dynamodb_table.dup, on dup.tf line 1" in message
    assert message.endswith("Fix the cause above and run the command again")
    assert "Traceback" not in message
    assert caught.value.exit_status == ExitStatus.BACKEND


def test_text_failure_is_shown_without_box_drawing(tmp_path: Path) -> None:
    tf = fake_terraform(
        tmp_path,
        "sys.stderr.write('\\u2577\\n\\u2502 Error: Backend initialization required\\n\\u2502\\n"
        "\\u2502 Run terraform init\\n\\u2575\\n'); sys.exit(1)",
    )
    with pytest.raises(BackendError) as caught:
        TerraformRunner(tf, tmp_path, {}).run(["init"], doing="initialising Terraform")
    assert caught.value.message == (
        "while initialising Terraform: Terraform failed:\n"
        "Error: Backend initialization required\nRun terraform init\n"
        "Fix the cause above and run the command again"
    )


def test_missing_executable_is_a_clear_error(tmp_path: Path) -> None:
    tf = Terraform(path=tmp_path / "gone", version=(1, 11, 4))
    with pytest.raises(BackendError, match=r"while planning: .*gone cannot run"):
        TerraformRunner(tf, tmp_path, {}).run(["plan"], doing="planning")


def test_ctrl_c_is_forwarded_once_and_terraform_is_waited_for(tmp_path: Path) -> None:
    log = tmp_path / "signals.log"
    body = f"""
log = open({str(log)!r}, "a", buffering=1)
def on_int(signum, frame):
    log.write("SIGINT\\n")
    if log_count() == 1:
        time.sleep(0.5)  # finishing the operations in flight, saving state
        log.write("state saved\\n")
        sys.exit(1)
def log_count():
    return open({str(log)!r}).read().count("SIGINT")
signal.signal(signal.SIGINT, on_int)
start = {{"resource": {{"addr": "a.b"}}, "action": "create"}}
print(json.dumps({{"type": "apply_start", "hook": start}}), flush=True)
time.sleep(30)
"""
    tf = fake_terraform(tmp_path, body)
    notes: list[str] = []

    def press_ctrl_c_twice() -> None:
        time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c_twice)
    presser.start()
    started = time.monotonic()
    with pytest.raises(ShepardError) as caught:
        TerraformRunner(tf, tmp_path, {}).run(
            ["apply", "-json"],
            doing="applying flock tiny",
            json_stream=True,
            on_interrupt=lambda: notes.append("noted"),
        )
    presser.join()
    assert time.monotonic() - started < 10
    assert caught.value.exit_status == ExitStatus.INTERRUPTED
    assert "Terraform stopped cleanly" in caught.value.message
    # One SIGINT reached Terraform, and we returned only after it had saved its state.
    assert log.read_text() == "SIGINT\nstate saved\n"
    assert notes == ["noted"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

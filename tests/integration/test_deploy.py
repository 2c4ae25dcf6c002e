"""shepard.deploy against the emulator: the applied flock, a clean re-plan, errors, outputs.

The flock is applied once per session by the ``applied_flock`` fixture (tests/integration/
conftest.py); these tests read it and never change it. The re-apply runs after them, before the
flock's destroy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shepard import deploy
from shepard.deploy import emulator_overlay
from shepard.errors import BackendError, ExitStatus, ShepardError
from shepard.tf.events import PlannedChange
from shepard.tf.flock import PlanSummary
from tests.integration.conftest import AppliedFlock
from tests.support import background
from tests.support.flock_checks import check_flock

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

# docs/contracts.md section 2: every output of terraform/flock.
CONTRACT_OUTPUTS = {
    "flock_name", "region", "account_id",
    "inputs_bucket", "outputs_bucket", "errors_bucket", "quick_deploy_bucket",
    "table_name", "table_status_index", "secret_name", "secret_arn",
    "ecr_repository_name", "ecr_repository_url",
    "job_queue_name", "job_queue_arn", "job_definition_name", "job_definition_arn",
    "sqs_queue_url", "sqs_queue_arn", "dead_letter_queue_url",
    "scheduler_function_name", "api_function_name", "api_endpoint_url",
    "efs_id", "lustre_id", "vpc_id", "subnet_ids", "security_group_id",
    "lambda_environment", "job_environment", "cli_profile",
}  # fmt: skip
NULL_WHEN_NOT_CREATED = {"efs_id", "lustre_id"}


def test_outputs_are_complete(applied_flock: AppliedFlock) -> None:
    outputs = applied_flock.outputs
    assert set(outputs) >= CONTRACT_OUTPUTS, f"missing: {sorted(CONTRACT_OUTPUTS - set(outputs))}"
    empty = [
        k for k in CONTRACT_OUTPUTS - NULL_WHEN_NOT_CREATED if outputs[k] in (None, "", [], {})
    ]
    assert not empty, f"outputs without a value: {empty}"
    assert outputs["efs_id"] is None and outputs["lustre_id"] is None
    assert outputs["flock_name"] == applied_flock.name
    assert outputs["region"] == applied_flock.region
    assert outputs["account_id"] == "123456789012"  # moto's account: it really is the emulator
    assert outputs["table_status_index"] == "phase-index"
    saved = json.loads((applied_flock.state_dir / "outputs.json").read_text())
    assert saved == outputs
    # The state folder holds what contracts section 8 says it does.
    for name in ("flock.auto.tfvars.json", "lambda/scheduler.zip", "lambda/api.zip",
                 "terraform.tfstate", "terraform/flock/backend_override.tf"):  # fmt: skip
        assert (applied_flock.state_dir / name).is_file(), name
    tfvars = json.loads((applied_flock.state_dir / "flock.auto.tfvars.json").read_text())
    assert "emulator" not in tfvars and "aws_provider" not in tfvars  # rendered as for AWS
    # What the emulator cannot do is switched off in the emulator's own overlay, nowhere else.
    overlay = json.loads((applied_flock.state_dir / "local.auto.tfvars.json").read_text())
    assert overlay == emulator_overlay()
    assert overlay["enforce_tls"] is False and overlay["create_nat_gateway"] is False


def test_flock_checks_pass(applied_flock: AppliedFlock, monkeypatch: pytest.MonkeyPatch) -> None:
    applied_flock.activate(monkeypatch)
    check_flock(applied_flock.outputs, emulator=True, flock_key=False)  # the default


def test_outputs_command_reads_the_state(applied_flock: AppliedFlock) -> None:
    started = time.monotonic()
    assert deploy.outputs(applied_flock.flock_file, env=applied_flock.env) == applied_flock.outputs
    print(f"outputs: {time.monotonic() - started:.1f}s")


def _sources_changed_since_apply(applied_flock: AppliedFlock) -> bool:
    """True when the Lambda code was edited after the session's apply (a shared working tree)."""
    from shepard.package import build_lambda_zips

    now = build_lambda_zips(applied_flock.state_dir.parent / "zips-now")
    return any(
        hashlib.sha256(path.read_bytes()).hexdigest() != applied_flock.lambda_zips.get(name)
        for name, path in now.items()
    )


def _differing(change: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    before, after = change["change"]["before"] or {}, change["change"]["after"] or {}
    unknown = change["change"].get("after_unknown") or {}
    differing = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    differing |= {k for k, v in unknown.items() if v is True}
    return before, after, differing


def _tolerated(change: dict[str, Any], *, code_changed: bool) -> bool:
    """moto's known re-plan noise (measured here, with moto 5.2 and AWS provider 5.100), and
    nothing else:

    - ``aws_sqs_queue``: ``redrive_policy`` comes back with different JSON whitespace; the queue
      policy, a data source over the queue, is then re-read at apply time so it shows unknown;
    - ``aws_launch_template``: moto returns the template's own tags as an extra
      ``launch-template`` entry of ``tag_specifications`` (the compute environments use the
      template's default version against the emulator, so they do not change with it);
    - ``aws_lambda_function``: a new ``source_code_hash`` only when the Lambda code really was
      edited after the apply (a change made while the flock is up).
    """
    before, after, differing = _differing(change)
    unknown = change["change"].get("after_unknown") or {}
    kind = change["type"]
    if kind == "aws_sqs_queue":
        return differing <= {"redrive_policy"} and json.loads(
            before.get("redrive_policy") or "null"
        ) == json.loads(after.get("redrive_policy") or "null")
    if kind == "aws_sqs_queue_policy":
        return differing <= {"policy"} and unknown.get("policy") is True
    if kind == "aws_launch_template":
        own_tags_dropped = [
            t
            for t in before.get("tag_specifications", [])
            if t["resource_type"] != "launch-template"
        ]
        return differing <= {
            "tag_specifications",
            "default_version",
            "latest_version",
        } and own_tags_dropped == after.get("tag_specifications")
    if kind == "aws_lambda_function":
        return code_changed and differing <= {"source_code_hash", "last_modified"}
    return False


def _describe(change: dict[str, Any]) -> str:
    before, after = change["change"]["before"] or {}, change["change"]["after"] or {}
    unknown = change["change"].get("after_unknown") or {}
    keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    keys += sorted(k for k, v in unknown.items() if v is True and k not in keys)
    parts = []
    for k in keys:
        new = "(known after apply)" if unknown.get(k) is True else repr(after.get(k))
        parts.append(f"{k}: {before.get(k)!r} -> {new}")
    return f"{change['address']} {change['change']['actions']}: " + "; ".join(parts)


def test_second_plan_has_no_changes(applied_flock: AppliedFlock) -> None:
    started = time.monotonic()
    deployer = deploy.Deployer(
        deploy.load_flock(applied_flock.flock_file, applied_flock.env), env=applied_flock.env
    )
    # The plan as `plan --json` shows it, to look at what would change attribute by attribute.
    planned = deployer.plan(show_json=True)
    summary = planned.summary
    seconds = time.monotonic() - started
    print(f"re-plan: {seconds:.1f}s {deployer.timings.seconds}")
    assert "init" not in deployer.timings.seconds  # the working copy and init were reused
    assert summary.add == 0 and summary.destroy == 0, summary
    if not summary.has_changes:
        return
    assert planned.shown is not None
    changes = [
        c
        for c in planned.shown["resource_changes"]
        if c["change"]["actions"] not in (["no-op"], ["read"])
    ]
    code_changed = _sources_changed_since_apply(applied_flock)
    unexpected = [_describe(c) for c in changes if not _tolerated(c, code_changed=code_changed)]
    assert not unexpected, "the second plan changes more than moto's known noise:\n" + "\n".join(
        unexpected
    )
    print("re-plan: tolerated moto noise on " + ", ".join(c["address"] for c in changes))


@pytest.mark.after_destroy
def test_second_apply_succeeds_and_keeps_the_outputs(applied_flock: AppliedFlock) -> None:
    # Users re-apply an unchanged flock all the time (a local flock after every edit): moto's
    # re-plan noise must never make that fail ("Provider produced inconsistent final plan").
    # The re-apply (deploy.apply) and the plan after it (deploy.plan) run in the background
    # once the flock's other tests are done, right before its destroy (tests/support/
    # background.py, flock_runner.py): this test runs at the end of the session and reads
    # what they returned (the destroy is the fixture's to check).
    job = background.get(background.MINIMAL)
    reapplied = job.wait_for(background.REAPPLIED)
    if reapplied is None:
        pytest.fail(f"the re-apply left no result; its log ends:\n{job.log_tail('destroy')}")
    result = background.read_json(reapplied)
    assert "error" not in result, result.get("error")
    print(f"re-apply: {result['seconds']:.1f}s")
    outputs = result["outputs"]
    assert outputs == applied_flock.outputs
    planned = result["plan_after"]
    after = PlanSummary(
        planned["add"],
        planned["change"],
        planned["destroy"],
        tuple(PlannedChange(**change) for change in planned["changes"]),
    )
    assert after.destroy == 0, after
    # moto drops a queue's policy when the provider rewrites its (whitespace-only) redrive
    # policy, so the next plan puts the policy back; nothing else may be created again.
    created = {c.address for c in after.changes if c.action == "create"}
    assert created <= {"module.scheduler.aws_sqs_queue_policy.this"}, after


def test_declined_destroy_changes_nothing(applied_flock: AppliedFlock) -> None:
    questions: list[str] = []

    def decline(question: str) -> bool:
        questions.append(question)
        return False

    tfvars = applied_flock.state_dir / "flock.auto.tfvars.json"
    rendered = tfvars.read_bytes()
    # Without the emulator's endpoint the flock would render for AWS: a declined destroy must
    # not get that far (it asks before rendering anything).
    env = {k: v for k, v in applied_flock.env.items() if k != "AWS_ENDPOINT_URL"}
    with pytest.raises(ShepardError, match=r"not confirmed\. Nothing was destroyed"):
        deploy.destroy(applied_flock.flock_file, env=env, confirm=decline)
    assert tfvars.read_bytes() == rendered
    assert len(questions) == 1 and f"Destroy flock {applied_flock.name}" in questions[0]
    state = json.loads((applied_flock.state_dir / "terraform.tfstate").read_text())
    assert len(state["resources"]) > 40


def _broken_copy(tmp_path: Path) -> Path:
    source = tmp_path / "terraform"
    shutil.copytree(
        REPO / "terraform", source, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*")
    )
    (source / "modules" / "storage" / "broken.tf").write_text(
        'resource "aws_s3_bucket" "broken" {\n  bucket = \n}\n'
    )
    return source


def test_terraform_syntax_error_is_shown_without_traceback(
    applied_flock: AppliedFlock, tmp_path: Path
) -> None:
    env = {
        **applied_flock.env,
        "SHEPARD_TERRAFORM_DIR": str(_broken_copy(tmp_path)),
        "SHEPARD_STATE_DIR": str(tmp_path / "state"),  # never touch the applied flock's state
    }
    with pytest.raises(BackendError) as caught:
        deploy.plan(applied_flock.flock_file, env=env)
    message = caught.value.message
    assert message.startswith(f"while initialising Terraform for flock {applied_flock.name}:")
    assert "Invalid expression" in message
    assert "broken.tf" in message and "line 2" in message
    assert "Traceback" not in message
    assert caught.value.exit_status == ExitStatus.BACKEND

    # And as a user sees it: the command line prints Terraform's words, exit status 3.
    cli = Path(sys.executable).parent / "shepard-tf"
    if not cli.is_file():
        pytest.skip("the shepard-tf console script is not installed")
    result = subprocess.run(
        [str(cli), "plan", str(applied_flock.flock_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 3, result.stderr
    assert "Invalid expression" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout

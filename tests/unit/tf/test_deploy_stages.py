"""The pure parts of shepard.deploy: the target, the state folder, the stages' tfvars."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from shepard.config import parse_flock
from shepard.deploy import (
    OVERLAY_FILE,
    Apply,
    AwsTarget,
    Deployer,
    EmulatorTarget,
    Flock,
    LocalTarget,
    PackageLambdas,
    RememberImages,
    state_dir_for,
    target_for,
)
from shepard.errors import BackendError, BadInput
from shepard.package import build_lambda_zips, module_lambda_dir
from shepard.tf.events import PlannedChange
from shepard.tf.flock import PlanSummary

# The root variables an emulator turns off (docs/contracts.md); each defaults to the AWS value.
INTENT_VARIABLES = {
    "enforce_tls",
    "s3_lifecycle_rules",
    "create_nat_gateway",
    "enable_event_source_mapping",
    "pin_launch_template_version",
}


def _flock(tmp_path: Path, target: str = "aws") -> Flock:
    config = parse_flock(
        f"name: demo\nregion: us-east-1\ntarget: {target}\nbatch:\n  instance_types: [optimal]\n"
    )
    return Flock(
        name="demo",
        region="us-east-1",
        target=target,
        flock_file=tmp_path / "flock.yaml",
        state_dir=tmp_path / ".shepard" / "demo",
        config=config,
    )


@pytest.mark.parametrize(
    ("target", "endpoint", "expected"),
    [
        ("local", "", LocalTarget),
        ("aws", "", AwsTarget),
        ("aws", "http://127.0.0.1:5000", EmulatorTarget),
        ("aws", "http://127.3.4.5:5000", EmulatorTarget),
        ("aws", "http://localhost:4566", EmulatorTarget),
        ("aws", "http://[::1]:4566", EmulatorTarget),
        ("aws", "127.0.0.1:5000", EmulatorTarget),
        ("aws", "https://s3.eu-west-1.amazonaws.com", AwsTarget),
        ("aws", "http://10.0.0.5:5000", AwsTarget),
        ("aws", "http://localhost.example.com", AwsTarget),
    ],
)
def test_the_target_follows_the_flock_and_the_endpoint(
    tmp_path: Path, target: str, endpoint: str, expected: type
) -> None:
    env = {"AWS_ENDPOINT_URL": endpoint} if endpoint else {}
    assert type(target_for(_flock(tmp_path, target), env)) is expected


def test_only_an_emulator_gets_the_overlay(tmp_path: Path) -> None:
    flock = _flock(tmp_path)
    flock.state_dir.mkdir(parents=True)
    overlay_file = flock.state_dir / OVERLAY_FILE
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}
    assert EmulatorTarget().write_overlay(flock, env) == overlay_file
    overlay = json.loads(overlay_file.read_text())
    assert {k: overlay[k] for k in INTENT_VARIABLES} == dict.fromkeys(INTENT_VARIABLES, False)
    assert overlay["aws_provider"]["s3_use_path_style"] is True
    assert overlay["aws_provider"]["allowed_account_ids"] == ["123456789012"]
    # The same state folder deployed to AWS afterwards: the overlay must not linger.
    assert AwsTarget().write_overlay(flock, {}) is None
    assert not overlay_file.exists()


def test_state_dir_beside_the_flock_file_or_under_the_variable(tmp_path: Path) -> None:
    flock_file = tmp_path / "project" / "flock.yaml"
    assert state_dir_for(flock_file, "demo", {}) == tmp_path / "project" / ".shepard" / "demo"
    other = tmp_path / "states"
    assert state_dir_for(flock_file, "demo", {"SHEPARD_STATE_DIR": str(other)}) == other / "demo"


def test_images_are_remembered_for_later_plans(tmp_path: Path) -> None:
    flock = _flock(tmp_path)
    flock.state_dir.mkdir(parents=True)

    def images(pushed: dict[str, str] | None) -> object:
        tfvars: dict[str, object] = {"name": "demo", "images": {}}
        RememberImages(pushed).run(flock, tfvars, {})
        return tfvars["images"]

    assert images(None) == {}  # nothing pushed yet
    pushed = {"payload": "repo:payload-abc", "worker": "repo:worker-def"}
    assert images(pushed) == pushed
    # A later plan without images keeps what deploy pushed instead of rolling back to defaults.
    assert images(None) == pushed
    newer = images({"payload": "repo:payload-xyz"})
    assert newer == {"payload": "repo:payload-xyz", "worker": "repo:worker-def"}


def test_lambda_packages_are_named_only_when_they_differ_from_the_modules(
    tmp_path: Path,
) -> None:
    flock = _flock(tmp_path)
    terraform_dir = tmp_path / "terraform"
    kept = module_lambda_dir(terraform_dir)
    build_lambda_zips(kept)
    env = {"SHEPARD_TERRAFORM_DIR": str(terraform_dir)}
    (terraform_dir / "flock" / "main.tf").write_text("")

    tfvars: dict[str, object] = {"lambda": {"memory_mib": 256}}
    PackageLambdas().run(flock, tfvars, env)
    assert tfvars["lambda"] == {"memory_mib": 256}  # the module's own packages are current
    assert (flock.state_dir / "lambda" / "api.zip").read_bytes() == (kept / "api.zip").read_bytes()

    (kept / "api.zip").write_bytes(b"older")
    PackageLambdas().run(flock, tfvars, env)
    assert tfvars["lambda"] == {
        "memory_mib": 256,
        "api_zip": str(flock.state_dir / "lambda" / "api.zip"),
    }


def test_plan_summary_words() -> None:
    assert PlanSummary(0, 0, 0).describe() == "No changes: the flock matches its configuration."
    assert not PlanSummary(0, 0, 0).has_changes
    replace = PlanSummary(add=1, change=2, destroy=1)
    assert replace.total == 4
    deferred_read = PlannedChange("module.scheduler.data.aws_iam_policy_document.queue", "read")
    assert PlanSummary(0, 1, 0, (PlannedChange("a.b", "update"), deferred_read)).total == 2
    assert replace.describe() == "Plan: 1 to add, 2 to change, 1 to destroy."


# Terraform's words when moto's server dropped a kept-alive connection (a CI apply, 2 cores).
DROPPED = (
    "while applying flock demo: Terraform failed:\nError: waiting for IAM Instance Profile "
    "(demo-sheep) to be ready: operation error IAM: GetInstanceProfile, exceeded maximum number "
    "of attempts, 3, https response error StatusCode: 200, decomposing response: read tcp "
    "127.0.0.1:56316->127.0.0.1:38527: use of closed network connection"
)


class _FlakyTerraform:
    """Plans one change; its first ``failures`` applies fail with ``message``."""

    def __init__(self, root: Path, failures: int, message: str = DROPPED) -> None:
        self.root, self.failures, self.message = root, failures, message
        self.plans = self.applies = 0

    def plan(self, *, out_file: Path) -> PlanSummary:
        self.plans += 1
        out_file.write_text("plan")
        return PlanSummary(1, 0, 0)

    def apply_plan(self, plan_file: Path, **_: object) -> None:
        self.applies += 1
        if self.applies <= self.failures:
            raise BackendError(self.message)

    def outputs(self) -> dict[str, str]:
        return {"applied": "yes"}

    def show_plan(self, plan_file: Path) -> dict[str, object]:
        return {"variables": {"region": {"value": "us-east-1"}}, "resource_changes": []}


@pytest.mark.parametrize(
    ("target", "failures", "applies"),
    [(EmulatorTarget(), 1, 2), (LocalTarget(), 1, 2), (EmulatorTarget(), 2, None)],
)
def test_an_emulator_apply_runs_again_once_after_a_dropped_connection(
    tmp_path: Path, target: AwsTarget, failures: int, applies: int | None
) -> None:
    flock = _flock(tmp_path)
    tf = _FlakyTerraform(tmp_path, failures)
    deployer = Deployer(flock, {}, target=target, stream=io.StringIO())
    if applies is None:  # a second drop is the error the user sees
        with pytest.raises(BackendError, match="use of closed network connection"):
            Apply(auto_approve=True).execute(deployer, tf)  # type: ignore[arg-type]
        assert tf.applies == 2
        return
    assert Apply(auto_approve=True).execute(deployer, tf).outputs == {"applied": "yes"}  # type: ignore[arg-type]
    assert (tf.plans, tf.applies) == (2, applies)
    assert "dropped a connection" in deployer.stream.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("target", "message"),
    [(AwsTarget(), DROPPED), (EmulatorTarget(), "Error: creating S3 Bucket: BucketAlreadyExists")],
)
def test_other_apply_failures_are_not_run_again(
    tmp_path: Path, target: AwsTarget, message: str
) -> None:
    """On AWS a dropped connection is not the emulator's: the user decides; nor is any other
    error retried on an emulator."""
    tf = _FlakyTerraform(tmp_path, 1, message)
    deployer = Deployer(_flock(tmp_path), {}, target=target, stream=io.StringIO())
    with pytest.raises(BackendError):
        Apply(auto_approve=True).execute(deployer, tf)  # type: ignore[arg-type]
    assert tf.applies == 1
    # An AWS apply says the flock's fixed cost before applying (docs/cost.md); an emulator's not.
    said = deployer.stream.getvalue()  # type: ignore[attr-defined]
    assert ("Fixed cost of this flock when idle: $0.00 a month" in said) == (target.kind == "aws")


class _KeyDroppingTerraform(_FlakyTerraform):
    """Plans what a flock applied with its own KMS key gets with ``kms_key: aws_managed``."""

    def plan(self, *, out_file: Path) -> PlanSummary:
        self.plans += 1
        out_file.write_text("plan")
        return PlanSummary(
            0,
            1,
            2,
            (
                PlannedChange("module.kms.aws_kms_key.this[0]", "delete"),
                PlannedChange("module.kms.aws_kms_key_policy.this[0]", "delete"),
                PlannedChange("module.storage.aws_s3_bucket_versioning.this", "update"),
            ),
        )


def test_an_apply_that_would_delete_the_flocks_key_is_refused(tmp_path: Path) -> None:
    tf = _KeyDroppingTerraform(tmp_path, 0)
    deployer = Deployer(_flock(tmp_path), {}, target=EmulatorTarget(), stream=io.StringIO())
    with pytest.raises(BadInput) as refused:
        Apply(auto_approve=True).execute(deployer, tf)  # type: ignore[arg-type]
    assert tf.applies == 0
    message = str(refused.value)
    assert "module.kms.aws_kms_key.this[0]" in message
    assert "aws_kms_key_policy" not in message
    assert "kms_key: flock" in message and "Nothing was changed" in message

"""Apply the full flock to the emulator, check with boto3, destroy, check that nothing is left.

The full case of tests/terraform/cases with what the emulator can run: Lustre off (moto never
makes it AVAILABLE), a new VPC (the existing-VPC path is planned offline), EFS, Spot and GPU
compute environments, the emulator's overlay.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tftest

from shepard.deploy import emulator_overlay
from shepard.emulator import MOTO_ACCOUNT_ID, InProcessEmulator
from tests.support.flock_checks import (
    assert_flock_gone,
    check_flock,
    copy_terraform_tree,
    flatten_outputs,
    write_lambda_zips,
)

pytestmark = [pytest.mark.integration, pytest.mark.terraform, pytest.mark.slow]

CASE = Path(__file__).resolve().parents[1] / "terraform" / "cases" / "full.tfvars.json"


def emulator_tfvars(zips: dict[str, Path]) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(CASE.read_text())
    values.update(
        {
            "region": "us-east-1",
            "availability_zones": ["us-east-1a", "us-east-1b"],
            **emulator_overlay(),  # what the local flock's overlay sets for the emulator
            "lustre": {"create": False},
            "efs": {"create": True},
            "network": {"allow_ssh": True, "ssh_cidr": "203.0.113.0/24"},
        }
    )
    values["lambda"].update({"scheduler_zip": str(zips["scheduler"]), "api_zip": str(zips["api"])})
    return values


@pytest.fixture
def flock_dir(
    aws: InProcessEmulator, tf_cli_config: Path, tmp_path: Path
) -> Iterator[tftest.TerraformTest]:
    root = copy_terraform_tree(tmp_path)
    zips = write_lambda_zips(tmp_path / "lambda")
    (root / "flock" / "flock.auto.tfvars.json").write_text(json.dumps(emulator_tfvars(zips)))
    # tftest merges env over os.environ, which the aws fixture pointed at the emulator.
    tf = tftest.TerraformTest(
        str(root / "flock"), env={"TF_CLI_CONFIG_FILE": str(tf_cli_config), "TF_IN_AUTOMATION": "1"}
    )
    tf.setup(cleanup_on_exit=False)
    yield tf


def test_full_flock_applies_checks_out_and_destroys(flock_dir: tftest.TerraformTest) -> None:
    tf = flock_dir
    started = time.monotonic()
    outputs: dict[str, Any] = {}
    try:
        tf.apply()
        applied = time.monotonic()
        print(f"\nterraform apply (full flock, emulator): {applied - started:.1f} s")
        outputs = flatten_outputs(tf.output())
        check_flock(outputs, emulator=True)
        assert outputs["account_id"] == MOTO_ACCOUNT_ID
        assert outputs["efs_id"]
        # Terraform leaves null outputs out of `terraform output -json`.
        assert outputs.get("lustre_id") is None
        assert outputs["cli_profile"]["shepard_s3_bucket_to_upload_to"] == outputs["inputs_bucket"]
        assert outputs["job_environment"]["USES_EFS"] == "True"
    finally:
        destroy_started = time.monotonic()
        tf.destroy()
        print(
            f"terraform destroy (full flock, emulator): {time.monotonic() - destroy_started:.1f} s"
        )
    if outputs:
        assert_flock_gone(outputs)

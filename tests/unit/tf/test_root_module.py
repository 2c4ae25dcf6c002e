"""terraform/flock is whole on its own (decision 0008): a copy of terraform/ alone plus a tfvars
file is what a Terraform Cloud run gets, with no Python to build anything. And what an AWS target
plans has every emulator switch on; and an offline plan without zones says what to do.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from shepard.deploy import AwsTarget, Deployer, load_flock
from shepard.errors import BackendError

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
INTENT_VARIABLES = (
    "enforce_tls",
    "s3_lifecycle_rules",
    "create_nat_gateway",
    "enable_event_source_mapping",
    "pin_launch_template_version",
    "batch_events_delivery",
)
OFFLINE_PROVIDER = {"skip_credentials_validation": True, "skip_requesting_account_id": True}


def _terraform(root: Path, env: Mapping[str, str], *args: str) -> str:
    result = subprocess.run(
        ["terraform", f"-chdir={root}", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_root_module_plans_from_a_copy_of_terraform_alone_with_a_tfvars_file(
    tf_env: dict[str, str], tmp_path: Path
) -> None:
    # Only what a VCS-driven workspace sees: terraform/ (flock + modules), nothing built.
    shutil.copytree(
        ROOT / "terraform",
        tmp_path / "terraform",
        ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
    )
    flock_dir = tmp_path / "terraform" / "flock"
    values: dict[str, Any] = json.loads((flock_dir / "example.tfvars.json").read_text())
    assert "lambda" not in values  # no package paths: the module's own are used
    values["aws_provider"] = OFFLINE_PROVIDER
    values["availability_zones"] = ["us-east-1a", "us-east-1b"]  # offline: no lookup
    var_file = tmp_path / "workspace.tfvars.json"
    var_file.write_text(json.dumps(values))

    _terraform(flock_dir, tf_env, "init", "-input=false", "-backend=false")
    _terraform(flock_dir, tf_env, "validate", "-no-color")
    _terraform(flock_dir, tf_env, "plan", "-input=false", f"-var-file={var_file}", "-out=ws.tfplan")
    plan = json.loads(_terraform(flock_dir, tf_env, "show", "-json", "ws.tfplan"))

    # The Lambdas are the packages kept in the module, byte for byte.
    functions = {
        c["address"]: c["change"]["after"]
        for c in plan["resource_changes"]
        if c["type"] == "aws_lambda_function"
    }
    assert len(functions) == 3, sorted(functions)
    hashes = {
        base64.b64encode(
            hashlib.sha256((flock_dir / "lambda" / f"{n}.zip").read_bytes()).digest()
        ).decode()
        for n in ("scheduler", "api", "events")
    }
    assert {f["source_code_hash"] for f in functions.values()} == hashes

    # What ships to AWS: every switch an emulator turns off is on.
    variables = plan["variables"]
    assert {name: variables[name]["value"] for name in INTENT_VARIABLES} == dict.fromkeys(
        INTENT_VARIABLES, True
    )
    assert "s3_use_path_style" not in variables["aws_provider"]["value"]  # its default: false
    types = {c["type"] for c in plan["resource_changes"]}
    assert "aws_s3_bucket_lifecycle_configuration" in types
    mappings = [
        c["change"]["after"]
        for c in plan["resource_changes"]
        if c["type"] == "aws_lambda_event_source_mapping"
    ]
    assert mappings and all(m["enabled"] is True for m in mappings)
    assert AwsTarget().overlay({}) is None  # and the AWS target sets none of them otherwise


class OfflineAws(AwsTarget):
    """AWS with fake credentials and an EC2 endpoint that refuses connections."""

    def overlay(self, run_env: Mapping[str, str]) -> dict[str, Any] | None:
        return {"aws_provider": {**OFFLINE_PROVIDER, "max_retries": 0}}


def test_an_offline_plan_without_zones_says_to_give_them(
    tf_env: dict[str, str], tmp_path: Path
) -> None:
    flock_file = tmp_path / "flock.yaml"
    flock_file.write_text(
        "name: zoneless\nregion: us-east-1\nbatch:\n  instance_types: [c5.large]\n"
    )
    env = {**tf_env, "AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:9"}
    deployer = Deployer(
        load_flock(flock_file, env), env=env, target=OfflineAws(), stream=io.StringIO()
    )
    with pytest.raises(BackendError) as caught:
        deployer.plan()
    message = caught.value.message
    assert message.startswith(
        "while planning flock zoneless: the availability zones of us-east-1 could not be looked up"
    )
    assert "set network.availability_zones in the flock file" in message

"""``shepard-tf cost`` on examples/flocks/full.yaml: every resource of its plan that is billed
while idle is a line of the estimate, and every resource type of the plan is known to the price
table (priced, billed by use only, or free). One offline plan."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from shepard.commands.cost import report_lines
from shepard.config import load_flock
from shepard.cost import FIXED_TYPES, FREE_TYPES, USAGE_TYPES, estimate_plan, planned_resources
from shepard.render import tfvars
from tests.terraform.conftest import OFFLINE_PROVIDER, FlockPlanner

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

FULL = Path(__file__).resolve().parents[2] / "examples" / "flocks" / "full.yaml"


@pytest.fixture(scope="module")
def full(planner: FlockPlanner) -> dict[str, Any]:
    values = tfvars(load_flock(FULL))
    values["lambda"]["scheduler_zip"] = str(planner.zips["scheduler"])
    values["lambda"]["api_zip"] = str(planner.zips["api"])
    values["aws_provider"] = OFFLINE_PROVIDER
    path = planner.root / "full-example.tfvars.json"
    path.write_text(json.dumps(values))
    started = time.monotonic()
    shown: dict[str, Any] = planner.tf.plan(output=True, tf_var_file=str(path))._raw
    print(f"\nterraform plan examples/flocks/full.yaml: {time.monotonic() - started:.1f} s")
    return shown


def test_the_full_example_lists_every_fixed_cost_resource(full: dict[str, Any]) -> None:
    estimate = estimate_plan(full)
    resources = planned_resources(full)
    types = {c["type"] for c in resources}
    assert types <= FIXED_TYPES | USAGE_TYPES | FREE_TYPES, types - FIXED_TYPES - USAGE_TYPES
    assert estimate.unclassified == []

    # What this example is billed for while idle, from its settings (network.mode nat through
    # make_subnets_public: false, Lustre SCRATCH_2 of 2400 GiB, the key and the secret); its
    # EFS is elastic and every min_cpu is 0, so neither is a line.
    billed = {
        c["address"]
        for c in resources
        if c["type"] in FIXED_TYPES
        and not (
            c["type"] == "aws_vpc_endpoint"
            and c["change"]["after"]["vpc_endpoint_type"] == "Gateway"
        )
        and c["type"] not in ("aws_efs_file_system", "aws_batch_compute_environment")
    }
    assert {line.address for line in estimate.lines} == billed
    by_kind = {line.kind: line for line in estimate.lines}
    assert set(by_kind) == {
        "NAT gateway", "public IPv4 address", "KMS key", "Secrets Manager secret", "FSx for Lustre",
    }  # fmt: skip
    assert by_kind["NAT gateway"].monthly_usd == pytest.approx(0.048 * 730)  # eu-west-1
    assert by_kind["FSx for Lustre"].monthly_usd == pytest.approx(0.154 * 2400)
    assert "lustre.storage_capacity: 2400" in by_kind["FSx for Lustre"].setting
    assert by_kind["NAT gateway"].setting == "network.mode: nat"
    assert not estimate.unpriced and estimate.known_region

    text = "\n".join(report_lines(estimate))
    for line in estimate.lines:
        assert line.address in text and line.setting in text
    assert f"total when idle: ${estimate.monthly_usd:,.2f} a month" in text
    assert "prices of " in text and "eu-west-1" in text

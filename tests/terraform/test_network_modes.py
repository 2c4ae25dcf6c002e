"""Offline plans of the network modes (docs/decisions/0009-network-mode.md) and of what
`shepard-tf cost` reads from a plan: two plans in one module (one Terraform init), several
assertions each. The default mode and the cost allocation tags are asserted on test_plans.py's
minimal plan, which it makes anyway."""

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
INTERFACE_SERVICES = {
    "ecr.api", "ecr.dkr", "ecs", "ecs-agent", "ecs-telemetry", "logs", "secretsmanager", "sts",
}  # fmt: skip


def _plan(planner: FlockPlanner, **overrides: Any) -> dict[str, Any]:
    started = time.monotonic()
    raw = planner.plan("minimal", **overrides)
    print(f"\nterraform plan minimal {sorted(overrides)}: {time.monotonic() - started:.1f} s")
    shown: dict[str, Any] = raw._raw
    return shown


def _of_type(shown: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        c["address"]: c["change"]["after"]
        for c in shown["resource_changes"]
        if c["mode"] == "managed" and c["type"] == kind
    }


def _references(shown: dict[str, Any], resource: str, argument: str) -> set[str]:
    module = shown["configuration"]["root_module"]["module_calls"]["network"]["module"]
    [config] = [r for r in module["resources"] if r["address"] == resource]
    return set(config["expressions"][argument].get("references", []))


@pytest.fixture(scope="module")
def private(planner: FlockPlanner) -> dict[str, Any]:
    return _plan(planner, network={"mode": "private"})


def test_the_private_mode_reaches_aws_without_nat(private: dict[str, Any]) -> None:
    assert _of_type(private, "aws_nat_gateway") == {} and _of_type(private, "aws_eip") == {}
    assert not any(s["map_public_ip_on_launch"] for s in _of_type(private, "aws_subnet").values())
    endpoints = _of_type(private, "aws_vpc_endpoint")
    gateway = {e["service_name"] for e in endpoints.values() if e["vpc_endpoint_type"] == "Gateway"}
    assert gateway == {"com.amazonaws.us-east-1.s3", "com.amazonaws.us-east-1.dynamodb"}
    interface = {
        e["service_name"].removeprefix("com.amazonaws.us-east-1."): e
        for e in endpoints.values()
        if e["vpc_endpoint_type"] == "Interface"
    }
    assert set(interface) == INTERFACE_SERVICES
    assert all(e["private_dns_enabled"] for e in interface.values())
    # S3 and DynamoDB on the private route table; the interface endpoints in the private
    # subnets (one network interface per zone), open on 443 to the sheep only.
    assert "aws_route_table.private" in _references(
        private, "aws_vpc_endpoint.gateway", "route_table_ids"
    )
    assert "aws_subnet.private" in _references(private, "aws_vpc_endpoint.interface", "subnet_ids")
    [https] = _of_type(private, "aws_vpc_security_group_ingress_rule").values()
    assert (https["from_port"], https["to_port"], https["ip_protocol"]) == (443, 443, "tcp")
    assert "aws_security_group.sheep" in _references(
        private,
        "aws_vpc_security_group_ingress_rule.endpoints_https",
        "referenced_security_group_id",
    )
    # The cost command says what they cost: per endpoint and zone, by the hour.
    estimate = estimate_plan(private)
    endpoint_lines = [line for line in estimate.lines if line.kind == "interface endpoint"]
    assert len(endpoint_lines) == len(INTERFACE_SERVICES)
    assert all(line.monthly_usd > 0 for line in endpoint_lines)
    assert all("network.mode" in line.setting for line in endpoint_lines)


# -- shepard-tf cost on examples/flocks/full.yaml ----------------------------------------------


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

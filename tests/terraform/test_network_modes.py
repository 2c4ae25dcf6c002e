"""Offline plans of the network modes (docs/decisions/0009-network-mode.md) and of the tags that
let AWS's cost reports split by flock: two plans, several assertions each."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shepard.cost import estimate_plan
from tests.terraform.conftest import FlockPlanner

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

INTERFACE_SERVICES = {
    "ecr.api", "ecr.dkr", "ecs", "ecs-agent", "ecs-telemetry", "logs", "secretsmanager", "sts",
}  # fmt: skip


def _plan(planner: FlockPlanner, **overrides: Any) -> dict[str, Any]:
    started = time.monotonic()
    raw = planner.plan("minimal", **overrides)
    print(f"\nterraform plan minimal {sorted(overrides)}: {time.monotonic() - started:.1f} s")
    shown: dict[str, Any] = raw._raw
    return shown


def _created(shown: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        c["address"]: c["change"]["after"]
        for c in shown["resource_changes"]
        if c["mode"] == "managed" and c["change"]["actions"] == ["create"]
    }


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
def minimal(planner: FlockPlanner) -> dict[str, Any]:
    return _plan(planner)


@pytest.fixture(scope="module")
def private(planner: FlockPlanner) -> dict[str, Any]:
    return _plan(planner, network={"mode": "private"})


def test_the_minimal_flock_pays_nothing_for_its_network_when_idle(minimal: dict[str, Any]) -> None:
    assert _of_type(minimal, "aws_nat_gateway") == {}
    assert _of_type(minimal, "aws_eip") == {}  # no public IPv4 billed while no sheep runs
    endpoints = _of_type(minimal, "aws_vpc_endpoint").values()
    assert {e["vpc_endpoint_type"] for e in endpoints} == {"Gateway"}  # free ones only
    # Sheep run in the public subnets with a public IP each ...
    subnets = _of_type(minimal, "aws_subnet")
    public = [s for a, s in subnets.items() if ".public[" in a]
    assert public and all(s["map_public_ip_on_launch"] for s in public)
    private = [s for a, s in subnets.items() if ".private[" in a]
    assert not any(s["map_public_ip_on_launch"] for s in private)
    # ... and their security group admits nothing from outside (SSH is off by default).
    assert _of_type(minimal, "aws_vpc_security_group_ingress_rule") == {}
    [egress] = _of_type(minimal, "aws_vpc_security_group_egress_rule").values()
    assert egress["ip_protocol"] == "-1"
    # What the cost command reads from this plan: the network costs nothing idle; what is
    # left is the flock's KMS key ($1) and its secret ($0.40) (docs/cost.md).
    estimate = estimate_plan(minimal)
    assert {line.kind: line.monthly_usd for line in estimate.lines} == {
        "KMS key": 1.0,
        "Secrets Manager secret": 0.4,
    }
    assert estimate.unclassified == [] and not estimate.unpriced


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


def test_the_flock_tags_reach_instances_volumes_and_jobs(minimal: dict[str, Any]) -> None:
    [template] = _of_type(minimal, "aws_launch_template").values()
    specs = {s["resource_type"]: s["tags"] for s in template["tag_specifications"]}
    assert {"instance", "volume"} <= set(specs)
    assert all(tags["shepard:flock"] == "mini-flock" for tags in specs.values())
    for environment in _of_type(minimal, "aws_batch_compute_environment").values():
        assert environment["compute_resources"][0]["tags"]["shepard:flock"] == "mini-flock"
        assert environment["tags_all"]["shepard:flock"] == "mini-flock"
    [definition] = _of_type(minimal, "aws_batch_job_definition").values()
    assert definition["propagate_tags"] is True
    assert definition["tags_all"]["shepard:flock"] == "mini-flock"

"""The price table and the plan reader of shepard/cost: what a plan's resources cost idle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shepard.commands.cost import report_lines
from shepard.cost import _table, estimate_plan, load_prices
from tests.unit.cli.helpers import cli_env, run


def _change(address: str, kind: str, after: dict[str, Any]) -> dict[str, Any]:
    return {
        "address": address,
        "type": kind,
        "mode": "managed",
        "change": {"actions": ["create"], "after": after},
    }


def _plan(region: str, *changes: dict[str, Any]) -> dict[str, Any]:
    subnets = [
        _change(f"module.network.aws_subnet.private[{i}]", "aws_subnet", {}) for i in range(3)
    ]
    return {"variables": {"region": {"value": region}}, "resource_changes": [*subnets, *changes]}


def test_the_table_states_its_date_regions_and_spot_method() -> None:
    table = _table()
    assert table["date"] and table["currency"] == "USD" and "spot_discount_note" in table
    assert {"us-east-1", "eu-west-1"} <= set(table["regions"])
    prices = load_prices("us-east-1")
    assert prices.known and prices.instance("c5.large") is not None
    m5 = prices.instance("m5.2xlarge")
    assert m5 is not None and (m5.vcpus, m5.memory_gib) == (8, 32)
    assert not load_prices("ap-south-2").known


def test_settings_that_cost_money_idle_are_priced_with_their_cause() -> None:
    template = _change(
        "module.batch.aws_launch_template.sheep",
        "aws_launch_template",
        {"block_device_mappings": [{"ebs": [{"volume_size": 30}]}, {"ebs": [{"volume_size": 50}]}]},
    )
    plan = _plan(
        "us-east-1",
        template,
        _change(
            'module.network.aws_vpc_endpoint.interface["logs"]',
            "aws_vpc_endpoint",
            {"vpc_endpoint_type": "Interface", "service_name": "com.amazonaws.us-east-1.logs"},
        ),
        _change(
            'module.network.aws_vpc_endpoint.gateway["s3"]',
            "aws_vpc_endpoint",
            {"vpc_endpoint_type": "Gateway", "service_name": "com.amazonaws.us-east-1.s3"},
        ),
        _change(
            "module.efs.aws_efs_file_system.this[0]",
            "aws_efs_file_system",
            {"throughput_mode": "provisioned", "provisioned_throughput_in_mibps": 10},
        ),
        _change(
            "module.lustre.aws_fsx_lustre_file_system.this[0]",
            "aws_fsx_lustre_file_system",
            {
                "deployment_type": "PERSISTENT_2",
                "per_unit_storage_throughput": 125,
                "storage_capacity": 1200,
            },
        ),
        _change(
            'module.batch.aws_batch_compute_environment.this["ondemand"]',
            "aws_batch_compute_environment",
            {"compute_resources": [{"type": "EC2", "min_vcpus": 4, "instance_type": ["c5"]}]},
        ),
        _change("module.x.aws_dynamodb_table.this", "aws_dynamodb_table", {}),
        _change("module.x.aws_made_up.this", "aws_made_up", {}),
    )
    estimate = estimate_plan(plan)
    lines = {line.kind: line for line in estimate.lines}
    assert set(lines) == {
        "interface endpoint",
        "EFS provisioned throughput",
        "FSx for Lustre",
        "instances kept by min_cpu",
    }
    assert lines["interface endpoint"].monthly_usd == pytest.approx(0.01 * 730 * 3)  # 3 zones
    assert lines["interface endpoint"].setting == "network.mode: private (logs, 3 zones)"
    assert lines["EFS provisioned throughput"].monthly_usd == pytest.approx(60.0)
    assert lines["FSx for Lustre"].monthly_usd == pytest.approx(0.145 * 1200)
    kept = lines["instances kept by min_cpu"]
    # 4 vCPUs of the cheapest c5 per vCPU: 2 x c5.large, and their 80 GiB of gp3 each.
    assert kept.monthly_usd == pytest.approx(2 * 0.085 * 730 + 2 * 80 * 0.08)
    assert kept.setting == "batch.compute_environments[ondemand].min_cpu: 4"
    assert estimate.usage_only == {"aws_dynamodb_table": 1, "aws_launch_template": 1}
    assert estimate.unclassified == ["module.x.aws_made_up.this"]
    text = "\n".join(report_lines(estimate))
    assert "Not in the price table (check their cost yourself): module.x.aws_made_up.this" in text


def test_an_unknown_region_says_so_rather_than_guessing() -> None:
    plan = _plan(
        "ap-south-2",
        _change("module.kms.aws_kms_key.this", "aws_kms_key", {}),
        _change("module.network.aws_nat_gateway.this[0]", "aws_nat_gateway", {}),
    )
    estimate = estimate_plan(plan)
    assert not estimate.known_region
    assert [line.monthly_usd for line in estimate.lines] == [None, None]
    assert all("no prices for ap-south-2" in line.note for line in estimate.lines)
    assert estimate.summary().startswith(
        "Fixed cost of this flock when idle: unknown (no prices for ap-south-2"
    )
    text = "\n".join(report_lines(estimate))
    assert "the price table has no prices for ap-south-2" in text
    assert "unknown  NAT gateway" in text


def test_cost_of_a_local_flock_says_aws_bills_nothing_without_planning(tmp_path: Path) -> None:
    flock = tmp_path / "flock.yaml"
    flock.write_text(
        "name: here\nregion: us-east-1\ntarget: local\nbatch:\n  instance_types: [c5]\n"
    )
    result = run(["cost", str(flock)], cli_env(tmp_path / "config"))
    assert result.code == 0, result.err
    assert result.out.startswith("flock here runs on this machine: AWS bills nothing for it.")
    assert not (tmp_path / ".shepard").exists()  # nothing planned, nothing started

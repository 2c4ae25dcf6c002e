"""What a flock costs: its fixed monthly cost read from a Terraform plan, and a job's estimate.

The prices come from ``prices.json`` beside this module (its ``date`` and ``regions`` say what it
covers; a region it does not list is said to be unknown, never guessed). docs/cost.md explains the
numbers. :func:`estimate_plan` reads ``terraform show -json`` of a plan: every managed resource
type is either priced here (:data:`FIXED_TYPES`: billed by the hour or month whether or not a job
runs), billed only by use (:data:`USAGE_TYPES`: nothing while idle) or free (:data:`FREE_TYPES`);
a type in none of them is reported as unclassified rather than silently counted as free.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).resolve().parent / "prices.json"

# Billed whether or not a job runs (when present, or when a setting makes them so).
FIXED_TYPES = frozenset(
    {
        "aws_nat_gateway",
        "aws_eip",
        "aws_vpc_endpoint",  # interface endpoints; gateway endpoints are free
        "aws_kms_key",
        "aws_secretsmanager_secret",
        "aws_fsx_lustre_file_system",
        "aws_efs_file_system",  # provisioned throughput; storage is by use
        "aws_batch_compute_environment",  # instances kept by min_cpu
    }
)
# Nothing while idle; billed per request, GB stored or second run.
USAGE_TYPES = frozenset(
    {
        "aws_s3_bucket",
        "aws_dynamodb_table",  # on-demand billing (PAY_PER_REQUEST)
        "aws_sqs_queue",
        "aws_lambda_function",
        "aws_ecr_repository",
        "aws_cloudwatch_log_group",
        "aws_batch_job_queue",  # the instances it starts are the jobs' cost
        "aws_launch_template",
        "aws_sns_topic",
        "aws_cloudwatch_event_rule",
        "aws_apigatewayv2_api",
    }
)
# Configuration with no charge of its own.
FREE_TYPES = frozenset(
    {
        "aws_batch_job_definition",
        "aws_batch_scheduling_policy",
        "aws_cloudwatch_event_target",
        "aws_default_security_group",
        "aws_ecr_lifecycle_policy",
        "aws_efs_file_system_policy",
        "aws_efs_mount_target",
        "aws_iam_instance_profile",
        "aws_iam_policy",
        "aws_iam_role",
        "aws_iam_role_policy",
        "aws_iam_role_policy_attachment",
        "aws_internet_gateway",
        "aws_kms_alias",
        "aws_kms_key_policy",
        "aws_lambda_event_source_mapping",
        "aws_lambda_function_url",
        "aws_lambda_permission",
        "aws_route",
        "aws_route_table",
        "aws_route_table_association",
        "aws_s3_bucket_lifecycle_configuration",
        "aws_s3_bucket_logging",
        "aws_s3_bucket_notification",
        "aws_s3_bucket_ownership_controls",
        "aws_s3_bucket_policy",
        "aws_s3_bucket_public_access_block",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_versioning",
        "aws_secretsmanager_secret_version",
        "aws_security_group",
        "aws_sns_topic_policy",
        "aws_sns_topic_subscription",
        "aws_sqs_queue_policy",
        "aws_sqs_queue_redrive_policy",
        "aws_subnet",
        "aws_vpc",
        "aws_vpc_security_group_egress_rule",
        "aws_vpc_security_group_ingress_rule",
    }
)

# Batch's "optimal" picks from these families (c, m and r of the 4th and 5th generation).
OPTIMAL_FAMILIES = ("c4", "m4", "r4", "c5", "m5", "r5")


@dataclass(frozen=True)
class InstancePrice:
    name: str
    vcpus: int
    memory_gib: float
    usd_per_hour: float


@dataclass(frozen=True)
class Prices:
    """The price table of one region (``known`` False: the table does not cover it)."""

    region: str
    date: str
    hours_per_month: float
    spot_discount: float
    fixed: Mapping[str, Any]
    instances: Mapping[str, InstancePrice]
    known: bool
    regions: tuple[str, ...]

    def instance(self, name: str) -> InstancePrice | None:
        return self.instances.get(name)

    def candidates(self, names: Iterable[str]) -> list[InstancePrice]:
        """The priced types a compute environment's ``instance_type`` list may launch."""
        out: list[InstancePrice] = []
        for name in names:
            if name in self.instances:
                out.append(self.instances[name])
                continue
            families = OPTIMAL_FAMILIES if name.startswith(("optimal", "default")) else (name,)
            out += [p for p in self.instances.values() if p.name.split(".")[0] in families]
        return out


@cache
def _table() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(PRICES_FILE.read_text(encoding="utf-8"))
    return loaded


def load_prices(region: str) -> Prices:
    """The prices of ``region`` (``known`` is False when the table has none for it)."""
    table = _table()
    entry = table["regions"].get(region)
    instances: dict[str, InstancePrice] = {}
    if entry and entry.get("instances"):
        for name, row in table["instance_tables"][entry["instances"]].items():
            instances[name] = InstancePrice(
                name, int(row["vcpus"]), float(row["memory_gib"]), float(row["usd_per_hour"])
            )
    return Prices(
        region=region,
        date=str(table["date"]),
        hours_per_month=float(table["hours_per_month"]),
        spot_discount=float(table["spot_discount"]),
        fixed=(entry or {}).get("fixed") or {},
        instances=instances,
        known=entry is not None,
        regions=tuple(sorted(table["regions"])),
    )


@dataclass(frozen=True)
class Line:
    """One fixed cost of a flock: what, where in the plan, which setting causes it, per month."""

    kind: str
    address: str
    setting: str
    monthly_usd: float | None  # None: the table has no price for it (``note`` says why)
    note: str = ""


@dataclass
class Estimate:
    region: str
    date: str
    known_region: bool
    lines: list[Line] = field(default_factory=list)
    usage_only: dict[str, int] = field(default_factory=dict)  # type -> count, nothing idle
    free: dict[str, int] = field(default_factory=dict)
    unclassified: list[str] = field(default_factory=list)  # addresses of unknown types

    @property
    def monthly_usd(self) -> float:
        return sum(line.monthly_usd or 0.0 for line in self.lines)

    @property
    def unpriced(self) -> list[Line]:
        return [line for line in self.lines if line.monthly_usd is None]

    def summary(self) -> str:
        """One line for ``plan`` and ``apply``."""
        text = f"Fixed cost of this flock when idle: ${self.monthly_usd:,.2f} a month"
        if not self.known_region:
            return (
                f"Fixed cost of this flock when idle: unknown (no prices for {self.region} in "
                f"the table of {self.date}); `shepard-tf cost` lists what costs money"
            )
        if self.unpriced:
            text += f" plus {len(self.unpriced)} item(s) the table has no price for"
        return text + f" (prices of {self.date}; `shepard-tf cost` itemizes it)"

    def as_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "prices_date": self.date,
            "known_region": self.known_region,
            "monthly_usd": round(self.monthly_usd, 2),
            "lines": [
                {
                    "kind": line.kind,
                    "address": line.address,
                    "setting": line.setting,
                    "monthly_usd": None if line.monthly_usd is None else round(line.monthly_usd, 2),
                    "note": line.note,
                }
                for line in self.lines
            ],
            "usage_only": self.usage_only,
            "unclassified": self.unclassified,
        }


def cost_summary(shown: Mapping[str, Any], region: str | None = None) -> str:
    """The line ``plan`` and ``apply`` print (``region``: when the plan does not say it); a plan
    it cannot read says so, never fails."""
    try:
        return estimate_plan(shown, None if _variable(shown, "region") else region).summary()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        return f"Fixed cost of this flock: not worked out ({type(error).__name__}: {error})"


def _after(change: Mapping[str, Any]) -> dict[str, Any]:
    value = (change.get("change") or {}).get("after") or {}
    return dict(value) if isinstance(value, Mapping) else {}


def planned_resources(shown: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The managed resources the flock has after the plan (created, updated or kept)."""
    return [
        c
        for c in shown.get("resource_changes") or []
        if c.get("mode") == "managed"
        and (c.get("change") or {}).get("actions") not in (["delete"], None)
    ]


def _variable(shown: Mapping[str, Any], name: str) -> Any:
    return ((shown.get("variables") or {}).get(name) or {}).get("value")


def estimate_plan(shown: Mapping[str, Any], region: str | None = None) -> Estimate:
    """The fixed monthly cost of the flock ``shown`` (``terraform show -json`` of a plan)."""
    region = region or str(_variable(shown, "region") or "unknown")
    prices = load_prices(region)
    resources = planned_resources(shown)
    estimate = Estimate(region, prices.date, prices.known)
    zones = (
        sum(1 for c in resources if c["type"] == "aws_subnet" and ".private[" in c["address"])
        or len(_variable(shown, "availability_zones") or [])
        or 2
    )
    volumes_gib = _launched_volume_gib(resources)
    for change in resources:
        kind, address, after = change["type"], change["address"], _after(change)
        if kind in FIXED_TYPES:
            line = _fixed_line(kind, address, after, prices, zones, volumes_gib)
            if line is not None:
                estimate.lines.append(line)
        elif kind in USAGE_TYPES:
            estimate.usage_only[kind] = estimate.usage_only.get(kind, 0) + 1
        elif kind in FREE_TYPES:
            estimate.free[kind] = estimate.free.get(kind, 0) + 1
        else:
            estimate.unclassified.append(address)
    return estimate


def _price(prices: Prices, key: str) -> float | None:
    value = prices.fixed.get(key)
    return None if value is None else float(value)


def _monthly(prices: Prices, key: str, per: str) -> float | None:
    value = _price(prices, key)
    if value is None:
        return None
    return value * prices.hours_per_month if per == "hour" else value


def _unknown_region(prices: Prices) -> str:
    listed = ", ".join(prices.regions)
    return f"no prices for {prices.region} (the table of {prices.date} has {listed})"


def _fixed_line(
    kind: str,
    address: str,
    after: Mapping[str, Any],
    prices: Prices,
    zones: int,
    volumes_gib: float,
) -> Line | None:
    note = "" if prices.known else _unknown_region(prices)
    if kind == "aws_nat_gateway":
        return Line(
            "NAT gateway", address, "network.mode: nat",
            _monthly(prices, "nat_gateway_per_hour", "hour"),
            # AWS bills a NAT gateway's data processing per GB at its hourly rate.
            note or f"plus ${_price(prices, 'nat_gateway_per_hour')}/GB processed",
        )  # fmt: skip
    if kind == "aws_eip":
        return Line(
            "public IPv4 address", address, "network.mode: nat (the NAT gateway's address)",
            _monthly(prices, "public_ipv4_per_hour", "hour"), note,
        )  # fmt: skip
    if kind == "aws_vpc_endpoint":
        if after.get("vpc_endpoint_type") != "Interface":
            return None  # gateway endpoints (S3, DynamoDB) are free
        service = str(after.get("service_name") or address).rsplit(".", 1)[-1]
        hourly = _monthly(prices, "interface_endpoint_per_hour_per_az", "hour")
        return Line(
            "interface endpoint", address, f"network.mode: private ({service}, {zones} zones)",
            None if hourly is None else hourly * zones, note or "plus $0.01/GB processed",
        )  # fmt: skip
    if kind == "aws_kms_key":
        return Line(
            "KMS key", address, "encryption.kms_key: flock (buckets, table, queues, logs, secret)",
            _monthly(prices, "kms_key_per_month", "month"), note,
        )  # fmt: skip
    if kind == "aws_secretsmanager_secret":
        return Line(
            "Secrets Manager secret", address, "always: secrets_manager.secret_name",
            _monthly(prices, "secret_per_month", "month"), note,
        )  # fmt: skip
    if kind == "aws_fsx_lustre_file_system":
        return _lustre_line(address, after, prices, note)
    if kind == "aws_efs_file_system":
        if after.get("throughput_mode") != "provisioned":
            return None  # bursting and elastic: storage and transfer by use only
        mibps = float(after.get("provisioned_throughput_in_mibps") or 0)
        rate = _price(prices, "efs_provisioned_per_mibps_month")
        return Line(
            "EFS provisioned throughput", address, f"efs.throughput: {mibps:g} (MiB/s)",
            None if rate is None else rate * mibps, note or "plus storage by use",
        )  # fmt: skip
    if kind == "aws_batch_compute_environment":
        return _kept_instances_line(address, after, prices, volumes_gib)
    return None


def _lustre_line(address: str, after: Mapping[str, Any], prices: Prices, note: str) -> Line:
    deployment = str(after.get("deployment_type") or "SCRATCH_2")
    throughput = after.get("per_unit_storage_throughput")
    key = deployment if throughput is None else f"{deployment}-{int(throughput)}"
    gib = float(after.get("storage_capacity") or 0)
    rates = prices.fixed.get("lustre_per_gib_month") or {}
    rate = rates.get(key)
    setting = f"lustre.create, lustre.storage_capacity: {gib:g}, lustre.deployment_type: {key}"
    if rate is None and prices.known:
        note = f"no price for deployment type {key} in the table of {prices.date}"
    return Line(
        "FSx for Lustre", address, setting, None if rate is None else float(rate) * gib, note
    )


def _launched_volume_gib(resources: Iterable[Mapping[str, Any]]) -> float:
    """GiB of EBS each sheep carries (the launch template's volumes)."""
    total = 0.0
    for change in resources:
        if change["type"] == "aws_launch_template":
            for mapping in _after(change).get("block_device_mappings") or []:
                for ebs in mapping.get("ebs") or []:
                    total += float(ebs.get("volume_size") or 0)
    return total


def _kept_instances_line(
    address: str, after: Mapping[str, Any], prices: Prices, volumes_gib: float
) -> Line | None:
    resources = (after.get("compute_resources") or [{}])[0]
    min_vcpus = int(resources.get("min_vcpus") or 0)
    if min_vcpus <= 0:
        return None
    name = address.split('["')[-1].rstrip('"]') if '["' in address else address
    setting = f"batch.compute_environments[{name}].min_cpu: {min_vcpus}"
    if not prices.known or not prices.instances:
        return Line(
            "instances kept by min_cpu", address, setting, None,
            f"no instance prices for {prices.region} in the table of {prices.date}",
        )  # fmt: skip
    types = list(resources.get("instance_type") or [])
    candidates = prices.candidates(types)
    if not candidates:
        return Line(
            "instances kept by min_cpu", address, setting, None,
            f"no price for {', '.join(types)} in the table of {prices.date}",
        )  # fmt: skip
    cheapest = min(candidates, key=lambda p: p.usd_per_hour / p.vcpus)
    count = math.ceil(min_vcpus / cheapest.vcpus)
    hourly = cheapest.usd_per_hour * count
    note = f"{count} x {cheapest.name} at ${cheapest.usd_per_hour}/h"
    if resources.get("type") == "SPOT":
        bid = float(resources.get("bid_percentage") or 100) / 100
        hourly *= bid
        note += f", Spot: at most {bid:.0%} of on-demand"
    ebs = _price(prices, "ebs_gp3_per_gib_month") or 0.0
    monthly = hourly * prices.hours_per_month + ebs * volumes_gib * count
    return Line("instances kept by min_cpu", address, setting, monthly, note + " plus their EBS")

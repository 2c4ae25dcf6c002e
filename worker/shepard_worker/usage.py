"""What a job used and what it cost: measured by the worker, written to its record as USAGE.

A run's usage (docs/cost.md): its wall-clock seconds, the vCPUs and memory it reserved times
those seconds, the instance type and lifecycle (``spot``, ``on_demand``, or ``local`` on the
local flock) from the instance metadata service, and an estimate of its cost: its share of the
instance's hourly price for its run time, the share being the larger of its vCPU share and its
memory share (a job that takes half the memory of an instance keeps other jobs off that half).

Prices come from shepard/cost/prices.json (the worker image carries a copy). Spot's real price is
not known offline: a Spot run is priced at the on-demand price times (1 - ``spot_discount``), the
table's documented typical saving. A sheep with a public IPv4 address (network mode ``public``)
adds its $0.005 an hour, shared the same way. On the local flock (instance metadata turned off,
or AWS reached through an emulator's ``AWS_ENDPOINT_URL``) nothing is billed: lifecycle and
instance type ``local``, cost 0. A type or region the table has no price for gives a cost of
None, never a guess.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PRICES_ENV = "SHEPARD_PRICES_FILE"  # another price table (tests, a site's negotiated prices)
IPV4_USD_PER_HOUR = 0.005
DEFAULT_VCPUS = 2.0  # the job definition's default, when neither the record nor Batch says
DEFAULT_MEMORY_MIB = 7000

Metadata = Callable[[str], "str | None"]  # an IMDS path -> its text, or None


def _prices_path(env: Mapping[str, str]) -> Path | None:
    given = env.get(PRICES_ENV)
    if given:
        return Path(given)
    here = Path(__file__).resolve()
    # The image (/opt/shepard/shepard_worker -> /opt/shepard/shepard), an installed package
    # (site-packages/shepard_worker -> site-packages/shepard) and the repository (worker/...).
    for root in (here.parents[1], here.parents[2]):
        candidate = root / "shepard" / "cost" / "prices.json"
        if candidate.is_file():
            return candidate
    return None


@cache
def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@dataclass(frozen=True)
class Price:
    usd_per_hour: float
    vcpus: float
    memory_gib: float


def instance_price(
    instance_type: str, region: str, env: Mapping[str, str]
) -> tuple[Price | None, float, str]:
    """(the on-demand price of ``instance_type`` in ``region`` or None, the Spot discount, why
    there is no price)."""
    path = _prices_path(env)
    if path is None:
        return None, 0.0, "the price table is not in this image"
    table = _load(path)
    entry = table.get("regions", {}).get(region)
    discount = float(table.get("spot_discount", 0.0))
    if not entry or not entry.get("instances"):
        return None, discount, f"no instance prices for {region} in the table of {table['date']}"
    row = table["instance_tables"][entry["instances"]].get(instance_type)
    if row is None:
        return None, discount, f"no price for {instance_type} in the table of {table['date']}"
    return (
        Price(float(row["usd_per_hour"]), float(row["vcpus"]), float(row["memory_gib"])),
        discount,
        "",
    )


def estimate_cost(
    *,
    seconds: float,
    vcpus: float,
    memory_mib: float,
    instance_type: str | None,
    lifecycle: str,
    region: str,
    public_ipv4: bool,
    env: Mapping[str, str],
) -> tuple[float | None, str]:
    """The run's estimated cost in USD (None: not known) and how it was worked out."""
    if lifecycle == "local":
        return 0.0, "local flock: nothing billed"
    if not instance_type:
        return None, "no instance type (no instance metadata)"
    price, discount, why = instance_price(instance_type, region, env)
    if price is None:
        return None, why
    share = min(1.0, max(vcpus / price.vcpus, memory_mib / 1024 / price.memory_gib))
    hourly = price.usd_per_hour
    method = f"{share:.3f} of {instance_type} at ${hourly}/h"
    if lifecycle == "spot":
        hourly *= 1 - discount
        method += f", Spot at {1 - discount:.0%} of on-demand"
    if public_ipv4:
        hourly += IPV4_USD_PER_HOUR
        method += ", plus its public IPv4 address"
    return hourly * share * seconds / 3600, method


def _number(value: Any, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


class Meter:
    """Started when the worker claims a job; :meth:`usage` says what the run used so far."""

    def __init__(
        self,
        *,
        vcpus: Any,
        memory_mib: Any,
        env: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.vcpus = _number(vcpus, _number(env.get("SHEPARD_JOB_VCPUS"), DEFAULT_VCPUS))
        self.memory_mib = _number(
            memory_mib, _number(env.get("SHEPARD_JOB_MEMORY_MIB"), DEFAULT_MEMORY_MIB)
        )
        self.env = env
        self.clock = clock
        self.started = clock()
        self.recorded = False

    @classmethod
    def start(cls, record: Any, env: Mapping[str, str]) -> Meter:
        """A meter for the job ``record`` (its VCPUS and MEMORY_MIB, when it has them)."""
        return cls(
            vcpus=getattr(record, "vcpus", None),
            memory_mib=getattr(record, "memory_mib", None),
            env=env,
        )

    def usage(self, metadata: Metadata | None) -> dict[str, Any]:
        """The run's USAGE: the keys of ``shepard.joblayer.store.USAGE_KEYS``."""
        seconds = max(0.0, self.clock() - self.started)
        # The local flock: no instance (metadata off) and AWS is its emulator (an endpoint).
        local = self.env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true" or bool(
            self.env.get("AWS_ENDPOINT_URL")
        )
        instance_type = lifecycle = None
        public_ipv4 = False
        if metadata is not None and not local:
            instance_type = metadata("instance-type")
            lifecycle = metadata("instance-life-cycle")
            public_ipv4 = bool(metadata("public-ipv4"))
        if local:
            lifecycle = "local"
        elif lifecycle == "on-demand":
            lifecycle = "on_demand"
        region = self.env.get("AWS_REGION") or self.env.get("AWS_DEFAULT_REGION") or ""
        cost, _method = estimate_cost(
            seconds=seconds,
            vcpus=self.vcpus,
            memory_mib=self.memory_mib,
            instance_type=instance_type,
            lifecycle=lifecycle or "unknown",
            region=region,
            public_ipv4=public_ipv4,
            env=self.env,
        )
        return {
            "seconds": round(seconds, 3),
            "vcpu_seconds": round(seconds * self.vcpus, 3),
            "memory_gib_seconds": round(seconds * self.memory_mib / 1024, 3),
            "instance_type": instance_type or ("local" if local else None),
            "lifecycle": lifecycle,
            "cost_usd": None if cost is None else round(cost, 6),
        }

    def record(
        self, store: Any, job_id: str, metadata: Metadata | None, say: Callable[[str], None]
    ) -> None:
        """Write the run's usage to the job's record; a failure is said, never raised (the job's
        result is already recorded)."""
        if self.recorded:  # once per run
            return
        self.recorded = True
        try:
            store.record_usage(job_id, self.usage(metadata))
        except Exception as error:  # the usage record never fails a job
            say(f"could not record the usage of job {job_id}: {error}")

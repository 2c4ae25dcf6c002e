"""Each job's usage and estimated cost (worker/shepard_worker/usage.py), and its record."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from shepard_worker.usage import Meter

from shepard.commands.jobs import usage_cost
from shepard.joblayer.ids import new_job_id
from shepard.joblayer.store import USAGE_KEYS, JobRecord, JobStore
from shepard.joblayer.testing import create_job_table


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _meter(env: dict[str, str], **job: Any) -> tuple[Meter, Clock]:
    clock = Clock()
    meter = Meter(vcpus=job.get("vcpus"), memory_mib=job.get("memory_mib"), env=env, clock=clock)
    clock.now += 3600  # one hour
    return meter, clock


def _imds(**values: str) -> Any:
    return lambda path: values.get(path)


def test_an_on_demand_job_pays_the_larger_of_its_vcpu_and_memory_share() -> None:
    meter, _ = _meter({"AWS_REGION": "us-east-1"}, vcpus=2, memory_mib=16 * 1024)
    usage = meter.usage(
        _imds(**{"instance-type": "m5.2xlarge", "instance-life-cycle": "on-demand"})
    )
    assert set(usage) == set(USAGE_KEYS)
    assert usage["seconds"] == 3600 and usage["vcpu_seconds"] == 7200
    assert usage["memory_gib_seconds"] == 16 * 3600
    assert (usage["instance_type"], usage["lifecycle"]) == ("m5.2xlarge", "on_demand")
    # m5.2xlarge: 8 vCPUs, 32 GiB, $0.384/h; 2 vCPUs is 1/4, 16 GiB is 1/2: half of it.
    assert usage["cost_usd"] == pytest.approx(0.384 / 2)


def test_spot_uses_the_documented_discount_and_a_public_address_adds_its_price() -> None:
    meter, _ = _meter({"AWS_REGION": "us-east-1"}, vcpus=8, memory_mib=1024)
    metadata = {"instance-type": "c5.2xlarge", "instance-life-cycle": "spot"}
    usage = meter.usage(_imds(**metadata, **{"public-ipv4": "203.0.113.7"}))
    assert usage["lifecycle"] == "spot"
    assert usage["cost_usd"] == pytest.approx(0.34 * (1 - 0.65) + 0.005)


def test_no_price_is_unknown_and_the_local_flock_costs_nothing() -> None:
    meter, _ = _meter({"AWS_REGION": "eu-west-1"}, vcpus=2, memory_mib=2048)
    usage = meter.usage(_imds(**{"instance-type": "c5.large", "instance-life-cycle": "spot"}))
    assert usage["cost_usd"] is None and usage_cost(usage) == "unknown"
    local, _ = _meter({"AWS_EC2_METADATA_DISABLED": "true"})
    usage = local.usage(None)
    assert (usage["instance_type"], usage["lifecycle"], usage["cost_usd"]) == ("local", "local", 0)
    assert usage["vcpu_seconds"] == 2 * 3600  # the job definition's default when none is given
    assert usage_cost(usage) == "$0 (local)"
    assert (
        usage_cost({}) == "" and usage_cost({"cost_usd": 0.01234, "lifecycle": "spot"}) == "$0.0123"
    )


def test_usage_adds_up_over_attempts_in_the_record(aws: Any) -> None:
    client = boto3.client("dynamodb")
    create_job_table(client, "usage-jobs")
    store = JobStore("usage-jobs", days_to_keep_finished_jobs=30)
    job_id = new_job_id()
    store.create(JobRecord(job_id=job_id))
    first = {
        "seconds": 10.5, "vcpu_seconds": 21.0, "memory_gib_seconds": 70.0,
        "instance_type": "c5.large", "lifecycle": "spot", "cost_usd": 0.00001,
    }  # fmt: skip
    store.record_usage(job_id, first)
    store.record_usage(job_id, {**first, "lifecycle": "on_demand", "cost_usd": 0.25})
    record = store.get(job_id)
    assert record is not None
    assert record.usage == {
        "seconds": 21, "vcpu_seconds": 42, "memory_gib_seconds": 140,
        "instance_type": "c5.large", "lifecycle": "on_demand", "cost_usd": 0.25001,
    }  # fmt: skip
    with pytest.raises(ValueError, match="USAGE has no keys"):
        store.record_usage(job_id, {"dollars": 1})

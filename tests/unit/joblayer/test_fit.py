"""The instance table, the memory jobs can use, and the fit check at submit time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shepard.joblayer.fit import FlockResources, ResourcesError
from shepard.joblayer.instances import (
    ECS_RESERVED_MEMORY_MIB,
    INSTANCE_TYPES,
    KEYWORD_FAMILIES,
    expand,
    fits,
    usable_memory_mib,
)
from shepard.joblayer.records import Result
from shepard.joblayer.service import JobService, Outcome
from shepard.joblayer.settings import FlockSettings


def test_usable_memory_matches_the_aws_guide_example() -> None:
    # "Compute resource memory management": an m4.large reports 7985 MiB; 32 MiB stay reserved.
    assert usable_memory_mib("m4.large") == 7985 - ECS_RESERVED_MEMORY_MIB


def test_table_covers_the_keyword_families_and_gpu_types() -> None:
    families = {t.family for t in INSTANCE_TYPES.values()}
    for keyword_families in KEYWORD_FAMILIES.values():
        assert set(keyword_families) <= families
    assert INSTANCE_TYPES["p3.16xlarge"].gpus == 8
    assert INSTANCE_TYPES["r5.24xlarge"].memory_mib == 768 * 1024
    assert INSTANCE_TYPES["c4.8xlarge"].vcpus == 36


def test_expand_families_keywords_and_unknown_names() -> None:
    known, unknown = expand(["m5", "g5.xlarge", "x2iedn.metal", "zz9"])
    names = {t.name for t in known}
    assert "m5.24xlarge" in names and "g5.xlarge" in names and "m4.large" not in names
    assert unknown == ["x2iedn.metal", "zz9"]


def test_fits_names_the_smallest_fitting_type() -> None:
    fit = fits(2, 7960, 0, ["m5"])  # m5.large leaves 7953 MiB
    assert fit.fits and fit.fitting[0] == "m5.xlarge"
    assert fit.reason is None


def test_memory_shortfall_has_the_numbers() -> None:
    fit = fits(2, 64000, 0, ["m5.large", "m5.xlarge"])
    assert not fit.fits
    usable = usable_memory_mib("m5.xlarge")
    assert fit.most_memory_mib == ("m5.xlarge", usable)
    assert fit.reason == (
        f"it asks 64000 MiB of memory and the largest instance type, m5.xlarge, leaves "
        f"{usable} MiB to jobs ({64000 - usable} MiB short)"
    )


def test_gpu_and_vcpu_shortfalls() -> None:
    fit = fits(200, 1000, 2, ["optimal"])
    assert not fit.fits
    assert any("none of the instance types has a GPU" in s for s in fit.shortfalls)
    assert any("it asks 200 vCPUs" in s for s in fit.shortfalls)


def test_an_unknown_type_is_never_a_reason_to_refuse() -> None:
    assert fits(2, 10**7, 0, ["m5", "u-12tb1.112xlarge"]).fits
    assert fits(2, 10**7, 0, ["u-12tb1"]).fits


def _resources(memory_mib: int, **environments: list[str]) -> str:
    return json.dumps(
        {"vcpus": 2, "memory_mib": memory_mib, "gpus": 0, "compute_environments": environments}
    )


def test_refusal_names_every_compute_environment() -> None:
    resources = FlockResources.from_json(_resources(500000, spot=["m5"], ondemand=["c5.large"]))
    assert resources is not None
    reason = resources.refusal()
    assert reason is not None
    assert "compute environment spot: it asks 500000 MiB" in reason
    assert "compute environment ondemand: it asks 500000 MiB" in reason
    assert "m5.24xlarge" in reason and "c5.large" in reason
    # one environment that fits is enough
    fits_one = FlockResources.from_json(_resources(500000, spot=["m5"], big=["r5"]))
    assert fits_one is not None and fits_one.refusal() is None


def test_bad_or_missing_variable() -> None:
    assert FlockResources.from_json("") is None
    with pytest.raises(ResourcesError, match="SHEPARD_JOB_RESOURCES"):
        FlockResources.from_json('{"vcpus": "x"}')


class _Table:
    """The two store calls a rejection makes."""

    def __init__(self) -> None:
        self.records: dict[str, Any] = {}

    def create(self, record: Any) -> bool:
        self.records[record.job_id] = record
        return True

    def get(self, job_id: str) -> Any:
        return self.records.get(job_id)


class _NoBatch:
    def submit(self, *args: object, **kwargs: object) -> str:
        raise AssertionError("a job that can never be placed must not reach SubmitJob")


def _service(resources: str) -> tuple[JobService, _Table]:
    settings = FlockSettings.from_env(
        {
            **{
                name: "x"
                for name in (
                    "SHEPARD_FLOCK",
                    "SHEPARD_TABLE_NAME",
                    "SHEPARD_JOB_QUEUE",
                    "SHEPARD_JOB_DEFINITION",
                    "SHEPARD_INPUTS_BUCKET",
                    "SHEPARD_OUTPUTS_BUCKET",
                    "SHEPARD_ERRORS_BUCKET",
                    "SHEPARD_QUICK_DEPLOY_BUCKET",
                )
            },
            "SHEPARD_JOB_RESOURCES": resources,
        }
    )
    table = _Table()
    return JobService(settings, table, _NoBatch()), table  # type: ignore[arg-type]


def test_submit_records_an_unplaceable_job_as_rejected() -> None:
    service, table = _service(_resources(64000, default=["m5.large"]))
    outcome = service.submit({"test1": "a"}, is_invoked=True)
    assert outcome.outcome is Outcome.REJECTED
    assert outcome.reason is not None and "compute environment default" in outcome.reason
    record = table.records[outcome.job_id]
    assert record.result is Result.REJECTED and record.reason == outcome.reason


def test_submit_array_is_refused_whole() -> None:
    service, table = _service(_resources(64000, default=["c5.large"]))
    outcome = service.submit_array([{"a": "1"}, {"a": "2"}])
    assert outcome.outcome is Outcome.REJECTED
    assert len(table.records) == 1

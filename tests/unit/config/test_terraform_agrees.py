"""The Python validator and Terraform's `validation` blocks accept the same values.

shepard/config/model.py states what AWS accepts; every `validation` block of terraform/flock and
terraform/modules that checks a value the flock file sets is read here and compared with the
Python spec of that key: bounds, lists of choices and patterns. A bound or a choice that one
side has and the other lacks fails, and so does a variable whose check is not compared at all.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from shepard.config import model, rules
from shepard.config.model import Spec

ROOT = Path(__file__).resolve().parents[3]
TERRAFORM = ROOT / "terraform"


def spec_of(cls: type, name: str) -> Spec:
    [found] = [f for f in dataclasses.fields(cls) if f.name == name]
    value: Spec = found.metadata["spec"]
    return value


def choices_of(cls: type, name: str) -> tuple[Any, ...]:
    hint = typing.get_type_hints(cls)[name]
    return typing.get_args(hint)


def conditions(path: str) -> list[str]:
    """The `condition` expressions of every validation block of one file."""
    text = (TERRAFORM / path).read_text(encoding="utf-8")
    found = re.findall(r"validation\s*\{\s*condition\s*=\s*(.+?)\n\s*error_message", text, re.S)
    assert found, f"no validation blocks in {path}"
    return [" ".join(c.split()) for c in found]


def condition_on(path: str, expression: str) -> str:
    matching = [c for c in conditions(path) if re.search(rf"{re.escape(expression)}(?![\w.])", c)]
    assert matching, f"{path}: no validation of {expression}"
    return " && ".join(matching)


def bound(condition: str, expression: str, operator: str) -> int | None:
    found = re.search(rf"{re.escape(expression)} {re.escape(operator)} (\d+)", condition)
    return int(found.group(1)) if found else None


def contained(condition: str, expression: str) -> tuple[Any, ...]:
    found = re.search(rf"contains\(\[([^\]]*)\], {re.escape(expression)}\)", condition)
    assert found, f"no contains([...], {expression}) in {condition}"
    items = [item.strip() for item in found.group(1).split(",")]
    return tuple(int(i) if i.isdigit() else i.strip('"') for i in items)


def pattern(condition: str, expression: str) -> str:
    found = re.search(rf'can\(regex\("(.+?)", {re.escape(expression)}\)\)', condition)
    assert found, f"no regex check of {expression} in {condition}"
    return found.group(1).replace("\\\\", "\\")


# (Terraform file, the checked expression, the Python class and field that set it)
API = "modules/api/variables.tf"
SCHEDULER = "modules/scheduler/variables.tf"
BATCH = "modules/batch/variables.tf"
Lambda, Sqs, Ebs = model.LambdaConfig, model.SqsConfig, model.EbsConfig
Batch, Job, Environment = (
    model.BatchConfig,
    model.JobExecutionConfig,
    model.ComputeEnvironmentConfig,
)

RANGES = [
    (API, "var.lambda_memory_mib", Lambda, "memory_size"),
    (SCHEDULER, "var.lambda_memory_mib", Lambda, "memory_size"),
    (API, "var.lambda_timeout_seconds", Lambda, "timeout_seconds"),
    (SCHEDULER, "var.lambda_timeout_seconds", Lambda, "timeout_seconds"),
    (SCHEDULER, "var.max_receive_count", Sqs, "max_receive_count"),
    (SCHEDULER, "var.visibility_timeout_seconds", Sqs, "visibility_timeout_seconds"),
    (SCHEDULER, "var.batch_size", model.SchedulerConfig, "batch_size"),
    (SCHEDULER, "var.batching_window_seconds", model.SchedulerConfig, "batching_window_seconds"),
    (BATCH, "var.job.ulimit_nofile", Batch, "ulimits_no_files_open"),
    (BATCH, "var.job.timeout_seconds", Job, "timeout_seconds"),
    (BATCH, "var.job.retry_attempts", model.RetryConfig, "attempts"),
    (BATCH, "var.root_volume_gib", Ebs, "size_of_root_disk"),
    (BATCH, "var.container_storage_gib", Ebs, "size_of_container_storage_disk"),
    (BATCH, "ce.bid_percentage", Environment, "spot_bid_price_percent"),
    (BATCH, "ce.bid_percentage", Batch, "spot_bid_price_percent"),
    (BATCH, "var.max_vcpus", Batch, "max_cpu"),
    (BATCH, "var.runnable_timeout_seconds", Batch, "runnable_timeout_seconds"),
    (BATCH, "var.update_job_timeout_minutes", Batch, "update_job_timeout_minutes"),
    ("modules/registry/variables.tf", "var.keep_images", model.EcrConfig, "keep_images"),
]

PATTERNS = [
    ("flock/variables.tf", "var.name", model.FlockConfig, "name"),
    ("flock/variables.tf", "var.region", model.FlockConfig, "region"),
    ("modules/job_table/variables.tf", "var.table_name", model.DynamoDBConfig, "table_name"),
    ("modules/registry/variables.tf", "var.repository_name", model.EcrConfig, "repo_name"),
]


@pytest.mark.parametrize(("path", "expression", "cls", "name"), RANGES)
def test_bounds_agree(path: str, expression: str, cls: type, name: str) -> None:
    condition = condition_on(path, expression)
    spec = spec_of(cls, name)
    assert bound(condition, expression, ">=") == spec.minimum, condition
    terraform_max = bound(condition, expression, "<=")
    # Terraform may leave a maximum to AWS; where it states one, it is Python's.
    assert terraform_max is None or terraform_max == spec.maximum, condition


@pytest.mark.parametrize(
    ("path", "cls"),
    [
        ("modules/api/variables.tf", model.LambdaConfig),
        ("modules/scheduler/variables.tf", model.LambdaConfig),
        (BATCH, model.BatchConfig),
    ],
)
def test_log_retention_is_cloudwatchs_list_on_both_sides(path: str, cls: type) -> None:
    condition = condition_on(path, "var.log_retention_days")
    assert contained(condition, "var.log_retention_days") == model.LOG_RETENTION_DAYS
    assert spec_of(cls, "log_retention_days").choices == model.LOG_RETENTION_DAYS
    assert model.LOG_RETENTION_DAYS[-1] == 3653


def test_lustre_deployment_types_agree() -> None:
    condition = condition_on("modules/lustre/variables.tf", "var.deployment_type")
    terraform = contained(condition, "var.deployment_type")
    assert terraform == choices_of(model.LustreConfig, "deployment_type")


def test_compute_environment_count_agrees() -> None:
    condition = condition_on("modules/batch/variables.tf", "length(var.compute_environments)")
    assert bound(condition, "length(var.compute_environments)", "<=") == (
        rules.MAX_COMPUTE_ENVIRONMENTS
    )


@pytest.mark.parametrize(("path", "expression", "cls", "name"), PATTERNS)
def test_patterns_agree(path: str, expression: str, cls: type, name: str) -> None:
    condition = condition_on(path, expression)
    assert pattern(condition, expression) == spec_of(cls, name).pattern


# Edge values and the verdict both sides must give (the patterns use nothing that Python's ``re``
# and Terraform's RE2 read differently: no look-arounds, no backreferences).
EDGES: dict[tuple[type, str], dict[str, bool]] = {
    (model.FlockConfig, "region"): {
        "us-east-1": True, "us-gov-west-1": True, "cn-northwest-1": True,
        "us-isob-east-1": True, "eu-central-12": True, "virginia": False, "us-east": False,
        "US-EAST-1": False, "us-east-1a": False,
    },
    (model.DynamoDBConfig, "table_name"): {
        "abc": True, "_jobs.v2-x": True, "a" * 255: True, "ab": False, "a" * 256: False,
        "jobs table": False,
    },
    (model.FlockConfig, "name"): {
        "my-flock": True, "ab": True, "a" + "b" * 30: True, "a": False, "a" + "b" * 31: False,
        "1flock": False, "My-flock": False,
    },
}  # fmt: skip


@pytest.mark.parametrize(("cls", "key"), sorted(EDGES, key=lambda k: k[1]))
def test_edge_values_meet_the_expected_verdict(cls: type, key: str) -> None:
    python_pattern = spec_of(cls, key).pattern
    assert python_pattern is not None
    assert not re.search(r"\(\?[=!<]|\\[1-9]", python_pattern)
    verdicts = {value: bool(re.match(python_pattern, value)) for value in EDGES[(cls, key)]}
    assert verdicts == EDGES[(cls, key)]


VALIDATED = {
    "modules/api/variables.tf": {"var.lambda_memory_mib", "var.lambda_timeout_seconds",
                                 "var.log_retention_days"},
    "modules/scheduler/variables.tf": {"var.lambda_memory_mib", "var.lambda_timeout_seconds",
                                       "var.log_retention_days", "var.max_receive_count",
                                       "var.visibility_timeout_seconds", "var.batch_size",
                                       "var.batching_window_seconds"},
    "modules/job_table/variables.tf": {"var.table_name"},
    "modules/lustre/variables.tf": {"var.deployment_type"},
    "modules/registry/variables.tf": {"var.repository_name", "var.keep_images"},
}  # fmt: skip


@pytest.mark.parametrize("path", sorted(VALIDATED))
def test_every_simple_check_of_these_files_is_compared(path: str) -> None:
    """A new single-variable check in these files must join the tables above."""
    checked = set()
    for condition in conditions(path):
        names = set(re.findall(r"var\.[a-z_]+", condition))
        if len(names) == 1:
            checked |= names
    compared = VALIDATED[path]
    assert checked - compared <= _NOT_SET_BY_THE_FLOCK_FILE.get(path, set()), checked - compared


# Checked by Terraform, but not keys of flock.yaml (the renderer derives them), or compared
# elsewhere: lustre.storage_capacity (1200 or a multiple of 2400) by rules.check_storage and
# tests/unit/config/bad/lustre_capacity.yaml.
_NOT_SET_BY_THE_FLOCK_FILE: dict[str, set[str]] = {
    "modules/lustre/variables.tf": {"var.storage_capacity_gib", "var.per_unit_storage_throughput"},
    "modules/registry/variables.tf": {
        "var.tag_prefixes",
        "var.protected_tags",
        "var.untagged_expire_days",
    },
}

"""Offline plan: flock.yaml's ``scheduler.batch_size`` and ``batching_window_seconds`` reach the
scheduler's event source mapping (the defaults are asserted in test_plans.py's minimal plan)."""

from __future__ import annotations

import pytest

from shepard.config.loader import parse_flock
from shepard.render import tfvars
from tests.terraform.conftest import FlockPlanner

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

FLOCK = """
name: mini-flock
region: us-east-1
batch:
  instance_types: [optimal]
scheduler: {batch_size: 2500, batching_window_seconds: 20}
"""


def test_flock_file_sets_the_event_source_mapping(planner: FlockPlanner) -> None:
    sqs = tfvars(parse_flock(FLOCK))["sqs"]
    assert (sqs["batch_size"], sqs["batching_window_seconds"]) == (2500, 20)
    plan = planner.plan("minimal", sqs=sqs)
    [mapping] = [
        change["change"]["after"]
        for address, change in plan.resource_changes.items()
        if address == "module.scheduler.aws_lambda_event_source_mapping.this"
    ]
    assert (mapping["batch_size"], mapping["maximum_batching_window_in_seconds"]) == (2500, 20)

"""Offline plans: Batch's events reach the events Lambda, timeouts are on by default,
notifications go to a KMS-encrypted topic, and the events role allows exactly what the handler
calls.

Two plans. One of terraform/flock (the ``planner`` fixture) shows the wiring: in it, values made
from ARNs are unknown, so the rule's queues, the queue policy's sender and the role's resources
are read from the plan's configuration (which reference feeds each). One of a harness root
module that calls modules/events and modules/iam with literal ARNs holds the rendered event
pattern and the events role's policy, which is evaluated against the calls the handler makes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import tftest

from tests.support.iam_policy import Request, evaluate
from tests.terraform.conftest import FlockPlanner, offline_env

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

EMAIL = "ops@example.com"
HOOK = "https://hooks.example.com/shepard"
ACCOUNT = "123456789012"
REGION = "us-east-1"
ARN = f"{REGION}:{ACCOUNT}"
QUEUES = [f"arn:aws:batch:{ARN}:job-queue/h-flock-queue", f"arn:aws:batch:{ARN}:job-queue/h-od"]
TABLE = f"arn:aws:dynamodb:{ARN}:table/h-flock-jobs"
EVENTS_QUEUE = f"arn:aws:sqs:{ARN}:h-flock-batch-events"
TOPIC = f"arn:aws:sns:{ARN}:h-flock-notifications"
LOGS = f"arn:aws:logs:{ARN}:log-group:/aws/lambda/h-flock-events"
KEY = f"arn:aws:kms:{ARN}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

HARNESS = """
provider "aws" {
  region                      = "%(region)s"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

locals {
  at      = "%(region)s:%(account)s"
  buckets = ["inputs", "outputs", "errors", "quick-deploy"]
}

module "events" {
  source                       = "%(modules)s/events"
  name                         = "h-flock"
  job_queue_arns               = %(queues)s
  kms_key_arn                  = "%(key)s"
  role_arn                     = "arn:aws:iam::%(account)s:role/h-flock-events"
  zip_path                     = "%(zip)s"
  environment                  = { SHEPARD_FLOCK = "h-flock" }
  notification_emails          = ["%(email)s"]
}

# The scheduler's queues with a known key ARN: the provider checks that SSE-SQS and a KMS key
# are not both set only once the key is known, as at apply on AWS.
module "scheduler" {
  source             = "%(modules)s/scheduler"
  name               = "h-flock"
  kms_key_arn        = "%(key)s"
  use_kms_key        = true
  inputs_bucket_name = "h-inputs"
  inputs_bucket_arn  = "arn:aws:s3:::h-inputs"
  role_arn           = "arn:aws:iam::%(account)s:role/h-flock-scheduler"
  zip_path           = "%(zip)s"
  environment        = { SHEPARD_FLOCK = "h-flock" }
}

module "iam" {
  source                    = "%(modules)s/iam"
  name                      = "h-flock"
  region                    = "%(region)s"
  account_id                = "%(account)s"
  kms_key_arn               = "%(key)s"
  bucket_arns               = { for role in local.buckets : role => "arn:aws:s3:::h-${role}" }
  table_arn                 = "%(table)s"
  secret_arn                = "arn:aws:secretsmanager:${local.at}:secret:h-flock-secrets-AbCdEf"
  secret_name               = "h-flock-secrets"
  repository_arn            = "arn:aws:ecr:%(region)s:%(account)s:repository/h-flock"
  sqs_queue_arn             = "arn:aws:sqs:%(region)s:%(account)s:h-flock-scheduler"
  job_queue_arn             = "%(queue)s"
  job_definition_arn_prefix = "arn:aws:batch:%(region)s:%(account)s:job-definition/h-flock"
  scheduler_log_group_arn   = "arn:aws:logs:${local.at}:log-group:/aws/lambda/h-flock-scheduler"
  api_log_group_arn         = "arn:aws:logs:${local.at}:log-group:/aws/lambda/h-flock-api"
  events_queue_arn          = "%(events_queue)s"
  events_log_group_arn      = "%(logs)s"
  notifications_topic_arn   = "%(topic)s"
}
"""


@pytest.fixture(scope="module")
def plan(planner: FlockPlanner) -> tftest.TerraformPlanOutput:
    return planner.plan("minimal", notifications={"emails": [EMAIL], "https_endpoints": [HOOK]})


@pytest.fixture(scope="module")
def harness(tf_cli_config: Path, planner: FlockPlanner) -> dict[str, Mapping[str, Any]]:
    """The harness's planned values by resource address."""
    folder = planner.root / "events-harness"  # beside the planner's copy of terraform/
    folder.mkdir()
    (folder / "main.tf").write_text(
        HARNESS
        % {
            "region": REGION,
            "account": ACCOUNT,
            "modules": "../modules",
            "queues": json.dumps(QUEUES),
            "queue": QUEUES[0],
            "key": KEY,
            "zip": planner.zips["api"].as_posix(),
            "email": EMAIL,
            "table": TABLE,
            "events_queue": EVENTS_QUEUE,
            "logs": LOGS,
            "topic": TOPIC,
        }
    )
    tf = tftest.TerraformTest(str(folder), env=offline_env(tf_cli_config))
    tf.env.pop("AWS_ENDPOINT_URL", None)
    tf.setup(cleanup_on_exit=False)
    raw = tf.plan(output=True)
    return {
        address: change["change"]["after"]
        for address, change in raw.resource_changes.items()
        if change["mode"] == "managed"
    }


def _resources(module: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from module.get("resources", [])
    for child in module.get("child_modules", []):
        yield from _resources(child)


def planned(plan: tftest.TerraformPlanOutput, address: str) -> Mapping[str, Any]:
    for resource in _resources(plan.planned_values["root_module"]):
        if resource["address"] == address:
            return dict(resource.get("values", {}))
    raise AssertionError(f"{address} is not in the plan")


def module_config(plan: tftest.TerraformPlanOutput, *path: str) -> Mapping[str, Any]:
    module = plan.configuration["root_module"]
    for name in path:
        module = module["module_calls"][name]["module"]
    return dict(module)


def resource_config(module: Mapping[str, Any], address: str) -> Mapping[str, Any]:
    for resource in module["resources"]:
        if resource["address"] == address:
            return dict(resource)
    raise AssertionError(f"{address} is not configured")


def references(expression: Mapping[str, Any]) -> set[str]:
    return set(expression.get("references", []))


def test_the_rule_takes_batch_job_state_changes_of_the_flocks_queues_only(
    plan: tftest.TerraformPlanOutput, harness: dict[str, Mapping[str, Any]]
) -> None:
    pattern = json.loads(
        harness["module.events.aws_cloudwatch_event_rule.batch_jobs[0]"]["event_pattern"]
    )
    assert pattern == {
        "source": ["aws.batch"],
        "detail-type": ["Batch Job State Change"],
        "detail": {"jobQueue": QUEUES},
    }
    # The flock gives the rule every queue it has: the job queue and the ladder's on-demand one.
    root = plan.configuration["root_module"]["module_calls"]
    queues = {"module.batch.job_queue_arn"}
    if "on_demand_job_queue_arn" in root["batch"]["module"].get("outputs", {}):
        queues.add("module.batch.on_demand_job_queue_arn")
    assert queues <= references(root["events"]["expressions"]["job_queue_arns"])
    values = planned(plan, "module.events.aws_cloudwatch_event_rule.batch_jobs[0]")
    assert (values["name"], values["event_bus_name"]) == ("mini-flock-batch-job-state", "default")


def test_the_target_is_the_encrypted_queue_with_a_dead_letter_queue(
    plan: tftest.TerraformPlanOutput,
) -> None:
    events = module_config(plan, "events")
    target = resource_config(events, "aws_cloudwatch_event_target.queue")
    assert "aws_sqs_queue.this" in references(target["expressions"]["arn"])
    assert "aws_cloudwatch_event_rule.batch_jobs" in references(target["expressions"]["rule"])
    queue = planned(plan, "module.events.aws_sqs_queue.this[0]")
    assert queue["name"] == "mini-flock-batch-events"
    assert queue["visibility_timeout_seconds"] >= 6 * 60
    dlq = planned(plan, "module.events.aws_sqs_queue.dead_letter[0]")
    assert dlq["name"] == "mini-flock-batch-events-dlq"
    for name in ("this", "dead_letter"):
        config = resource_config(events, f"aws_sqs_queue.{name}")
        assert "var.kms_key_arn" in references(config["expressions"]["kms_master_key_id"])
    mapping = planned(plan, "module.events.aws_lambda_event_source_mapping.this[0]")
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["enabled"] is True
    function = planned(plan, "module.events.module.function.aws_lambda_function.this")
    assert function["function_name"] == "mini-flock-events"
    assert function["handler"] == "handler.handler"


def test_only_the_rule_may_send_to_the_queue(plan: tftest.TerraformPlanOutput) -> None:
    events = module_config(plan, "events")
    document = resource_config(events, "data.aws_iam_policy_document.queue")
    statement = document["expressions"]["statement"][0]
    assert statement["actions"]["constant_value"] == ["sqs:SendMessage"]
    assert statement["principals"][0]["identifiers"]["constant_value"] == ["events.amazonaws.com"]
    condition = statement["condition"][0]
    assert condition["test"]["constant_value"] == "ArnEquals"
    assert condition["variable"]["constant_value"] == "aws:SourceArn"
    assert references(condition["values"]) >= {"aws_cloudwatch_event_rule.batch_jobs"}
    # The flock's key lets EventBridge encrypt into the queue, for this rule only.
    kms_call = plan.configuration["root_module"]["module_calls"]["kms"]["expressions"]
    assert "var.name" in references(kms_call["eventbridge_rule_names"])


def test_jobs_time_out_and_stuck_jobs_are_cancelled_by_default(
    plan: tftest.TerraformPlanOutput,
) -> None:
    definition = planned(plan, "module.batch.aws_batch_job_definition.this")
    assert definition["timeout"] == [{"attempt_duration_seconds": 86400}]
    queue = planned(plan, "module.batch.aws_batch_job_queue.this")
    limits = queue["job_state_time_limit_action"]
    assert {limit["reason"] for limit in limits} == {
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
    }
    assert {(limit["action"], limit["state"], limit["max_time_seconds"]) for limit in limits} == {
        ("CANCEL", "RUNNABLE", 3600)
    }


def test_notifications_go_to_an_encrypted_topic(plan: tftest.TerraformPlanOutput) -> None:
    topic = planned(plan, "module.events.aws_sns_topic.notifications[0]")
    assert topic["name"] == "mini-flock-notifications"
    events = module_config(plan, "events")
    config = resource_config(events, "aws_sns_topic.notifications")
    assert "var.kms_key_arn" in references(config["expressions"]["kms_master_key_id"])
    subscriptions = {
        (values["protocol"], values["endpoint"])
        for address, change in plan.resource_changes.items()
        if address.startswith("module.events.aws_sns_topic_subscription.this")
        for values in [change["change"]["after"]]
    }
    assert subscriptions == {("email", EMAIL), ("https", HOOK)}


# What the events handler calls (lambdas/events/handler.py, JobStore, Notifier, the ladder).
HANDLER_CALLS = [
    ("dynamodb:UpdateItem", TABLE),
    ("dynamodb:GetItem", TABLE),
    ("dynamodb:Query", f"{TABLE}/index/batch-index"),
    ("sns:Publish", TOPIC),
    ("batch:SubmitJob", QUEUES[0]),
    ("batch:SubmitJob", f"arn:aws:batch:{ARN}:job-definition/h-flock:3"),
    ("sqs:ReceiveMessage", EVENTS_QUEUE),
    ("sqs:DeleteMessage", EVENTS_QUEUE),
    ("kms:Decrypt", KEY),
    ("logs:PutLogEvents", f"{LOGS}:log-stream:2026/11/29/[$LATEST]abc"),
]
# What it must not be able to do.
REFUSED = [
    ("dynamodb:Scan", TABLE),
    ("dynamodb:DeleteItem", TABLE),
    ("dynamodb:UpdateItem", f"arn:aws:dynamodb:{ARN}:table/other-jobs"),
    ("sns:Publish", f"arn:aws:sns:{ARN}:other-topic"),
    ("sqs:ReceiveMessage", f"arn:aws:sqs:{ARN}:h-flock-scheduler"),
    ("batch:TerminateJob", QUEUES[0]),
    ("s3:GetObject", "arn:aws:s3:::h-flock-inputs/job.zip"),
]


def test_the_events_role_allows_what_the_handler_calls_and_nothing_else(
    harness: dict[str, Mapping[str, Any]],
) -> None:
    policy = json.loads(harness["module.iam.aws_iam_role_policy.events"]["policy"])
    role = f"arn:aws:iam::{ACCOUNT}:role/h-flock-events"
    for action, resource in HANDLER_CALLS:
        outcome = evaluate(Request(action, resource, role), [policy])
        assert outcome.allowed, (action, resource, outcome)
    for action, resource in REFUSED:
        outcome = evaluate(Request(action, resource, role), [policy])
        assert not outcome.allowed, (action, resource)
    trust = json.loads(harness["module.iam.aws_iam_role.events"]["assume_role_policy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_the_flock_gives_the_role_its_queue_and_topic(plan: tftest.TerraformPlanOutput) -> None:
    iam_call = plan.configuration["root_module"]["module_calls"]["iam"]["expressions"]
    assert "module.events.queue_arn" in references(iam_call["events_queue_arn"])
    assert "module.events.log_group_arn" in references(iam_call["events_log_group_arn"])
    assert "module.events.topic_arn" in references(iam_call["notifications_topic_arn"])
    events_call = plan.configuration["root_module"]["module_calls"]["events"]["expressions"]
    assert "module.iam.events_role_arn" in references(events_call["role_arn"])


def test_queues_under_the_flocks_key_leave_sse_sqs_unset(
    harness: dict[str, Mapping[str, Any]],
) -> None:
    """With the key's ARN known (as at apply) the provider refuses ``sqs_managed_sse_enabled``
    beside ``kms_master_key_id``, even false: the harness plans at all only when it is unset."""
    queues = {a: v for a, v in harness.items() if a.split(".")[-2:][0] == "aws_sqs_queue"}
    assert {a.split(".")[1] for a in queues} == {"events", "scheduler"}
    for address, values in queues.items():
        assert values["kms_master_key_id"] == KEY, address
        assert not values.get("sqs_managed_sse_enabled"), address

"""Offline plans of terraform/flock for the cases in cases/: resource counts and key values.

Each case is a tfvars file; cases/<case>.expected.json pins how many resources of each type
its plan creates. The values that make a flock safe and correct (IMDSv2, encryption, retry
strategy, queue order, GSI, TLS-only policies, SSH rules, environments) are asserted here.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
import tftest

from tests.terraform.conftest import CASES, FlockPlanner

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

# docs/contracts.md sections 3 and 4.
LAMBDA_ENV_KEYS = {
    "SHEPARD_FLOCK", "SHEPARD_TABLE_NAME", "SHEPARD_JOB_QUEUE", "SHEPARD_JOB_DEFINITION",
    "SHEPARD_INPUTS_BUCKET", "SHEPARD_OUTPUTS_BUCKET", "SHEPARD_ERRORS_BUCKET",
    "SHEPARD_QUICK_DEPLOY_BUCKET", "SHEPARD_DAYS_TO_KEEP_FAILED_LAUNCH_INDEXES",
    "SHEPARD_DAYS_TO_KEEP_FINISHED_JOBS", "SHEPARD_JOB_TIMEOUT_SECONDS",
}  # fmt: skip
JOB_ENV_KEYS = {
    "INPUTS_BUCKET", "OUTPUTS_BUCKET", "ERROR_BUCKET", "USES_EFS", "USES_LUSTRE",
    "ULIMIT_FILENO", "SHEPARD_FLOCK", "SHEPARD_TABLE_NAME", "SHEPARD_SECRET_NAME",
    "SHEPARD_QUICK_DEPLOY_BUCKET", "SHEPARD_PAYLOAD_IMAGE", "SHEPARD_ALLOW_DOCKER_DAEMON",
    "SHEPARD_WORK_ROOT", "INSTANCE_TAGS", "SHEPARD_DAYS_TO_KEEP_FINISHED_JOBS",
}  # fmt: skip
CONTRACT_OUTPUTS = {
    "flock_name", "region", "account_id", "inputs_bucket", "outputs_bucket", "errors_bucket",
    "quick_deploy_bucket", "table_name", "table_status_index", "secret_name", "secret_arn",
    "ecr_repository_name", "ecr_repository_url", "job_queue_name", "job_queue_arn",
    "job_definition_name", "job_definition_arn", "sqs_queue_url", "sqs_queue_arn",
    "dead_letter_queue_url", "scheduler_function_name", "api_function_name", "api_endpoint_url",
    "efs_id", "lustre_id", "vpc_id", "subnet_ids", "security_group_id", "lambda_environment",
    "job_environment", "cli_profile",
}  # fmt: skip


class Plan:
    """The parts of a plan the tests read: created resources by address, output values."""

    def __init__(self, raw: tftest.TerraformPlanOutput) -> None:
        self.changes = {
            address: change
            for address, change in raw.resource_changes.items()
            if change["mode"] == "managed"
        }
        self.output_changes: dict[str, Any] = raw.output_changes

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(c["type"] for c in self.changes.values()).items()))

    def after(self, address: str) -> dict[str, Any]:
        assert address in self.changes, f"{address} not planned; have {sorted(self.changes)}"
        assert self.changes[address]["change"]["actions"] == ["create"]
        value: dict[str, Any] = self.changes[address]["change"]["after"]
        return value

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {a: c["change"]["after"] for a, c in self.changes.items() if c["type"] == kind}

    def output_keys(self, name: str) -> set[str]:
        change = self.output_changes[name]
        return set(change["after"] or {}) | set(change["after_unknown"] or {})

    def output(self, name: str) -> Any:
        return self.output_changes[name]["after"]


def plan_case(planner: FlockPlanner, case: str, **overrides: Any) -> Plan:
    started = time.monotonic()
    plan = Plan(planner.plan(case, **overrides))
    print(f"\nterraform plan {case} {sorted(overrides)}: {time.monotonic() - started:.1f} s")
    return plan


@pytest.fixture(scope="module")
def minimal(planner: FlockPlanner) -> Plan:
    return plan_case(planner, "minimal")


@pytest.fixture(scope="module")
def minimal_emulated(planner: FlockPlanner) -> Plan:
    return plan_case(planner, "minimal", emulator={"enabled": True})


@pytest.fixture(scope="module")
def full(planner: FlockPlanner) -> Plan:
    return plan_case(planner, "full")


@pytest.mark.parametrize("case", ["minimal", "full"])
def test_resource_counts_match_the_expected_plan(case: str, request: pytest.FixtureRequest) -> None:
    plan: Plan = request.getfixturevalue(case)
    expected = json.loads((CASES / f"{case}.expected.json").read_text())
    assert plan.counts() == expected["resource_counts"]


def test_outputs_are_exactly_the_contract(minimal: Plan) -> None:
    assert set(minimal.output_changes) == CONTRACT_OUTPUTS
    assert minimal.output("table_status_index") == "phase-index"
    assert minimal.output("efs_id") is None and minimal.output("lustre_id") is None
    assert minimal.output_keys("lambda_environment") == LAMBDA_ENV_KEYS
    assert minimal.output_keys("job_environment") == JOB_ENV_KEYS
    profile = minimal.output_keys("cli_profile")
    assert {"shepard_s3_bucket_to_upload_to", "shepard_dynamo_db_to_query"} <= profile
    assert minimal.output("cli_profile")["shepard_cloudformation_stack_name"] == "mini-flock"


def test_sheep_use_imdsv2_and_encrypted_volumes(minimal: Plan) -> None:
    template = minimal.after("module.batch.aws_launch_template.sheep")
    [metadata] = template["metadata_options"]
    assert (metadata["http_endpoint"], metadata["http_tokens"]) == ("enabled", "required")
    assert metadata["http_put_response_hop_limit"] == 2
    volumes = {b["device_name"]: b["ebs"][0] for b in template["block_device_mappings"]}
    assert {d: (v["encrypted"], v["volume_size"]) for d, v in volumes.items()} == {
        "/dev/xvda": ("true", 30),
        "/dev/xvdcz": ("true", 50),
    }
    assert template["key_name"] is None
    tags = {t["resource_type"]: t["tags"] for t in template["tag_specifications"]}
    assert tags["instance"] == {"Name": "mini-flock-sheep"}


def test_buckets_are_encrypted_private_and_tls_only(minimal: Plan) -> None:
    for after in minimal.of_type("aws_s3_bucket_server_side_encryption_configuration").values():
        rule = after["rule"][0]
        assert rule["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms"
        assert rule["bucket_key_enabled"] is True
    blocks = minimal.of_type("aws_s3_bucket_public_access_block").values()
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls")
    assert all(all(b[f] for f in (*flags, "restrict_public_buckets")) for b in blocks)
    owners = minimal.of_type("aws_s3_bucket_ownership_controls").values()
    assert {o["rule"][0]["object_ownership"] for o in owners} == {"BucketOwnerEnforced"}
    assert len(minimal.of_type("aws_s3_bucket_policy")) == 4
    prefixes = {b["bucket_prefix"] for b in minimal.of_type("aws_s3_bucket").values()}
    assert prefixes == {f"mini-flock-{r}-" for r in ("inputs", "outputs", "errors", "quick-deploy")}
    lifecycle = minimal.after('module.storage.aws_s3_bucket_lifecycle_configuration.this["inputs"]')
    assert {r["id"] for r in lifecycle["rule"]} == {
        "abort-incomplete-uploads",
        "expire-noncurrent-versions",
    }


def test_emulator_mode_changes_only_the_measured_limits(
    minimal: Plan, minimal_emulated: Plan
) -> None:
    aws, emu = minimal.counts(), minimal_emulated.counts()
    removed = {k: aws[k] - emu.get(k, 0) for k in aws if aws[k] != emu.get(k, 0)}
    assert removed == {
        "aws_s3_bucket_policy": 4,  # TLS-only Deny: moto ignores conditions
        "aws_s3_bucket_lifecycle_configuration": 4,  # 55 s wait per bucket
        "aws_nat_gateway": 1,
        "aws_eip": 1,
        "aws_route": 1,  # the private route through the NAT gateway
    }
    mapping = "module.scheduler.aws_lambda_event_source_mapping.this"
    assert minimal.after(mapping)["enabled"] is True
    assert minimal_emulated.after(mapping)["enabled"] is False


def test_job_definition_retries_only_reclaimed_hosts(minimal: Plan) -> None:
    definition = minimal.after("module.batch.aws_batch_job_definition.this")
    strategy = definition["retry_strategy"][0]
    assert strategy["attempts"] == 3
    assert [
        (e["action"], e["on_status_reason"], e["on_reason"]) for e in strategy["evaluate_on_exit"]
    ] == [
        ("retry", "Host EC2*", None),
        ("exit", None, "*"),
    ]
    assert definition["timeout"] == [{"attempt_duration_seconds": 86400}]
    assert definition["platform_capabilities"] == ["EC2"]


def test_job_table_has_the_status_index_ttl_and_pitr(minimal: Plan) -> None:
    table = minimal.after("module.job_table.aws_dynamodb_table.this")
    assert (table["name"], table["billing_mode"], table["hash_key"]) == (
        "mini-flock-jobs",
        "PAY_PER_REQUEST",
        "UUID",
    )
    [index] = table["global_secondary_index"]
    assert (index["name"], index["hash_key"], index["range_key"], index["projection_type"]) == (
        "phase-index",
        "PHASE",
        "CREATED_AT",
        "ALL",
    )
    assert table["ttl"] == [{"attribute_name": "EXPIRES_AT", "enabled": True}]
    assert table["point_in_time_recovery"][0]["enabled"] is True
    assert table["server_side_encryption"][0]["enabled"] is True


def test_scheduler_queue_lambda_and_mapping(minimal: Plan) -> None:
    queue = minimal.after("module.scheduler.aws_sqs_queue.this")
    # 180 s asked for, but at least 6 x the 60 s Lambda timeout.
    assert queue["visibility_timeout_seconds"] == 360
    assert queue["name"] == "mini-flock-scheduler"
    function = minimal.after("module.scheduler.aws_lambda_function.this")
    assert (function["runtime"], function["handler"]) == ("python3.12", "handler.handler")
    mapping = minimal.after("module.scheduler.aws_lambda_event_source_mapping.this")
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    notification = minimal.after("module.scheduler.aws_s3_bucket_notification.inputs")
    [target] = notification["queue"]
    assert (target["events"], target["filter_suffix"]) == (["s3:ObjectCreated:*"], ".zip")
    url = minimal.after("module.api.aws_lambda_function_url.this")
    assert url["authorization_type"] == "AWS_IAM"


def test_minimal_flock_opens_no_ingress(minimal: Plan) -> None:
    assert minimal.of_type("aws_vpc_security_group_ingress_rule") == {}
    assert minimal.after("module.kms.aws_kms_key.this")["enable_key_rotation"] is True
    secret = minimal.after("module.secrets.aws_secretsmanager_secret.this")
    assert secret["recovery_window_in_days"] == 7


def test_full_compute_environments_and_queue_order(full: Plan) -> None:
    envs = {
        address.split('"')[1]: after
        for address, after in full.of_type("aws_batch_compute_environment").items()
    }
    resources = {key: env["compute_resources"][0] for key, env in envs.items()}
    assert resources["spot"]["type"] == "SPOT"
    assert resources["spot"]["bid_percentage"] == 60
    assert resources["spot"]["allocation_strategy"] == "SPOT_CAPACITY_OPTIMIZED"
    assert resources["ondemand"]["allocation_strategy"] == "BEST_FIT_PROGRESSIVE"
    assert (resources["ondemand"]["min_vcpus"], resources["ondemand"]["max_vcpus"]) == (2, 512)
    assert resources["gpu"]["max_vcpus"] == 64
    images = {k: r["ec2_configuration"][0]["image_type"] for k, r in resources.items()}
    assert images == {"spot": "ECS_AL2", "ondemand": "ECS_AL2", "gpu": "ECS_AL2_NVIDIA"}
    assert {r["ec2_key_pair"] for r in resources.values()} == {"lab-key"}
    queue = full.after("module.batch.aws_batch_job_queue.this")
    assert sorted(o["order"] for o in queue["compute_environment_order"]) == [1, 2, 3]
    spot_role = full.changes["module.iam.aws_iam_role.spot_fleet[0]"]
    assert spot_role["change"]["after"]["name"] == "full-flock-spot-fleet"


def test_full_ssh_only_from_the_configured_cidr(full: Plan) -> None:
    rules = full.of_type("aws_vpc_security_group_ingress_rule")
    by_port = {(r["from_port"], r["to_port"]): r for r in rules.values()}
    assert set(by_port) == {(22, 22), (2049, 2049), (988, 988), (1018, 1023)}
    assert by_port[(22, 22)]["cidr_ipv4"] == "203.0.113.0/24"
    assert all(r["cidr_ipv4"] is None for k, r in by_port.items() if k != (22, 22))


def test_full_existing_vpc_file_systems_and_extra_policy(full: Plan) -> None:
    assert full.of_type("aws_vpc") == {} and full.of_type("aws_nat_gateway") == {}
    group = full.after("module.network.aws_security_group.sheep")
    assert group["vpc_id"] == "vpc-0123456789abcdef0"
    efs = full.after("module.efs.aws_efs_file_system.this[0]")
    assert (efs["encrypted"], efs["throughput_mode"], efs["provisioned_throughput_in_mibps"]) == (
        True,
        "provisioned",
        64,
    )
    targets = full.of_type("aws_efs_mount_target").values()
    assert sorted(t["subnet_id"] for t in targets) == [
        "subnet-0aaaaaaaaaaaaaaa1",
        "subnet-0bbbbbbbbbbbbbbb2",
    ]
    lustre = full.after("module.lustre.aws_fsx_lustre_file_system.this[0]")
    assert (lustre["deployment_type"], lustre["storage_capacity"]) == ("SCRATCH_2", 2400)
    assert lustre["subnet_ids"] == ["subnet-0aaaaaaaaaaaaaaa1"]
    assert 'module.storage.aws_s3_bucket.this["lustre"]' in full.changes
    extra = full.after("module.iam.aws_iam_role_policy.extra[0]")
    assert (
        json.loads(extra["policy"])["Statement"][0]["Resource"]
        == "arn:aws:s3:::reference-genomes/*"
    )
    secret = full.after("module.secrets.aws_secretsmanager_secret.this")
    assert secret["recovery_window_in_days"] == 0  # force_destroy_buckets: a disposable flock


def test_full_job_and_lambda_environment(full: Plan) -> None:
    env = full.output("job_environment")
    assert env == {
        "INPUTS_BUCKET": "full-flock-inputs",
        "OUTPUTS_BUCKET": "full-flock-results",
        "ERROR_BUCKET": "full-flock-errors",
        "USES_EFS": "True",
        "USES_LUSTRE": "True",
        "ULIMIT_FILENO": "65536",
        "SHEPARD_FLOCK": "full-flock",
        "SHEPARD_TABLE_NAME": "full-flock-table",
        "SHEPARD_SECRET_NAME": "full-flock-files",
        "SHEPARD_QUICK_DEPLOY_BUCKET": "full-flock-quick-deploy",
        "SHEPARD_PAYLOAD_IMAGE": "public.ecr.aws/docker/library/python:3.12",
        "SHEPARD_ALLOW_DOCKER_DAEMON": "True",
        "SHEPARD_WORK_ROOT": "/mnt/root",
        "SHEPARD_EFS_ROOT": "/mnt/efs",
        "SHEPARD_LUSTRE_ROOT": "/mnt/fsx",
        "INSTANCE_TAGS": json.dumps(
            {
                "Contact": "lab@example.com",
                "Name": "full-sheep",
                "Project": "genomics",
                "Team": "lab",
                "WorkloadType": "batch",
            },
            separators=(",", ":"),
        ),
        "SHEPARD_DAYS_TO_KEEP_FINISHED_JOBS": "14",
    }
    lambda_env = full.output_keys("lambda_environment")
    assert lambda_env == LAMBDA_ENV_KEYS
    assert full.output("lambda_environment")["SHEPARD_JOB_TIMEOUT_SECONDS"] == "7200"
    definition = full.after("module.batch.aws_batch_job_definition.this")
    assert definition["retry_strategy"][0]["attempts"] == 4
    queue = full.after("module.scheduler.aws_sqs_queue.this")
    assert queue["visibility_timeout_seconds"] == 900
    template = full.after("module.batch.aws_launch_template.sheep")
    assert template["key_name"] == "lab-key"
    instance_tags = {t["resource_type"]: t["tags"] for t in template["tag_specifications"]}
    assert instance_tags["instance"]["WorkloadType"] == "batch"
    bucket = full.after('module.storage.aws_s3_bucket.this["outputs"]')
    assert bucket["tags_all"] == {"CostCenter": "research", "shepard:flock": "full-flock"}


BAD_INPUT = {
    "name": "Bad_Name",
    "network": {"allow_ssh": True},
    "batch": {
        "compute_environments": {
            "spot": {"order": 1, "type": "SPOT", "instance_types": ["optimal"]},
        }
    },
    "efs": {"create": True, "throughput_mode": "provisioned"},
}


def test_bad_input_is_refused_with_a_clear_message(planner: FlockPlanner) -> None:
    """Terraform reports every failed validation at once: one plan checks them all."""
    with pytest.raises(tftest.TerraformTestError) as failure:
        planner.plan("minimal", **BAD_INPUT)
    text = " ".join(str(failure.value).split())
    for message in (
        "name must match ^[a-z][a-z0-9-]{1,30}$",
        "network.allow_ssh = true needs network.ssh_cidr",
        "A SPOT compute environment needs bid_percentage",
        'efs.throughput_mode = "provisioned" needs efs.provisioned_mibps',
    ):
        assert message in text


def test_gpu_jobs_need_a_gpu_compute_environment(planner: FlockPlanner) -> None:
    with pytest.raises(tftest.TerraformTestError) as failure:
        planner.plan("minimal", job={"gpus": 1})
    text = " ".join(str(failure.value).split())
    assert "job.gpus is 1 but no compute environment has gpu = true" in text

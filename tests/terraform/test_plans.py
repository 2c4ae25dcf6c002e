"""Offline plans of terraform/flock for the cases in cases/: resource counts and key values.

Each case is a tfvars file; cases/<case>.expected.json pins how many resources of each type
its plan creates. The values that make a flock safe and correct on AWS (IMDSv2 out of the
containers' reach, encryption, retry strategy, queue order and time limits, GSI, TLS-only
policies, gateway endpoints, subnet sizes, zones, image types, the service-linked role, update
policy, log configuration, tag specifications, SSH rules, environments) are asserted here.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
import tftest

from shepard.commands.cost import report_lines
from shepard.cost import estimate_plan
from shepard.deploy import emulator_overlay
from shepard.joblayer.fit import FlockResources
from tests.terraform.conftest import CASES, FlockPlanner

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

# docs/contracts.md sections 3 and 4.
LAMBDA_ENV_KEYS = {
    "SHEPARD_FLOCK", "SHEPARD_TABLE_NAME", "SHEPARD_JOB_QUEUE", "SHEPARD_JOB_DEFINITION",
    "SHEPARD_INPUTS_BUCKET", "SHEPARD_OUTPUTS_BUCKET", "SHEPARD_ERRORS_BUCKET",
    "SHEPARD_QUICK_DEPLOY_BUCKET", "SHEPARD_DAYS_TO_KEEP_FAILED_LAUNCH_INDEXES",
    "SHEPARD_DAYS_TO_KEEP_FINISHED_JOBS", "SHEPARD_JOB_TIMEOUT_SECONDS", "SHEPARD_JOB_RESOURCES",
    "SHEPARD_ON_DEMAND_JOB_QUEUE", "SHEPARD_SPOT_ATTEMPTS", "SHEPARD_OOM_FACTOR",
    "SHEPARD_OOM_MAX_MEMORY_MIB", "SHEPARD_JOB_MEMORY_MIB",
}  # fmt: skip
JOB_ENV_KEYS = {
    "INPUTS_BUCKET", "OUTPUTS_BUCKET", "ERROR_BUCKET", "USES_EFS", "USES_LUSTRE",
    "ULIMIT_FILENO", "SHEPARD_FLOCK", "SHEPARD_TABLE_NAME", "SHEPARD_SECRET_NAME",
    "SHEPARD_QUICK_DEPLOY_BUCKET", "SHEPARD_PAYLOAD_IMAGE", "SHEPARD_ALLOW_DOCKER_DAEMON",
    "SHEPARD_WORK_ROOT", "SHEPARD_DAYS_TO_KEEP_FINISHED_JOBS", "SHEPARD_RETRY_ATTEMPTS",
    "SHEPARD_RETRY_ON_HOST_RECLAIM",
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
        self.configuration: dict[str, Any] = raw.configuration
        self.changes = {
            address: change
            for address, change in raw.resource_changes.items()
            if change["mode"] == "managed"
        }
        self.output_changes: dict[str, Any] = raw._raw.get("output_changes", {})
        # Data sources read at apply (policy documents whose ARNs are not known yet): their
        # statements' sids are known at plan time.
        self.reads = {
            address: change["change"]["after"] or {}
            for address, change in raw.resource_changes.items()
            if change["mode"] == "data"
        }

    def statement_ids(self, address: str) -> set[str]:
        """The sids of a planned aws_iam_policy_document's statements."""
        return {s.get("sid") for s in self.reads[address].get("statement") or []}

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

    def unknown(self, address: str) -> dict[str, Any]:
        value: dict[str, Any] = self.changes[address]["change"]["after_unknown"]
        return value

    def module_config(self, name: str) -> dict[str, Any]:
        """The configuration of a module call: its resources' and outputs' expressions."""
        module: dict[str, Any] = self.configuration["root_module"]["module_calls"][name]["module"]
        return module

    def references(self, module: str, resource: str, argument: str) -> set[str]:
        """What one argument of a resource in a module refers to, as Terraform records it."""
        [config] = [r for r in self.module_config(module)["resources"] if r["address"] == resource]
        return set(config["expressions"][argument].get("references", []))


def plan_case(planner: FlockPlanner, case: str, **overrides: Any) -> Plan:
    started = time.monotonic()
    plan = Plan(planner.plan(case, **overrides))
    print(f"\nterraform plan {case} {sorted(overrides)}: {time.monotonic() - started:.1f} s")
    return plan


@pytest.fixture(scope="module")
def minimal(planner: FlockPlanner) -> Plan:
    return plan_case(planner, "minimal")


# What the local flock's overlay (<state>/local.auto.tfvars.json) sets for its emulator, but
# the provider settings (this plan is offline, not against the emulator).
LOCAL_OVERLAY = {k: v for k, v in emulator_overlay().items() if k != "aws_provider"}


@pytest.fixture(scope="module")
def minimal_local(planner: FlockPlanner) -> Plan:
    return plan_case(planner, "minimal", **LOCAL_OVERLAY)


@pytest.fixture(scope="module")
def minimal_public(planner: FlockPlanner) -> Plan:
    return plan_case(planner, "minimal", network={"make_subnets_public": True})


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


def test_sheep_keep_imds_from_containers_and_encrypt_volumes(minimal: Plan) -> None:
    template = minimal.after("module.batch.aws_launch_template.sheep")
    [metadata] = template["metadata_options"]
    assert (metadata["http_endpoint"], metadata["http_tokens"]) == ("enabled", "required")
    # One hop: a container on Docker's bridge network cannot reach the instance role.
    assert metadata["http_put_response_hop_limit"] == 1
    volumes = {b["device_name"]: b["ebs"][0] for b in template["block_device_mappings"]}
    assert {d: (v["encrypted"], v["volume_size"]) for d, v in volumes.items()} == {
        "/dev/xvda": ("true", 30),
        "/dev/xvdcz": ("true", 50),
    }
    assert template["key_name"] is None
    # A sheep whose file system does not mount shuts itself down: terminated, then replaced.
    assert template["instance_initiated_shutdown_behavior"] == "terminate"
    # default_tags do not reach launched instances and volumes: the template carries them.
    tags = {t["resource_type"]: t["tags"] for t in template["tag_specifications"]}
    expected = {"Name": "mini-flock-sheep", "shepard:flock": "mini-flock"}
    assert tags == {"instance": expected, "volume": expected, "network-interface": expected}


def test_buckets_are_encrypted_private_and_tls_only(minimal: Plan) -> None:
    # encryption.kms_key: aws_managed (the default): SSE-S3; the flock key case is below.
    for after in minimal.of_type("aws_s3_bucket_server_side_encryption_configuration").values():
        rule = after["rule"][0]
        assert rule["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "AES256"
        assert not rule["apply_server_side_encryption_by_default"][0]["kms_master_key_id"]
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


BUCKETS = ("errors", "inputs", "outputs", "quick-deploy")
ENVIRONMENT = 'module.batch.aws_batch_compute_environment.this["ondemand"]'


def test_aws_target_has_every_secure_setting_on(minimal: Plan) -> None:
    """Default variables are the AWS target: nothing an emulator cannot do is left out."""
    assert set(minimal.of_type("aws_s3_bucket_policy")) == {
        f'module.storage.aws_s3_bucket_policy.tls_only["{b}"]' for b in BUCKETS
    }
    assert len(minimal.of_type("aws_s3_bucket_lifecycle_configuration")) == 4
    # Sheep in public subnets, no NAT gateway (docs/decisions/0009-network-mode.md).
    assert len(minimal.of_type("aws_nat_gateway")) == 0
    mapping = "module.scheduler.aws_lambda_event_source_mapping.this"
    assert minimal.after(mapping)["enabled"] is True
    # The launch template's latest version (known at apply), not "$Default".
    [template] = minimal.unknown(ENVIRONMENT)["compute_resources"][0]["launch_template"]
    assert template["version"] is True
    # No custom Batch service role: compute environments use the service-linked one.
    assert not any("batch_service" in address for address in minimal.changes)
    assert len(minimal.after(ENVIRONMENT)["update_policy"]) == 1
    assert (
        len(minimal.after("module.batch.aws_batch_job_queue.this")["job_state_time_limit_action"])
        == 3
    )


def test_local_overlay_changes_only_the_measured_limits(minimal: Plan, minimal_local: Plan) -> None:
    aws, local = minimal.counts(), minimal_local.counts()
    changed = {k: aws.get(k, 0) - local.get(k, 0) for k in aws | local}
    assert {k: v for k, v in changed.items() if v} == {
        "aws_s3_bucket_policy": 4,  # TLS-only Deny: moto ignores conditions
        "aws_s3_bucket_lifecycle_configuration": 4,  # 55 s wait per bucket
        "aws_iam_role": -1,  # moto refuses a compute environment without a service role
        "aws_iam_role_policy_attachment": -1,
        # Batch's events come from the local executor, in-process: no rule, queues, mapping.
        "aws_cloudwatch_event_rule": 1,
        "aws_cloudwatch_event_target": 1,
        "aws_sqs_queue": 2,
        "aws_sqs_queue_policy": 1,
        "aws_lambda_event_source_mapping": 1,
    }
    mapping = "module.scheduler.aws_lambda_event_source_mapping.this"
    assert minimal_local.after(mapping)["enabled"] is False
    environment = minimal_local.after('module.batch.aws_batch_compute_environment.this["ondemand"]')
    assert environment["compute_resources"][0]["launch_template"][0]["version"] == "$Default"


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
    assert definition["propagate_tags"] is True


def test_no_host_reclaim_retry_means_no_retry_at_all(planner: FlockPlanner) -> None:
    """Without an EXIT condition Batch would retry every failure up to `attempts` times."""
    plan = plan_case(planner, "minimal", job={"retry_on_host_reclaim": False}, **LOCAL_OVERLAY)
    definition = plan.after("module.batch.aws_batch_job_definition.this")
    [strategy] = definition["retry_strategy"]
    assert [(e["action"], e["on_reason"]) for e in strategy["evaluate_on_exit"]] == [("exit", "*")]


# The batch module alone, with every input known, so that the job definition's JSON (whose job
# role ARN is unknown until apply in a whole flock) can be read from the plan.
BATCH_ALONE = """
provider "aws" {
  region                      = "eu-west-1"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
}

module "batch" {
  source               = "../modules/batch"
  name                 = "solo"
  region               = "eu-west-1"
  compute_environments = { ondemand = { order = 1, type = "EC2", instance_types = ["optimal"] } }
  subnet_ids           = ["subnet-0aaaaaaaaaaaaaaa1"]
  security_group_id    = "sg-0123456789abcdef0"
  instance_profile_arn = "arn:aws:iam::123456789012:instance-profile/solo-sheep"
  job_role_arn         = "arn:aws:iam::123456789012:role/solo-job"
  kms_key_arn          = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-4e5f"
  worker_image         = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/solo:worker-latest"
  job_environment      = { SHEPARD_FLOCK = "solo" }
  log_retention_days   = 90
}
"""


@pytest.fixture(scope="module")
def batch_alone(planner: FlockPlanner) -> Plan:
    folder = planner.root / "batch-alone"
    folder.mkdir(exist_ok=True)
    (folder / "main.tf").write_text(BATCH_ALONE)
    tf = tftest.TerraformTest(str(folder), env=planner.tf.env)
    tf.setup(cleanup_on_exit=False)
    started = time.monotonic()
    plan = Plan(tf.plan(output=True))
    print(f"\nterraform plan of the batch module alone: {time.monotonic() - started:.1f} s")
    return plan


def test_jobs_log_to_the_flocks_own_encrypted_group(batch_alone: Plan, full: Plan) -> None:
    group = batch_alone.after("module.batch.aws_cloudwatch_log_group.jobs")
    assert (group["name"], group["retention_in_days"]) == ("/aws/batch/solo", 90)
    assert group["kms_key_id"].startswith("arn:aws:kms:eu-west-1:123456789012:key/")
    definition = batch_alone.after("module.batch.aws_batch_job_definition.this")
    properties = json.loads(definition["container_properties"])
    assert properties["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {"awslogs-group": "/aws/batch/solo", "awslogs-region": "eu-west-1"},
    }
    assert properties["jobRoleArn"] == "arn:aws:iam::123456789012:role/solo-job"
    assert definition["propagate_tags"] is True
    # In a whole flock: the flock's key (whose policy names /aws/batch/<name>: tfiam's tests).
    flock_group = full.after("module.batch.aws_cloudwatch_log_group.jobs")
    assert (flock_group["name"], flock_group["retention_in_days"]) == ("/aws/batch/full-flock", 30)
    assert full.unknown("module.batch.aws_cloudwatch_log_group.jobs")["kms_key_id"] is True


def test_queue_cancels_jobs_stuck_runnable(minimal: Plan) -> None:
    queue = minimal.after("module.batch.aws_batch_job_queue.this")
    actions = {
        (a["action"], a["state"], a["reason"], a["max_time_seconds"])
        for a in queue["job_state_time_limit_action"]
    }
    assert actions == {
        ("CANCEL", "RUNNABLE", reason, 3600)
        for reason in (
            "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
            "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
        )
    }


def test_new_vpc_subnets_zones_and_gateway_endpoints(minimal: Plan) -> None:
    subnets = {
        a.split(".")[-1]: (s["availability_zone"], s["cidr_block"])
        for a, s in minimal.of_type("aws_subnet").items()
    }
    # One /20 per zone (about 4000 addresses): room for every sheep in any one zone.
    assert subnets == {
        "private[0]": ("us-east-1a", "10.0.0.0/20"),
        "private[1]": ("us-east-1b", "10.0.16.0/20"),
        "public[0]": ("us-east-1a", "10.0.128.0/20"),
        "public[1]": ("us-east-1b", "10.0.144.0/20"),
    }
    endpoints = minimal.of_type("aws_vpc_endpoint")
    assert {(e["service_name"], e["vpc_endpoint_type"]) for e in endpoints.values()} == {
        ("com.amazonaws.us-east-1.s3", "Gateway"),
        ("com.amazonaws.us-east-1.dynamodb", "Gateway"),
    }
    # On every route table of the VPC (ids known only at apply: the configuration says which).
    references = minimal.references("network", "aws_vpc_endpoint.gateway", "route_table_ids")
    assert {"aws_route_table.private", "aws_route_table.public"} <= references


def test_public_sheep_get_subnets_sized_for_them(minimal_public: Plan) -> None:
    subnets = {a.split(".")[-1]: s for a, s in minimal_public.of_type("aws_subnet").items()}
    assert subnets["public[0]"]["cidr_block"] == "10.0.128.0/20"
    assert subnets["public[0]"]["map_public_ip_on_launch"] is True
    assert minimal_public.of_type("aws_nat_gateway") == {}


def test_public_sheep_refuse_subnets_too_small(planner: FlockPlanner) -> None:
    network = {"make_subnets_public": True, "public_subnet_cidrs": ["10.0.0.0/28", "10.0.0.16/28"]}
    with pytest.raises(tftest.TerraformTestError) as failure:
        planner.plan("minimal", network=network)
    text = " ".join(str(failure.value).replace("\\n", " ").split())
    assert "The public subnets 10.0.0.0/28, 10.0.0.16/28 hold fewer addresses than the 128" in text


def test_zones_are_looked_up_when_not_given(planner: FlockPlanner) -> None:
    """No `<region>a` guess: without zones a new VPC asks AWS (which an offline plan cannot)."""
    with pytest.raises(tftest.TerraformTestError) as failure:
        planner.plan("minimal", availability_zones=None)
    assert "DescribeAvailabilityZones" in str(failure.value)


def test_job_table_has_the_status_index_ttl_and_pitr(minimal: Plan) -> None:
    table = minimal.after("module.job_table.aws_dynamodb_table.this")
    assert (table["name"], table["billing_mode"], table["hash_key"]) == (
        "mini-flock-jobs",
        "PAY_PER_REQUEST",
        "UUID",
    )
    indexes = {
        (index["name"], index["hash_key"], index["range_key"], index["projection_type"])
        for index in table["global_secondary_index"]
    }
    assert indexes == {
        ("phase-index", "PHASE", "CREATED_AT", "ALL"),
        ("batch-index", "BATCH_ID", "CREATED_AT", "ALL"),
    }
    assert table["ttl"] == [{"attribute_name": "EXPIRES_AT", "enabled": True}]
    assert table["point_in_time_recovery"][0]["enabled"] is True
    # The AWS owned key (encryption.kms_key: aws_managed); the flock key case: the full plan.
    assert table["server_side_encryption"][0]["enabled"] is False


def test_scheduler_queue_lambda_and_mapping(minimal: Plan) -> None:
    queue = minimal.after("module.scheduler.aws_sqs_queue.this")
    # 180 s asked for, but at least 6 x the 60 s Lambda timeout.
    assert queue["visibility_timeout_seconds"] == 360
    assert queue["name"] == "mini-flock-scheduler"
    function = minimal.after("module.scheduler.module.function.aws_lambda_function.this")
    assert (function["runtime"], function["handler"]) == ("python3.12", "handler.handler")
    mapping = minimal.after("module.scheduler.aws_lambda_event_source_mapping.this")
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    # flock.yaml scheduler.* defaults: 100 drops an invocation, gathered for up to 1 s.
    assert (mapping["batch_size"], mapping["maximum_batching_window_in_seconds"]) == (100, 1)
    notification = minimal.after("module.scheduler.aws_s3_bucket_notification.inputs")
    [target] = notification["queue"]
    assert (target["events"], target["filter_suffix"]) == (["s3:ObjectCreated:*"], ".zip")
    url = minimal.after("module.api.aws_lambda_function_url.this")
    assert url["authorization_type"] == "AWS_IAM"


def test_flock_file_batching_reaches_the_event_source_mapping(full: Plan) -> None:
    # flock.yaml scheduler.batch_size / batching_window_seconds, rendered into var.sqs.
    mapping = full.after("module.scheduler.aws_lambda_event_source_mapping.this")
    assert (mapping["batch_size"], mapping["maximum_batching_window_in_seconds"]) == (2500, 20)


def test_minimal_flock_opens_no_ingress(minimal: Plan) -> None:
    assert minimal.of_type("aws_vpc_security_group_ingress_rule") == {}
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
    assert resources["spot"]["allocation_strategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert resources["ondemand"]["allocation_strategy"] == "BEST_FIT_PROGRESSIVE"
    assert (resources["ondemand"]["min_vcpus"], resources["ondemand"]["max_vcpus"]) == (2, 512)
    assert resources["gpu"]["max_vcpus"] == 64
    images = {k: r["ec2_configuration"][0]["image_type"] for k, r in resources.items()}
    assert images == {"spot": "ECS_AL2023", "ondemand": "ECS_AL2023", "gpu": "ECS_AL2023_NVIDIA"}
    # The service-linked role, an update policy, and generated names so that a replacement
    # can be created before the old environment goes.
    assert not any("batch_service" in address for address in full.changes)
    for key, env in envs.items():
        assert env["update_policy"] == [
            {"job_execution_timeout_minutes": 30, "terminate_jobs_on_update": False}
        ]
        assert env["compute_environment_name_prefix"] == f"full-flock-{key}-"
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
    targets = full.of_type("aws_efs_mount_target")
    # Keyed (by zone, or by subnet id in an existing VPC), not counted.
    assert {a: t["subnet_id"] for a, t in targets.items()} == {
        f'module.efs.aws_efs_mount_target.this["{s}"]': s
        for s in ("subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2")
    }
    policy = full.changes["module.efs.aws_efs_file_system_policy.this[0]"]
    assert policy["change"]["actions"] == ["create"]
    # Sheep mount EFS only once every mount target (and the TLS-only policy) exists.
    [dns_output] = [o for n, o in full.module_config("efs")["outputs"].items() if n == "dns_name"]
    assert set(dns_output["depends_on"]) == {
        "aws_efs_mount_target.this",
        "aws_efs_file_system_policy.this",
    }
    lustre = full.after("module.lustre.aws_fsx_lustre_file_system.this[0]")
    assert (lustre["deployment_type"], lustre["storage_capacity"]) == ("SCRATCH_2", 2400)
    assert lustre["subnet_ids"] == ["subnet-0aaaaaaaaaaaaaaa1"]
    assert 'module.storage.aws_s3_bucket.this["lustre"]' in full.changes
    # FSx imports the bucket through a role the flock key's policy does not name: SSE-S3.
    encryption = full.after(
        'module.storage.aws_s3_bucket_server_side_encryption_configuration.this["lustre"]'
    )
    algorithm = encryption["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert algorithm["sse_algorithm"] == "AES256"
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
        "SHEPARD_DAYS_TO_KEEP_FINISHED_JOBS": "14",
        "SHEPARD_RETRY_ATTEMPTS": "4",
        "SHEPARD_RETRY_ON_HOST_RECLAIM": "True",
        "SHEPARD_CHECKPOINT_INTERVAL_MINUTES": "30",
    }
    lambda_env = full.output_keys("lambda_environment")
    assert lambda_env == LAMBDA_ENV_KEYS
    assert full.output("lambda_environment")["SHEPARD_JOB_TIMEOUT_SECONDS"] == "7200"
    definition = full.after("module.batch.aws_batch_job_definition.this")
    assert definition["retry_strategy"][0]["attempts"] == 4
    # The fit check's copy of the compute environments' instance types is the planned one.
    fit = FlockResources.from_json(full.output("lambda_environment")["SHEPARD_JOB_RESOURCES"])
    planned = sorted(
        sorted(ce["compute_resources"][0]["instance_type"])
        for ce in full.of_type("aws_batch_compute_environment").values()
    )
    assert fit is not None and fit.vcpus > 0 and fit.memory_mib > 0
    assert sorted(sorted(types) for types in fit.compute_environments.values()) == planned
    queue = full.after("module.scheduler.aws_sqs_queue.this")
    assert queue["visibility_timeout_seconds"] == 900
    template = full.after("module.batch.aws_launch_template.sheep")
    assert template["key_name"] == "lab-key"
    instance_tags = {t["resource_type"]: t["tags"] for t in template["tag_specifications"]}
    assert instance_tags["instance"]["WorkloadType"] == "batch"
    assert instance_tags["volume"]["CostCenter"] == "research"
    assert instance_tags["volume"]["shepard:flock"] == "full-flock"
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


# -- the ladder to on-demand (shepard.joblayer.retry): on in the full case ---------------------
# The full case's environments: Spot (order 1), on-demand (order 2), on-demand GPU (order 3);
# their ARNs are unknown until apply, so each is known here by its order.


def _orders(queue: dict[str, Any]) -> list[int]:
    return sorted(int(entry["order"]) for entry in queue["compute_environment_order"])


def test_the_on_demand_queue_takes_the_on_demand_environments_in_their_order(full: Plan) -> None:
    main = full.after("module.batch.aws_batch_job_queue.this")
    on_demand = full.after("module.batch.aws_batch_job_queue.on_demand[0]")
    assert _orders(main) == [1, 2, 3]  # Spot first, then on-demand, then GPU
    assert _orders(on_demand) == [2, 3]  # the on-demand ones alone: no Spot environment
    assert (on_demand["name"], on_demand["state"], on_demand["priority"]) == (
        "full-flock-queue-on-demand",
        "ENABLED",
        1,
    )
    limits = [
        (a["reason"], a["max_time_seconds"]) for a in on_demand["job_state_time_limit_action"]
    ]
    assert limits == [
        (a["reason"], a["max_time_seconds"]) for a in main["job_state_time_limit_action"]
    ]
    # The events Lambda may submit there (the statement: test_iam_plan.py).
    full.after("module.iam.aws_iam_role_policy.events_on_demand[0]")
    environment = full.output("lambda_environment")
    assert (
        environment["SHEPARD_SPOT_ATTEMPTS"],
        environment["SHEPARD_OOM_FACTOR"],
        environment["SHEPARD_OOM_MAX_MEMORY_MIB"],
        environment["SHEPARD_JOB_MEMORY_MIB"],
    ) == ("2", "2", "60000", "28000")
    # The queue's ARN is known after apply only (minimal: "", there is no such queue).
    unknown = full.output_changes["lambda_environment"]["after_unknown"]
    assert unknown["SHEPARD_ON_DEMAND_JOB_QUEUE"] is True


def test_without_the_ladder_there_is_one_queue_and_no_retry(minimal: Plan) -> None:
    assert list(minimal.of_type("aws_batch_job_queue")) == ["module.batch.aws_batch_job_queue.this"]
    assert "module.iam.aws_iam_role_policy.events_on_demand[0]" not in minimal.changes
    environment = minimal.output("lambda_environment")
    assert (
        environment["SHEPARD_ON_DEMAND_JOB_QUEUE"],
        environment["SHEPARD_SPOT_ATTEMPTS"],
        environment["SHEPARD_OOM_FACTOR"],
    ) == ("", "0", "0")


# -- cost: the default network mode and the cost allocation tags (docs/cost.md) -----------------
# The private mode and `shepard-tf cost` on examples/flocks/full.yaml: test_network_modes.py.


def test_the_minimal_flock_pays_nothing_for_its_network_when_idle(minimal: Plan) -> None:
    assert minimal.of_type("aws_nat_gateway") == {}
    assert minimal.of_type("aws_eip") == {}  # no public IPv4 billed while no sheep runs
    endpoints = minimal.of_type("aws_vpc_endpoint").values()
    assert {e["vpc_endpoint_type"] for e in endpoints} == {"Gateway"}  # the free ones only
    # Sheep run in the public subnets with a public IP each ...
    subnets = minimal.of_type("aws_subnet")
    public = [s for a, s in subnets.items() if ".public[" in a]
    assert public and all(s["map_public_ip_on_launch"] for s in public)
    assert not any(s["map_public_ip_on_launch"] for a, s in subnets.items() if ".private[" in a)
    # ... and their security group admits nothing from outside (SSH is off by default).
    assert minimal.of_type("aws_vpc_security_group_ingress_rule") == {}
    # What `shepard-tf cost` reads from this plan: the network costs nothing idle and the data
    # is encrypted with AWS managed keys; what is left is the secret ($0.40).
    shown = {
        "variables": {"region": {"value": "us-east-1"}},
        "resource_changes": list(minimal.changes.values()),
    }
    estimate = estimate_plan(shown)
    assert {line.kind: line.monthly_usd for line in estimate.lines} == {
        "Secrets Manager secret": 0.4,
    }
    assert estimate.unclassified == [] and not estimate.unpriced
    assert estimate.monthly_usd < 1.0
    # What `shepard-tf cost` prints for it.
    assert "total when idle: $0.40 a month" in "\n".join(report_lines(estimate))


def test_the_flock_tags_reach_instances_volumes_and_jobs(minimal: Plan) -> None:
    [template] = minimal.of_type("aws_launch_template").values()
    specs = {s["resource_type"]: s["tags"] for s in template["tag_specifications"]}
    assert {"instance", "volume"} <= set(specs)
    assert all(tags["shepard:flock"] == "mini-flock" for tags in specs.values())
    for environment in minimal.of_type("aws_batch_compute_environment").values():
        assert environment["compute_resources"][0]["tags"]["shepard:flock"] == "mini-flock"
        assert environment["tags_all"]["shepard:flock"] == "mini-flock"
    for definition in minimal.of_type("aws_batch_job_definition").values():
        assert definition["propagate_tags"] is True
        assert definition["tags_all"]["shepard:flock"] == "mini-flock"


# -- encryption at rest: AWS managed keys by default, the flock's key on request -----------------
# docs/decisions/0011-aws-managed-keys.md.


KEY_POLICY_DOCUMENTS = (
    "module.iam.data.aws_iam_policy_document.job",
    "module.iam.data.aws_iam_policy_document.submit_jobs",
    "module.secrets.data.aws_iam_policy_document.secretify",
)


def test_the_minimal_flock_encrypts_at_rest_without_a_key_of_its_own(minimal: Plan) -> None:
    assert minimal.of_type("aws_kms_key") == {} and minimal.of_type("aws_kms_alias") == {}
    # DynamoDB: enabled = false is its default encryption with an AWS owned key.
    [table] = minimal.of_type("aws_dynamodb_table").values()
    [encryption] = table["server_side_encryption"]
    assert encryption["enabled"] is False and not encryption.get("kms_key_arn")
    [repository] = minimal.of_type("aws_ecr_repository").values()
    [registry_encryption] = repository["encryption_configuration"]
    assert registry_encryption["encryption_type"] == "AES256"
    assert not registry_encryption.get("kms_key")
    queues = minimal.of_type("aws_sqs_queue")
    assert len(queues) == 4
    for address, queue in queues.items():
        assert queue["sqs_managed_sse_enabled"] is True, address
        assert not queue.get("kms_master_key_id"), address
    [secret] = minimal.of_type("aws_secretsmanager_secret").values()
    assert not secret.get("kms_key_id")  # aws/secretsmanager
    groups = minimal.of_type("aws_cloudwatch_log_group")
    assert groups and all(not g.get("kms_key_id") for g in groups.values())  # Logs' own keys
    functions = minimal.of_type("aws_lambda_function")
    assert functions and all(not f.get("kms_key_arn") for f in functions.values())
    # No policy grants a KMS key: AWS managed keys are granted by their own key policies.
    for document in KEY_POLICY_DOCUMENTS:
        assert minimal.statement_ids(document), document
        assert not {"FlockKey", "FlockKeyThroughSecretsManager"} & minimal.statement_ids(document)
    # EFS and the notifications topic are not in this plan: their fallbacks are in the config.
    efs = minimal.module_config("efs")["resources"]
    [efs_fs] = [r for r in efs if r["address"] == "aws_efs_file_system.this"]
    assert efs_fs["expressions"]["encrypted"]["constant_value"] is True
    events = minimal.module_config("events")["resources"]
    [topic] = [r for r in events if r["address"] == "aws_sns_topic.notifications"]
    assert "var.kms_key_arn" in topic["expressions"]["kms_master_key_id"]["references"]


def test_the_full_flock_keeps_its_own_key_everywhere(full: Plan) -> None:
    key = full.after("module.kms.aws_kms_key.this[0]")
    assert key["enable_key_rotation"] is True
    assert len(full.of_type("aws_kms_key_policy")) == 1
    for after in full.of_type("aws_s3_bucket_server_side_encryption_configuration").values():
        default = after["rule"][0]["apply_server_side_encryption_by_default"][0]
        assert after["rule"][0]["bucket_key_enabled"] in (True, False)
        assert default["sse_algorithm"] in ("aws:kms", "AES256")  # AES256: the Lustre bucket
    kms_buckets = [
        a
        for a, after in full.of_type("aws_s3_bucket_server_side_encryption_configuration").items()
        if after["rule"][0]["apply_server_side_encryption_by_default"][0]["sse_algorithm"]
        == "aws:kms"
    ]
    assert len(kms_buckets) == 4
    [table] = full.of_type("aws_dynamodb_table").values()
    assert table["server_side_encryption"][0]["enabled"] is True
    [repository] = full.of_type("aws_ecr_repository").values()
    assert repository["encryption_configuration"][0]["encryption_type"] == "KMS"
    for address, queue in full.of_type("aws_sqs_queue").items():
        assert not queue.get("sqs_managed_sse_enabled"), address
        assert full.unknown(address)["kms_master_key_id"] is True, address
    # The roles and secretify's policy keep their statement on the key (scoped to it: the
    # key's ARN, asserted on a known ARN by test_iam_plan.py).
    assert "FlockKey" in full.statement_ids("module.iam.data.aws_iam_policy_document.job")
    assert "FlockKey" in full.statement_ids("module.iam.data.aws_iam_policy_document.submit_jobs")
    secretify = full.statement_ids("module.secrets.data.aws_iam_policy_document.secretify")
    assert "FlockKeyThroughSecretsManager" in secretify

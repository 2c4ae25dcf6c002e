"""The flock's policies as Terraform renders them, pinned against what AWS documents.

In a plan of terraform/flock most policies are unknown (they name ARNs that exist only after
apply), so a harness root module calls the modules with literal ARNs and its offline plan holds
every policy as JSON: the roles' trust and permission policies, the ECR lifecycle policy, the
buckets' encryption, the API caller's and secretify's policies. The KMS key policy takes its
account from the key's own ARN, so it is applied to the emulator and read back. One plan of the
flock itself checks how the root module wires the modules (AWS defaults, no custom Batch
service role).

Each test names the defect of issue 8 it pins.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import tftest

from shepard.joblayer.contract import TABLE_ACTIONS_LAMBDA
from tests.support import iam_policy
from tests.support.flock_checks import TERRAFORM_DIR, copy_terraform_tree
from tests.terraform.conftest import FlockPlanner, offline_env

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

ACCOUNT = "123456789012"
REGION = "us-east-1"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/t-flock-jobs"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:t-flock-secrets-AbCdEf"
PINNED_WORKER = "worker-0123456789abcdef"
JOB_QUEUE_ARN = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/t-flock"
ON_DEMAND_QUEUE_ARN = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/t-flock-on-demand"
JOB_DEFINITION_ARN = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/t-flock"

HARNESS = """
provider "aws" {
  region                      = "%(region)s"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

locals {
  logs = "arn:aws:logs:%(region)s:%(account)s:log-group:/aws/lambda"
  buckets = {
    for role in ["inputs", "outputs", "errors", "quick-deploy"] :
    role => "arn:aws:s3:::t-flock-${role}-bucket"
  }
}

%(iam)s
%(iam_emulator)s
module "registry" {
  source          = "%(modules)s/registry"
  repository_name = "t-flock"
  kms_key_arn     = "%(key)s"
  keep_images     = 3
  protected_tags  = ["payload-latest", "worker-latest", "%(pinned)s"]
}

module "storage" {
  source               = "%(modules)s/storage"
  name                 = "t-flock"
  kms_key_arn          = "%(key)s"
  create_lustre_bucket = true
  lustre_bucket_name   = "t-flock-lustre-data"
  bucket_names = {
    inputs       = "t-flock-inputs-bucket"
    outputs      = "t-flock-outputs-bucket"
    errors       = "t-flock-errors-bucket"
    quick_deploy = "t-flock-quick-deploy-bucket"
  }
}

output "lambda_table_actions" {
  value = module.iam.lambda_table_actions
}
"""

IAM_BLOCK = """
module "%(module)s" {
  source                    = "%(modules)s/iam"
  name                      = "%(flock)s"
  region                    = "%(region)s"
  account_id                = "%(account)s"
  kms_key_arn               = "%(key)s"
  bucket_arns               = local.buckets
  table_arn                 = "%(table)s"
  secret_arn                = "%(secret)s"
  secret_name               = "t-flock-secrets"
  repository_arn            = "arn:aws:ecr:%(region)s:%(account)s:repository/t-flock"
  sqs_queue_arn             = "arn:aws:sqs:%(region)s:%(account)s:t-flock-scheduler"
  job_queue_arn             = "arn:aws:batch:%(region)s:%(account)s:job-queue/t-flock"
  job_definition_arn_prefix = "arn:aws:batch:%(region)s:%(account)s:job-definition/t-flock"
  scheduler_log_group_arn   = "${local.logs}/%(flock)s-scheduler"
  api_log_group_arn         = "${local.logs}/%(flock)s-api"
  %(extra)s
}
"""

KMS_ROOT = """
provider "aws" {
  region      = "%(region)s"
  max_retries = 3
}

module "kms" {
  source                      = "%(modules)s/kms"
  name                        = "k-flock"
  region                      = "%(region)s"
  log_group_prefixes          = ["/aws/lambda/k-flock-", "/aws/batch/k-flock"]
  s3_notification_bucket_arns = ["arn:aws:s3:::k-flock-inputs-bucket"]
}

output "key_id" {
  value = module.kms.key_id
}
"""


REGISTRY_ROOT = """
provider "aws" {
  region                      = "us-east-1"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

module "registry" {
  source          = "%(modules)s/registry"
  repository_name = "%(name)s"
  kms_key_arn     = "%(key)s"
}
"""


def statements(policy: str | dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A policy document's statements by Sid (or by principal service when unnamed)."""
    document = json.loads(policy) if isinstance(policy, str) else policy
    found = document["Statement"]
    found = [found] if isinstance(found, dict) else found
    by_sid: dict[str, dict[str, Any]] = {}
    for number, statement in enumerate(found):
        key = statement.get("Sid") or str(number)
        by_sid[key] = statement
    return by_sid


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class Harness:
    """The harness root module's plan: planned values by resource address."""

    def __init__(self, raw: tftest.TerraformPlanOutput) -> None:
        self.after: dict[str, dict[str, Any]] = {
            address: change["change"]["after"]
            for address, change in raw.resource_changes.items()
            if change["mode"] == "managed"
        }
        self.outputs: dict[str, Any] = {
            name: change["after"] for name, change in raw.output_changes.items()
        }

    def policy(self, address: str, attribute: str = "policy") -> dict[str, dict[str, Any]]:
        assert address in self.after, f"{address} not planned; have {sorted(self.after)}"
        value = self.after[address][attribute]
        assert isinstance(value, str), f"{address}.{attribute} is not known at plan"
        return statements(value)


@pytest.fixture(scope="module")
def harness_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_terraform_tree(tmp_path_factory.mktemp("iam-harness"))


@pytest.fixture(scope="module")
def harness(harness_tree: Path, tf_cli_config: Path) -> Harness:
    folder = harness_tree.parent / "harness"
    folder.mkdir()
    values = {
        "region": REGION,
        "account": ACCOUNT,
        "key": KEY_ARN,
        "table": TABLE_ARN,
        "secret": SECRET_ARN,
        "pinned": PINNED_WORKER,
        "modules": (harness_tree / "modules").as_posix(),
    }
    # The AWS flock's roles, and a local flock's (which asks for a custom Batch service role).
    values["iam"] = IAM_BLOCK % {
        **values,
        "module": "iam",
        "flock": "t-flock",
        "extra": (
            "create_spot_fleet_role = true\n"
            "  on_demand_queue = true\n"
            f'  on_demand_job_queue_arn = "{ON_DEMAND_QUEUE_ARN}"'
        ),
    }
    values["iam_emulator"] = IAM_BLOCK % {
        **values,
        "module": "iam_emulator",
        "flock": "e-flock",
        "extra": "create_batch_service_role = true",
    }
    (folder / "main.tf").write_text(HARNESS % values)
    tf = tftest.TerraformTest(str(folder), env=offline_env(tf_cli_config))
    tf.env.pop("AWS_ENDPOINT_URL", None)
    tf.setup(cleanup_on_exit=False)
    return Harness(tf.plan(output=True))


# ---------------------------------------------------------------------------------------------
# Issue 8.1: the Lambdas' table rights are exactly what JobStore calls
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["scheduler", "api"])
def test_lambda_roles_allow_exactly_the_table_actions_the_job_layer_calls(
    harness: Harness, role: str
) -> None:
    policy = harness.policy(f"module.iam.aws_iam_role_policy.{role}")
    records = policy["JobRecords"]
    assert sorted(as_list(records["Action"])) == sorted(TABLE_ACTIONS_LAMBDA)
    assert {"dynamodb:BatchWriteItem", "dynamodb:DeleteItem"} <= set(as_list(records["Action"]))
    assert as_list(records["Resource"]) == [TABLE_ARN]
    # No other statement of a Lambda role touches DynamoDB.
    others = [s for sid, s in policy.items() if sid != "JobRecords"]
    assert not [a for s in others for a in as_list(s["Action"]) if a.startswith("dynamodb:")]
    assert harness.outputs["lambda_table_actions"] == sorted(TABLE_ACTIONS_LAMBDA)


# ---------------------------------------------------------------------------------------------
# The ladder (shepard.joblayer.retry): the events Lambda submits to both queues, nowhere else
# ---------------------------------------------------------------------------------------------


def test_events_role_may_submit_to_both_queues_and_nothing_broader(harness: Harness) -> None:
    policies = [
        json.loads(harness.after[f"module.iam.aws_iam_role_policy.{name}"]["policy"])
        for name in ("events", "events_on_demand[0]")
    ]
    role = f"arn:aws:iam::{ACCOUNT}:role/t-flock-events"

    def allowed(action: str, resource: str) -> bool:
        return iam_policy.evaluate(iam_policy.Request(action, resource, role), policies).allowed

    revision = f"{JOB_DEFINITION_ARN}:7"
    for queue in (JOB_QUEUE_ARN, ON_DEMAND_QUEUE_ARN):
        assert allowed("batch:SubmitJob", queue)
    assert allowed("batch:SubmitJob", revision)
    other = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/someone-elses"
    assert not allowed("batch:SubmitJob", other)
    assert not allowed("batch:SubmitJob", f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/x:1")
    for action in ("batch:TerminateJob", "batch:CancelJob", "batch:UpdateJobQueue"):
        assert not allowed(action, ON_DEMAND_QUEUE_ARN)
    # The on-demand statement names exactly the queue and the job definition's revisions.
    [statement] = policies[1]["Statement"]
    assert (statement["Effect"], as_list(statement["Action"])) == ("Allow", ["batch:SubmitJob"])
    assert sorted(as_list(statement["Resource"])) == sorted(
        [ON_DEMAND_QUEUE_ARN, f"{JOB_DEFINITION_ARN}:*"]
    )
    # The scheduler and API roles do not get the on-demand queue: only the ladder moves jobs.
    for name in ("scheduler", "api"):
        policy = json.loads(harness.after[f"module.iam.aws_iam_role_policy.{name}"]["policy"])
        request = iam_policy.Request("batch:SubmitJob", ON_DEMAND_QUEUE_ARN, role)
        assert not iam_policy.evaluate(request, [policy]).allowed, name


# ---------------------------------------------------------------------------------------------
# Security: no ec2:CreateTags for jobs; trust policies with aws:SourceAccount where documented
# ---------------------------------------------------------------------------------------------


def test_no_role_may_tag_instances(harness: Harness) -> None:
    for address, after in harness.after.items():
        if after is None or "policy" not in after or not isinstance(after.get("policy"), str):
            continue
        if not address.startswith("module.iam"):
            continue
        for statement in statements(after["policy"]).values():
            actions = as_list(statement["Action"])
            assert not [a for a in actions if a.lower().startswith("ec2:")], (address, actions)


def test_trust_policies_name_the_source_account_where_aws_documents_it(harness: Harness) -> None:
    expected = {
        "scheduler": ("lambda.amazonaws.com", True),
        "api": ("lambda.amazonaws.com", True),
        "job": ("ecs-tasks.amazonaws.com", True),
        # The instance role: EC2 does not send aws:SourceAccount when it assumes it.
        "sheep": ("ec2.amazonaws.com", False),
        "spot_fleet[0]": ("spotfleet.amazonaws.com", False),
    }
    for name, (service, conditioned) in expected.items():
        address = f"module.iam.aws_iam_role.{name}"
        [trust] = harness.policy(address, "assume_role_policy").values()
        assert trust["Principal"] == {"Service": service}, address
        assert trust["Action"] == "sts:AssumeRole"
        if conditioned:
            assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}, address
        else:
            assert "Condition" not in trust, address


# ---------------------------------------------------------------------------------------------
# Issue 8.9: compute environments use Batch's service-linked role; a custom one only on request
# ---------------------------------------------------------------------------------------------


def test_no_custom_batch_service_role_unless_asked(harness: Harness) -> None:
    made = {a for a in harness.after if "batch_service" in a}
    assert made == {
        "module.iam_emulator.aws_iam_role.batch_service[0]",
        "module.iam_emulator.aws_iam_role_policy_attachment.batch_service[0]",
    }
    [trust] = harness.policy(
        "module.iam_emulator.aws_iam_role.batch_service[0]", "assume_role_policy"
    ).values()
    assert trust["Principal"] == {"Service": "batch.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


# ---------------------------------------------------------------------------------------------
# secretify's extra secrets: the job role reads <secret_name>-*; secretify's own policy
# ---------------------------------------------------------------------------------------------


def test_job_role_reads_the_secret_and_its_parts_and_uses_the_flock_key(harness: Harness) -> None:
    policy = harness.policy("module.iam.aws_iam_role_policy.job")
    secrets = policy["ReadFlockSecret"]
    assert as_list(secrets["Action"]) == ["secretsmanager:GetSecretValue"]
    pattern = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:t-flock-secrets-*"
    assert set(as_list(secrets["Resource"])) == {SECRET_ARN, pattern}
    key = policy["FlockKey"]
    assert "kms:Decrypt" in as_list(key["Action"]) and as_list(key["Resource"]) == [KEY_ARN]


# ---------------------------------------------------------------------------------------------
# Issue 8.4: the ECR lifecycle never expires an image a job definition uses
# ---------------------------------------------------------------------------------------------


def lifecycle_rules(harness: Harness) -> list[dict[str, Any]]:
    policy = harness.after["module.registry.aws_ecr_lifecycle_policy.this"]["policy"]
    rules: list[dict[str, Any]] = json.loads(policy)["rules"]
    return sorted(rules, key=lambda r: r["rulePriority"])


def test_ecr_lifecycle_protects_used_tags_then_keeps_newest_per_prefix(harness: Harness) -> None:
    rules = lifecycle_rules(harness)
    selections = [r["selection"] for r in rules]
    assert all(r["action"] == {"type": "expire"} for r in rules)
    assert len({r["rulePriority"] for r in rules}) == len(rules)
    # First the tags job definitions use: a tag names one image, so "more than 1" never
    # expires it, and no rule of lower priority may expire an image a rule above matched.
    protected = [s for s in selections if "tagPatternList" in s]
    assert [s["tagPatternList"] for s in protected] == [
        ["payload-latest"],
        ["worker-latest"],
        [PINNED_WORKER],
    ]
    assert all(
        (s["tagStatus"], s["countType"], s["countNumber"]) == ("tagged", "imageCountMoreThan", 1)
        for s in protected
    )
    assert selections[: len(protected)] == protected
    # Then the newest keep_images of each prefix, counted apart.
    by_prefix = {
        tuple(s["tagPrefixList"]): (s["tagStatus"], s["countType"], s["countNumber"])
        for s in selections
        if "tagPrefixList" in s
    }
    assert by_prefix == {
        ("payload-",): ("tagged", "imageCountMoreThan", 3),
        ("worker-",): ("tagged", "imageCountMoreThan", 3),
    }
    # Last, untagged images a day after their push; nothing selects "any" tag.
    assert selections[-1] == {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 1,
    }
    assert not [s for s in selections if s["tagStatus"] == "any"]


def simulate_lifecycle(rules: list[dict[str, Any]], images: list[tuple[int, set[str]]]) -> set[int]:
    """ECR's documented evaluation for count rules: rules in priority order; an image that matched
    a rule's tag selection is out of reach of later rules; within a rule images are ranked newest
    first and those past countNumber expire. Returns the push times of expired images."""
    claimed: set[int] = set()
    expired: set[int] = set()
    for rule in rules:
        selection = rule["selection"]
        if selection["tagStatus"] != "tagged":
            continue

        def matches(tags: set[str], selection: dict[str, Any] = selection) -> bool:
            if "tagPatternList" in selection:
                return all(
                    any(re.fullmatch(p.replace("*", ".*"), t) for t in tags)
                    for p in selection["tagPatternList"]
                )
            return all(any(t.startswith(p) for t in tags) for p in selection["tagPrefixList"])

        selected = sorted((pushed for pushed, tags in images if matches(tags)), reverse=True)
        for rank, pushed in enumerate(selected):
            if pushed in claimed:
                continue
            if rank >= selection["countNumber"]:
                expired.add(pushed)
            claimed.add(pushed)
        claimed.update(selected)
    return expired


def test_ecr_lifecycle_never_expires_the_worker_after_many_payload_builds(
    harness: Harness,
) -> None:
    """The defect: keep-newest-N over any tag expired the worker image after N payload builds."""
    rules = lifecycle_rules(harness)
    images: list[tuple[int, set[str]]] = [(1, {"worker-aaaa", "worker-latest"})]
    images += [(1 + n, {f"payload-{n:04d}"}) for n in range(1, 30)]
    images[-1][1].add("payload-latest")
    expired = simulate_lifecycle(rules, images)
    assert 1 not in expired  # the worker the job definition uses
    assert max(p for p, _ in images) not in expired  # payload-latest
    assert len(expired) == 29 - 3  # payload builds beyond the newest 3


def test_ecr_lifecycle_keeps_an_old_pinned_image_a_job_definition_uses(harness: Harness) -> None:
    """A rollback pins an image pushed long ago: beyond the newest N, still never expired."""
    rules = lifecycle_rules(harness)
    images = [(1, {PINNED_WORKER})] + [(1 + n, {f"worker-{n:016x}"}) for n in range(1, 10)]
    expired = simulate_lifecycle(rules, images)
    assert 1 not in expired
    assert expired == {p for p, _ in images[1:7]}  # 9 newer worker images, 3 kept


@pytest.mark.parametrize("name", ["my-flock-", "My-Flock", "my--flock", "-flock"])
def test_registry_refuses_names_ecr_refuses(
    name: str, harness_tree: Path, tf_cli_config: Path, tmp_path: Path
) -> None:
    (tmp_path / "main.tf").write_text(
        REGISTRY_ROOT
        % {"name": name, "key": KEY_ARN, "modules": (harness_tree / "modules").as_posix()}
    )
    env = offline_env(tf_cli_config)
    init = subprocess.run(
        ["terraform", "init", "-input=false", "-no-color"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert init.returncode == 0, init.stderr
    plan = subprocess.run(
        ["terraform", "plan", "-input=false", "-no-color", "-refresh=false"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plan.returncode != 0
    assert "repository_name must be 2-256 lowercase letters" in plan.stderr


# ---------------------------------------------------------------------------------------------
# Issue 8.3: the FSx for Lustre bucket uses SSE-S3 (the flock's other buckets, the flock key)
# ---------------------------------------------------------------------------------------------


def test_lustre_bucket_uses_sse_s3_and_the_others_the_flock_key(harness: Harness) -> None:
    encryption = {
        address.split('"')[1]: after["rule"][0]
        for address, after in harness.after.items()
        if address.startswith("module.storage.aws_s3_bucket_server_side_encryption_configuration")
    }
    assert set(encryption) == {"inputs", "outputs", "errors", "quick-deploy", "lustre"}
    lustre = encryption.pop("lustre")
    default = lustre["apply_server_side_encryption_by_default"][0]
    assert default["sse_algorithm"] == "AES256" and not default["kms_master_key_id"]
    assert lustre["bucket_key_enabled"] is False
    for role, rule in encryption.items():
        default = rule["apply_server_side_encryption_by_default"][0]
        assert (default["sse_algorithm"], default["kms_master_key_id"]) == ("aws:kms", KEY_ARN), (
            role
        )
        assert rule["bucket_key_enabled"] is True


def test_buckets_are_tls_only_and_have_lifecycle_rules_by_default(harness: Harness) -> None:
    """enforce_tls and lifecycle_rules default to the AWS values (the policy text names the
    bucket's ARN, known only after apply: test_plans and the emulator tests read it)."""
    roles = {"inputs", "outputs", "errors", "quick-deploy", "lustre"}
    for kind in ("aws_s3_bucket_policy.tls_only", "aws_s3_bucket_lifecycle_configuration.this"):
        made = {a.split('"')[1] for a in harness.after if a.startswith(f"module.storage.{kind}[")}
        assert made == roles, kind


# ---------------------------------------------------------------------------------------------
# Issue 8.10 and the job log group: the key policy, applied to the emulator and read back
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kms_policy(
    harness_tree: Path, tf_cli_config: Path, emulator: Any
) -> Iterator[dict[str, dict[str, Any]]]:
    from shepard.emulator import emulator_environment

    folder = harness_tree.parent / "kms"
    folder.mkdir()
    (folder / "main.tf").write_text(
        KMS_ROOT % {"region": REGION, "modules": (harness_tree / "modules").as_posix()}
    )
    env = offline_env(tf_cli_config)
    env.update(emulator_environment(emulator.endpoint_url, REGION))
    tf = tftest.TerraformTest(str(folder), env=env)
    tf.setup(cleanup_on_exit=False)
    tf.apply()
    key_id = tf.output()["key_id"]
    client = boto3.client(
        "kms",
        endpoint_url=emulator.endpoint_url,
        region_name=REGION,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    policy = client.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    yield statements(policy)
    shutil.rmtree(folder / ".terraform", ignore_errors=True)


def test_s3_statement_is_the_documented_one(kms_policy: dict[str, dict[str, Any]]) -> None:
    """Amazon S3 user guide, "Granting permissions to publish event notification messages to a
    destination", AWS KMS key policy: s3.amazonaws.com may kms:GenerateDataKey and kms:Decrypt,
    with aws:SourceAccount and aws:SourceArn (the bucket) and nothing else."""
    s3 = kms_policy["S3NotifiesEncryptedQueue"]
    account = next(iter(kms_policy.values()))["Principal"]["AWS"].split(":")[4]
    assert s3["Effect"] == "Allow"
    assert s3["Principal"] == {"Service": "s3.amazonaws.com"}
    assert sorted(as_list(s3["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert s3["Resource"] == "*"
    assert s3["Condition"] == {
        "StringEquals": {"aws:SourceAccount": account},
        "ArnLike": {"aws:SourceArn": "arn:aws:s3:::k-flock-inputs-bucket"},
    }


def test_logs_may_encrypt_the_lambda_and_batch_job_log_groups_only(
    kms_policy: dict[str, dict[str, Any]],
) -> None:
    logs = kms_policy["CloudWatchLogsEncryptsFlockLogGroups"]
    assert logs["Principal"] == {"Service": f"logs.{REGION}.amazonaws.com"}
    arns = as_list(logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"])
    assert sorted(a.split(":log-group:")[1] for a in arns) == [
        "/aws/batch/k-flock*",
        "/aws/lambda/k-flock-*",
    ]
    assert all(a.startswith(f"arn:aws:logs:{REGION}:") for a in arns)


# ---------------------------------------------------------------------------------------------
# Issue 8.12: Function URL callers need lambda:InvokeFunctionUrl and lambda:InvokeFunction
# ---------------------------------------------------------------------------------------------


def test_api_caller_policy_and_docs_name_both_invoke_actions() -> None:
    both = '["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"]'
    api = TERRAFORM_DIR / "modules" / "api"
    main = (api / "main.tf").read_text()
    caller = main[main.index('data "aws_iam_policy_document" "caller"') :]
    assert re.search(r"actions\s+=\s+" + re.escape(both), caller)
    outputs = (api / "outputs.tf").read_text()
    assert 'output "caller_policy_json"' in outputs and both in outputs
    # Wherever the repository documents lambda:InvokeFunctionUrl, it names InvokeFunction too.
    root = TERRAFORM_DIR.parent
    documents = [*root.glob("docs/**/*.md"), *TERRAFORM_DIR.rglob("*.md"), root / "README.md"]
    assert api / "README.md" in documents
    for path in documents:
        text = path.read_text() if path.is_file() else ""
        if "lambda:InvokeFunctionUrl" in text or path == api / "README.md":
            assert re.search(r"lambda:InvokeFunction\b(?!Url)", text), (
                f"{path.relative_to(root)} documents lambda:InvokeFunctionUrl without"
                " lambda:InvokeFunction (both are needed since October 2025)"
            )


# ---------------------------------------------------------------------------------------------
# The root module's wiring, in a plan of the flock (AWS defaults)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flock_plan(planner: FlockPlanner) -> dict[str, dict[str, Any]]:
    raw = planner.plan("minimal", availability_zones=["us-east-1a", "us-east-1b"])
    return {a: c for a, c in raw.resource_changes.items() if c["mode"] == "managed"}


def test_flock_plan_uses_the_service_linked_role_and_the_shared_lambda_module(
    flock_plan: dict[str, dict[str, Any]],
) -> None:
    assert not [a for a in flock_plan if "batch_service" in a]
    for environment in (a for a in flock_plan if "aws_batch_compute_environment" in a):
        assert flock_plan[environment]["change"]["after"].get("service_role") is None
    for part in ("scheduler", "api"):
        function = f"module.{part}.module.function.aws_lambda_function.this"
        group = f"module.{part}.module.function.aws_cloudwatch_log_group.this"
        assert function in flock_plan and group in flock_plan
        assert flock_plan[group]["change"]["after"]["name"] == f"/aws/lambda/mini-flock-{part}"
    mapping = flock_plan["module.scheduler.aws_lambda_event_source_mapping.this"]
    assert mapping["change"]["after"]["enabled"] is True


def default_of(path: Path, variable: str) -> str:
    text = path.read_text()
    block = text[text.index(f'variable "{variable}"') :]
    match = re.search(r"\n  default\s+=\s+(\S+)", block)
    assert match, f"{path}: {variable} has no default"
    return match.group(1)


def test_dead_letter_after_at_least_five_receives_by_default() -> None:
    scheduler = TERRAFORM_DIR / "modules" / "scheduler" / "variables.tf"
    assert int(default_of(scheduler, "max_receive_count")) >= 5
    root = (TERRAFORM_DIR / "flock" / "variables.tf").read_text()
    match = re.search(r"max_receive_count\s+=\s+optional\(number,\s*(\d+)\)", root)
    assert match and int(match.group(1)) >= 5


def test_no_module_reads_an_emulator_switch() -> None:
    for path in (TERRAFORM_DIR / "modules").rglob("*.tf"):
        assert "var.emulator" not in path.read_text(), f"{path}: use an intent-named input"

"""Confirm with boto3 what a flock's Terraform apply made, and that destroy removed it.

Reusable by any suite that applies a flock to the emulator (directly with Terraform, or through
the CLI): pass the flock's outputs (``terraform output -json``, raw or flattened to values).

    check_flock(outputs, emulator=True)   # after apply
    assert_flock_gone(outputs)            # after destroy

Also the small helpers every flock test needs: a copy of terraform/ and tiny Lambda zips.
"""

from __future__ import annotations

import base64
import email
import json
import shutil
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"
BUCKET_OUTPUTS = ("inputs_bucket", "outputs_bucket", "errors_bucket", "quick_deploy_bucket")
ROLE_SUFFIXES = ("scheduler", "api", "job", "sheep", "batch-service")


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def copy_terraform_tree(dest: Path) -> Path:
    """Copy terraform/ (flock + modules) into ``dest``; returns the copy's root.

    tftest runs in place and deletes .terraform and state when done, so it must never run in
    the repository's own folder.
    """
    root = dest / "terraform"
    shutil.copytree(
        TERRAFORM_DIR,
        root,
        ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
    )
    return root


def write_lambda_zips(folder: Path) -> dict[str, Path]:
    """Two tiny valid Lambda packages (``handler.handler``) named like shepard.package's."""
    folder.mkdir(parents=True, exist_ok=True)
    zips = {}
    for name in ("scheduler", "api"):
        path = folder / f"{name}.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("handler.py", f"def handler(event, context):\n    return {name!r}\n")
        zips[name] = path
    return zips


def flatten_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """``terraform output -json`` gives {"name": {"value": ...}}; accept that or plain values."""
    flat: dict[str, Any] = {}
    for key, value in outputs.items():
        is_raw = isinstance(value, Mapping) and "value" in value and "type" in value
        flat[key] = value["value"] if is_raw else value
    return flat


def _client(service: str, region: str) -> Any:
    make: Any = boto3.client  # service names are checked by botocore, not by the stubs
    return make(service, region_name=region)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# ----------------------------------------------------------------------------------------------
# check_flock
# ----------------------------------------------------------------------------------------------


@dataclass
class _Findings:
    """Collects every failed expectation so one run reports all of them."""

    problems: list[str] = field(default_factory=list)

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            self.problems.append(message)

    def guard(self, what: str, check: Callable[[], None]) -> None:
        try:
            check()
        except ClientError as error:
            self.problems.append(f"{what}: {_error_code(error)} {error}")

    def raise_if_any(self, title: str) -> None:
        if self.problems:
            raise AssertionError(title + ":\n  - " + "\n  - ".join(self.problems))


def check_flock(outputs: Mapping[str, Any], *, emulator: bool, flock_key: bool = True) -> None:
    """Assert that the flock described by ``outputs`` exists as its Terraform made it;
    ``flock_key``: made with ``encryption.kms_key: flock`` (else every part is encrypted with
    its service's AWS-managed or AWS-owned key)."""
    out = flatten_outputs(outputs)
    region = out["region"]
    found = _Findings()

    for key in BUCKET_OUTPUTS:
        found.guard(key, partial(_check_bucket, out[key], region, emulator, flock_key, found))
    found.guard("job table", lambda: _check_table(out, region, flock_key, found))
    found.guard("queues", lambda: _check_queues(out, region, flock_key, found))
    found.guard("notification", lambda: _check_notification(out, region, found))
    found.guard("lambdas", lambda: _check_lambdas(out, region, emulator, found))
    found.guard("secret", lambda: _check_secret(out, region, flock_key, found))
    found.guard("registry", lambda: _check_registry(out, region, flock_key, found))
    found.guard("batch", lambda: _check_batch(out, region, found))
    found.guard("network", lambda: _check_network(out, region, found))
    if out.get("efs_id"):
        found.guard("efs", lambda: _check_efs(out, region, found))
    found.raise_if_any(f"flock {out.get('flock_name')!r} is not as Terraform should have made it")


def _check_bucket(
    bucket: str, region: str, emulator: bool, flock_key: bool, found: _Findings
) -> None:
    s3 = _client("s3", region)
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    default = rules[0]["ApplyServerSideEncryptionByDefault"]
    if flock_key:
        found.expect(default["SSEAlgorithm"] == "aws:kms", f"{bucket}: not SSE-KMS ({default})")
        found.expect(bool(default.get("KMSMasterKeyID")), f"{bucket}: no KMS key")
        found.expect(rules[0].get("BucketKeyEnabled") is True, f"{bucket}: bucket key off")
    else:  # SSE-S3: S3's own key (docs/decisions/0011-aws-managed-keys.md)
        found.expect(default["SSEAlgorithm"] == "AES256", f"{bucket}: not SSE-S3 ({default})")

    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    found.expect(all(block.values()) and len(block) == 4, f"{bucket}: public access {block}")

    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    found.expect(ownership[0]["ObjectOwnership"] == "BucketOwnerEnforced", f"{bucket}: {ownership}")
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    found.expect(versioning == "Enabled", f"{bucket}: versioning {versioning}")

    try:
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as error:
        if _error_code(error) != "NoSuchBucketPolicy":
            raise
        policy = {"Statement": []}
    denies_http = any(
        st.get("Effect") == "Deny"
        and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for st in policy["Statement"]
    )
    # moto ignores conditions, so against the emulator the statement must be absent.
    found.expect(
        denies_http != emulator,
        f"{bucket}: TLS-only deny present={denies_http}, emulator={emulator}",
    )


def _check_table(out: Mapping[str, Any], region: str, flock_key: bool, found: _Findings) -> None:
    ddb = _client("dynamodb", region)
    name = out["table_name"]
    table = ddb.describe_table(TableName=name)["Table"]
    found.expect(
        table["KeySchema"] == [{"AttributeName": "UUID", "KeyType": "HASH"}],
        f"{name}: key {table['KeySchema']}",
    )
    found.expect(
        table.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST",
        f"{name}: billing {table.get('BillingModeSummary')}",
    )
    indexes = {gsi["IndexName"]: gsi for gsi in table.get("GlobalSecondaryIndexes", [])}
    gsi = indexes.get(out["table_status_index"])
    found.expect(gsi is not None, f"{name}: no GSI {out['table_status_index']} in {list(indexes)}")
    if gsi is not None:
        keys = {k["AttributeName"]: k["KeyType"] for k in gsi["KeySchema"]}
        found.expect(keys == {"PHASE": "HASH", "CREATED_AT": "RANGE"}, f"{name}: GSI keys {keys}")
        found.expect(gsi["Projection"]["ProjectionType"] == "ALL", f"{name}: GSI projection")
    sse = table.get("SSEDescription", {})
    if flock_key:
        found.expect(
            sse.get("Status") == "ENABLED" and sse.get("SSEType") == "KMS", f"{name}: SSE {sse}"
        )
    else:  # DynamoDB's default: an AWS owned key, which DescribeTable does not describe
        found.expect(sse.get("SSEType") != "KMS", f"{name}: SSE {sse}")
    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    found.expect(
        ttl.get("TimeToLiveStatus") == "ENABLED" and ttl.get("AttributeName") == "EXPIRES_AT",
        f"{name}: TTL {ttl}",
    )
    backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    pitr = backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
    found.expect(pitr == "ENABLED", f"{name}: point-in-time recovery {pitr}")


def _check_queues(out: Mapping[str, Any], region: str, flock_key: bool, found: _Findings) -> None:
    sqs = _client("sqs", region)
    attrs = sqs.get_queue_attributes(QueueUrl=out["sqs_queue_url"], AttributeNames=["All"])[
        "Attributes"
    ]
    dlq = sqs.get_queue_attributes(
        QueueUrl=out["dead_letter_queue_url"], AttributeNames=["QueueArn"]
    )["Attributes"]
    redrive = json.loads(attrs.get("RedrivePolicy", "{}"))
    found.expect(
        redrive.get("deadLetterTargetArn") == dlq["QueueArn"], f"queue redrive policy {redrive}"
    )
    found.expect(int(redrive.get("maxReceiveCount", 0)) >= 1, f"queue maxReceiveCount {redrive}")
    if flock_key:
        found.expect(bool(attrs.get("KmsMasterKeyId")), "queue is not KMS-encrypted")
    else:
        found.expect(attrs.get("SqsManagedSseEnabled") == "true", f"queue not SSE-SQS {attrs}")
    timeout = _client("lambda", region).get_function_configuration(
        FunctionName=out["scheduler_function_name"]
    )["Timeout"]
    found.expect(
        int(attrs["VisibilityTimeout"]) >= 6 * timeout,
        f"queue visibility {attrs['VisibilityTimeout']} < 6 x Lambda timeout {timeout}",
    )
    policy = json.loads(attrs.get("Policy", '{"Statement": []}'))
    inputs_arn = f"arn:aws:s3:::{out['inputs_bucket']}"
    senders = [
        st.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn")
        for st in policy["Statement"]
    ]
    found.expect(senders == [inputs_arn], f"queue policy senders {senders}, want {inputs_arn}")


def _check_notification(out: Mapping[str, Any], region: str, found: _Findings) -> None:
    config = _client("s3", region).get_bucket_notification_configuration(
        Bucket=out["inputs_bucket"]
    )
    queues = config.get("QueueConfigurations", [])
    found.expect(len(queues) == 1, f"inputs notifications {queues}")
    if queues:
        queue = queues[0]
        found.expect(queue["QueueArn"] == out["sqs_queue_arn"], f"notification -> {queue}")
        found.expect(queue["Events"] == ["s3:ObjectCreated:*"], f"events {queue['Events']}")
        rules = queue.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        suffixes = [r["Value"] for r in rules if r["Name"].lower() == "suffix"]
        found.expect(suffixes == [".zip"], f"notification filter {rules}")


def _check_lambdas(out: Mapping[str, Any], region: str, emulator: bool, found: _Findings) -> None:
    lam = _client("lambda", region)
    for key in ("scheduler_function_name", "api_function_name"):
        conf = lam.get_function_configuration(FunctionName=out[key])
        found.expect(conf["Runtime"] == "python3.12", f"{out[key]}: runtime {conf['Runtime']}")
        found.expect(conf["Handler"] == "handler.handler", f"{out[key]}: handler")
        env = conf.get("Environment", {}).get("Variables", {})
        found.expect(env == out["lambda_environment"], f"{out[key]}: environment {env}")
    mappings = lam.list_event_source_mappings(EventSourceArn=out["sqs_queue_arn"])[
        "EventSourceMappings"
    ]
    found.expect(len(mappings) == 1, f"scheduler event source mappings {mappings}")
    if mappings:
        mapping = mappings[0]
        found.expect(
            mapping["FunctionArn"].endswith(f":function:{out['scheduler_function_name']}"),
            f"queue mapped to {mapping['FunctionArn']}",
        )
        found.expect(
            mapping.get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
            f"mapping response types {mapping.get('FunctionResponseTypes')}",
        )
        enabled = mapping["State"] in ("Enabled", "Enabling", "Creating")
        found.expect(enabled != emulator, f"mapping state {mapping['State']}, emulator={emulator}")
    url = lam.get_function_url_config(FunctionName=out["api_function_name"])
    found.expect(url["AuthType"] == "AWS_IAM", f"API function URL auth {url['AuthType']}")
    found.expect(url["FunctionUrl"] == out["api_endpoint_url"], "API endpoint URL")


def _check_secret(out: Mapping[str, Any], region: str, flock_key: bool, found: _Findings) -> None:
    secret = _client("secretsmanager", region).describe_secret(SecretId=out["secret_arn"])
    found.expect(secret["Name"] == out["secret_name"], f"secret name {secret['Name']}")
    # Without the flock's key Secrets Manager encrypts with aws/secretsmanager (no KmsKeyId).
    found.expect(bool(secret.get("KmsKeyId")) == flock_key, f"secret key {secret.get('KmsKeyId')}")


def _check_registry(out: Mapping[str, Any], region: str, flock_key: bool, found: _Findings) -> None:
    ecr = _client("ecr", region)
    repo = ecr.describe_repositories(repositoryNames=[out["ecr_repository_name"]])["repositories"][
        0
    ]
    found.expect(repo["repositoryUri"] == out["ecr_repository_url"], "repository URL")
    found.expect(repo["registryId"] == out["account_id"], "account id is not the registry id")
    found.expect(
        repo["imageScanningConfiguration"]["scanOnPush"] is True, "repository not scanned on push"
    )
    kind = repo["encryptionConfiguration"]["encryptionType"]
    found.expect(kind == ("KMS" if flock_key else "AES256"), f"repository encryption {kind}")
    policy = json.loads(
        ecr.get_lifecycle_policy(repositoryName=out["ecr_repository_name"])["lifecyclePolicyText"]
    )
    found.expect(
        policy["rules"][0]["selection"]["countType"] == "imageCountMoreThan",
        f"repository lifecycle {policy}",
    )


def _check_batch(out: Mapping[str, Any], region: str, found: _Findings) -> None:
    batch = _client("batch", region)
    queues = batch.describe_job_queues(jobQueues=[out["job_queue_arn"]])["jobQueues"]
    found.expect(len(queues) == 1, f"job queue {out['job_queue_arn']} missing")
    if not queues:
        return
    queue = queues[0]
    found.expect(queue["jobQueueName"] == out["job_queue_name"], "job queue name")
    found.expect(queue["state"] == "ENABLED", f"job queue state {queue['state']}")
    order = sorted(queue["computeEnvironmentOrder"], key=lambda o: o["order"])
    found.expect(len(order) >= 1, "job queue has no compute environment")
    arns = [o["computeEnvironment"] for o in order]
    envs = {
        ce["computeEnvironmentArn"]: ce
        for ce in batch.describe_compute_environments(computeEnvironments=arns)[
            "computeEnvironments"
        ]
    }
    found.expect(set(envs) == set(arns), f"compute environments {arns} vs {list(envs)}")
    launch_templates = set()
    for arn, ce in envs.items():
        resources = ce["computeResources"]
        found.expect(ce["type"] == "MANAGED", f"{arn}: type {ce['type']}")
        found.expect(bool(ce.get("serviceRole")), f"{arn}: no service role")
        if resources["type"] == "SPOT":
            found.expect(
                resources.get("allocationStrategy") == "SPOT_PRICE_CAPACITY_OPTIMIZED"
                and bool(resources.get("spotIamFleetRole"))
                and resources.get("bidPercentage") is not None,
                f"{arn}: Spot settings {resources}",
            )
        template = resources.get("launchTemplate", {}).get("launchTemplateId")
        found.expect(bool(template), f"{arn}: no launch template")
        if template:
            launch_templates.add(template)
    for template in launch_templates:
        _check_launch_template(template, out, found)

    definitions = batch.describe_job_definitions(jobDefinitions=[out["job_definition_arn"]])[
        "jobDefinitions"
    ]
    found.expect(len(definitions) == 1, f"job definition {out['job_definition_arn']} missing")
    if definitions:
        _check_job_definition(definitions[0], out, found)


def _check_launch_template(template_id: str, out: Mapping[str, Any], found: _Findings) -> None:
    region = out["region"]
    ec2 = _client("ec2", region)
    version = ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, Versions=["$Latest"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    metadata = version.get("MetadataOptions", {})
    found.expect(metadata.get("HttpTokens") == "required", f"{template_id}: IMDSv2 {metadata}")
    volumes = version.get("BlockDeviceMappings", [])
    found.expect(len(volumes) == 2, f"{template_id}: volumes {volumes}")
    found.expect(
        all(v["Ebs"].get("Encrypted") for v in volumes), f"{template_id}: unencrypted volume"
    )
    parts = user_data_parts(base64.b64decode(version.get("UserData", "")).decode())
    found.expect(
        list(parts) == ["text/cloud-boothook", "text/x-shellscript"],
        f"{template_id}: user data parts {list(parts)}",
    )
    nofile = out["job_environment"]["ULIMIT_FILENO"]
    found.expect(
        f"--default-ulimit nofile={nofile}:{nofile}" in parts.get("text/cloud-boothook", ""),
        f"{template_id}: user data does not raise the Docker nofile limit to {nofile}",
    )
    script = parts.get("text/x-shellscript", "")
    commands = "\n".join(
        line for line in script.splitlines() if not line.lstrip().startswith("#")
    )  # what runs: the comments may speak of /mnt/efs whatever the flock has
    if out.get("efs_id"):
        mount = f"{out['efs_id']}.efs.{region}.amazonaws.com:/ /mnt/efs"
        found.expect(mount in script, f"{template_id}: user data does not mount {mount}")
    else:
        found.expect("/mnt/efs" not in commands, f"{template_id}: mounts EFS without one")


def user_data_parts(user_data: str) -> dict[str, str]:
    """The MIME multipart user data of a launch template: content type -> text."""
    message = email.message_from_string(user_data)
    return {
        part.get_content_type(): str(part.get_payload())
        for part in message.walk()
        if not part.is_multipart()
    }


def _check_job_definition(
    definition: Mapping[str, Any], out: Mapping[str, Any], found: _Findings
) -> None:
    name = definition["jobDefinitionName"]
    found.expect(name == out["job_definition_name"], f"job definition name {name}")
    found.expect(definition["status"] == "ACTIVE", f"{name}: status {definition['status']}")
    container = definition["containerProperties"]
    env = {e["name"]: e["value"] for e in container.get("environment", [])}
    found.expect(env == out["job_environment"], f"{name}: environment {env}")
    found.expect(bool(container.get("image")), f"{name}: no image")
    mounts = {m["containerPath"] for m in container.get("mountPoints", [])}
    found.expect({"/var/run/docker.sock", "/mnt/root"} <= mounts, f"{name}: mount points {mounts}")
    if out.get("efs_id"):
        found.expect("/mnt/efs" in mounts, f"{name}: no /mnt/efs mount")
    ulimits = {u["name"]: u for u in container.get("ulimits", [])}
    found.expect("nofile" in ulimits, f"{name}: no nofile ulimit")
    retry = definition.get("retryStrategy", {})
    found.expect(int(retry.get("attempts", 0)) >= 1, f"{name}: retry strategy {retry}")
    evaluate = retry.get("evaluateOnExit", [])
    if evaluate:
        found.expect(
            [(e["action"].upper(), e.get("onStatusReason") or e.get("onReason")) for e in evaluate]
            == [("RETRY", "Host EC2*"), ("EXIT", "*")],
            f"{name}: evaluateOnExit {evaluate}",
        )
    timeout = definition.get("timeout", {}).get("attemptDurationSeconds")
    found.expect(
        str(timeout) == out["lambda_environment"]["SHEPARD_JOB_TIMEOUT_SECONDS"],
        f"{name}: timeout {timeout}",
    )


def _check_network(out: Mapping[str, Any], region: str, found: _Findings) -> None:
    ec2 = _client("ec2", region)
    subnets = ec2.describe_subnets(SubnetIds=out["subnet_ids"])["Subnets"]
    found.expect(
        {s["VpcId"] for s in subnets} == {out["vpc_id"]}, f"subnets not in {out['vpc_id']}"
    )
    group = ec2.describe_security_groups(GroupIds=[out["security_group_id"]])["SecurityGroups"][0]
    found.expect(group["VpcId"] == out["vpc_id"], "security group in another VPC")
    open_to_world = [
        p
        for p in group.get("IpPermissions", [])
        if any(r.get("CidrIp") == "0.0.0.0/0" for r in p.get("IpRanges", []))
    ]
    found.expect(not open_to_world, f"sheep security group open to the world: {open_to_world}")


def _check_efs(out: Mapping[str, Any], region: str, found: _Findings) -> None:
    efs = _client("efs", region)
    system = efs.describe_file_systems(FileSystemId=out["efs_id"])["FileSystems"][0]
    found.expect(system["Encrypted"] is True, f"{out['efs_id']}: not encrypted")
    targets = efs.describe_mount_targets(FileSystemId=out["efs_id"])["MountTargets"]
    found.expect(
        sorted(t["SubnetId"] for t in targets) == sorted(out["subnet_ids"]),
        f"{out['efs_id']}: mount targets in {[t['SubnetId'] for t in targets]}",
    )


# ----------------------------------------------------------------------------------------------
# assert_flock_gone
# ----------------------------------------------------------------------------------------------


def _gone(found: _Findings, what: str, probe: Callable[[], Any], *missing_codes: str) -> None:
    """``probe`` returns True while the thing still exists; a ClientError with one of
    ``missing_codes`` also means it is gone."""
    try:
        still_there = bool(probe())
    except ClientError as error:
        if _error_code(error) in missing_codes:
            return
        found.problems.append(f"{what}: unexpected {_error_code(error)} {error}")
        return
    found.expect(not still_there, f"{what} still exists after destroy")


def assert_flock_gone(outputs: Mapping[str, Any], *, vpc_created: bool = True) -> None:
    """Assert that nothing the flock's outputs name (and none of its IAM roles) is left.

    ``vpc_created=False`` for a flock in an existing VPC, which destroy must leave alone.
    """
    out = flatten_outputs(outputs)
    region = out["region"]
    found = _Findings()
    s3 = _client("s3", region)
    for key in BUCKET_OUTPUTS:
        _gone(
            found,
            f"bucket {out[key]}",
            partial(s3.head_bucket, Bucket=out[key]),
            "404",
            "NoSuchBucket",
            "NotFound",
        )

    ddb = _client("dynamodb", region)
    _gone(
        found,
        f"table {out['table_name']}",
        lambda: bool(ddb.describe_table(TableName=out["table_name"])),
        "ResourceNotFoundException",
    )

    sqs = _client("sqs", region)
    for key in ("sqs_queue_url", "dead_letter_queue_url"):
        _gone(
            found,
            f"queue {out[key]}",
            partial(sqs.get_queue_attributes, QueueUrl=out[key]),
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        )

    lam = _client("lambda", region)
    for key in ("scheduler_function_name", "api_function_name"):
        _gone(
            found,
            f"function {out[key]}",
            partial(lam.get_function, FunctionName=out[key]),
            "ResourceNotFoundException",
        )

    secrets = _client("secretsmanager", region)
    # A secret with a recovery window is only scheduled for deletion: that counts as gone.
    _gone(
        found,
        f"secret {out['secret_name']}",
        lambda: "DeletedDate" not in secrets.describe_secret(SecretId=out["secret_arn"]),
        "ResourceNotFoundException",
    )

    ecr = _client("ecr", region)
    _gone(
        found,
        f"repository {out['ecr_repository_name']}",
        lambda: bool(ecr.describe_repositories(repositoryNames=[out["ecr_repository_name"]])),
        "RepositoryNotFoundException",
    )

    batch = _client("batch", region)
    _gone(
        found,
        f"job queue {out['job_queue_name']}",
        lambda: any(
            q["status"] != "DELETED"
            for q in batch.describe_job_queues(jobQueues=[out["job_queue_arn"]])["jobQueues"]
        ),
    )
    _gone(
        found,
        f"job definition {out['job_definition_arn']}",
        lambda: any(
            d["status"] == "ACTIVE"
            for d in batch.describe_job_definitions(jobDefinitions=[out["job_definition_arn"]])[
                "jobDefinitions"
            ]
        ),
    )
    _gone(
        found,
        f"compute environments of {out['flock_name']}",
        lambda: any(
            ce["computeEnvironmentName"].startswith(f"{out['flock_name']}-")
            for ce in batch.describe_compute_environments()["computeEnvironments"]
        ),
    )

    ec2 = _client("ec2", region)
    _gone(
        found,
        f"security group {out['security_group_id']}",
        lambda: bool(ec2.describe_security_groups(GroupIds=[out["security_group_id"]])),
        "InvalidGroup.NotFound",
    )
    if vpc_created:
        _gone(
            found,
            f"VPC {out['vpc_id']}",
            lambda: bool(ec2.describe_vpcs(VpcIds=[out["vpc_id"]])["Vpcs"]),
            "InvalidVpcID.NotFound",
        )
    if out.get("efs_id"):
        efs = _client("efs", region)
        _gone(
            found,
            f"file system {out['efs_id']}",
            lambda: bool(efs.describe_file_systems(FileSystemId=out["efs_id"])["FileSystems"]),
            "FileSystemNotFound",
        )

    iam = _client("iam", region)
    for suffix in ROLE_SUFFIXES:
        role = f"{out['flock_name']}-{suffix}"
        _gone(found, f"role {role}", partial(iam.get_role, RoleName=role), "NoSuchEntity")
    found.raise_if_any(f"flock {out['flock_name']!r} was not fully destroyed")

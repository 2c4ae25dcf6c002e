"""One typed method per AWS call the CLI makes. Nothing else in the CLI touches a boto3 client.

Every method wraps its call in :func:`aws_errors`, so a failure reaches the user as
``while <doing X>: <cause>. <what to do>.``
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from shepard.aws.errors import aws_errors
from shepard.aws.session import AwsSettings, assume, base_session, client, session
from shepard.errors import BackendError

MULTIPART_THRESHOLD = 8 * 1024 * 1024
SECRET_LIMIT = 64 * 1024  # Secrets Manager's SecretString limit


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class Invocation:
    status_code: int
    payload: Any
    function_error: str | None


@dataclass(frozen=True)
class RegistryLogin:
    username: str
    password: str
    registry: str


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals as int/float, so records print and serialise as JSON."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


class Aws:
    """The AWS account (or emulator) of one CLI run."""

    def __init__(self, settings: AwsSettings) -> None:
        self.settings = settings
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            if self._session is None:
                with aws_errors("loading AWS credentials"):
                    self._session = session(self.settings)
            self._clients[service] = client(self._session, self.settings, service)
        return self._clients[service]

    @property
    def region(self) -> str | None:
        if self._session is None:
            with aws_errors("loading AWS credentials"):
                self._session = session(self.settings)
        region: str | None = self._session.region_name
        return region

    # -- STS ----------------------------------------------------------------------------------
    def caller_identity(self) -> dict[str, str]:
        with aws_errors("asking AWS who you are (sts get-caller-identity)"):
            answer = self._client("sts").get_caller_identity()
        return {"account": answer["Account"], "arn": answer["Arn"]}

    def assume_role(self, arn: str, *, duration_seconds: int) -> Any:
        """Assume ``arn`` with the base credentials (never with a cached role)."""
        with aws_errors("loading AWS credentials"):
            base = base_session(self.settings)
        return assume(self.settings, base, arn, duration_seconds=duration_seconds)

    # -- S3 -----------------------------------------------------------------------------------
    def upload_file(
        self, path: Path, bucket: str, key: str, on_bytes: Callable[[int], None] | None = None
    ) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, max_concurrency=4)
        with aws_errors(f"uploading {path.name} to s3://{bucket}/{key}"):
            self._client("s3").upload_file(str(path), bucket, key, Config=config, Callback=on_bytes)

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[S3Object]:
        with aws_errors(f"listing s3://{bucket}/{prefix}"):
            pages = self._client("s3").get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield S3Object(item["Key"], int(item["Size"]), item["ETag"].strip('"'))

    def download_file(
        self, bucket: str, key: str, path: Path, on_bytes: Callable[[int], None] | None = None
    ) -> None:
        with aws_errors(f"downloading s3://{bucket}/{key}"):
            self._client("s3").download_file(bucket, key, str(path), Callback=on_bytes)

    # -- Lambda -------------------------------------------------------------------------------
    def invoke(self, function: str, payload: Any) -> Invocation:
        with aws_errors(f"invoking the API Lambda {function}"):
            answer = self._client("lambda").invoke(
                FunctionName=function,
                InvocationType="RequestResponse",
                Payload=json.dumps(payload).encode(),
            )
            raw = answer["Payload"].read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        return Invocation(int(answer.get("StatusCode", 0)), body, answer.get("FunctionError"))

    # -- DynamoDB -----------------------------------------------------------------------------
    def query_phase(
        self, table: str, index: str, phase: str, result: str | None = None
    ) -> list[dict[str, Any]]:
        """Jobs in one phase through the ``phase-index`` GSI (a Query, never a Scan)."""
        from boto3.dynamodb.types import TypeDeserializer

        deserialize = TypeDeserializer().deserialize
        kwargs: dict[str, Any] = {
            "TableName": table,
            "IndexName": index,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": "PHASE"},
            "ExpressionAttributeValues": {":p": {"S": phase}},
        }
        if result is not None:
            kwargs["FilterExpression"] = "#r = :r"
            kwargs["ExpressionAttributeNames"]["#r"] = "RESULT"
            kwargs["ExpressionAttributeValues"][":r"] = {"S": result}
        items: list[dict[str, Any]] = []
        with aws_errors(f"querying the job table {table} ({index} = {phase})"):
            for page in self._client("dynamodb").get_paginator("query").paginate(**kwargs):
                for raw in page.get("Items", []):
                    items.append(_plain({k: deserialize(v) for k, v in raw.items()}))
        return items

    # -- Secrets Manager ----------------------------------------------------------------------
    def put_secret(self, name: str, value: str) -> str:
        """Store ``value`` as the secret's current version, creating the secret if needed."""
        sm = self._client("secretsmanager")
        with aws_errors(f"storing the secret {name}"):
            try:
                answer = sm.put_secret_value(SecretId=name, SecretString=value)
            except sm.exceptions.ResourceNotFoundException:
                answer = sm.create_secret(Name=name, SecretString=value)
        return str(answer["ARN"])

    def get_secret(self, name: str) -> str:
        with aws_errors(f"reading the secret {name}"):
            answer = self._client("secretsmanager").get_secret_value(SecretId=name)
        return str(answer["SecretString"])

    # -- ECR ----------------------------------------------------------------------------------
    def registry_login(self) -> RegistryLogin:
        with aws_errors("getting an ECR login token"):
            answer = self._client("ecr").get_authorization_token()
        data = answer["authorizationData"]
        if not data:
            raise BackendError(
                "while getting an ECR login token: ECR returned none. Check ECR permissions."
            )
        user, _, password = base64.b64decode(data[0]["authorizationToken"]).decode().partition(":")
        return RegistryLogin(user, password, data[0]["proxyEndpoint"])

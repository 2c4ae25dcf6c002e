"""The worker's only door to AWS: one typed method per call, errors rewritten once, here.

Clients come from ``shepard.joblayer.clients`` (the one retry policy); the S3, Secrets Manager
and ECR calls are the CLI's too (``shepard.joblayer.calls``); a failure is worded by
``clients.explain`` and raised as a BackendError.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shepard.errors import BackendError
from shepard.joblayer import calls, clients


@contextmanager
def _backend(doing: str, fix: str) -> Iterator[None]:
    """Rewrite a boto failure inside the block into ``while <doing>: <cause>. <fix>.``"""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        explained = clients.explain(error, doing, fix)
        raise BackendError(explained.message if explained else str(error)) from error


class Aws:
    """boto3 clients made on first use (the worker's environment points them at AWS or moto)."""

    def __init__(self, session: Any = None) -> None:
        self._session = session
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = clients.client(service, session=self._session)
        return self._clients[service]

    def download(self, bucket: str, key: str, path: Path, size: int | None = None) -> None:
        """``size``: the object's size when known (one GetObject under the multipart threshold)."""
        fix = "Check that the object exists and that the job role may read it"
        with _backend(f"fetching s3://{bucket}/{key}", fix):
            calls.download(self.client("s3"), bucket, key, path, exclusive=True, size=size)

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        fix = "Check the quick-deploy bucket's name and that the job role may list it"
        with _backend(f"listing s3://{bucket}/{prefix}", fix):
            return [item.key for item in calls.list_objects(self.client("s3"), bucket, prefix)]

    def upload(self, bucket: str, path: Path, key: str) -> None:
        fix = "Check that the bucket exists and that the job role may write to it"
        with _backend(f"uploading {path} to s3://{bucket}/{key}", fix):
            calls.upload(self.client("s3"), path, bucket, key)

    def secret_text(self, name: str) -> str | None:
        """The secret's current string, or None when it does not exist or has no value yet."""
        fix = "Check that the job role may read the flock's secrets, then retry the job"
        with _backend(f'reading the secret "{name}"', fix):
            return calls.secret_text(self.client("secretsmanager"), name)

    def ecr_login(self, registry_id: str) -> tuple[str, str, str]:
        """``(username, password, registry url)`` for ``docker pull`` from ECR."""
        doing = f"getting a login for the image registry {registry_id}"
        with _backend(doing, "Check that the job role may pull from ECR"):
            login = calls.registry_login(self.client("ecr"), registry_id)
        if login is None:
            raise BackendError(f"while {doing}: ECR returned none. Check ECR permissions.")
        return login.username, login.password, login.registry

    def ecr_digest(self, image: Any) -> str | None:
        """The digest an ECR tag names now (``image``: a runners.EcrImage), None if unknown."""
        doing = f"looking up the image {image.repository}:{image.tag} in ECR"
        with _backend(doing, "Check that deploy pushed it"):
            try:
                response = self.client("ecr").describe_images(
                    registryId=image.registry_id,
                    repositoryName=image.repository,
                    imageIds=[{"imageTag": image.tag}],
                )
            except ClientError as error:
                if clients.error_code(error) in (
                    "ImageNotFoundException",
                    "RepositoryNotFoundException",
                ):
                    return None  # the pull will say what is wrong
                raise
        details = response.get("imageDetails", [])
        return str(details[0]["imageDigest"]) if details else None

    def dynamodb(self) -> Any:
        return self.client("dynamodb")


# What a boto3 call raises when AWS (or the emulator) says no or cannot be reached.
AWS_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError)

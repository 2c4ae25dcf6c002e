"""destroy's clean-up of secretify's part secrets, against moto's Secrets Manager."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from shepard.joblayer.calls import PART_TAG, delete_part_secrets, put_secret


@pytest.fixture
def secretsmanager(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def _names(client: Any) -> set[str]:
    return {s["Name"] for s in client.list_secrets()["SecretList"]}


def test_deletes_the_parts_of_the_secret_and_nothing_else(secretsmanager: Any) -> None:
    put_secret(secretsmanager, "flock-secrets", "{}")
    put_secret(secretsmanager, "flock-secrets-part-1", "{}", tags={PART_TAG: "flock-secrets"})
    put_secret(secretsmanager, "flock-secrets-part-2", "{}")  # an older part: no tag
    put_secret(secretsmanager, "other-secrets-part-1", "{}", tags={PART_TAG: "other-secrets"})
    put_secret(secretsmanager, "flock-secrets-partial", "{}")  # not a part: another name

    removed = delete_part_secrets(secretsmanager, "flock-secrets")

    assert removed == ["flock-secrets-part-1", "flock-secrets-part-2"]
    assert _names(secretsmanager) == {
        "flock-secrets",
        "other-secrets-part-1",
        "flock-secrets-partial",
    }


def test_a_secret_without_parts_deletes_nothing(secretsmanager: Any) -> None:
    put_secret(secretsmanager, "flock-secrets", "{}")
    assert delete_part_secrets(secretsmanager, "flock-secrets") == []
    assert _names(secretsmanager) == {"flock-secrets"}

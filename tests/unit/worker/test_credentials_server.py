"""The local flock's container-credentials endpoint (shepard.local.credentials) against moto:
what it answers, to whom, and that botocore's own container provider reads it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest

from shepard.emulator import InProcessEmulator
from shepard.local.credentials import AUTHORIZATION_TOKEN, FULL_URI, CredentialsServer

ROLE = "arn:aws:iam::123456789012:role/flock-job-role"


def _session() -> Any:
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


@pytest.fixture
def server(emulator: InProcessEmulator) -> Iterator[CredentialsServer]:
    with CredentialsServer(
        role_arn=ROLE, endpoint_url=emulator.endpoint_url, session=_session()
    ) as running:
        yield running


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers={"Authorization": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_full_uri_with_the_token_gets_the_roles_credentials(
    server: CredentialsServer,
) -> None:
    status, body = _get(server.full_uri, server.token)

    assert status == 200
    assert set(body) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"}
    assert body["RoleArn"] == ROLE
    assert body["Expiration"].endswith("Z")
    assert server.environment() == {FULL_URI: server.full_uri, AUTHORIZATION_TOKEN: server.token}
    assert server.full_uri.startswith("http://127.0.0.1:")


def test_credentials_are_assumed_once_and_reused_until_near_expiry(
    server: CredentialsServer,
) -> None:
    first = _get(server.full_uri, server.token)[1]
    second = _get(server.full_uri, server.token)[1]
    assert first["AccessKeyId"] == second["AccessKeyId"]
    assert server.requests == 2


@pytest.mark.parametrize("token", [None, "wrong"])
def test_no_token_or_a_wrong_one_is_refused(server: CredentialsServer, token: str | None) -> None:
    status, body = _get(server.full_uri, token)
    assert status == 401
    assert "AccessKeyId" not in body
    assert AUTHORIZATION_TOKEN in body["message"]


def test_another_path_is_not_found_even_with_the_token(server: CredentialsServer) -> None:
    status, body = _get(f"http://127.0.0.1:{server.port}/v2/credentials/guess", server.token)
    assert status == 404
    assert "AccessKeyId" not in body


def test_a_relative_uri_client_without_a_token_is_served_when_allowed(
    emulator: InProcessEmulator,
) -> None:
    with CredentialsServer(
        role_arn=ROLE, endpoint_url=emulator.endpoint_url, session=_session(), require_token=False
    ) as running:
        assert _get(running.full_uri)[0] == 200
        assert _get(running.full_uri, "wrong")[0] == 401  # a token, when sent, must be right


def test_botocores_container_provider_reads_it_and_the_caller_is_the_assumed_role(
    server: CredentialsServer, emulator: InProcessEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")

    session = boto3.Session(botocore_session=botocore.session.Session(), region_name="us-east-1")
    credentials = session.get_credentials()
    assert credentials is not None and credentials.method == "container-role"
    identity = session.client("sts", endpoint_url=emulator.endpoint_url).get_caller_identity()
    assert identity["Arn"] == "arn:aws:sts::123456789012:assumed-role/flock-job-role/shepard-job"

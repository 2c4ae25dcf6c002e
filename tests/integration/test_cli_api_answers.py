"""How batch_via_api reads the API Lambda's answers: handlers that answer each case of
docs/contracts.md section 10 on purpose, behind the local invoke server (boto3 invokes them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shepard.emulator import InProcessEmulator
from shepard.joblayer.settings import FlockSettings
from shepard.local.invoke_server import InvokeServer, serving
from tests.unit.cli.helpers import cli_env, run, write_flock_profile

pytestmark = pytest.mark.integration
API = "cliapi-api"


def _env(settings: FlockSettings, server: InvokeServer, tmp_path: Path) -> dict[str, str]:
    env = cli_env(tmp_path / "config")
    write_flock_profile(
        env, settings, shepard_lambda_to_invoke=API, shepard_lambda_endpoint_url=server.url
    )
    return env


# Names only: these tests reach no flock resource but the (fake) API function.
NO_FLOCK = FlockSettings("none", "t", "q", "d", "i", "o", "e", "qd")


def _crash(event: dict[str, Any], context: object) -> object:
    raise RuntimeError("table missing")


def _http_refusal(event: dict[str, Any], context: object) -> object:
    return {"statusCode": 400, "body": json.dumps({"error": "variable x is bad"})}


def _invoke_refusal(event: dict[str, Any], context: object) -> object:
    return {"error": 'variable "a" is bad', "statusCode": 400, "rejected_job_id": "e" * 32}


def _throttled(event: dict[str, Any], context: object) -> object:
    return {"error": "AWS was throttled; try again", "statusCode": 503}


def _accepted(event: dict[str, Any], context: object) -> object:
    assert event == {"a": "1"}  # the payload arrives as the event, as the seed sent it
    return {"statusCode": 200, "body": json.dumps({"job_id": "f" * 32})}


@pytest.mark.parametrize(
    ("handler", "code", "text"),
    [
        (_crash, 1, "the Lambda failed (table missing)"),
        (_http_refusal, 2, "the flock refused it (variable x is bad)"),
        (_invoke_refusal, 2, 'the flock refused it (variable "a" is bad)'),
        (_throttled, 1, "HTTP 503: AWS was throttled; try again"),
        (_accepted, 0, "f" * 32),
    ],
)
def test_lambda_answers_map_to_exit_codes(
    aws: InProcessEmulator, tmp_path: Path, handler: Any, code: int, text: str
) -> None:
    with serving({API: handler}) as server:
        env = _env(NO_FLOCK, server, tmp_path)
        result = run(["batch_via_api", "--json_payload", '{"a": "1"}'], env)
    assert result.code == code, result.err
    assert text in (result.out if code == 0 else result.err)
    assert "Traceback" not in result.err


def test_unknown_function_is_an_aws_error(aws: InProcessEmulator, tmp_path: Path) -> None:
    with serving({}) as server:
        env = _env(NO_FLOCK, server, tmp_path)
        result = run(["batch_via_api", "--json_payload", '{"a": "1"}'], env)
    assert result.code == 3 and "ResourceNotFoundException" in result.err

"""batch_via_api and batch --array: boto3 invokes the API Lambda through the local invoke server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas.api.handler import handler
from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.testing import FlockFixture, make_test_flock
from shepard.local.invoke_server import InvokeServer, serving
from tests.unit.cli.helpers import cli_env, run, write_flock_profile

pytestmark = pytest.mark.integration
API = "cliapi-api"


@pytest.fixture(scope="module")
def flock(emulator: InProcessEmulator) -> Iterator[FlockFixture]:
    """One flock for the module (making its Batch queue is the slow part); tests here never
    reset the emulator, and each reads only the records of its own jobs."""
    with pytest.MonkeyPatch.context() as patch:
        emulator.reset()
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        yield make_test_flock("cliapi")


def _env(settings: FlockSettings, server: InvokeServer, tmp_path: Path) -> dict[str, str]:
    env = cli_env(tmp_path / "config")
    write_flock_profile(
        env,
        settings,
        shepard_lambda_to_invoke=API,
        shepard_lambda_endpoint_url=server.url,
    )
    return env


@pytest.fixture
def api_env(flock: FlockFixture, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The flock's real API handler behind the invoke server."""
    with serving({API: handler}, env=flock.env) as server:
        yield _env(flock.settings, server, tmp_path)


def test_seed_hello_world_jobs_via_api(api_env: dict[str, str], flock: FlockFixture) -> None:
    table = boto3.resource("dynamodb").Table(flock.settings.table_name)
    for payload in (
        '{"an_example_variable_name":"an_example_variable_value"}',
        '{"test1":"test1","test2":"test2","test3":"test3","test4":"0"}',
    ):
        result = run(["batch_via_api", "--json_payload", payload], api_env)
        assert result.code == 0, result.err
        job_id = result.out.strip()
        assert re.fullmatch(r"[0-9a-f]{32}", job_id)
        record = table.get_item(Key={"UUID": job_id})["Item"]
        assert record["VARIABLES"] == json.loads(payload) and record["IS_INVOKED"] == "True"


def test_api_refusal_is_exit_2_and_no_job(api_env: dict[str, str], flock: FlockFixture) -> None:
    # Refused locally before any call: reserved name.
    result = run(["batch_via_api", "--json-payload", '{"ROOT_INPUT_NAME": "x"}'], api_env)
    assert result.code == 2 and "reserved" in result.err
    assert "ROOT_INPUT_NAME" not in json.dumps(
        boto3.client("dynamodb").scan(TableName=flock.settings.table_name)["Items"]
    )


def test_array_job_through_the_api(
    api_env: dict[str, str], flock: FlockFixture, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i in range(3):
        (inputs / f"job{i}.json").write_text(json.dumps({"INDEX_VALUE": str(i)}))
    result = run(["batch", "--array", str(inputs)], api_env)
    assert result.code == 0, result.err
    parent = result.out.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", parent)
    assert f"{parent}-0 .. {parent}-2" in result.err


# A JSON document nested far deeper than any decoder's recursion limit: every entry point
# refuses it with the job layer's reason and starts no job.
DEEP = "[" * 100_000 + "]" * 100_000
TOO_DEEP = "nested too deeply to read"


def _job_count(flock: FlockFixture) -> int:
    table = flock.settings.table_name
    return int(boto3.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"])


def test_deep_payload_is_refused_by_the_cli(api_env: dict[str, str], flock: FlockFixture) -> None:
    before = _job_count(flock)
    result = run(["batch_via_api", "--json_payload", DEEP], api_env)
    assert result.code == 2 and "Traceback" not in result.err
    assert f"while reading --json_payload: --json_payload is {TOO_DEEP}" in result.err
    assert _job_count(flock) == before


def test_deep_event_is_refused_by_the_local_lambda_endpoint(
    flock: FlockFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    before = _job_count(flock)
    with serving({API: handler}, env=flock.env) as server:
        client = boto3.client("lambda", endpoint_url=server.url)
        for invocation_type in ("RequestResponse", "Event"):
            with pytest.raises(ClientError) as refused:
                client.invoke(
                    FunctionName=API, Payload=DEEP.encode(), InvocationType=invocation_type
                )
            error = refused.value.response["Error"]
            assert error["Code"] == "InvalidRequestContentException"
            assert f"the request body is {TOO_DEEP}" in error["Message"]
        # the connection was answered, not dropped: the same server takes the next job
        answer = client.invoke(FunctionName=API, Payload=json.dumps({"DEEP_NEXT": "1"}).encode())
        assert "FunctionError" not in answer
        assert json.loads(answer["Payload"].read())["job_id"]
    assert _job_count(flock) == before + 1
    assert "Traceback" not in capfd.readouterr().err


def test_deep_body_is_refused_by_the_api_lambda(
    flock: FlockFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in flock.env.items():
        monkeypatch.setenv(key, value)
    before = _job_count(flock)
    url_event = {
        "rawPath": "/",
        "requestContext": {"http": {"method": "POST"}},
        "headers": {"content-type": "application/json"},
        "body": DEEP,
        "isBase64Encoded": False,
    }
    answer = handler(url_event, None)
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"] == f"the request body is {TOO_DEEP}"
    # an invoke whose event is the document as a JSON string
    answer = handler(DEEP, None)
    assert answer == {"error": f"the payload is {TOO_DEEP}", "statusCode": 400}
    assert _job_count(flock) == before

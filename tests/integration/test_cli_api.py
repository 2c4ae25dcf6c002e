"""batch_via_api and batch --array: boto3 invokes the API Lambda through the local invoke server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

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

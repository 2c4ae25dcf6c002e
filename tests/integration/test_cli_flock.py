"""The seed's commands against a flock applied for real (session fixture ``applied_flock``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from shepard_worker.aws import Aws as WorkerAws
from shepard_worker.fetch import rebuild_secrets

from lambdas.api.handler import handler
from shepard.local.invoke_server import serving
from shepard.profiles import ProfileStore
from tests.unit.cli.helpers import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def configured(
    applied_flock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """auto_configure from the applied flock; the returned env has NO endpoint of its own: the
    profile must carry it."""
    applied_flock.activate(monkeypatch)
    env = {**applied_flock.env, "SHEPARD_CONFIG_DIR": str(tmp_path / "config"), "NO_COLOR": "1"}
    result = run(["auto_configure", str(applied_flock.flock_file)], env)
    assert result.code == 0, result.err
    assert result.out.strip() == applied_flock.name
    return {k: v for k, v in env.items() if not k.startswith("AWS_ENDPOINT_URL")}


def test_auto_configure_writes_the_flocks_profile(
    applied_flock: Any, configured: dict[str, str]
) -> None:
    store = ProfileStore.from_env(configured)
    assert store.current() == applied_flock.name
    profile = store.load(applied_flock.name)
    outputs = applied_flock.outputs
    for field, value in outputs["cli_profile"].items():
        if value is not None:
            assert profile[field] == str(value), field
    assert profile["shepard_endpoint_url"] == applied_flock.endpoint_url
    assert profile["shepard_flock_file"] == str(applied_flock.flock_file.resolve())
    assert profile["shepard_s3_bucket_to_upload_to"] == outputs["inputs_bucket"]


def test_output_and_describe(applied_flock: Any, configured: dict[str, str]) -> None:
    result = run(["output", str(applied_flock.flock_file), "--json"], configured)
    assert result.code == 0, result.err
    assert json.loads(result.out)["table_name"] == applied_flock.outputs["table_name"]
    result = run(
        ["describe", "--cloudformation_stack_name", applied_flock.name, "--json"], configured
    )
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["outputs"]["job_queue_name"] == applied_flock.outputs["job_queue_name"]
    assert data["profile"]["shepard_dynamo_db_to_query"] == applied_flock.outputs["table_name"]
    table = run(["describe"], configured).out
    assert applied_flock.outputs["inputs_bucket"] in table


def test_seed_batch_query_secretify_with_the_profile(
    applied_flock: Any, configured: dict[str, str], tmp_path: Path
) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "inputs.json").write_text(
        '{"test1":"test1","test2":"test2","test3":"test3","test4":"0"}'
    )
    result = run(["batch", "--path_to_local_folder_to_batch", str(job)], configured)
    assert result.code == 0, result.err
    bucket = applied_flock.outputs["inputs_bucket"]
    boto3.client("s3").head_object(Bucket=bucket, Key=result.out.strip())
    assert run(["query", "--status", "finished"], configured).code == 0
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api.key").write_bytes(b"k3y")
    result = run(["secretify", "--path_to_local_secrets", str(secrets)], configured)
    assert result.code == 0, result.err
    rebuilt = tmp_path / "rebuilt"
    rebuild_secrets(WorkerAws(), applied_flock.outputs["secret_name"], rebuilt)
    assert (rebuilt / "api.key").read_bytes() == b"k3y"


def test_seed_batch_via_api_with_the_flocks_lambda_environment(
    applied_flock: Any, configured: dict[str, str]
) -> None:
    """moto's Lambda runs no handler, so the API handler is served locally with the flock's Lambda
    environment, and the profile points the Lambda client at it (as a local flock's does)."""
    outputs = applied_flock.outputs
    store = ProfileStore.from_env(configured)
    profile = store.load(applied_flock.name)
    with serving({outputs["api_function_name"]: handler}, env=outputs["lambda_environment"]) as srv:
        store.save(applied_flock.name, {**profile, "shepard_lambda_endpoint_url": srv.url})
        env = configured
        result = run(
            [
                "batch_via_api",
                "--json_payload",
                '{"an_example_variable_name":"an_example_variable_value"}',
            ],
            env,
        )
    assert result.code == 0, result.err
    job_id = result.out.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)
    listed = json.loads(run(["query", "--json"], configured).out)
    assert job_id in {r["UUID"] for r in listed}


def test_seed_destroy_by_stack_name_asks_first(
    applied_flock: Any, configured: dict[str, str]
) -> None:
    result = run(
        ["destroy", "--cloudformation_stack_name", applied_flock.name], configured, stdin="no\n"
    )
    assert result.code == 1 and "not confirmed" in result.err
    assert "Only 'yes' will be accepted" in result.err
    unknown = run(["destroy", "--cloudformation_stack_name", "nope"], configured)
    assert unknown.code == 2 and "no profile knows the flock file of 'nope'" in unknown.err

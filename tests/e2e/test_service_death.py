"""A local flock service killed behind the user's back: the next command says so and what to do."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path

import boto3
import pytest

from shepard.cli import main
from shepard.joblayer.testing import create_job_table
from shepard.local import ensure_running_with, status
from shepard.local.settings import LocalSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.integration
def test_killing_the_service_is_reported_by_the_next_command(tmp_path: Path) -> None:
    state = tmp_path / "state"
    settings = LocalSettings(
        "killed", "us-east-1", str(ROOT / "examples" / "testing-setup" / "code"), vcpus=1
    )
    flock = ensure_running_with(settings, state)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "SHEPARD_CONFIG_DIR": str(tmp_path / "profiles"),
        "SHEPARD_ENDPOINT_URL": flock.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=flock.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    create_job_table(dynamodb, "killed-jobs")
    query = ["query", "--dynamo_db_to_query", "killed-jobs", "--json"]
    try:
        out = io.StringIO()
        assert main(query, env, stdout=out, stderr=io.StringIO()) == 0
        assert json.loads(out.getvalue()) == []

        os.kill(flock.pid, signal.SIGKILL)
        while status(state).state != "dead":
            time.sleep(0.05)

        err = io.StringIO()
        started = time.monotonic()
        code = main(query, env, stdout=io.StringIO(), stderr=err)
        elapsed = time.monotonic() - started
        assert code == 3, err.getvalue()
        assert "cannot reach" in err.getvalue() and "shepard-tf local status" in err.getvalue()
        assert "Traceback" not in err.getvalue()
        assert elapsed < 15  # no hang

        out = io.StringIO()
        code = main(["local", "status", "--state_dir", str(state)], env, stdout=out)
        shown = out.getvalue()
        assert code == 1
        assert "dead" in shown
        assert f"pid {flock.pid}" in shown and "is no longer running" in shown
        assert "shepard-tf apply" in shown  # the way out

        out = io.StringIO()
        assert main(["local", "stop", "--state_dir", str(state)], env, stdout=out) == 0
        assert status(state).state == "stopped"
    finally:
        if status(state).state == "running":
            main(["local", "stop", "--state_dir", str(state)], env, stdout=io.StringIO())

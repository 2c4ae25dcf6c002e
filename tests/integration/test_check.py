"""``shepard-tf check`` against a local flock: healthy, every hop passes (the canary included);
each hop broken behind the flock's back, check exits 1 and names that hop with a fix.

One local flock for the module (an apply takes about 90 s against the emulator).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

import shepard.local
from shepard.cli import main

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "examples" / "testing-setup"
pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLOCK_YAML = """\
name: checked
region: us-east-1
target: local
batch:
  instance_types: [c5.large]
  desired_cpu: 1
  desired_ram: 1024
s3:
  force_destroy: true
local:
  code_dir: code
  max_parallel_jobs: 2
  runner: process
"""


@dataclass
class LocalFlock:
    flock_file: Path
    state_dir: Path
    env: dict[str, str]
    outputs: dict[str, Any]
    endpoint_url: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def check(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["check", str(self.flock_file), *args], self.env, stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    def check_json(self, *args: str) -> tuple[int, dict[str, Any]]:
        code, out, err = self.check(*args, "--json")
        assert out, err
        return code, json.loads(out)


@pytest.fixture(scope="module")
def local_flock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFlock]:
    base = tmp_path_factory.mktemp("check")
    shutil.copytree(SETUP / "code", base / "code")
    flock_file = base / "flock.yaml"
    flock_file.write_text(FLOCK_YAML)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["SHEPARD_STATE_DIR"] = str(base / "state")
    env["SHEPARD_CONFIG_DIR"] = str(base / "profiles")
    state_dir = base / "state" / "checked"
    err = io.StringIO()
    try:
        code = main(
            ["apply", str(flock_file), "--auto-approve"], env, stdout=io.StringIO(), stderr=err
        )
        assert code == 0, err.getvalue()[-3000:]
        outputs = json.loads((state_dir / "outputs.json").read_text())
        running = shepard.local.require_running(state_dir)
        yield LocalFlock(flock_file, state_dir, env, outputs, running.endpoint_url)
    finally:
        shepard.local.stop(state_dir)


def _hops(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {hop["name"]: hop for hop in report["hops"]}


def test_a_healthy_local_flock_passes_every_hop_and_its_canary(local_flock: LocalFlock) -> None:
    code, report = local_flock.check_json("--timeout", "90")
    assert code == 0, json.dumps(report, indent=2)
    assert report["ok"] is True and report["target"] == "local" and report["flock"] == "checked"
    hops = _hops(report)
    assert {
        "compute environments",
        "job queue",
        "bucket notification",
        "queue",
        "queue -> scheduler",
        "lambdas",
        "canary: API accepted the job",
        "canary: job succeeded",
        "canary: output zip",
    } <= set(hops)
    assert all(hop["status"] == "ok" for hop in report["hops"]), report
    assert "local dispatcher" in hops["queue -> scheduler"]["detail"]
    assert "succeeded" in hops["canary: job succeeded"]["detail"]
    assert all(hop["seconds"] >= 0 for hop in report["hops"])
    # The canary cleans up after itself: no script, no output zip left behind.
    s3 = local_flock.client("s3")
    for bucket in ("quick_deploy_bucket", "outputs_bucket"):
        listed = s3.list_objects_v2(Bucket=local_flock.outputs[bucket], Prefix="")
        keys = [o["Key"] for o in listed.get("Contents", [])]
        assert not [k for k in keys if "shepard-check" in k or "canary" in k], keys


def test_a_removed_bucket_notification_is_named_with_its_fix(local_flock: LocalFlock) -> None:
    s3 = local_flock.client("s3")
    bucket = local_flock.outputs["inputs_bucket"]
    saved = s3.get_bucket_notification_configuration(Bucket=bucket)
    saved.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        code, report = local_flock.check_json()
        assert code == 1
        assert report["ok"] is False and report["failed"] == ["bucket notification"]
        hop = _hops(report)["bucket notification"]
        assert bucket in hop["cause"] and "never becomes a job" in hop["cause"]
        assert f"shepard-tf apply {local_flock.flock_file}" in hop["fix"]
        assert _hops(report)["canary"]["status"] == "skipped"  # a broken hop: no canary

        code, text, err = local_flock.check("--no-canary")
        assert code == 1, err
        assert "FAIL bucket notification:" in text and "fix: Run `shepard-tf apply" in text
        assert "1 hop(s) failed: bucket notification" in text
        assert "Traceback" not in text + err
    finally:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=saved)
    code, report = local_flock.check_json("--no-canary")
    assert code == 0, report


def test_a_disabled_job_queue_is_named(local_flock: LocalFlock) -> None:
    batch = local_flock.client("batch")
    queue = local_flock.outputs["job_queue_name"]
    batch.update_job_queue(jobQueue=queue, state="DISABLED")
    try:
        code, report = local_flock.check_json("--no-canary")
        assert code == 1
        assert report["failed"] == ["job queue"]
        hop = _hops(report)["job queue"]
        assert "DISABLED" in hop["cause"] and "update-job-queue" in hop["fix"]
    finally:
        batch.update_job_queue(jobQueue=queue, state="ENABLED")


def test_an_enabled_event_source_mapping_on_the_local_flock_is_named(
    local_flock: LocalFlock,
) -> None:
    # On the local flock the service's dispatcher reads the queue; an enabled mapping would let
    # the emulator take the messages instead.
    lambda_ = local_flock.client("lambda")
    mappings = lambda_.list_event_source_mappings(
        EventSourceArn=local_flock.outputs["sqs_queue_arn"]
    )["EventSourceMappings"]
    assert mappings
    uuid = mappings[0]["UUID"]
    lambda_.update_event_source_mapping(UUID=uuid, Enabled=True)
    try:
        code, report = local_flock.check_json("--no-canary")
        assert code == 1
        assert report["failed"] == ["queue -> scheduler"]
        assert "enabled on the local flock" in _hops(report)["queue -> scheduler"]["cause"]
    finally:
        lambda_.update_event_source_mapping(UUID=uuid, Enabled=False)


def test_a_flock_that_was_never_applied_is_a_clear_error(tmp_path: Path) -> None:
    flock_file = tmp_path / "flock.yaml"
    flock_file.write_text(FLOCK_YAML.replace("name: checked", "name: never-applied"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["SHEPARD_STATE_DIR"] = str(tmp_path / "state")
    env["SHEPARD_CONFIG_DIR"] = str(tmp_path / "profiles")
    err = io.StringIO()
    code = main(["check", str(flock_file)], env, stdout=io.StringIO(), stderr=err)
    assert code == 2, err.getvalue()
    assert "has not been applied" in err.getvalue() and "shepard-tf apply" in err.getvalue()
    assert "Traceback" not in err.getvalue()

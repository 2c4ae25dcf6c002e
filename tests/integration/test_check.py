"""``shepard-tf check`` against a local flock: healthy, every hop passes (the canary included);
each hop broken behind the flock's back, check exits 1 and names that hop with a fix.

One local flock for the module, applied in the background (tests/support/background.py).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

import shepard.local
from shepard import check as checks
from shepard.cli import main
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import create_job_table
from tests.support import background

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "examples" / "testing-setup"
pytestmark = [pytest.mark.integration]

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


def _prepare_local_flock(folder: Path, env: dict[str, str]) -> tuple[list[str], list[str]]:
    shutil.copytree(SETUP / "code", folder / "code")
    flock_file = folder / "flock.yaml"
    flock_file.write_text(FLOCK_YAML)
    for key in [k for k in env if k.startswith("AWS_")]:
        del env[key]
    env["SHEPARD_STATE_DIR"] = str(folder / "state")
    env["SHEPARD_CONFIG_DIR"] = str(folder / "profiles")
    return background.cli_apply(flock_file), []  # destroyed by stopping its service


# One local flock for the module, applied with `shepard-tf apply` in the background from the
# end of collection (an apply takes about 90 s), while other tests run.
background.register("check_local_flock", "local_flock", _prepare_local_flock)


# Session-scoped: tests/integration/test_spot_local.py runs its jobs on the same local flock.
@pytest.fixture(scope="session")
def local_flock() -> Iterator[LocalFlock]:
    job = background.get("check_local_flock")
    state_dir = job.folder / "state" / "checked"
    try:
        try:
            job.applied()
        except background.RunFailed as error:
            pytest.fail(str(error), pytrace=False)
        outputs = json.loads((state_dir / "outputs.json").read_text())
        running = shepard.local.require_running(state_dir)
        yield LocalFlock(job.folder / "flock.yaml", state_dir, dict(job.env), outputs,
                         running.endpoint_url)  # fmt: skip
    finally:
        shepard.local.stop(state_dir)
        job.stop()


def _hops(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {hop["name"]: hop for hop in report["hops"]}


@pytest.mark.slow
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
        "zip canary: zip dropped",
        "zip canary: output zip",
    } <= set(hops)
    assert all(hop["status"] == "ok" for hop in report["hops"]), report
    print("\n".join(f"{h['name']}: {h['seconds']:.2f} s" for h in report["hops"]))
    assert "local dispatcher" in hops["queue -> scheduler"]["detail"]
    assert "succeeded" in hops["canary: job succeeded"]["detail"]
    assert "_result@" in hops["zip canary: output zip"]["detail"]
    assert all(hop["seconds"] >= 0 for hop in report["hops"])
    code, text, err = local_flock.check("--no-canary")
    assert code == 0, text + err
    print(text)
    assert "all 6 hops ok" in text and "bucket notification" in text and "FAIL" not in text
    # The canary cleans up after itself: no script, no output zip left behind.
    s3 = local_flock.client("s3")
    for bucket in ("quick_deploy_bucket", "outputs_bucket", "inputs_bucket", "errors_bucket"):
        listed = s3.list_objects_v2(Bucket=local_flock.outputs[bucket], Prefix="")
        keys = [o["Key"] for o in listed.get("Contents", [])]
        assert not [k for k in keys if "shepard-check" in k or "canary" in k], keys


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# --------------------------------------------------------------------------------------------
# The hops that the local flock cannot show (target aws), against the bare emulator.

AWS_TARGET = checks.Target(checks.AWS, flock_file="flock.yaml")


def _client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")


def _function(name: str) -> str:
    iam = _client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))
    archive = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return event\n")
    answer = _client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role["Role"]["Arn"],
        Handler="handler.handler",
        Code={"ZipFile": archive.getvalue()},
    )
    return str(answer["FunctionArn"])


def test_aws_target_wants_the_event_source_mapping_enabled(aws: Any) -> None:
    _function("sched")
    sqs = _client("sqs")
    url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    lambda_ = _client("lambda")
    hop = checks.check_queue_consumer(lambda_, arn, "sched", AWS_TARGET)
    assert hop.status == checks.FAIL and "no event source mapping" in hop.cause

    mapping = lambda_.create_event_source_mapping(
        EventSourceArn=arn, FunctionName="sched", Enabled=False
    )
    hop = checks.check_queue_consumer(lambda_, arn, "sched", AWS_TARGET)
    assert hop.status == checks.FAIL, hop
    assert "never reads the queue" in hop.cause
    assert f"update-event-source-mapping --uuid {mapping['UUID']} --enabled" in hop.fix

    lambda_.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
    hop = checks.check_queue_consumer(lambda_, arn, "sched", AWS_TARGET)
    assert hop.status == checks.OK, hop
    assert "Enabled" in hop.detail


def test_aws_target_reads_the_lambdas_errors_from_cloudwatch(aws: Any) -> None:
    _function("api")
    logs = _client("logs")
    hop = checks.check_lambdas(_client("lambda"), logs, ["api"], AWS_TARGET)
    assert hop.status == checks.OK, hop  # never invoked: no log group yet, no error

    logs.create_log_group(logGroupName="/aws/lambda/api")
    logs.create_log_stream(logGroupName="/aws/lambda/api", logStreamName="s")
    logs.put_log_events(
        logGroupName="/aws/lambda/api",
        logStreamName="s",
        logEvents=[
            {
                "timestamp": int(time.time() * 1000),
                "message": "[ERROR] AccessDeniedException: not authorized to dynamodb:PutItem",
            }
        ],
    )
    hop = checks.check_lambdas(_client("lambda"), logs, ["api"], AWS_TARGET)
    assert hop.status == checks.FAIL, hop
    assert "1 error(s) logged in the last hour" in hop.cause and "dynamodb:PutItem" in hop.cause
    assert "/aws/lambda/" in hop.fix

    hop = checks.check_lambdas(_client("lambda"), logs, ["missing"], AWS_TARGET)
    assert hop.status == checks.FAIL and "missing cannot be read" in hop.cause


def test_a_disabled_compute_environment_is_named(aws: Any) -> None:
    batch = _client("batch")
    iam = _client("iam")
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    env = batch.create_compute_environment(
        computeEnvironmentName="sheep", type="UNMANAGED", state="DISABLED", serviceRole=role
    )
    batch.create_job_queue(
        jobQueueName="q",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
    )
    hop = checks.check_compute_environments(batch, "q", AWS_TARGET)
    assert hop.status == checks.FAIL, hop
    assert "sheep is DISABLED" in hop.cause and "no sheep can start" in hop.cause
    assert "shepard-tf apply flock.yaml" in hop.fix
    assert checks.check_job_queue(batch, "q", AWS_TARGET).status == checks.OK

    hop = checks.check_job_queue(batch, "no-such-queue", AWS_TARGET)
    assert hop.status == checks.FAIL and "does not exist" in hop.cause


class _Api:
    """The API Lambda's answer, for canary tests where no handler runs (moto runs none)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.payloads: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.payloads.append(json.loads(kwargs["Payload"]))
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(self.answer).encode())}


def _canary_setup(record: JobRecord) -> tuple[checks.Clients, checks.CanaryPlan, _Api]:
    s3, dynamodb = _client("s3"), _client("dynamodb")
    for bucket in ("quick", "outputs", "errors"):
        s3.create_bucket(Bucket=bucket)
    create_job_table(dynamodb, "jobs")
    JobStore("jobs", dynamodb).create(record)
    api = _Api({"job_id": record.job_id, "UUID": record.job_id})
    clients = checks.Clients(
        batch=_client("batch"),
        s3=s3,
        sqs=None,
        lambda_=None,
        invoke=api,
        logs=None,
        dynamodb=dynamodb,
    )
    return clients, checks.CanaryPlan("api", "quick", "outputs", "errors", "jobs"), api


def _statuses(hops: list[checks.Hop]) -> dict[str, str]:
    return {hop.name: hop.status for hop in hops}


def test_a_canary_no_worker_picks_up_says_where_it_stopped(aws: Any) -> None:
    job_id = "a" * 32
    clients, plan, api = _canary_setup(JobRecord(job_id, batch_job_id="batch-1"))
    hops = checks.run_canary(clients, plan, AWS_TARGET, timeout=1.0)
    assert api.payloads and api.payloads[0]["TAG"].startswith("shepard-check-")
    assert api.payloads[0]["QUICK_DEPLOY_DIRECTORY"].startswith("shepard-check/")
    assert _statuses(hops) == {
        "canary: script uploaded": "ok",
        "canary: API accepted the job": "ok",
        "canary: job submitted to Batch": "ok",
        "canary: job started": "FAIL",
        "canary: job succeeded": "skipped",
        "canary: output zip": "skipped",
    }
    started = hops[3]
    assert f"the job {job_id} was not started by a worker within 1 s" in started.cause
    assert "Batch does not know job batch-1" in started.cause
    assert "--timeout 900" in started.fix and "RUNNABLE" in started.fix
    assert "Contents" not in clients.s3.list_objects_v2(Bucket="quick")  # script removed


def test_a_failed_canary_names_the_reason_and_the_error_zip(aws: Any) -> None:
    job_id = "b" * 32
    record = JobRecord(
        job_id,
        status=Status.FAILED_CLEANING_UP,
        phase=Phase.FINISHED,
        result=Result.FAILED,
        reason="the quick-deploy folder could not be fetched: AccessDenied",
        batch_job_id="batch-2",
        start_time="20261129T000000Z",
        error_zip="errors/b.zip",
    )
    clients, plan, _ = _canary_setup(record)
    clients.s3.put_object(Bucket="errors", Key="errors/b.zip", Body=b"zip")
    hops = checks.run_canary(clients, plan, AWS_TARGET, timeout=5.0)
    failed = [hop for hop in hops if hop.status == checks.FAIL]
    assert [hop.name for hop in failed] == ["canary: job succeeded"]
    assert "AccessDenied" in failed[0].cause and "s3://errors/errors/b.zip" in failed[0].fix
    assert "Contents" not in clients.s3.list_objects_v2(Bucket="errors")  # cleaned up


def test_a_canary_refused_by_the_api_fails_at_that_hop(aws: Any) -> None:
    clients, plan, _ = _canary_setup(JobRecord("c" * 32))
    clients = checks.Clients(
        **{**clients.__dict__, "invoke": _Api({"error": "no such variable", "statusCode": 400})}
    )
    hops = checks.run_canary(clients, plan, AWS_TARGET, timeout=1.0)
    assert _statuses(hops)["canary: API accepted the job"] == "FAIL"
    assert "refused the canary" in hops[1].cause


def _finished_api_job(job_id: str) -> JobRecord:
    return JobRecord(
        job_id,
        status=Status.DONE,
        phase=Phase.FINISHED,
        result=Result.SUCCEEDED,
        batch_job_id="batch-ok",
        start_time="20261129T000000Z",
        outputs=(f"shepard-check_result@{job_id}_20261129T000000Z_root.zip",),
    )


def _zip_canary_setup(job_id: str) -> tuple[checks.Clients, checks.CanaryPlan, str]:
    """The API canary passes (a finished record and its output zip); the zip canary runs
    against a real inputs bucket that notifies a real queue nobody reads."""
    record = _finished_api_job(job_id)
    clients, plan, _ = _canary_setup(record)
    s3, sqs = clients.s3, _client("sqs")
    s3.put_object(Bucket="outputs", Key=record.outputs[0], Body=b"zip")
    s3.create_bucket(Bucket="inputs")
    url = sqs.create_queue(QueueName="zips")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="zips-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket="inputs",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    sqs.purge_queue(QueueUrl=url)  # the s3:TestEvent of the configuration
    clients = checks.Clients(**{**clients.__dict__, "sqs": sqs})
    plan = checks.CanaryPlan(
        "api", "quick", "outputs", "errors", "jobs", "inputs", url, dead_letter_queue_url=dlq
    )
    return clients, plan, arn


def test_a_zip_nobody_schedules_says_its_event_waits_in_the_queue(aws: Any) -> None:
    clients, plan, _ = _zip_canary_setup("d" * 32)
    hops = checks.run_canary(clients, plan, AWS_TARGET, timeout=1.0, token="t0k3n")
    statuses = _statuses(hops)
    assert statuses["canary: output zip"] == "ok"
    assert statuses["zip canary: zip dropped"] == "ok"
    assert statuses["zip canary: output zip"] == "FAIL"
    failed = hops[-1]
    assert "s3://inputs/shepard-check/t0k3n.zip gave no output zip within 1 s" in failed.cause
    assert "wait in the queue: nothing reads them" in failed.cause
    assert "event source mapping" in failed.fix
    assert "Contents" not in clients.s3.list_objects_v2(Bucket="inputs")  # the zip removed


def test_a_zip_the_scheduler_rejected_gives_its_reason(aws: Any) -> None:
    clients, plan, _ = _zip_canary_setup("e" * 32)
    report = {"result": "rejected", "reason": "inputs.json is not a JSON object"}
    clients.s3.put_object(
        Bucket="errors", Key="rejected/shepard-check/t0k3n.zip.json", Body=json.dumps(report)
    )
    hops = checks.run_canary(clients, plan, AWS_TARGET, timeout=5.0, token="t0k3n")
    failed = [hop for hop in hops if hop.status == checks.FAIL]
    assert [hop.name for hop in failed] == ["zip canary: output zip"]
    assert "the scheduler rejected the zip: inputs.json is not a JSON object" in failed[0].cause


def test_a_notification_filtered_away_from_zips_is_named(aws: Any) -> None:
    s3, sqs = _client("s3"), _client("sqs")
    s3.create_bucket(Bucket="inputs")
    url = sqs.create_queue(QueueName="zips")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]

    def notify(rules: list[dict[str, str]]) -> checks.Hop:
        config: dict[str, Any] = {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}
        if rules:
            config["Filter"] = {"Key": {"FilterRules": rules}}
        s3.put_bucket_notification_configuration(
            Bucket="inputs", NotificationConfiguration={"QueueConfigurations": [config]}
        )
        return checks.check_bucket_notification(s3, "inputs", arn, AWS_TARGET)

    assert notify([]).status == checks.OK
    assert notify([{"Name": "suffix", "Value": ".zip"}]).status == checks.OK
    hop = notify([{"Name": "suffix", "Value": ".tar"}])
    assert hop.status == checks.FAIL and "only for keys matching" in hop.cause, hop
    hop = notify([{"Name": "prefix", "Value": "incoming/"}])
    assert hop.status == checks.FAIL and "'incoming/'" in hop.cause, hop

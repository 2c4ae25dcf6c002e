"""The worker against the emulator: real S3, DynamoDB and Secrets Manager, payloads as processes.

Each test writes a job record with the job layer's JobStore, runs ``shepard_worker`` as Batch
would (in process through ``main(env=...)``, or as a subprocess when it must be signalled) and
reads back the record, the buckets and the workspace.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from shepard_worker.run import main

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.ids import new_job_id
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import make_test_flock

ROOT = Path(__file__).resolve().parents[2]
PAYLOADS = ROOT / "tests" / "fixtures" / "payloads"
GOOD = {"test1": "test1", "test2": "test2", "test3": "test3", "test4": "0"}

pytestmark = pytest.mark.integration


@dataclass
class Flock:
    """One test's view of the module's flock: its own jobs, secret, work root and S3 prefix."""

    env: dict[str, str]
    store: JobStore
    s3: Any
    work_root: Path
    unique: str  # names this test's secret and quick-deploy folders
    jobs: list[str] = field(default_factory=list)

    def submit(self, variables: dict[str, str], job_id: str = "", **fields: Any) -> str:
        job_id = job_id or new_job_id()
        assert self.store.create(JobRecord(job_id=job_id, variables=variables, **fields))
        self.jobs.append(job_id)
        return job_id

    def keys(self, bucket: str) -> list[str]:
        """This test's objects in a bucket (the buckets are shared by the module's tests)."""
        paginator = self.s3.get_paginator("list_objects_v2")
        keys = [
            item["Key"]
            for page in paginator.paginate(Bucket=self.env[bucket])
            for item in page.get("Contents", [])
        ]
        return sorted(k for k in keys if any(job_id in k for job_id in self.jobs))

    def zip(self, bucket: str, key: str) -> zipfile.ZipFile:
        body = self.s3.get_object(Bucket=self.env[bucket], Key=key)["Body"].read()
        return zipfile.ZipFile(io.BytesIO(body))

    def run(self, job_id: str, **extra: str) -> int:
        code: int = main([], {**self.env, "SHEPARD_JOB_ID": job_id, **extra})
        return code

    def record(self, job_id: str) -> JobRecord:
        found = self.store.get(job_id)
        assert found is not None
        return found


@pytest.fixture(scope="module")
def resources(emulator: InProcessEmulator) -> Iterator[FlockSettings]:
    """The flock's buckets and table, made once for the module (moto is slow to make buckets
    on a busy machine); each test keeps to its own jobs, secret and quick-deploy folders."""
    with pytest.MonkeyPatch.context() as patch:
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        emulator.reset()
        yield make_test_flock("wk", batch=False).settings


@pytest.fixture
def flock(resources: FlockSettings, tmp_path: Path) -> Flock:
    s = resources
    unique = uuid.uuid4().hex[:8]
    secret = f"wk-secrets-{unique}"
    work_root = tmp_path / "root"
    work_root.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
        "AWS_EC2_METADATA_DISABLED": "true",
        "INPUTS_BUCKET": s.inputs_bucket,
        "OUTPUTS_BUCKET": s.outputs_bucket,
        "ERROR_BUCKET": s.errors_bucket,
        "USES_EFS": "False",
        "USES_LUSTRE": "False",
        "ULIMIT_FILENO": "4096",
        "SHEPARD_FLOCK": s.flock,
        "SHEPARD_TABLE_NAME": s.table_name,
        "SHEPARD_SECRET_NAME": secret,
        "SHEPARD_QUICK_DEPLOY_BUCKET": s.quick_deploy_bucket,
        "SHEPARD_ALLOW_DOCKER_DAEMON": "False",
        "SHEPARD_WORK_ROOT": str(work_root),
        "SHEPARD_RUNNER": "process",
        "SHEPARD_PAYLOAD_COMMAND": json.dumps([sys.executable, str(PAYLOADS / "testing_code.py")]),
        "SHEPARD_STOP_GRACE_SECONDS": "2",
    }
    store = JobStore(s.table_name, boto3.client("dynamodb"))
    return Flock(env, store, boto3.client("s3"), work_root, unique)


def _input_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _put_secrets(secret: str, files: dict[str, bytes]) -> None:
    """The secret as `secretify` writes it when it must split: half in a `-part-1` secret."""
    client = boto3.client("secretsmanager")
    encoded = {name: base64.b64encode(data).decode() for name, data in files.items()}
    names = sorted(encoded)
    half = len(names) // 2
    part = f"{secret}-part-1"
    client.create_secret(Name=part, SecretString=json.dumps({n: encoded[n] for n in names[half:]}))
    main_files = {n: encoded[n] for n in names[:half]}
    client.create_secret(
        Name=secret, SecretString=json.dumps({**main_files, "__shepard_parts__": [part]})
    )


def test_failing_payload_reports_failure_with_an_error_zip_and_no_result(flock: Flock) -> None:
    job_id = flock.submit({"an_example_variable_name": "an_example_variable_value"})

    assert flock.run(job_id) == 1

    record = flock.record(job_id)
    assert (record.result, record.exit_code, record.status) == (Result.FAILED, 1, Status.DONE)
    assert record.phase is Phase.FINISHED
    assert record.reason == "the payload exited with code 1"
    assert flock.keys("OUTPUTS_BUCKET") == []
    error_key = f"error@{job_id}_{record.start_time}.zip"
    assert record.error_zip == error_key
    assert flock.keys("ERROR_BUCKET") == [error_key]
    with flock.zip("ERROR_BUCKET", error_key) as zf:
        assert zf.read("reason.txt").decode() == "the payload exited with code 1\n"
        assert zf.read("output_root/partial.txt") == b"this job failed\n"
        log = zf.read("worker.log").decode()
    assert "missing variables ['test1', 'test2', 'test3', 'test4']" in log
    assert "shepard: JOB_STATUS calling_payload_code" in log
    assert "shepard: JOB_STATUS job failed; pushing logs to s3" in log
    assert list(flock.work_root.iterdir()) == []


def test_successful_job_zips_each_output_folder_with_the_seed_names(
    flock: Flock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    efs_root = tmp_path / "efs"
    efs_root.mkdir()
    flock.env.update({"USES_EFS": "True", "SHEPARD_EFS_ROOT": str(efs_root)})
    flock.s3.put_object(
        Bucket=flock.env["INPUTS_BUCKET"],
        Key="batch/job1.zip",
        Body=_input_zip({"inputs.json": json.dumps(GOOD).encode(), "data/in.txt": b"input!"}),
    )
    secrets = {"token.txt": b"s3cret\n", "key.bin": bytes(range(256)), "cert.pem": b"PEM"}
    _put_secrets(flock.env["SHEPARD_SECRET_NAME"], secrets)
    job_id = flock.submit({**GOOD, "user_var": "hello"}, input_zip_name="batch/job1.zip")

    assert flock.run(job_id) == 0

    statuses = [
        line.removeprefix("shepard: JOB_STATUS ")
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("shepard: JOB_STATUS ")
    ]
    assert statuses == [
        "calling_payload_code",
        "job_complete_pushing_to_s3",
        "job_complete_cleaning_up_workspace",
    ]
    record = flock.record(job_id)
    assert (record.result, record.exit_code, record.status) == (Result.SUCCEEDED, 0, Status.DONE)
    expected = [f"result@{job_id}_{record.start_time}_{loc}.zip" for loc in ("efs", "root")]
    assert flock.keys("OUTPUTS_BUCKET") == expected
    assert sorted(record.outputs) == expected
    assert flock.keys("ERROR_BUCKET") == []
    with flock.zip("OUTPUTS_BUCKET", expected[1]) as zf:
        names = set(zf.namelist())
        assert {"outputFile", "environment.json", "inputs/job1.zip", "inputs/inputs.json"} <= names
        assert zf.read("inputs/data/in.txt") == b"input!"
        for name, data in secrets.items():
            assert zf.read(f"inputs/secrets/{name}") == data
        report = json.loads(zf.read("environment.json"))
    with flock.zip("OUTPUTS_BUCKET", expected[0]) as zf:
        assert zf.read("outputFile") == b"\0" * 512
    env = report["environment"]
    work = flock.work_root / job_id
    assert env["UUID"] == job_id
    assert env["START_TIME"] == record.start_time
    assert env["JOB_STATUS"] == "calling_payload_code"
    assert env["ROOT_INPUT_NAME"] == str(work / "input")
    assert env["ROOT_OUTPUT_NAME"] == str(work / "output")
    assert env["EFS_INPUT_NAME"] == str(efs_root / job_id / "input")
    assert env["EFS_OUTPUT_NAME"] == str(efs_root / job_id / "output")
    assert env["EFS_READ_ONLY_PATH"] == str(efs_root)
    assert "LUSTRE_OUTPUT_NAME" not in env and "LUSTRE_READ_ONLY_PATH" not in env
    assert (env["USES_EFS"], env["USES_LUSTRE"], env["IS_INVOKED"]) == ("True", "False", "False")
    assert env["INPUT_ZIP_NAME"] == "batch/job1.zip"
    assert env["INPUTS_BUCKET"] == flock.env["INPUTS_BUCKET"]
    assert env["ERROR_BUCKET"] == flock.env["ERROR_BUCKET"]
    assert env["ULIMIT_FILENO"] == "4096"
    assert env["user_var"] == "hello" and env["test4"] == "0"
    assert "AWS_SECRET_ACCESS_KEY" not in env and "SHEPARD_TABLE_NAME" not in env
    assert report["secret_modes"] == {name: "0o600" for name in secrets}
    assert report["nofile"][0] == 4096
    assert report["efs_inputs"] == ["data", "inputs.json", "job1.zip"]
    # The EFS input folder got the input zip too, and every folder is gone afterwards.
    assert list(flock.work_root.iterdir()) == [] and list(efs_root.iterdir()) == []


def test_tag_prefixes_the_result_name_of_an_array_child(flock: Flock) -> None:
    parent = new_job_id()
    job_id = flock.submit(
        {**GOOD, "tag": "test_file", "RANDOM_BYTES": str(17 * 1024 * 1024)},
        job_id=f"{parent}-3",
        tag="test_file",
        is_invoked=True,
        array_parent=parent,
        array_index=3,
    )

    assert flock.run(parent, AWS_BATCH_JOB_ARRAY_INDEX="3") == 0

    record = flock.record(job_id)
    key = f"test_file_result@{job_id}_{record.start_time}_root.zip"
    assert flock.keys("OUTPUTS_BUCKET") == [key]
    # Past the 16 MiB threshold the zip goes up in parts: a multipart ETag ends in -<parts>.
    head = flock.s3.head_object(Bucket=flock.env["OUTPUTS_BUCKET"], Key=key)
    assert head["ETag"].strip('"').endswith("-2") and head["ContentLength"] > 17 * 1024 * 1024
    with flock.zip("OUTPUTS_BUCKET", key) as zf:
        env = json.loads(zf.read("environment.json"))["environment"]
        assert "inputs/secrets/" in zf.namelist()  # no secrets deployed: an empty folder
    assert env["IS_INVOKED"] == "True" and env["INPUT_ZIP_NAME"] == ""


def test_quick_deploy_runs_run_sh_from_the_quick_deploy_bucket(flock: Flock) -> None:
    bucket = flock.env["SHEPARD_QUICK_DEPLOY_BUCKET"]
    code = f"my_code_{flock.unique}"
    put = functools.partial(flock.s3.put_object, Bucket=bucket)
    put(Key=f"{code}/", Body=b"")  # a folder marker made by the S3 console
    put(Key=f"{code}/run.sh", Body=(PAYLOADS / "run.sh").read_bytes())
    put(Key=f"{code}/data/message.txt", Body=b"from quick deploy")
    put(Key=f"{code}_other/run.sh", Body=b"exit 3")  # same prefix, another folder
    job_id = flock.submit({"Quick_Deploy_Directory": code})

    assert flock.run(job_id) == 0

    record = flock.record(job_id)
    key = f"result@{job_id}_{record.start_time}_root.zip"
    assert record.result is Result.SUCCEEDED
    with flock.zip("OUTPUTS_BUCKET", key) as zf:
        assert zf.read("message.txt") == b"from quick deploy"
        cwd = zf.read("cwd.txt").decode().strip()
    assert cwd == str(flock.work_root / job_id / "input" / code)


def test_quick_deploy_object_leaving_its_folder_fails_the_job(flock: Flock) -> None:
    bucket = flock.env["SHEPARD_QUICK_DEPLOY_BUCKET"]
    code = f"my_code_{flock.unique}"
    flock.s3.put_object(Bucket=bucket, Key=f"{code}/run.sh", Body=b"echo hi")
    flock.s3.put_object(Bucket=bucket, Key=f"{code}/../../escape.sh", Body=b"echo bad")
    job_id = flock.submit({"QUICK_DEPLOY_DIRECTORY": code})

    assert flock.run(job_id) == 1

    record = flock.record(job_id)
    assert record.result is Result.FAILED and record.exit_code is None
    assert record.reason is not None and f'"{code}/../../escape.sh"' in record.reason
    assert "leaves its folder" in record.reason
    assert flock.keys("OUTPUTS_BUCKET") == []
    assert flock.keys("ERROR_BUCKET") == [f"error@{job_id}_{record.start_time}.zip"]
    assert not (flock.work_root.parent / "escape.sh").exists()


def test_a_zip_drop_costs_the_worker_eight_requests_with_every_status_in_order(
    flock: Flock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Batch runs it (AWS_BATCH_JOB_ATTEMPT set) with the zip's size in its record: the claim
    opens the attempt, <done> carries the attempt's end and the usage, the zip is one GetObject,
    the checkpoint of a first run is not listed (bench/bench_requests_per_job.py)."""
    data = _input_zip({"inputs.json": json.dumps(GOOD).encode()})
    flock.s3.put_object(Bucket=flock.env["INPUTS_BUCKET"], Key="drop/one.zip", Body=data)
    job_id = flock.submit(GOOD, input_zip_name="drop/one.zip", input_zip_size=len(data))
    sent: Counter[str] = Counter()
    statuses: list[str] = []

    def note(event_name: str, params: dict[str, Any], **_: Any) -> None:
        sent[event_name.rsplit(".", 1)[-1]] += 1
        if event_name.endswith("dynamodb.UpdateItem"):
            names = params.get("ExpressionAttributeNames", {})
            for alias in (a for a, name in names.items() if name == "JOB_STATUS"):
                value = params["UpdateExpression"].split(f"{alias} = ", 1)[1].split(",")[0]
                statuses.append(params["ExpressionAttributeValues"][value.split()[0]]["S"])

    original = botocore.session.Session.create_client

    def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(session, *args, **kwargs)
        client.meta.events.register("before-parameter-build", note)
        return client

    monkeypatch.setattr(botocore.session.Session, "create_client", create_client)
    assert flock.run(job_id, AWS_BATCH_JOB_ATTEMPT="1") == 0

    assert statuses == [
        "in_progress",
        "calling_payload_code",
        "job_complete_pushing_to_s3",
        "job_complete_cleaning_up_workspace",
        "<done>",
    ]
    assert sent == Counter(UpdateItem=5, GetObject=1, GetSecretValue=1, PutObject=1)
    record = flock.record(job_id)
    assert record.result is Result.SUCCEEDED and record.status is Status.DONE
    [attempt] = record.attempts
    assert attempt["number"] == 1 and attempt["exit_code"] == 0
    assert {"started", "ended"} <= set(attempt)
    assert record.usage["seconds"] >= 0 and record.usage["lifecycle"] == "local"


def test_a_claimed_job_does_not_run_twice(flock: Flock) -> None:
    job_id = flock.submit(GOOD)
    claimed = flock.store.claim(job_id)
    assert claimed is not None

    assert flock.run(job_id) == 0

    record = flock.record(job_id)
    assert (record.phase, record.status, record.attempt) == (
        Phase.RUNNING,
        Status.IN_PROGRESS,
        1,
    )
    assert flock.keys("OUTPUTS_BUCKET") == [] and flock.keys("ERROR_BUCKET") == []


def test_sigterm_interrupts_the_job_and_a_retry_runs_it(flock: Flock) -> None:
    job_id = flock.submit({**GOOD, "SLEEP_SECONDS": "60"})
    env = {**flock.env, "SHEPARD_JOB_ID": job_id}
    worker = subprocess.Popen(
        [sys.executable, "-m", "shepard_worker"],
        env={**env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "worker")])},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert worker.stdout is not None
    lines = []
    for line in worker.stdout:
        lines.append(line)
        if "testing_code: sleeping" in line:
            break
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    try:
        rest, _ = worker.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        rest, _ = worker.communicate()
        pytest.fail("the worker did not end on SIGTERM:\n" + "".join(lines) + rest)
    elapsed = time.monotonic() - started

    assert worker.returncode == 128 + signal.SIGTERM, "".join(lines) + rest
    assert elapsed < 5  # the payload ended on SIGTERM, not after its 60 s sleep
    record = flock.record(job_id)
    # No Spot notice and no retry strategy in its environment: Batch will not run it again,
    # so it ends; a retry that does come may still claim it.
    assert (record.phase, record.result) == (Phase.FINISHED, Result.INTERRUPTED)
    assert record.reason is not None and "SIGTERM" in record.reason
    assert flock.keys("OUTPUTS_BUCKET") == [] and flock.keys("ERROR_BUCKET") == []
    assert list(flock.work_root.iterdir()) == []

    # Batch's retry: the next attempt can claim it, and this time it runs to the end.
    flock.store.client.update_item(
        TableName=flock.store.table_name,
        Key={"UUID": {"S": job_id}},
        UpdateExpression="SET VARIABLES.SLEEP_SECONDS = :zero",
        ExpressionAttributeValues={":zero": {"S": "0"}},
    )
    assert flock.run(job_id) == 0
    record = flock.record(job_id)
    assert (record.result, record.attempt, record.reason) == (Result.SUCCEEDED, 2, None)


class _Imds(BaseHTTPRequestHandler):
    instance_id = ""

    def do_PUT(self) -> None:
        self._answer("token-1" if self.path == "/latest/api/token" else None)

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "token-1":
            self._answer(None, 401)
        elif self.path == "/latest/meta-data/instance-id":
            self._answer(self.instance_id)
        elif self.path == "/latest/meta-data/local-hostname":
            self._answer("ip-10-0-1-5.ec2.internal")
        else:
            self._answer(None)

    def _answer(self, body: str | None, code: int = 404) -> None:
        self.send_response(200 if body is not None else code)
        self.end_headers()
        if body is not None:
            self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def imds() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_hostname_comes_from_imds_and_the_instance_is_not_tagged(flock: Flock, imds: str) -> None:
    ec2 = boto3.client("ec2")
    # moto takes any AMI id (listing its 1,300 AMIs to pick one takes seconds).
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]
    _Imds.instance_id = instance["InstanceId"]
    job_id = flock.submit(GOOD)

    code = flock.run(
        job_id,
        AWS_EC2_METADATA_DISABLED="false",
        AWS_EC2_METADATA_SERVICE_ENDPOINT=imds,
        # A job definition of an older flock still gives it: the worker no longer reads it.
        INSTANCE_TAGS=json.dumps({"project": "genomics"}),
    )

    assert code == 0
    # The launch template tags the sheep; the job role has no ec2:CreateTags.
    answer = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [_Imds.instance_id]}])
    assert answer["Tags"] == []
    record = flock.record(job_id)
    key = f"result@{job_id}_{record.start_time}_root.zip"
    with flock.zip("OUTPUTS_BUCKET", key) as zf:
        env = json.loads(zf.read("environment.json"))["environment"]
    assert env["HOSTNAME"] == "ip-10-0-1-5.ec2.internal"


def test_no_docker_engine_fails_the_job_with_the_reason(flock: Flock, tmp_path: Path) -> None:
    job_id = flock.submit(GOOD)

    code = flock.run(
        job_id,
        SHEPARD_RUNNER="docker",
        SHEPARD_PAYLOAD_IMAGE="123456789012.dkr.ecr.us-east-1.amazonaws.com/wk:payload-latest",
        DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock",
    )

    assert code == 1
    record = flock.record(job_id)
    assert record.result is Result.FAILED and record.status is Status.DONE
    assert record.reason is not None
    assert record.reason.startswith("while connecting to the Docker engine: ")
    assert record.error_zip == f"error@{job_id}_{record.start_time}.zip"


def test_ecr_digest_and_login_against_the_emulator(flock: Flock) -> None:
    from shepard_worker.aws import Aws
    from shepard_worker.runners import EcrImage

    ecr = boto3.client("ecr")
    repository = f"wk-{flock.unique}"
    ecr.create_repository(repositoryName=repository)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": "sha256:" + "1" * 64, "size": 1, "mediaType": "x"},
            "layers": [],
        }
    )
    pushed = ecr.put_image(
        repositoryName=repository, imageManifest=manifest, imageTag="payload-latest"
    )
    client = Aws()

    digest = client.ecr_digest(EcrImage("123456789012", repository, "payload-latest"))
    missing = client.ecr_digest(EcrImage("123456789012", repository, "no-such-tag"))
    username, password, endpoint = client.ecr_login("123456789012")

    assert digest == pushed["image"]["imageId"]["imageDigest"]
    assert missing is None
    assert username == "AWS" and password and endpoint.startswith("https://")


def test_results_that_cannot_be_pushed_fail_the_job(flock: Flock) -> None:
    flock.env["OUTPUTS_BUCKET"] = "wk-no-such-bucket"
    job_id = flock.submit(GOOD)

    assert flock.run(job_id) == 1

    record = flock.record(job_id)
    assert (record.result, record.exit_code) == (Result.FAILED, 0)
    assert record.reason is not None
    assert record.reason.startswith("the results could not be pushed: while uploading ")
    assert "NoSuchBucket" in record.reason
    with flock.zip("ERROR_BUCKET", f"error@{job_id}_{record.start_time}.zip") as zf:
        assert zf.read("output_root/outputFile") == b"\0" * 1024  # the outputs are kept

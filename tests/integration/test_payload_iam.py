"""A payload's own AWS calls, recorded and checked against the applied flock's job role.

The worker runs in process against the applied flock (``applied_flock``: its emulator, table,
buckets and secret), with the process runner, as Batch would run it on a sheep: its environment
is the job definition's, with the job role's credentials at a container credentials endpoint
(here a loopback server standing in for the ECS agent's). The payload is a Python script that
uses boto3 with those credentials: it reads its own input object, reads the flock's secret and
writes an object under its job's prefix in the outputs bucket.

Its job's variables put ``tests/support/iam_site`` on its PYTHONPATH with the session's record
folder and ``SHEPARD_IAM_PART=payload``: its calls land in the folder, and the session's IAM
check evaluates them against the job role's policies as the flock applied them (a call the job
role would refuse fails the session). The test asserts that the records exist, so the wiring
cannot silently stop recording.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from shepard_worker.run import main

from shepard.emulator import emulator_environment
from shepard.joblayer import contract as c
from shepard.joblayer.ids import new_job_id
from shepard.joblayer.records import Result
from shepard.joblayer.store import JobRecord, JobStore
from tests.integration.conftest import AppliedFlock
from tests.support import background, iam_check, iam_record
from tests.support.iam_record import RECORD_DIR_ENV, Call

pytestmark = pytest.mark.integration

JOB_ROLE_KEY = "ASIAJOBROLEEXAMPLE01"

PAYLOAD = '''\
"""Read the job's input object and the flock's secret, write a report under the job's prefix."""

import hashlib
import json
import os
from pathlib import Path

import boto3

job_id = os.environ["UUID"]
s3 = boto3.client("s3")
body = s3.get_object(Bucket=os.environ["INPUTS_BUCKET"], Key=os.environ["INPUT_ZIP_NAME"])
data = body["Body"].read()
secret = boto3.client("secretsmanager").get_secret_value(SecretId=os.environ["FLOCK_SECRET"])
report = {
    "input_sha256": hashlib.sha256(data).hexdigest(),
    "secret_is_an_object": isinstance(json.loads(secret["SecretString"]), dict),
    "access_key": boto3.Session().get_credentials().get_frozen_credentials().access_key,
}
s3.put_object(
    Bucket=os.environ["OUTPUTS_BUCKET"],
    Key=f"{job_id}/payload-report.json",
    Body=json.dumps(report).encode(),
)
Path(os.environ["ROOT_OUTPUT_NAME"], "done.txt").write_text("done\\n")
'''


@dataclass
class _Credentials:
    """What the ECS agent's credentials endpoint serves: the job role's temporary keys."""

    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def job_role_credentials() -> Iterator[_Credentials]:
    served = _Credentials("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append(self.path)
            expiration = datetime.now(UTC) + timedelta(hours=1)
            body = json.dumps(
                {
                    "AccessKeyId": JOB_ROLE_KEY,
                    "SecretAccessKey": "job-role-secret",
                    "Token": "job-role-token",
                    "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}/v2/credentials/job-role"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def _input_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("inputs.json", json.dumps({"n": 3}))
    return buffer.getvalue()


def _payload_records(folder: Path, job_id: str) -> list[Call]:
    """The calls charged to ``payload`` by the process that ran this job's payload (its own
    file in the record folder, the one whose calls name the job), in the order they were made."""
    for path in sorted(folder.glob("*.jsonl")):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        calls = [Call(**line["call"]) for line in lines if "call" in line]
        payload = [call for call in calls if call.part == "payload"]
        if any(job_id in json.dumps(call.params) for call in payload):
            return payload
    return []


def test_a_payload_calls_aws_as_the_job_role_and_its_calls_are_checked(
    applied_flock: AppliedFlock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    job_role_credentials: _Credentials,
) -> None:
    applied_flock.activate(monkeypatch)
    outputs = applied_flock.outputs
    folder = Path(background.recording_environment()[RECORD_DIR_ENV])
    job_id = new_job_id()
    # Not a ".zip" name: the inputs bucket's notification would queue it for a scheduler that
    # does not run here. The worker reads any name as a zip.
    input_key = f"payload-iam/{job_id}.input"
    data = _input_zip()
    s3 = boto3.client("s3")
    s3.put_object(Bucket=outputs["inputs_bucket"], Key=input_key, Body=data)
    script = tmp_path / "payload.py"
    script.write_text(PAYLOAD)
    work_root = tmp_path / "root"
    work_root.mkdir()
    # The user's variables: the emulator's endpoint (on AWS the SDK finds it alone), the secret's
    # name, and what makes the payload's Python record its calls for the session's check.
    variables = {
        "AWS_ENDPOINT_URL": applied_flock.endpoint_url,
        "FLOCK_SECRET": outputs["secret_name"],
        **iam_record.subprocess_environment(folder, "payload"),
    }
    store = JobStore(outputs["table_name"], boto3.client("dynamodb"))
    assert store.create(JobRecord(job_id=job_id, variables=variables, input_zip_name=input_key))
    # The job definition's environment, and what the ECS agent adds on a sheep.
    env = {
        "PATH": os.environ["PATH"],
        **emulator_environment(applied_flock.endpoint_url, applied_flock.region),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": job_role_credentials.url,
        c.INPUTS_BUCKET: outputs["inputs_bucket"],
        c.OUTPUTS_BUCKET: outputs["outputs_bucket"],
        c.ERROR_BUCKET: outputs["errors_bucket"],
        c.USES_EFS: "False",
        c.USES_LUSTRE: "False",
        c.ULIMIT_FILENO: "4096",
        c.FLOCK: outputs["flock_name"],
        c.TABLE_NAME: outputs["table_name"],
        c.SECRET_NAME: outputs["secret_name"],
        c.QUICK_DEPLOY_BUCKET: outputs["quick_deploy_bucket"],
        c.ALLOW_DOCKER_DAEMON: "False",
        c.WORK_ROOT: str(work_root),
        c.RUNNER: "process",
        c.PAYLOAD_COMMAND: json.dumps([sys.executable, str(script)]),
        c.JOB_ID: job_id,
    }

    code = main([], env)

    record = store.get(job_id)
    assert record is not None
    assert (code, record.result, record.reason) == (0, Result.SUCCEEDED, None)
    report_key = f"{job_id}/payload-report.json"
    body = s3.get_object(Bucket=outputs["outputs_bucket"], Key=report_key)["Body"].read()
    assert json.loads(body) == {
        "input_sha256": hashlib.sha256(data).hexdigest(),
        "secret_is_an_object": True,
        "access_key": JOB_ROLE_KEY,  # the job role's, from the endpoint the worker passed on
    }
    assert job_role_credentials.requests  # the payload asked the endpoint for its keys

    calls = _payload_records(folder, job_id)
    assert [(call.service, call.operation, call.params, call.status) for call in calls] == [
        ("s3", "GetObject", {"Bucket": outputs["inputs_bucket"], "Key": input_key}, 200),
        ("secretsmanager", "GetSecretValue", {"SecretId": outputs["secret_name"]}, 200),
        ("s3", "PutObject", {"Bucket": outputs["outputs_bucket"], "Key": report_key}, 200),
    ]

    # What the session's check does with them: the job role of the applied flock allows each
    # call (and the KMS use S3 and Secrets Manager make for it) ...
    applied = iam_check.APPLIED
    assert applied is not None
    job_role = applied.roles["job"]
    report = iam_check.check(calls, iam_record.RECORDER.all_names(), applied)
    assert report.ok, report.lines()
    assert report.evaluated >= len(calls)  # and the KMS use on the flock's key
    assert "s3:getobject" not in [a.lower() for a in report.unused[job_role.name]]

    # ... and refuses what a payload must not do, naming the part, the action and the resource.
    region = applied_flock.region
    forbidden = [
        Call("payload", "s3", "DeleteBucket", region, {"Bucket": outputs["inputs_bucket"]}, 200),
        Call(
            "payload", "dynamodb", "DeleteTable", region, {"TableName": outputs["table_name"]}, 200
        ),
    ]
    denied = iam_check.check(forbidden, {}, applied)
    table_arn = f"arn:aws:dynamodb:{region}:{outputs['account_id']}:table/{outputs['table_name']}"
    assert [str(d).split(": ", 2)[:2] for d in denied.denials] == [
        [
            "payload",
            f"s3:DeleteBucket on arn:aws:s3:::{outputs['inputs_bucket']} (s3.DeleteBucket)",
        ],
        ["payload", f"dynamodb:DeleteTable on {table_arn} (dynamodb.DeleteTable)"],
    ]
    assert all(f"role {job_role.name}" in d.reason for d in denied.denials)

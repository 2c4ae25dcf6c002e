"""A process recording its own calls (tests/support/iam_site); a payload charged to the job role."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import boto3
import pytest

from shepard.emulator import InProcessEmulator, emulator_environment
from tests.support import iam_record
from tests.support.iam_check import FlockPolicies, Role, check
from tests.support.iam_record import RECORD_DIR_ENV, Call

ACCOUNT = "123456789012"
REGION = "us-east-1"
JOB_ROLE = f"arn:aws:iam::{ACCOUNT}:role/f-job"

# What a payload does with the job role: read its input, write its output, read the secret.
_PAYLOAD = textwrap.dedent(
    """
    import sys

    import boto3

    bucket = sys.argv[1]
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="job-1/out.txt", Body=b"done")
    print(s3.get_object(Bucket=bucket, Key="job-1/out.txt")["Body"].read().decode())
    try:
        s3.get_object(Bucket=bucket, Key="no/such/key")
    except s3.exceptions.NoSuchKey:
        print("refused")
    """
)


def _lines(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def _run(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_payload_process_records_every_call_charged_to_its_part(
    aws: InProcessEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = "payload-recording"
    boto3.client("s3").create_bucket(Bucket=bucket)
    script = tmp_path / "payload.py"
    script.write_text(_PAYLOAD)
    folder = tmp_path / "records"
    folder.mkdir()
    # The payload's environment as the worker builds it: no PYTHONPATH to the repository.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", iam_record.PART_ENV)}
    env |= emulator_environment(aws.endpoint_url, REGION)
    env |= iam_record.subprocess_environment(folder, "payload")
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(iam_record.SITE_DIR)

    done = _run(script, env, bucket)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["done", "refused"]
    assert "iam_site" not in done.stderr  # the recorder was installed without a complaint
    files = list(folder.glob("*.jsonl"))
    assert len(files) == 1 and files[0].stem.isdigit() and int(files[0].stem) != os.getpid()
    calls = [Call(**line["call"]) for line in _lines(folder)]
    assert [(c.part, c.service, c.operation, c.params, c.status) for c in calls] == [
        ("payload", "s3", "PutObject", {"Bucket": bucket, "Key": "job-1/out.txt"}, 200),
        ("payload", "s3", "GetObject", {"Bucket": bucket, "Key": "job-1/out.txt"}, 200),
        ("payload", "s3", "GetObject", {"Bucket": bucket, "Key": "no/such/key"}, 404),
    ]
    assert [c.error for c in calls][2] == "NoSuchKey" and not calls[2].accepted

    # The session's check reads them with this process's own records.
    monkeypatch.setenv(RECORD_DIR_ENV, str(folder))
    merged = iam_record.RECORDER.all_calls()
    assert [c for c in merged if c.part == "payload"][-3:] == calls


def test_without_a_record_folder_a_process_records_nothing(
    aws: InProcessEmulator, tmp_path: Path
) -> None:
    bucket = "payload-unrecorded"
    boto3.client("s3").create_bucket(Bucket=bucket)
    script = tmp_path / "payload.py"
    script.write_text(_PAYLOAD)
    env = {k: v for k, v in os.environ.items() if k not in (RECORD_DIR_ENV, iam_record.PART_ENV)}
    env |= emulator_environment(aws.endpoint_url, REGION)
    env["PYTHONPATH"] = str(iam_record.SITE_DIR)

    done = _run(script, env, bucket)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["done", "refused"] and done.stderr == ""
    assert list(tmp_path.glob("**/*.jsonl")) == []


def _job_role_flock() -> FlockPolicies:
    """A flock whose job role grants what terraform/modules/iam's job policy grants on the
    buckets, the table and the secret."""
    secret_arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:f-secrets-Q1w2E3"
    outputs = {
        "flock_name": "f",
        "region": REGION,
        "account_id": ACCOUNT,
        "table_name": "f-jobs",
        "inputs_bucket": "f-inputs-1",
        "outputs_bucket": "f-outputs-1",
        "errors_bucket": "f-errors-1",
        "quick_deploy_bucket": "f-quick-deploy-1",
        "secret_name": "f-secrets",
        "secret_arn": secret_arn,
    }
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::f-inputs-1/*"},
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::f-outputs-1/*"},
            {
                "Effect": "Allow",
                "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/f-jobs",
            },
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret_arn},
        ],
    }
    roles = {"job": Role("f-job", JOB_ROLE, (policy,))}
    return FlockPolicies(outputs, roles, {}, {}, "", None)


def test_a_payload_call_the_job_role_does_not_allow_is_a_denial_naming_part_action_resource() -> (
    None
):
    def call(service: str, operation: str, **params: str) -> Call:
        return Call("payload", service, operation, REGION, dict(params), status=200)

    allowed = [
        call("s3", "GetObject", Bucket="f-inputs-1", Key="batch/job.zip"),
        call("s3", "PutObject", Bucket="f-outputs-1", Key="job-1/out.txt"),
        call("secretsmanager", "GetSecretValue", SecretId="f-secrets"),
    ]
    denied = [
        call("s3", "DeleteBucket", Bucket="f-inputs-1"),
        call("dynamodb", "DeleteTable", TableName="f-jobs"),
        call("s3", "PutObject", Bucket="f-inputs-1", Key="job-1/out.txt"),
    ]

    assert check(allowed, {}, _job_role_flock()).ok
    report = check([*allowed, *denied], {}, _job_role_flock())

    assert [str(d) for d in report.denials] == [
        "payload: s3:DeleteBucket on arn:aws:s3:::f-inputs-1 (s3.DeleteBucket): "
        "not allowed by any statement in role f-job",
        f"payload: dynamodb:DeleteTable on arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/f-jobs "
        "(dynamodb.DeleteTable): not allowed by any statement in role f-job",
        "payload: s3:PutObject on arn:aws:s3:::f-inputs-1/job-1/out.txt (s3.PutObject): "
        "not allowed by any statement in role f-job",
    ]
    assert not report.ok
    assert report.unused["f-job"] == ["dynamodb:GetItem", "dynamodb:UpdateItem"]

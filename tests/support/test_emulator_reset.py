"""The session emulator's reset (tests/conftest.py ``lighter_moto_reset``): everything goes, the
next test finds working, empty services, and the reset stays cheap."""

from __future__ import annotations

import time

import boto3
import pytest

from shepard.emulator import InProcessEmulator
from tests.conftest import FULL_RESET_ENV, lighter_moto_reset


@pytest.mark.integration
def test_a_reset_forgets_everything_and_services_work_after_it(
    aws: InProcessEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FULL_RESET_ENV, raising=False)
    assert lighter_moto_reset()  # moto still clears what it resets: the shortcut is in use
    s3, sqs, iam = boto3.client("s3"), boto3.client("sqs"), boto3.client("iam")
    s3.create_bucket(Bucket="before-reset")
    sqs.create_queue(QueueName="before-reset")
    started = time.monotonic()
    aws.reset()
    seconds = time.monotonic() - started
    assert s3.list_buckets()["Buckets"] == []
    assert sqs.list_queues().get("QueueUrls", []) == []
    # A fresh IAM backend still knows AWS's managed policies (the server loads them).
    iam.create_role(RoleName="after-reset", AssumeRolePolicyDocument="{}")
    iam.attach_role_policy(
        RoleName="after-reset", PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
    )
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["after-reset"]
    assert seconds < 1.5, f"a reset took {seconds:.2f} s"

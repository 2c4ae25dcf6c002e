from __future__ import annotations

import boto3
import pytest

from shepard.emulator import InProcessEmulator


@pytest.mark.integration
def test_reset_forgets_resources_between_tests(aws: InProcessEmulator) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="before-reset")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["before-reset"]
    aws.reset()
    assert s3.list_buckets()["Buckets"] == []

"""CHECKPOINT_DIR against the emulator's S3: only what changed goes up, what the payload removed
is removed, a new attempt gets it back, the flock's interval uploads while the payload runs, and
a finished job's checkpoint is removed. (The worker's interruption paths run on the local flock:
tests/integration/test_spot_local.py.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from shepard_worker.checkpoint import INTERVAL_MINUTES, Checkpoint, interval_minutes, prefix_of

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.ids import new_job_id
from shepard.joblayer.settings import FlockSettings

BUCKET = "ck-outputs"


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    answer = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in answer.get("Contents", []))


@pytest.fixture(scope="module")
def bucket(emulator: InProcessEmulator) -> Iterator[str]:
    """One outputs bucket for the module (each test keeps to its own job id)."""
    with pytest.MonkeyPatch.context() as patch:
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        emulator.reset()
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        # Names this bucket as a flock's outputs bucket, as the worker's settings would: the
        # session's IAM check evaluates these calls against the job role's policy.
        FlockSettings(
            flock="ck",
            table_name="ck-jobs",
            job_queue="ck-queue",
            job_definition="ck-job",
            inputs_bucket="ck-inputs",
            outputs_bucket=BUCKET,
            errors_bucket="ck-errors",
            quick_deploy_bucket="ck-quick-deploy",
        )
        yield BUCKET


def test_only_what_changed_goes_up_and_a_new_attempt_gets_it_back(
    bucket: str, tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    job_id = new_job_id()
    said: list[str] = []
    first = Checkpoint(s3, bucket, job_id, tmp_path / "one", said.append)
    assert first.restore() == 0
    (first.folder / "a.txt").write_text("a")
    (first.folder / "sub").mkdir()
    (first.folder / "sub" / "b.bin").write_bytes(b"b" * 10)
    (first.folder / "link").symlink_to(tmp_path)  # never followed, never uploaded

    assert first.upload("test") == 2
    assert first.upload("test") == 0  # nothing changed
    (first.folder / "a.txt").write_text("a, changed")
    (first.folder / "sub" / "b.bin").unlink()
    assert first.upload("test") == 1
    assert _keys(s3, bucket, prefix_of(job_id)) == [f"checkpoints/{job_id}/a.txt"]

    second = Checkpoint(s3, bucket, job_id, tmp_path / "two", said.append)
    assert second.restore() == 1
    assert (second.folder / "a.txt").read_text() == "a, changed"
    assert second.upload("test") == 0  # what was restored is not sent back

    second.remove()
    assert _keys(s3, bucket, prefix_of(job_id)) == []


def test_the_flock_interval_uploads_while_the_payload_runs(bucket: str, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    job_id = new_job_id()
    checkpoint = Checkpoint(s3, bucket, job_id, tmp_path / "ck", print)
    checkpoint.restore()
    assert interval_minutes({INTERVAL_MINUTES: "0.005"}) == 0.005  # 0.3 s
    assert interval_minutes({}) == 0 and interval_minutes({INTERVAL_MINUTES: "soon"}) == 0
    checkpoint.start_periodic(0.005)
    try:
        (checkpoint.folder / "epoch.txt").write_text("3")
        deadline = time.monotonic() + 10
        while not _keys(s3, bucket, prefix_of(job_id)):
            assert time.monotonic() < deadline, "no periodic upload within 10 s"
            time.sleep(0.1)
    finally:
        checkpoint.stop_periodic()
    checkpoint.remove()
    assert _keys(s3, bucket, prefix_of(job_id)) == []


def test_a_first_run_lists_nothing_yet_still_uploads_and_removes(
    bucket: str, tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    sent: list[str] = []
    s3.meta.events.register("before-send.s3", lambda event_name, **_: sent.append(event_name))
    job_id = new_job_id()
    checkpoint = Checkpoint(s3, bucket, job_id, tmp_path / "first", lambda _: None)
    assert checkpoint.restore(nothing_stored=True) == 0
    assert checkpoint.folder.is_dir() and sent == []  # no ListObjectsV2
    checkpoint.remove()
    assert sent == []  # nothing was stored: nothing to list or delete
    (checkpoint.folder / "state").write_text("1")
    assert checkpoint.upload("test") == 1
    checkpoint.remove()
    assert _keys(s3, bucket, prefix_of(job_id)) == []

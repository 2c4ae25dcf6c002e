"""The scheduler Lambda against the emulator, with S3 -> SQS deliveries captured from moto itself.

Each test uploads real zips to the emulated inputs bucket, which notifies a real SQS queue; the
messages read from it are handed to the handler as the Lambda SQS event source would.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas.scheduler import handler as scheduler
from lambdas.scheduler.handler import Runtime, handle
from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.fit import FlockResources
from shepard.joblayer.ids import is_batch_id, new_job_id
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import FlockFixture, make_test_flock
from shepard.joblayer.zipread import read_inputs_json

pytestmark = pytest.mark.integration

# -- zips -----------------------------------------------------------------------------------------


def make_zip(
    files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED, comment: bytes = b""
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.comment = comment
    return buffer.getvalue()


def make_zip64(files: dict[str, bytes], prefix: bytes = b"") -> bytes:
    """A zip whose sizes, offsets and end record are all zip64 (as a zip over 4 GiB has them)."""
    out = bytearray(prefix)
    central = bytearray()
    for name, data in files.items():
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        packed = packer.compress(data) + packer.flush()
        crc, offset, raw = zlib.crc32(data), len(out) - len(prefix), name.encode()
        local_extra = struct.pack("<HHQQ", 1, 16, len(data), len(packed))
        out += struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 45, 0, 8, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
            len(raw), len(local_extra),
        )  # fmt: skip
        out += raw + local_extra + packed
        central_extra = struct.pack("<HHQQQ", 1, 24, len(data), len(packed), offset)
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0, 8, 0, 0, crc, 0xFFFFFFFF,
            0xFFFFFFFF, len(raw), len(central_extra), 0, 0, 0, 0, 0xFFFFFFFF,
        )  # fmt: skip
        central += raw + central_extra
    cd_offset = len(out) - len(prefix)
    out += central
    record = len(out) - len(prefix)
    count = len(files)
    out += struct.pack(
        "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), cd_offset
    )
    out += struct.pack("<4sIQI", b"PK\x06\x07", 0, record, 1)
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(out)


def encrypted_flag(data: bytes) -> bytes:
    """Set the 'encrypted' bit on every local and central header (what a password zip has)."""
    out = bytearray(data)
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        position = out.find(signature)
        while position >= 0:
            out[position + flag_at] |= 1
            position = out.find(signature, position + 4)
    return bytes(out)


def patched(data: bytes, signature: bytes, at: int, value: bytes) -> bytes:
    """``data`` with ``value`` written ``at`` bytes into the last record starting ``signature``."""
    position = data.rfind(signature) + at
    return data[:position] + value + data[position + len(value) :]


INPUTS = json.dumps({"greeting": "hello", "count": 3, "TAG": "hello"}).encode()

# -- the flock, its notification queue, and deliveries -------------------------------------------


@pytest.fixture(scope="module")
def base_flock(emulator: InProcessEmulator) -> Iterator[FlockFixture]:
    emulator.reset()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in emulator_environment(emulator.endpoint_url).items():
            patch.setenv(key, value)
        yield make_test_flock("sched")


class Deliveries:
    """The inputs bucket notifies an SQS queue; ``collect`` turns its messages into an event."""

    def __init__(self, flock: FlockFixture) -> None:
        self.flock = flock
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName=f"sched-{new_job_id()[:8]}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.s3.put_bucket_notification_configuration(
            Bucket=flock.settings.inputs_bucket,
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
            },
        )
        self.arn = arn

    def upload(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.flock.settings.inputs_bucket, Key=key, Body=data)

    def collect(self, expected: int) -> dict[str, Any]:
        """The Lambda SQS event for the next ``expected`` messages (S3 test events included)."""
        messages: list[dict[str, Any]] = []
        for _ in range(50):
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
            )
            messages += [dict(m) for m in answer.get("Messages", [])]
            if len(messages) >= expected:
                break
        assert len(messages) == expected
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": "us-east-1",
                }
                for m in messages
            ]
        }


@pytest.fixture
def flock(
    base_flock: FlockFixture, emulator: InProcessEmulator, monkeypatch: pytest.MonkeyPatch
) -> FlockFixture:
    for key, value in emulator_environment(emulator.endpoint_url).items():
        monkeypatch.setenv(key, value)
    return base_flock.fresh(new_job_id()[:8])


@pytest.fixture
def drops(flock: FlockFixture) -> Deliveries:
    deliveries = Deliveries(flock)
    test_event = deliveries.collect(1)  # configuring the notification sends s3:TestEvent
    assert "s3:TestEvent" in test_event["Records"][0]["body"]
    return deliveries


class GetCounter:
    """Counts GetObject calls and the bytes they returned (botocore event hooks)."""

    def __init__(self, client: Any) -> None:
        self.calls = 0
        self.bytes = 0
        client.meta.events.register("after-call.s3.GetObject", self._after)

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        self.calls += 1
        self.bytes += int(parsed.get("ContentLength", 0))


def records(flock: FlockFixture) -> list[JobRecord]:
    return JobStore(flock.settings.table_name).scan_all()


def batch_job_count(flock: FlockFixture) -> int:
    """Jobs submitted (an array job counts once, not with its children)."""
    batch = boto3.client("batch")
    return sum(
        1
        for s in ("SUBMITTED", "PENDING", "RUNNABLE", "RUNNING", "SUCCEEDED", "FAILED")
        for job in batch.list_jobs(jobQueue=flock.settings.job_queue, jobStatus=s)["jobSummaryList"]
        if ":" not in job["jobId"]
    )


def report(flock: FlockFixture, key: str, folder: str = "rejected") -> dict[str, Any]:
    body = boto3.client("s3").get_object(
        Bucket=flock.settings.errors_bucket, Key=f"{folder}/{key}.json"
    )["Body"]
    loaded: dict[str, Any] = json.loads(body.read())
    return loaded


# -- good zips ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("stored.zip", make_zip({"inputs.json": INPUTS, "b": b"x" * 1000}, zipfile.ZIP_STORED)),
        ("deflated.zip", make_zip({"inputs.json": INPUTS, "data.txt": b"abc" * 10_000})),
        ("comment.zip", make_zip({"inputs.json": INPUTS}, comment=b"zip comment " * 5000)),
        ("zip64.zip", make_zip64({"data.txt": b"a" * 5000, "inputs.json": INPUTS})),
        ("sfx.zip", make_zip64({"inputs.json": INPUTS}, prefix=b"#!/bin/sh\nexit 0\n" * 10)),
        ("folder.zip", make_zip({"job1/inputs.json": INPUTS, "job1/in/a.txt": b"a",
                                 "__MACOSX/job1/._inputs.json": b"junk"})),
    ],
)  # fmt: skip
def test_good_zip_becomes_a_submitted_job(
    flock: FlockFixture, drops: Deliveries, name: str, data: bytes
) -> None:
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None  # the zip is valid to zipfile too
    drops.upload(name, data)
    rt = Runtime.from_settings(flock.settings)
    gets = GetCounter(rt.s3)
    result = handle(rt, drops.collect(1))
    assert result == {"batchItemFailures": []}
    (record,) = records(flock)
    assert record.result is None and record.phase is Phase.QUEUED
    assert record.status is Status.NOT_YET_INITIATED and record.batch_job_id
    assert record.variables == {"greeting": "hello", "count": "3", "TAG": "hello"}
    assert (record.tag, record.is_invoked, record.input_zip_name) == ("hello", False, name)
    assert record.input_zip_size == len(data)  # from the S3 event: the worker's one GET
    assert record.idempotency_key is not None
    assert record.idempotency_key.startswith(f"s3://{flock.settings.inputs_bucket}/{name}#")
    assert gets.calls == 1  # a small zip is read whole by the first (suffix) GET
    assert batch_job_count(flock) == 1


def test_zip_under_1_mib_is_read_in_one_get_by_the_events_size(
    flock: FlockFixture, drops: Deliveries
) -> None:
    # inputs.json first, then 600 KiB: past the 64 KiB tail GET, so without the event's size the
    # entry would take a second GET.
    data = make_zip({"inputs.json": INPUTS, "mid.bin": os.urandom(600 * 1024)}, zipfile.ZIP_STORED)
    drops.upload("mid.zip", data)
    event = drops.collect(1)
    [notified] = json.loads(event["Records"][0]["body"])["Records"]
    assert notified["s3"]["object"]["size"] == len(data)
    rt = Runtime.from_settings(flock.settings)
    gets = GetCounter(rt.s3)
    assert handle(rt, event) == {"batchItemFailures": []}
    assert (gets.calls, gets.bytes) == (1, len(data))
    assert records(flock)[0].batch_job_id


def test_big_zip_is_read_with_three_gets_at_most(flock: FlockFixture, drops: Deliveries) -> None:
    # inputs.json first, then 5 MiB of data: the central directory is in the tail, the entry not.
    data = make_zip(
        {"inputs.json": INPUTS, "big.bin": os.urandom(5 * 1024 * 1024)}, zipfile.ZIP_STORED
    )
    drops.upload("big.zip", data)
    rt = Runtime.from_settings(flock.settings)
    gets = GetCounter(rt.s3)
    assert handle(rt, drops.collect(1)) == {"batchItemFailures": []}
    assert gets.calls == 2 and gets.bytes <= 128 * 1024
    assert records(flock)[0].batch_job_id


@pytest.mark.slow
def test_zip_with_70000_entries(flock: FlockFixture, drops: Deliveries) -> None:
    files = {"inputs.json": INPUTS}
    files.update({f"in/{i:05d}.txt": b"" for i in range(70_000)})
    data = make_zip(files, zipfile.ZIP_STORED)  # > 65,535 entries: zipfile writes zip64 ends
    assert b"PK\x06\x06" in data[-200:]
    drops.upload("many.zip", data)
    rt = Runtime.from_settings(flock.settings)
    gets = GetCounter(rt.s3)
    assert handle(rt, drops.collect(1)) == {"batchItemFailures": []}
    assert gets.calls == 3  # tail, the 4 MB central directory, then inputs.json at offset 0
    assert gets.bytes < len(data) * 0.7  # the local headers are never fetched
    (record,) = records(flock)
    assert record.variables["greeting"] == "hello"


def test_read_counts_and_bytes_for_a_moto_range_read(flock: FlockFixture) -> None:
    s3 = boto3.client("s3")
    data = make_zip({"inputs.json": INPUTS, "pad.bin": os.urandom(300_000)}, zipfile.ZIP_STORED)
    s3.put_object(Bucket=flock.settings.inputs_bucket, Key="r.zip", Body=data)
    gets = GetCounter(s3)
    found = read_inputs_json(s3, flock.settings.inputs_bucket, "r.zip")
    assert found.data == INPUTS and found.entry == "inputs.json" and found.zip_size == len(data)
    assert (found.requests, found.bytes_fetched) == (gets.calls, gets.bytes)
    assert gets.calls == 2 and gets.bytes <= 128 * 1024


# -- poison zips: one rejected record and one report each, never a retry -------------------------

POISON = {
    "not-a-zip": (b"just some text, not a zip\n" * 100, "not a readable zip"),
    "empty": (b"", "is empty, not a zip"),
    "truncated": (make_zip({"inputs.json": INPUTS})[:-10], "not a readable zip"),
    "no-inputs": (make_zip({"inputs.txt": INPUTS, "a.txt": b"a"}), "found 'inputs.txt'"),
    "bad-json": (make_zip({"inputs.json": b'{\n "a": 1,\n}'}), "line 3 column 1"),
    "list": (make_zip({"inputs.json": b'[{"a": 1}]'}), "not a list"),
    "reserved": (make_zip({"inputs.json": b'{"uuid": "mine"}'}), '"uuid" is reserved'),
    "bad-name": (make_zip({"inputs.json": b'{"my-var": "1"}'}), "'my-var' is not a valid"),
    "encrypted": (encrypted_flag(make_zip({"inputs.json": INPUTS})), "is encrypted"),
    "bzip2": (make_zip({"inputs.json": INPUTS}, zipfile.ZIP_BZIP2), "method 12"),
    "too-big": (
        make_zip({"inputs.json": json.dumps({"a": "x" * (1024 * 1024)}).encode()}),
        "at most 1048576 bytes",
    ),
    "bad-crc": (
        patched(make_zip({"inputs.json": INPUTS}, zipfile.ZIP_STORED), b"PK\x03\x04", 41, b"["),
        "fails its CRC check",
    ),
    "multi-disk": (
        patched(make_zip({"inputs.json": INPUTS}), b"PK\x05\x06", 4, b"\x01\x00"),
        "split over several disks",
    ),
    "two-top-folders": (make_zip({"a/inputs.json": INPUTS, "b/x": b""}), "no inputs.json"),
}


@pytest.mark.parametrize("kind", sorted(POISON))
def test_poison_zip_is_rejected_and_reported(
    flock: FlockFixture, drops: Deliveries, kind: str
) -> None:
    data, words = POISON[kind]
    key = f"poison/{kind}.zip"
    drops.upload(key, data)
    rt = Runtime.from_settings(flock.settings)
    assert handle(rt, drops.collect(1)) == {"batchItemFailures": []}  # handled, never retried
    (record,) = records(flock)
    assert (record.phase, record.result) == (Phase.FINISHED, Result.REJECTED)
    assert record.reason is not None and words in record.reason
    assert record.input_zip_name == key
    written = report(flock, key)
    assert (written["job_id"], written["reason"], written["result"]) == (
        record.job_id,
        record.reason,
        "rejected",
    )
    assert written["key"] == key
    assert batch_job_count(flock) == 0


def test_zips_no_compute_environment_can_place_are_rejected_with_the_numbers(
    flock: FlockFixture, drops: Deliveries
) -> None:
    resources = FlockResources(2, 64000, 0, {"default": ("c5.xlarge",)}).to_json()
    settings = replace(flock.settings, job_resources=resources)
    for i in range(2):
        drops.upload(f"big/{i}.zip", make_zip({"inputs.json": INPUTS}))
    rt = Runtime.from_settings(settings)
    assert handle(rt, drops.collect(2)) == {"batchItemFailures": []}
    found = records(flock)
    assert [r.result for r in found] == [Result.REJECTED] * 2
    assert all("compute environment default: it asks 64000 MiB" in (r.reason or "") for r in found)
    assert "MiB short" in report(flock, "big/0.zip")["reason"]
    assert rt.service.submitter.calls == 0 and batch_job_count(flock) == 0


# -- deliveries ----------------------------------------------------------------------------------


def test_duplicate_delivery_makes_one_record_and_one_job(
    flock: FlockFixture, drops: Deliveries
) -> None:
    drops.upload("dup.zip", make_zip({"inputs.json": INPUTS}))
    event = drops.collect(1)
    rt = Runtime.from_settings(flock.settings)
    assert handle(rt, event) == {"batchItemFailures": []}
    assert handle(rt, event) == {"batchItemFailures": []}
    assert len(records(flock)) == 1
    assert rt.service.submitter.calls == 1 and batch_job_count(flock) == 1


def test_key_overwritten_before_its_event_is_read(flock: FlockFixture, drops: Deliveries) -> None:
    drops.upload("again.zip", make_zip({"inputs.json": INPUTS}))
    drops.upload("again.zip", make_zip({"inputs.json": b'{"second": "yes"}'}))
    event = drops.collect(2)
    handle(Runtime.from_settings(flock.settings), event)
    found = {r.result: r for r in records(flock)}
    assert set(found) == {None, Result.REJECTED}  # two events, two records
    assert found[None].variables == {"second": "yes"}  # the upload that is there runs, once
    assert "was replaced" in (found[Result.REJECTED].reason or "")
    assert batch_job_count(flock) == 1


def test_one_poison_among_nine_good(flock: FlockFixture, drops: Deliveries) -> None:
    for i in range(9):
        drops.upload(f"good/{i}.zip", make_zip({"inputs.json": json.dumps({"I": i}).encode()}))
    drops.upload("bad.zip", b"not a zip at all")
    event = drops.collect(10)
    rt = Runtime.from_settings(flock.settings)
    assert handle(rt, event) == {"batchItemFailures": []}
    found = records(flock)
    assert sorted(r.result.value if r.result else "queued" for r in found) == ["queued"] * 9 + [
        "rejected"
    ]
    assert sorted(r.variables.get("I", "-") for r in found) == ["-", *map(str, range(9))]
    # The nine fan in to one array job: one SubmitJob, children 0..8 of one parent, one BATCH_ID.
    assert rt.service.submitter.calls == 1 and batch_job_count(flock) == 1
    children = [r for r in found if r.result is None]
    assert len({r.array_parent for r in children}) == 1
    assert sorted(r.array_index or 0 for r in children) == list(range(9))
    assert all(r.job_id == f"{r.array_parent}-{r.array_index}" for r in children)
    sizes = {f"good/{i}.zip": len(make_zip({"inputs.json": json.dumps({"I": i}).encode()}))
             for i in range(9)}  # fmt: skip
    assert all(r.input_zip_size == sizes[str(r.input_zip_name)] for r in children)
    assert len({r.batch_id for r in found}) == 1 and is_batch_id(str(found[0].batch_id))
    assert report(flock, "bad.zip")["result"] == "rejected"


def test_fan_in_skips_duplicates_per_drop(flock: FlockFixture, drops: Deliveries) -> None:
    for i in range(3):
        drops.upload(f"first/{i}.zip", make_zip({"inputs.json": json.dumps({"I": i}).encode()}))
    first = drops.collect(3)
    rt = Runtime.from_settings(flock.settings)
    assert handle(rt, first) == {"batchItemFailures": []}
    drops.upload("second/new.zip", make_zip({"inputs.json": b'{"I": "new"}'}))
    again = {"Records": first["Records"][:2] + drops.collect(1)["Records"]}
    assert handle(rt, again) == {"batchItemFailures": []}  # two duplicates, one new drop
    found = records(flock)  # the claims are not jobs
    assert sorted(r.variables["I"] for r in found) == ["0", "1", "2", "new"]
    assert rt.service.submitter.calls == 2 and batch_job_count(flock) == 2
    (new,) = [r for r in found if r.variables["I"] == "new"]
    # All but one were duplicates: the survivor runs as a plain job under its child id.
    assert new.job_id == f"{new.array_parent}-{new.array_index}" and new.array_index == 2


def test_fan_in_throttled_returns_its_messages_and_leaves_nothing(
    flock: FlockFixture, drops: Deliveries
) -> None:
    for i in range(2):
        drops.upload(f"t/{i}.zip", make_zip({"inputs.json": INPUTS}))
    drops.upload("t/bad.zip", b"poison")
    event = drops.collect(3)
    stub = AlwaysThrottled()
    throttled = Runtime.from_settings(flock.settings, batch_client=stub, sleep=lambda _: None)
    answer = handle(throttled, event)
    by_id = {unquote_plus(json.loads(m["body"])["Records"][0]["s3"]["object"]["key"]):
             m["messageId"] for m in event["Records"]}  # fmt: skip
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": by_id[f"t/{i}.zip"]} for i in range(2)]
    }  # the poison zip is handled; the two good ones come back
    assert [r.result for r in records(flock)] == [Result.REJECTED]
    assert handle(Runtime.from_settings(flock.settings), event) == {"batchItemFailures": []}
    assert len(records(flock)) == 3 and batch_job_count(flock) == 1


class AlwaysThrottled:
    def __init__(self) -> None:
        self.calls = 0

    def submit_job(self, **_: Any) -> Any:
        self.calls += 1
        answer: Any = {
            "Error": {"Code": "TooManyRequestsException", "Message": "Too Many Requests"},
            "ResponseMetadata": {"HTTPStatusCode": 429},
        }
        raise ClientError(answer, "SubmitJob")


def test_throttled_message_alone_comes_back_then_succeeds(
    flock: FlockFixture, drops: Deliveries
) -> None:
    drops.upload("throttled.zip", make_zip({"inputs.json": INPUTS}))
    event = drops.collect(1)
    sleeps: list[float] = []
    stub = AlwaysThrottled()
    throttled = Runtime.from_settings(flock.settings, batch_client=stub, sleep=sleeps.append)
    message_id = event["Records"][0]["messageId"]
    assert handle(throttled, event) == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    assert stub.calls == 6 and len(sleeps) == 5
    assert records(flock) == []  # the redelivery starts over
    assert handle(Runtime.from_settings(flock.settings), event) == {"batchItemFailures": []}
    assert len(records(flock)) == 1 and batch_job_count(flock) == 1


@pytest.mark.parametrize("key", ["my folder/job one.zip", "naïve/日本+plus.zip", "a%20b.zip"])
def test_url_encoded_keys_are_decoded(flock: FlockFixture, drops: Deliveries, key: str) -> None:
    drops.upload(key, make_zip({"inputs.json": INPUTS}))
    event = drops.collect(1)
    assert json.loads(event["Records"][0]["body"])["Records"][0]["s3"]["object"]["key"] != key
    assert handle(Runtime.from_settings(flock.settings), event) == {"batchItemFailures": []}
    (record,) = records(flock)
    assert record.input_zip_name == key and record.batch_job_id


def test_lambda_entry_point_reads_its_environment(
    flock: FlockFixture, drops: Deliveries, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in flock.env.items():
        monkeypatch.setenv(name, value)
    drops.upload("entry.zip", make_zip({"inputs.json": INPUTS}))
    event = drops.collect(1)
    assert scheduler.handler(event, None) == {"batchItemFailures": []}
    first = scheduler.runtime()
    assert scheduler.runtime() is first  # clients made once per container
    (record,) = records(flock)
    assert record.batch_job_id


def test_test_events_and_other_messages_are_ignored(flock: FlockFixture) -> None:
    rt = Runtime.from_settings(flock.settings)
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent"}
    removed = {"Records": [{"eventName": "ObjectRemoved:Delete"}]}
    event = {
        "Records": [
            {"messageId": "1", "body": json.dumps(test_event)},
            {"messageId": "2", "body": "not json"},
            {"messageId": "3", "body": json.dumps(removed)},
        ]
    }
    assert handle(rt, event) == {"batchItemFailures": []}
    assert records(flock) == []


def test_unexpected_error_returns_only_that_message(flock: FlockFixture) -> None:
    settings = flock.settings
    broken = Runtime.from_settings(settings)
    broken.service.store = JobStore("no-such-table")
    body = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-11-25T09:00:00.000Z",
                "s3": {"bucket": {"name": settings.inputs_bucket}, "object": {"key": "x.zip"}},
            }
        ]
    }
    event = {"Records": [{"messageId": "m1", "body": json.dumps(body)}]}
    assert handle(broken, event) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}


# -- the benchmark's smoke run -------------------------------------------------------------------


@pytest.mark.slow
def test_bench_quick_run_prints_ours_baseline_and_ratio() -> None:
    bench = Path(__file__).resolve().parents[2] / "bench" / "bench_scheduler_read.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--quick"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("scheduler_read")]
    assert len(lines) == 6  # two zips x (ours, baseline, ratio)
    for line in lines:
        if " ours: " in line:
            fields = dict(part.split("=") for part in line.split(" ours: ")[1].split())
            assert int(fields["gets"]) <= 3 and int(fields["bytes"]) <= 128 * 1024
        if " baseline: " in line and "4MiB" in line:
            assert "bytes=4194" in line  # the whole zip was downloaded
    assert float(lines[-1].split("bytes=")[1].split("x")[0]) > 10


def test_submit_refused_by_batch_is_recorded_and_reported(
    flock: FlockFixture, drops: Deliveries
) -> None:
    drops.upload("refused.zip", make_zip({"inputs.json": INPUTS}))
    missing = "arn:aws:batch:us-east-1:123456789012:job-definition/gone:1"
    rt = Runtime.from_settings(replace(flock.settings, job_definition=missing))
    assert handle(rt, drops.collect(1)) == {"batchItemFailures": []}  # retrying cannot help
    (record,) = records(flock)
    assert (record.phase, record.result) == (Phase.FINISHED, Result.FAILED)
    assert record.reason is not None and record.reason.startswith(
        "while submitting the job to AWS Batch"
    )
    assert report(flock, "refused.zip", "failed")["reason"] == record.reason


# -- a fan-in whose Lambda died before SubmitJob answered -------------------------------------


class Crashing:
    """SubmitJob never answers: the Lambda dies (a timeout, a crash) after the claims and
    records were written."""

    def __init__(self) -> None:
        self.calls = 0

    def submit_job(self, **_: Any) -> Any:
        self.calls += 1
        raise RuntimeError("Task timed out after 900.00 seconds")


def _later(minutes: float) -> Any:
    return lambda: datetime.now(UTC) + timedelta(minutes=minutes)


def _failed_ids(answer: dict[str, Any]) -> list[str]:
    return sorted(f["itemIdentifier"] for f in answer["batchItemFailures"])


def test_fan_in_that_died_is_retried_then_taken_over_once(
    flock: FlockFixture, drops: Deliveries
) -> None:
    for i in range(3):
        drops.upload(f"died/{i}.zip", make_zip({"inputs.json": json.dumps({"I": i}).encode()}))
    event = drops.collect(3)
    ids = sorted(m["messageId"] for m in event["Records"])
    crashed = Runtime.from_settings(flock.settings, batch_client=Crashing())
    assert _failed_ids(handle(crashed, event)) == ids  # SQS delivers them again
    before = records(flock)
    assert len(before) == 3 and all(r.phase is Phase.QUEUED for r in before)

    soon = Runtime.from_settings(flock.settings)
    soon.service.store.clock = _later(1)  # within RESUBMIT_AFTER: maybe still in flight
    assert _failed_ids(handle(soon, event)) == ids
    assert soon.service.submitter.calls == 0 and batch_job_count(flock) == 0

    late = Runtime.from_settings(flock.settings)
    late.service.store.clock = _later(3)  # past it: that Lambda died
    assert handle(late, event) == {"batchItemFailures": []}
    assert late.service.submitter.calls == 1 and batch_job_count(flock) == 1
    after = records(flock)
    assert sorted(r.variables["I"] for r in after) == ["0", "1", "2"]  # each once
    assert len({r.array_parent for r in after}) == 1
    assert {r.array_parent for r in after}.isdisjoint({r.array_parent for r in before})

    again = Runtime.from_settings(flock.settings)
    again.service.store.clock = _later(10)  # marked submitted: a plain duplicate now
    assert handle(again, event) == {"batchItemFailures": []}
    assert again.service.submitter.calls == 0 and batch_job_count(flock) == 1
    assert len(records(flock)) == 3


def test_claim_of_a_dead_fan_in_redelivered_alone(flock: FlockFixture, drops: Deliveries) -> None:
    for i in range(2):
        drops.upload(f"alone/{i}.zip", make_zip({"inputs.json": json.dumps({"I": i}).encode()}))
    event = drops.collect(2)
    assert len(handle(Runtime.from_settings(flock.settings, batch_client=Crashing()), event)[
        "batchItemFailures"]) == 2  # fmt: skip
    first = {"Records": event["Records"][:1]}
    soon = Runtime.from_settings(flock.settings)
    assert len(handle(soon, first)["batchItemFailures"]) == 1  # a lone delivery, in flight
    late = Runtime.from_settings(flock.settings)
    late.service.store.clock = _later(3)
    assert handle(late, first) == {"batchItemFailures": []}  # taken over: a plain job
    assert handle(late, event) == {"batchItemFailures": []}  # the other one taken over too
    assert soon.service.submitter.calls == 0 and late.service.submitter.calls == 2
    assert batch_job_count(flock) == 2
    assert sorted(r.variables["I"] for r in records(flock)) == ["0", "1"]


def test_two_redeliveries_cannot_both_take_a_claim_over(flock: FlockFixture) -> None:
    store = JobStore(flock.settings.table_name)
    record = JobRecord(job_id="p1-0", variables={"I": "0"}, array_parent="p1", array_index=0)
    assert store.create_claimed([("claim-1", record)]) == [record]
    stale = store.client.get_item(TableName=store.table_name, Key={"UUID": {"S": "claim-1"}})
    store.clock = _later(3)
    retaken = replace(record, job_id="p2-0", array_parent="p2")
    first = store.claim_drops([("claim-1", retaken)], take_over_after=timedelta(minutes=2))
    assert first.records == [retaken] and first.in_flight == []
    # A second delivery that read the old claim before the first replaced it loses the race.
    item = {"UUID": {"S": "claim-1"}, "SAME_AS": {"S": "p3-0"}, "CLAIMED_AT": {"S": "x"}}
    assert store._take_over(item, stale["Item"], timedelta(minutes=2)) == "in flight"
    # A later one finds the new claim young, and leaves it.
    third = store.claim_drops([("claim-1", record)], take_over_after=timedelta(minutes=2))
    assert third.records == [] and third.in_flight == ["claim-1"]
    assert [r.job_id for r in store.scan_all()] == ["p2-0"]
    store.mark_array_submitted("p2", "batch-1")
    fourth = store.claim_drops([("claim-1", record)], take_over_after=timedelta(minutes=2))
    assert fourth.records == [] and fourth.in_flight == []  # marked: a plain duplicate


@pytest.mark.parametrize(
    ("attribute", "value"), [("PHASE", Phase.RUNNING.value), ("BATCH_STATUS", "RUNNABLE")]
)
def test_claim_whose_record_reached_batch_is_not_taken_over(
    flock: FlockFixture, attribute: str, value: str
) -> None:
    store = JobStore(flock.settings.table_name)
    record = JobRecord(job_id="q1-0", variables={"I": "0"}, array_parent="q1", array_index=0)
    assert store.create_claimed([("claim-2", record)]) == [record]
    # Its SubmitJob did answer, but the marker was never written; then a worker took the
    # record, or Batch's events reached it.
    store.client.update_item(
        TableName=store.table_name,
        Key={"UUID": {"S": "q1-0"}},
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":v": {"S": value}},
    )
    store.clock = _later(3)
    retaken = replace(record, job_id="q2-0", array_parent="q2")
    answer = store.claim_drops([("claim-2", retaken)], take_over_after=timedelta(minutes=2))
    assert answer.records == [] and answer.in_flight == []  # a duplicate
    claim = store.client.get_item(TableName=store.table_name, Key={"UUID": {"S": "claim-2"}})
    assert claim["Item"]["SAME_AS"] == {"S": "q1-0"} and "SUBMITTED_AT" in claim["Item"]
    assert [r.job_id for r in store.scan_all()] == ["q1-0"]

"""Reading inputs.json from a zip in S3 with ranged GETs (zipfile over RangedObject).

S3 is moto in process (``mock_aws``): real range, ETag and IfMatch answers, no server. Each
test counts the GETs and their bytes with a botocore hook, as the scheduler's budget is stated
in those: at most 3 GETs and 128 KiB for inputs.json, whatever the zip's size.
"""

from __future__ import annotations

import io
import json
import os
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from shepard.joblayer import zipread
from shepard.joblayer.variables import JobRejected
from shepard.joblayer.zipread import InputsRead, read_inputs_json

BUCKET = "zipread-tests"
INPUTS = json.dumps({"greeting": "hello", "count": 3, "TAG": "hello"}).encode()
KIB = 1024
MIB = 1024 * KIB


@dataclass
class S3:
    client: Any
    gets: int = 0
    fetched: int = 0

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=data)

    def read(self, key: str, **kwargs: Any) -> InputsRead:
        self.gets = self.fetched = 0
        found = read_inputs_json(self.client, BUCKET, key, **kwargs)
        assert (found.requests, found.bytes_fetched) == (self.gets, self.fetched)
        return found

    def rejected(self, key: str, data: bytes | None = None, **kwargs: Any) -> str:
        if data is not None:
            self.put(key, data)
        with pytest.raises(JobRejected) as caught:
            read_inputs_json(self.client, BUCKET, key, **kwargs)
        return caught.value.reason

    def _count(self, parsed: dict[str, Any], **_: Any) -> None:
        self.gets += 1
        self.fetched += int(parsed.get("ContentLength", 0))


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[Any]:
    """One in-process moto S3 and bucket for the module (starting moto costs a second)."""
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_CONFIG_FILE"):
            patch.delenv(name, raising=False)
        client = boto3.client(
            "s3", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        )
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def s3(moto_s3: Any) -> Iterator[S3]:
    s3 = S3(moto_s3)
    moto_s3.meta.events.register("after-call.s3.GetObject", s3._count)
    try:
        yield s3
    finally:
        moto_s3.meta.events.unregister("after-call.s3.GetObject", s3._count)


# -- zips --------------------------------------------------------------------------------------


def make_zip(
    files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED, comment: bytes = b""
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.comment = comment
    return buffer.getvalue()


class _Stream(io.RawIOBase):
    """A write-only stream: zipfile writes data descriptors when it cannot seek back."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, chunk: Any) -> int:
        self.data += chunk
        return len(chunk)


def make_streamed_zip(files: dict[str, bytes]) -> bytes:
    stream = _Stream()
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            with archive.open(name, "w") as entry:
                entry.write(data)
    return bytes(stream.data)


def make_zip64(files: dict[str, bytes], prefix: bytes = b"") -> bytes:
    """A zip whose sizes, offsets and end record are all zip64 (as a zip over 4 GiB has them)."""
    out = bytearray(prefix)
    central = bytearray()
    for name, data in files.items():
        crc, offset, raw = zlib.crc32(data), len(out) - len(prefix), name.encode()
        local_extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
            len(raw), len(local_extra),
        )  # fmt: skip
        out += raw + local_extra + data
        central_extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF,
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


def make_twice() -> bytes:
    """Two entries named inputs.json (zipfile warns, and writes both)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")
        archive.writestr("inputs.json", INPUTS)
        archive.writestr("inputs.json", b"{}")
    return buffer.getvalue()


def patched(data: bytes, signature: bytes, at: int, value: bytes) -> bytes:
    """``data`` with ``value`` written ``at`` bytes into the last record starting ``signature``."""
    position = data.rfind(signature) + at
    return data[:position] + value + data[position + len(value) :]


def encrypted_flag(data: bytes) -> bytes:
    out = bytearray(data)
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        position = out.find(signature)
        while position >= 0:
            out[position + flag_at] |= 1
            position = out.find(signature, position + 4)
    return bytes(out)


# -- good zips -----------------------------------------------------------------------------------

GOOD = {
    "stored": make_zip({"inputs.json": INPUTS, "b": b"x" * 1000}, zipfile.ZIP_STORED),
    "deflated": make_zip({"inputs.json": INPUTS, "data.txt": b"abc" * 10_000}),
    "comment": make_zip({"inputs.json": INPUTS}, comment=b"zip comment " * 5000),
    "zip64": make_zip64({"data.txt": b"a" * 5000, "inputs.json": INPUTS}),
    "sfx": make_zip64({"inputs.json": INPUTS}, prefix=b"#!/bin/sh\nexit 0\n" * 10),
    "descriptors": make_streamed_zip({"a.txt": b"a" * 3000, "inputs.json": INPUTS}),
    "folder": make_zip(
        {"job1/inputs.json": INPUTS, "job1/a.txt": b"a", "__MACOSX/job1/._inputs.json": b"junk"}
    ),
}


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_a_small_zip_is_read_with_one_get(s3: S3, kind: str) -> None:
    data = GOOD[kind]
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None  # valid to zipfile as well
    s3.put(f"{kind}.zip", data)

    found = s3.read(f"{kind}.zip")

    assert found.data == INPUTS
    assert found.entry == ("job1/inputs.json" if kind == "folder" else "inputs.json")
    assert found.zip_size == len(data) and found.etag.startswith('"')
    assert s3.gets == 1 and s3.fetched == len(data)  # the tail GET held the whole zip


@pytest.mark.parametrize("size", [300 * KIB, 4 * MIB, 24 * MIB])
def test_inputs_first_costs_two_gets_and_the_same_bytes_at_any_size(s3: S3, size: int) -> None:
    # inputs.json is the first entry: not in the tail, so one more GET for it.
    s3.put("big.zip", make_zip({"inputs.json": INPUTS, "big.bin": bytes(size)}, 0))

    found = s3.read("big.zip")

    assert found.data == INPUTS
    assert s3.gets == 2 and s3.fetched <= 128 * KIB
    # The tail and the entry (its header, name and data, plus slack for a local extra field).
    assert s3.fetched == zipread.TAIL_BYTES + 30 + len("inputs.json") + zipread.LOCAL_SLACK + len(
        INPUTS
    )


def test_zip64_with_inputs_far_from_the_end(s3: S3) -> None:
    s3.put("z64.zip", make_zip64({"inputs.json": INPUTS, "data.bin": os.urandom(2 * MIB)}))

    found = s3.read("z64.zip")

    assert found.data == INPUTS and s3.gets == 2 and s3.fetched <= 128 * KIB


def test_data_descriptors_with_inputs_far_from_the_end(s3: S3) -> None:
    s3.put("dd.zip", make_streamed_zip({"inputs.json": INPUTS, "data.bin": os.urandom(MIB)}))

    found = s3.read("dd.zip")

    assert found.data == INPUTS and s3.gets == 2 and s3.fetched <= 128 * KIB


@pytest.mark.slow
def test_zip_with_70000_entries_costs_three_gets(s3: S3) -> None:
    files = {"inputs.json": INPUTS, **{f"in/{i:05d}.txt": b"" for i in range(70_000)}}
    data = make_zip(files, zipfile.ZIP_STORED)  # > 65,535 entries: zipfile writes zip64 ends
    assert b"PK\x06\x06" in data[-200:]
    s3.put("many.zip", data)

    found = s3.read("many.zip")

    assert found.data == INPUTS
    assert s3.gets == 3  # the tail, the rest of the 4 MB central directory, inputs.json
    assert s3.fetched < len(data) * 0.7  # the local headers are never fetched


def test_a_known_size_under_1_mib_is_read_in_one_get(s3: S3) -> None:
    data = make_zip({"inputs.json": INPUTS, "pad.bin": os.urandom(600 * KIB)}, zipfile.ZIP_STORED)
    s3.put("r.zip", data)

    assert s3.read("r.zip").data == INPUTS and s3.gets == 2  # size unknown: tail, then entry
    assert s3.read("r.zip", size=len(data)).data == INPUTS and s3.gets == 1
    big = make_zip({"inputs.json": INPUTS, "pad.bin": bytes(2 * MIB)}, zipfile.ZIP_STORED)
    s3.put("big.zip", big)
    assert s3.read("big.zip", size=len(big)).data == INPUTS
    assert s3.gets == 2 and s3.fetched <= 128 * KIB


# -- refused zips --------------------------------------------------------------------------------

REFUSED = {
    "not-a-zip": (b"just some text, not a zip\n" * 100, "not a readable zip"),
    "empty": (b"", "is empty, not a zip"),
    "tiny": (b"PK", "not a readable zip"),
    "truncated": (make_zip({"inputs.json": INPUTS})[:-10], "not a readable zip"),
    "no-inputs": (make_zip({"inputs.txt": INPUTS, "a.txt": b"a"}), "found 'inputs.txt'"),
    "twice": (make_twice(), "holds inputs.json 2 times"),
    "encrypted": (encrypted_flag(make_zip({"inputs.json": INPUTS})), "is encrypted"),
    "bzip2": (make_zip({"inputs.json": INPUTS}, zipfile.ZIP_BZIP2), "method 12"),
    "too-big": (
        make_zip({"inputs.json": json.dumps({"a": "x" * MIB}).encode()}),
        "at most 1048576 bytes",
    ),
    "bad-crc": (
        patched(make_zip({"inputs.json": INPUTS}, zipfile.ZIP_STORED), b"PK\x03\x04", 41, b"["),
        "inputs.json fails its CRC check",
    ),
    "bad-deflate": (
        patched(make_zip({"inputs.json": INPUTS * 20}), b"PK\x03\x04", 41, b"\xff\xff\xff"),
        "not a readable zip",
    ),
    "multi-disk": (
        patched(make_zip({"inputs.json": INPUTS}), b"PK\x05\x06", 4, b"\x01\x00"),
        "split over several disks",
    ),
    "huge-claim": (
        patched(make_zip({"inputs.json": INPUTS}), b"PK\x01\x02", 20, b"\xff\xff\xff\x7f"),
        "claims 2147483647 compressed bytes",
    ),
    "two-top-folders": (make_zip({"a/inputs.json": INPUTS, "b/x": b""}), "no inputs.json"),
    "bad-directory": (
        patched(make_zip({"inputs.json": INPUTS}), b"PK\x01\x02", 0, b"XX"),
        "not a readable zip",
    ),
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_a_bad_zip_is_refused_with_what_to_do(s3: S3, kind: str) -> None:
    data, words = REFUSED[kind]

    reason = s3.rejected(f"bad/{kind}.zip", data)

    assert words in reason
    assert reason.startswith(f"s3://{BUCKET}/bad/{kind}.zip ") or reason.startswith(
        f"inputs.json in s3://{BUCKET}/bad/{kind}.zip "
    )


def test_a_central_directory_over_the_cap_is_refused_before_it_is_fetched(
    s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"inputs.json": INPUTS, **{f"in/{i:05d}.txt": b"" for i in range(5000)}}
    s3.put("wide.zip", make_zip(files, zipfile.ZIP_STORED))  # a 300 KB central directory
    monkeypatch.setattr(zipread, "MAX_CENTRAL_DIRECTORY", 128 * KIB)
    s3.gets = 0

    reason = s3.rejected("wide.zip")

    assert "central directory; at most 0 MiB is read: zip the many small files" in reason
    assert s3.gets == 1  # only the tail


def test_the_object_the_event_named_is_the_one_read(s3: S3) -> None:
    first = make_zip({"inputs.json": INPUTS, "pad.bin": os.urandom(200 * KIB)}, 0)
    s3.put("job.zip", first)
    etag = s3.client.head_object(Bucket=BUCKET, Key="job.zip")["ETag"]
    assert s3.read("job.zip", etag=etag.strip('"')).data == INPUTS  # the event's bare ETag

    s3.put("job.zip", make_zip({"inputs.json": b"{}", "pad.bin": os.urandom(200 * KIB)}, 0))
    assert "was replaced while it was being read" in s3.rejected("job.zip", etag=etag)
    assert "was deleted before it could be read" in s3.rejected("missing.zip")

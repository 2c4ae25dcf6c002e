"""Result zips streamed into S3 multipart uploads: read back identical, aborted on failure, zip64
and data descriptors where a stream needs them, and no temporary file."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from shepard_worker.results import upload_error_zip, upload_results, write_zip
from shepard_worker.stream import MIB, MultipartWriter, multipart_upload, part_size_for
from shepard_worker.workspace import Workspace

from shepard.emulator import InProcessEmulator
from shepard.errors import BackendError

JOB = "0123456789abcdef0123456789abcdef"
START = "20261125T090000Z"


class Worker:
    """The worker's Aws as results.py uses it: an S3 client (here, the emulator's)."""

    def __init__(self) -> None:
        self.s3 = boto3.client("s3")

    def client(self, service: str) -> Any:
        assert service == "s3"
        return self.s3


def _workspace(tmp_path: Path) -> Workspace:
    ws = Workspace.plan(JOB, tmp_path / "root", None, None)
    ws.create()
    return ws


def _contents(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return {name: zf.read(name) for name in zf.namelist()}


def test_results_stream_in_parts_and_read_back_identical(
    aws: InProcessEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="out")
    ws = _workspace(tmp_path)
    files = {
        "big.bin": os.urandom(6 * MIB),  # incompressible: two parts of 5 MiB and 1 MiB
        "sub/a.txt": b"A" * 1000,
        "empty.txt": b"",
    }
    for name, data in files.items():
        (ws.root.output / name).parent.mkdir(parents=True, exist_ok=True)
        (ws.root.output / name).write_bytes(data)
    (ws.root.output / "folder").mkdir()
    # The smallest part S3 takes, so the 6 MiB output goes up in two parts.
    monkeypatch.setattr("shepard_worker.results.part_size_for", lambda size: 5 * MIB)
    scratch_before = sorted(p.name for p in ws.scratch.iterdir())
    keys = upload_results(
        Worker(), ws, bucket="out", job_id=JOB, start_time=START, tag=None, log=print
    )
    assert keys == [f"result@{JOB}_{START}_root.zip"]
    assert sorted(p.name for p in ws.scratch.iterdir()) == scratch_before  # no temporary zip
    head = s3.head_object(Bucket="out", Key=keys[0], PartNumber=1)
    assert head["PartsCount"] == 2
    body = s3.get_object(Bucket="out", Key=keys[0])["Body"].read()
    assert _contents(body) == {**files, "folder/": b""}
    assert s3.list_multipart_uploads(Bucket="out").get("Uploads", []) == []
    # The error zip goes the same way (the seed's name and members).
    ws.log_path.write_text("shepard: something\n")
    key = upload_error_zip(
        Worker(), ws, bucket="out", job_id=JOB, start_time=START, reason="boom", log=print
    )
    members = _contents(s3.get_object(Bucket="out", Key=key)["Body"].read())
    assert key == f"error@{JOB}_{START}.zip"
    assert members["reason.txt"] == b"boom\n" and members["output_root/sub/a.txt"] == b"A" * 1000
    assert members["worker.log"] == b"shepard: something\n"


def test_failures_abort_the_upload_and_are_worded(aws: InProcessEmulator, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="out")
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(64 * 1024))

    def entries() -> Any:
        yield source, "data.bin"
        raise OSError("the disk went away")

    with (
        pytest.raises(OSError, match="disk went away"),
        multipart_upload(s3, "out", "broken.zip", part_size=5 * MIB) as stream,
    ):
        write_zip(stream, entries())  # type: ignore[arg-type]
    assert s3.list_objects_v2(Bucket="out").get("KeyCount") == 0
    assert s3.list_multipart_uploads(Bucket="out").get("Uploads", []) == []
    ws = _workspace(tmp_path)
    (ws.root.output / "a.txt").write_text("A")
    with pytest.raises(BackendError, match=r"^while uploading s3://no-such-bucket/result@"):
        upload_results(
            Worker(), ws, bucket="no-such-bucket", job_id=JOB, start_time=START, tag=None, log=print
        )


class Parts:
    """A synthetic S3: keeps each part (any size) and the completed object in memory."""

    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}
        self.object = b""
        self.largest_buffer = 0

    def create_multipart_upload(self, **_: Any) -> dict[str, str]:
        return {"UploadId": "synthetic"}

    def upload_part(self, *, PartNumber: int, Body: bytes, **_: Any) -> dict[str, str]:
        self.parts[PartNumber] = Body
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, *, MultipartUpload: dict[str, Any], **_: Any) -> None:
        numbers = [p["PartNumber"] for p in MultipartUpload["Parts"]]
        assert numbers == sorted(self.parts) == list(range(1, len(numbers) + 1))
        self.object = b"".join(self.parts[n] for n in numbers)

    def abort_multipart_upload(self, **_: Any) -> None:  # pragma: no cover - not reached
        raise AssertionError("aborted")


def test_zip64_and_data_descriptors_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a zip past 4 GiB holds, shown on a few KiB: zipfile's zip64 threshold lowered to
    1 KiB, so entries, offsets and the end record take their zip64 forms, through 1 KiB parts."""
    files = {f"f{i}.bin": bytes([i]) * 3000 + os.urandom(2000) for i in range(5)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    s3 = Parts()
    with monkeypatch.context() as patch:
        patch.setattr(zipfile, "ZIP64_LIMIT", 1024)
        writer = MultipartWriter(s3, "b", "k", part_size=1024)
        write_zip(writer, iter((tmp_path / name, name) for name in files))
        writer.close()
    assert len(s3.parts) > 10
    data = s3.object
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data  # zip64 end record and locator
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        assert all(info.flag_bits & 0x08 for info in infos)  # sizes after the data: a stream
        assert {info.filename: zf.read(info) for info in infos} == files


def test_part_size_grows_to_fit_10000_parts() -> None:
    assert part_size_for(1000) == 16 * MIB
    assert part_size_for(30 * 1024 * MIB) == 16 * MIB  # 30 GiB: 1,920 parts of 16 MiB
    size = part_size_for(500 * 1024 * MIB)
    assert size % MIB == 0 and 500 * 1024 * MIB * 1.1 / size < 10_000

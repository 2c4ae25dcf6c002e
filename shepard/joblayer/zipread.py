"""Read ``inputs.json`` out of a zip in S3 without downloading the zip.

Three ranged GETs at most, whatever the zip's size:

1. a suffix GET of the last 64 KiB (plus the fixed end records): the end of central directory
   record, the zip64 locator and record, and usually the whole central directory;
2. the central directory, when it did not fit in the first read;
3. the local header and the compressed bytes of ``inputs.json`` (skipped when they were in the
   first read, as they are for small zips).

Every later GET carries ``IfMatch`` with the first answer's ETag, so all reads see one object.
Stored and deflated entries and zip64 are read; anything else becomes a :class:`JobRejected` whose
reason says what is wrong with the zip and what to do. ``inputs.json`` is looked for at the root of
the zip, or inside the single top folder that zipping a folder produces (``__MACOSX/`` ignored).
The seed's one mention of ``inputs.txt`` is a slip of its docs: only ``inputs.json`` is read, and a
zip holding ``inputs.txt`` instead is told to rename it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from shepard.joblayer.variables import JobRejected

INPUTS_NAME = "inputs.json"
MAX_INPUTS_BYTES = 1024 * 1024
MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024
_EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory, 22 bytes
_ZIP64_LOCATOR = struct.Struct("<4sIQI")  # 20 bytes
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # 46 bytes
_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
TAIL_BYTES = 64 * 1024 + _EOCD.size + _ZIP64_LOCATOR.size + _ZIP64_EOCD.size
LOCAL_SLACK = 4096  # a local extra field may be longer than the central one (Info-ZIP's is)


@dataclass(frozen=True)
class InputsRead:
    """``inputs.json`` as read from a zip, and what reading it cost."""

    data: bytes
    entry: str  # the entry's name in the zip
    zip_size: int
    requests: int
    bytes_fetched: int
    etag: str


@dataclass(frozen=True)
class _Entry:
    name: str
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int
    extra_len: int


class _Reader:
    def __init__(self, client: Any, bucket: str, key: str, version_id: str | None) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.version_id = version_id
        self.requests = 0
        self.bytes_fetched = 0
        self.etag = ""
        self.size = 0

    def get(self, byte_range: str) -> bytes:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key, "Range": byte_range}
        if self.version_id:
            params["VersionId"] = self.version_id
        if self.etag:
            params["IfMatch"] = self.etag
        self.requests += 1
        try:
            answer = self.client.get_object(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "NoSuchVersion", "404"):
                raise JobRejected(
                    f"s3://{self.bucket}/{self.key} was deleted before it could be read; "
                    "upload it again"
                ) from None
            if code in ("PreconditionFailed", "412"):
                raise JobRejected(
                    f"s3://{self.bucket}/{self.key} was replaced while it was being read; the "
                    "new upload makes its own job"
                ) from None
            if code in ("InvalidRange", "416"):
                raise JobRejected(
                    f"s3://{self.bucket}/{self.key} is empty, not a zip; upload a zip of a folder "
                    "that holds inputs.json"
                ) from None
            raise
        body: bytes = answer["Body"].read()
        self.bytes_fetched += len(body)
        if self.requests == 1:
            self.etag = self.etag or str(answer.get("ETag", ""))
            content_range = str(answer.get("ContentRange") or "")
            if "/" in content_range:
                self.size = int(content_range.rsplit("/", 1)[1])
            else:
                self.size = int(answer.get("ContentLength", len(body)))
        return body


def _not_a_zip(reader: _Reader, cause: str) -> JobRejected:
    return JobRejected(
        f"s3://{reader.bucket}/{reader.key} is not a readable zip ({cause}); upload a zip of a "
        "folder that holds inputs.json (shepard-tf batch FOLDER makes one)"
    )


def _find_eocd(tail: bytes) -> int:
    """Position of the end of central directory record in ``tail``, or -1."""
    position = tail.rfind(b"PK\x05\x06")
    while position >= 0:
        if position + _EOCD.size <= len(tail):
            comment_length = struct.unpack_from("<H", tail, position + 20)[0]
            if position + _EOCD.size + comment_length == len(tail):
                return position
        position = tail.rfind(b"PK\x05\x06", 0, position)
    return -1


def _zip64_sizes(extra: bytes, entry: _Entry) -> _Entry:
    """Apply a zip64 extra field (0x0001) to the 0xFFFFFFFF fields of a central entry."""
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, position)
        body = extra[position + 4 : position + 4 + length]
        if tag == 0x0001:
            values = list(struct.unpack_from(f"<{len(body) // 8}Q", body))
            size, compressed, offset = entry.size, entry.compressed, entry.offset
            if size == 0xFFFFFFFF and values:
                size = values.pop(0)
            if compressed == 0xFFFFFFFF and values:
                compressed = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
            return _Entry(
                entry.name, entry.flags, entry.method, entry.crc, compressed, size, offset,
                entry.extra_len,
            )  # fmt: skip
        position += 4 + length
    return entry


def _central_entries(directory: bytes, count: int, reader: _Reader) -> list[_Entry]:
    entries: list[_Entry] = []
    position = 0
    for _ in range(count):
        if position + _CENTRAL.size > len(directory):
            raise _not_a_zip(reader, "its central directory is cut short")
        fields = _CENTRAL.unpack_from(directory, position)
        if fields[0] != b"PK\x01\x02":
            raise _not_a_zip(reader, "its central directory is damaged")
        flags, method, crc, compressed, size = fields[3], fields[4], fields[7], fields[8], fields[9]
        name_len, extra_len, comment_len, offset = fields[10], fields[11], fields[12], fields[16]
        start = position + _CENTRAL.size
        raw_name = directory[start : start + name_len]
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        entry = _Entry(name, flags, method, crc, compressed, size, offset, extra_len)
        if 0xFFFFFFFF in (compressed, size, offset):
            extra = directory[start + name_len : start + name_len + extra_len]
            entry = _zip64_sizes(extra, entry)
        entries.append(entry)
        position = start + name_len + extra_len + comment_len
    return entries


def _choose(entries: list[_Entry], reader: _Reader) -> _Entry:
    names = [e.name for e in entries]
    roots = [e for e in entries if e.name == INPUTS_NAME]
    if not roots:
        tops = {n.split("/", 1)[0] for n in names if not n.startswith("__MACOSX/")}
        if len(tops) == 1:
            (top,) = tops
            roots = [e for e in entries if e.name == f"{top}/{INPUTS_NAME}"]
    if len(roots) > 1:
        raise JobRejected(
            f"s3://{reader.bucket}/{reader.key} holds {INPUTS_NAME} {len(roots)} times; "
            "zip a folder with exactly one"
        )
    if roots:
        return roots[0]
    near = [n for n in names if n.rsplit("/", 1)[-1].lower() in ("inputs.json", "inputs.txt")]
    hint = (
        f" (found {near[0]!r}: rename it to {INPUTS_NAME}, at the top of the folder)"
        if near
        else ""
    )
    raise JobRejected(
        f"s3://{reader.bucket}/{reader.key} has no {INPUTS_NAME} at its root or in its single top "
        f"folder{hint}; add an {INPUTS_NAME} holding the job's variables as a JSON object"
    )


def _check_entry(entry: _Entry, reader: _Reader, cap: int) -> None:
    where = f"{entry.name} in s3://{reader.bucket}/{reader.key}"
    if entry.flags & 0x1:
        raise JobRejected(f"{where} is encrypted; zip it without a password")
    if entry.method not in (0, 8):
        raise JobRejected(
            f"{where} is compressed with method {entry.method}; only stored and deflated "
            "entries are read: zip it with the default compression"
        )
    if entry.size > cap:
        raise JobRejected(
            f"{where} is {entry.size} bytes; at most {cap} bytes of variables are read: put "
            "large data in other files of the zip"
        )


def _inflate(entry: _Entry, data: bytes, reader: _Reader, cap: int) -> bytes:
    if entry.method == 0:
        out = data[: entry.size]
    else:
        inflater = zlib.decompressobj(-15)
        try:
            out = inflater.decompress(data, cap + 1)
        except zlib.error:
            raise _not_a_zip(reader, f"{entry.name} does not inflate") from None
        if len(out) > cap:
            raise JobRejected(
                f"{entry.name} in s3://{reader.bucket}/{reader.key} inflates past {cap} bytes; "
                "keep the variables small"
            )
    if zlib.crc32(out) != entry.crc or len(out) != entry.size:
        raise _not_a_zip(reader, f"{entry.name} fails its CRC check")
    return out


def read_inputs_json(
    client: Any,
    bucket: str,
    key: str,
    *,
    version_id: str | None = None,
    etag: str | None = None,
    max_bytes: int = MAX_INPUTS_BYTES,
) -> InputsRead:
    """Read ``inputs.json`` from ``s3://bucket/key`` (a zip) with at most three ranged GETs.

    ``etag`` (from the S3 event) pins the object the event was about: if the key was overwritten
    since, the read is refused rather than running the newer upload's job twice.
    """
    reader = _Reader(client, bucket, key, version_id)
    if etag and not version_id:
        reader.etag = etag if etag.startswith('"') else f'"{etag}"'
    tail = reader.get(f"bytes=-{TAIL_BYTES}")
    size = reader.size
    if size == 0:
        raise JobRejected(
            f"s3://{bucket}/{key} is empty, not a zip; upload a zip of a folder that holds "
            f"{INPUTS_NAME}"
        )
    tail_start = size - len(tail)
    eocd = _find_eocd(tail)
    if eocd < 0:
        raise _not_a_zip(reader, "no end of central directory record")
    _, disk, cd_disk, _, count, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, eocd)
    records_start = tail_start + eocd  # where the end records begin, in the object
    locator = eocd - _ZIP64_LOCATOR.size
    if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        _, _, z64_offset, _ = _ZIP64_LOCATOR.unpack_from(tail, locator)
        record = locator - _ZIP64_EOCD.size
        if record < 0 or tail[record : record + 4] != b"PK\x06\x06":
            raise _not_a_zip(reader, "its zip64 end record is missing")
        fields = _ZIP64_EOCD.unpack_from(tail, record)
        disk, cd_disk, count, cd_size, cd_offset = (
            fields[4], fields[5], fields[7], fields[8], fields[9]
        )  # fmt: skip
        records_start = tail_start + record
        del z64_offset  # the record is found by position; prepended data shifts the offset
    elif 0xFFFF in (count,) or 0xFFFFFFFF in (cd_size, cd_offset):
        raise _not_a_zip(reader, "it needs zip64 records it does not have")
    if disk or cd_disk:
        raise _not_a_zip(reader, "it is split over several disks")
    # Data prepended to the zip (a self-extractor stub) shifts every offset by the same amount.
    shift = records_start - cd_size - cd_offset
    cd_start = cd_offset + shift
    if cd_start < 0 or shift < 0:
        raise _not_a_zip(reader, "its central directory offset is past its end")
    if cd_size > MAX_CENTRAL_DIRECTORY:
        raise JobRejected(
            f"s3://{bucket}/{key} lists {count} files in a {cd_size // (1024 * 1024)} MiB "
            f"directory; at most {MAX_CENTRAL_DIRECTORY // (1024 * 1024)} MiB is read: zip the "
            "many small files into one inner archive"
        )
    if cd_start >= tail_start:
        directory = tail[cd_start - tail_start : cd_start - tail_start + cd_size]
    else:
        directory = reader.get(f"bytes={cd_start}-{cd_start + cd_size - 1}")
    entry = _choose(_central_entries(directory, count, reader), reader)
    _check_entry(entry, reader, max_bytes)
    local_start = entry.offset + shift
    wanted_end = min(
        size,
        local_start + _LOCAL.size + len(entry.name.encode()) + entry.extra_len + LOCAL_SLACK
        + entry.compressed,
    )  # fmt: skip
    if local_start >= tail_start and wanted_end <= size:
        chunk = tail[local_start - tail_start : wanted_end - tail_start]
    else:
        chunk = reader.get(f"bytes={local_start}-{wanted_end - 1}")
    if len(chunk) < _LOCAL.size or chunk[:4] != b"PK\x03\x04":
        raise _not_a_zip(reader, f"the local header of {entry.name} is missing")
    local = _LOCAL.unpack_from(chunk, 0)
    data_start = _LOCAL.size + local[9] + local[10]
    data = chunk[data_start : data_start + entry.compressed]
    if len(data) < entry.compressed:  # a local extra field longer than any zipper writes
        more = reader.get(
            f"bytes={local_start + data_start}-{local_start + data_start + entry.compressed - 1}"
        )
        data = more
    return InputsRead(
        data=_inflate(entry, data, reader, max_bytes),
        entry=entry.name,
        zip_size=size,
        requests=reader.requests,
        bytes_fetched=reader.bytes_fetched,
        etag=reader.etag,
    )

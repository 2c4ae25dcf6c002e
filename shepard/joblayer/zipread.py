"""Read ``inputs.json`` out of a zip in S3 without downloading the zip.

:mod:`zipfile` reads the zip through :class:`RangedObject`, a seekable file over ranged GETs that
keeps every byte it fetched, so that reading ``inputs.json`` costs three GETs at most, whatever the
zip's size (zip64 included):

1. the last 64 KiB (a suffix range, as the size is not known yet): the end records and, for most
   zips, the whole central directory; when the caller knows the object's size (the S3 event
   carries it) and it is under 1 MiB, the whole object instead;
2. the part of the central directory that the first read did not hold, if any;
3. the local header and the compressed bytes of ``inputs.json``, fetched in one piece before
   zipfile reads them in small ones (nothing, when they were in what was read already).

Every later GET carries ``IfMatch`` with the first answer's ETag, so all reads see one object.
Stored and deflated entries are read; anything else becomes a :class:`JobRejected` whose reason
says what is wrong with the zip and what to do. ``inputs.json`` is looked for at the root of the
zip, or inside the single top folder that zipping a folder produces (``__MACOSX/`` ignored). The
seed's one mention of ``inputs.txt`` is a slip of its docs: only ``inputs.json`` is read, and a
zip holding ``inputs.txt`` instead is told to rename it.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from shepard.joblayer.variables import JobRejected

INPUTS_NAME = "inputs.json"
MAX_INPUTS_BYTES = 1024 * 1024
MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024
# The end of central directory record (22 bytes), a comment of up to 64 KiB before it, and the
# zip64 locator (20) and record (56): everything zipfile looks at first.
TAIL_BYTES = 64 * 1024 + 22 + 20 + 56
WHOLE_BELOW = 1024 * 1024  # a zip this small (when its size is known) is read in one GET
READ_AHEAD = 16 * 1024  # the least a GET fetches for a read that the cache cannot serve
LOCAL_SLACK = 4096  # a local extra field may be longer than the central one (Info-ZIP's is)
_LOCAL_HEADER = 30


@dataclass(frozen=True)
class InputsRead:
    """``inputs.json`` as read from a zip, and what reading it cost."""

    data: bytes
    entry: str  # the entry's name in the zip
    zip_size: int
    requests: int
    bytes_fetched: int
    etag: str
    metadata: Mapping[str, str] = field(default_factory=dict)  # the object's user metadata


class RangedObject(io.RawIOBase):
    """An S3 object as a read-only seekable file: reads the cache cannot serve become ranged
    GETs (at least ``READ_AHEAD`` bytes, never one larger than ``MAX_CENTRAL_DIRECTORY``), and
    every fetched byte is kept."""

    def __init__(
        self, client: Any, bucket: str, key: str, *, version_id: str | None, etag: str | None
    ) -> None:
        super().__init__()
        self.client = client
        self.bucket = bucket
        self.key = key
        self.version_id = version_id
        self.etag = etag or ""
        self.requests = 0
        self.bytes_fetched = 0
        self.size = 0
        self.metadata: dict[str, str] = {}
        self._position = 0
        self._segments: list[tuple[int, bytes]] = []  # (start, bytes), sorted, disjoint

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    # -- S3 ---------------------------------------------------------------------------------

    def _get(self, byte_range: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if byte_range:
            params["Range"] = byte_range
        if self.version_id:
            params["VersionId"] = self.version_id
        elif self.etag:
            params["IfMatch"] = self.etag
        self.requests += 1
        try:
            answer: dict[str, Any] = self.client.get_object(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "NoSuchVersion", "404"):
                raise JobRejected(
                    f"{self.where} was deleted before it could be read; upload it again"
                ) from None
            if code in ("PreconditionFailed", "412"):
                raise JobRejected(
                    f"{self.where} was replaced while it was being read; the new upload makes "
                    "its own job"
                ) from None
            if code in ("InvalidRange", "416"):
                raise JobRejected(
                    f"{self.where} is empty, not a zip; upload a zip of a folder that holds "
                    f"{INPUTS_NAME}"
                ) from None
            raise
        return answer

    def open(self, size_hint: int | None) -> None:
        """The first GET: the whole object when ``size_hint`` says it is small, else its tail."""
        whole = size_hint is not None and 0 <= size_hint < WHOLE_BELOW
        answer = self._get(None if whole else f"bytes=-{TAIL_BYTES}")
        body: bytes = answer["Body"].read()
        self.bytes_fetched += len(body)
        self.etag = self.etag or str(answer.get("ETag", ""))
        self.metadata = {str(k).lower(): str(v) for k, v in (answer.get("Metadata") or {}).items()}
        content_range = str(answer.get("ContentRange") or "")
        if "/" in content_range:
            self.size = int(content_range.rsplit("/", 1)[1])
        else:
            self.size = int(answer.get("ContentLength", len(body)))
        if body:
            self._segments = [(self.size - len(body), body)]

    def _fetch(self, start: int, end: int) -> None:
        if end - start > MAX_CENTRAL_DIRECTORY:
            raise JobRejected(
                f"{self.where} has a {(end - start) // (1024 * 1024)} MiB central directory; at "
                f"most {MAX_CENTRAL_DIRECTORY // (1024 * 1024)} MiB is read: zip the many small "
                "files into one inner archive"
            )
        answer = self._get(f"bytes={start}-{end - 1}")
        body: bytes = answer["Body"].read()
        self.bytes_fetched += len(body)
        if len(body) != end - start:
            raise JobRejected(f"{self.where} changed size while it was being read; upload it again")
        self._segments.append((start, body))
        self._segments.sort(key=lambda segment: segment[0])

    def prefetch(self, start: int, end: int, *, ahead: int = 0) -> None:
        """Make sure ``[start, end)`` is held, with one GET per gap (one in practice) of at
        least ``ahead`` bytes."""
        start, end = max(0, start), min(end, self.size)
        position = start
        while position < end:
            held = next((s for s in self._segments if s[0] <= position < s[0] + len(s[1])), None)
            if held is not None:
                position = held[0] + len(held[1])
                continue
            following = [s[0] for s in self._segments if s[0] > position]
            stop = min([max(end, position + ahead), self.size, *following])
            self._fetch(position, stop)
            position = stop

    def _held(self, start: int, end: int) -> bytes:
        parts = []
        for first, data in self._segments:
            low, high = max(start, first), min(end, first + len(data))
            if low < high:
                parts.append(data[low - first : high - first])
        return b"".join(parts)

    # -- io.RawIOBase -----------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(f"seek to {base + offset}, before the start of {self.where}")
        self._position = base + offset
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._position + size)
        if end <= self._position:
            return b""
        self.prefetch(self._position, end, ahead=READ_AHEAD)
        data = self._held(self._position, end)
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _not_a_zip(source: RangedObject, cause: str) -> JobRejected:
    return JobRejected(
        f"{source.where} is not a readable zip ({cause}); upload a zip of a folder that holds "
        f"{INPUTS_NAME} (shepard-tf batch FOLDER makes one)"
    )


def _spans_disks(tail: bytes) -> bool:
    """Whether the end record names another disk (zipfile checks only the zip64 locator's)."""
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 8 > len(tail):
        return False
    disk, directory_disk = struct.unpack_from("<HH", tail, at + 4)
    return (disk, directory_disk) not in ((0, 0), (0xFFFF, 0xFFFF))


def _choose(entries: list[zipfile.ZipInfo], source: RangedObject) -> zipfile.ZipInfo:
    names = [e.filename for e in entries]
    roots = [e for e in entries if e.filename == INPUTS_NAME]
    if not roots:
        tops = {n.split("/", 1)[0] for n in names if not n.startswith("__MACOSX/")}
        if len(tops) == 1:
            (top,) = tops
            roots = [e for e in entries if e.filename == f"{top}/{INPUTS_NAME}"]
    if len(roots) > 1:
        raise JobRejected(
            f"{source.where} holds {INPUTS_NAME} {len(roots)} times; zip a folder with exactly one"
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
        f"{source.where} has no {INPUTS_NAME} at its root or in its single top folder{hint}; "
        f"add an {INPUTS_NAME} holding the job's variables as a JSON object"
    )


def _check_entry(entry: zipfile.ZipInfo, source: RangedObject, cap: int) -> None:
    where = f"{entry.filename} in {source.where}"
    if entry.flag_bits & 0x1:
        raise JobRejected(f"{where} is encrypted; zip it without a password")
    if entry.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise JobRejected(
            f"{where} is compressed with method {entry.compress_type}; only stored and deflated "
            "entries are read: zip it with the default compression"
        )
    if entry.file_size > cap:
        raise JobRejected(
            f"{where} is {entry.file_size} bytes; at most {cap} bytes of variables are read: put "
            "large data in other files of the zip"
        )
    # Deflate adds a few bytes per 16 KiB block at worst: a larger claim is a damaged entry
    # (and would make the entry's GET as large as the claim).
    if entry.compress_size > entry.file_size + entry.file_size // 64 + 1024:
        raise _not_a_zip(
            source,
            f"{entry.filename} claims {entry.compress_size} compressed bytes for "
            f"{entry.file_size} bytes",
        )


def read_inputs_json(
    client: Any,
    bucket: str,
    key: str,
    *,
    version_id: str | None = None,
    etag: str | None = None,
    max_bytes: int = MAX_INPUTS_BYTES,
    size: int | None = None,
) -> InputsRead:
    """Read ``inputs.json`` from ``s3://bucket/key`` (a zip) with at most three ranged GETs.

    ``etag`` (from the S3 event) pins the object the event was about: if the key was overwritten
    since, the read is refused rather than running the newer upload's job twice. ``size`` (also
    from the event) lets a zip under 1 MiB be read in one GET.
    """
    pinned = None if version_id or not etag else (etag if etag.startswith('"') else f'"{etag}"')
    source = RangedObject(client, bucket, key, version_id=version_id, etag=pinned)
    source.open(size)
    if source.size == 0:
        raise JobRejected(
            f"{source.where} is empty, not a zip; upload a zip of a folder that holds {INPUTS_NAME}"
        )
    entry_name = INPUTS_NAME
    try:
        with zipfile.ZipFile(source) as archive:
            tail_start = max(0, source.size - TAIL_BYTES)
            if _spans_disks(source._held(tail_start, source.size)):
                raise _not_a_zip(source, "it is split over several disks")
            entry = _choose(archive.infolist(), source)
            entry_name = entry.filename
            _check_entry(entry, source, max_bytes)
            # zipfile reads the local header, then the data in small pieces: fetch them at once.
            name_bytes = len(entry.orig_filename.encode("utf-8"))
            source.prefetch(
                entry.header_offset,
                entry.header_offset + _LOCAL_HEADER + name_bytes + len(entry.extra)
                + LOCAL_SLACK + entry.compress_size,
            )  # fmt: skip
            with archive.open(entry) as opened:
                data = opened.read(max_bytes + 1)
    except zipfile.BadZipFile as error:
        if "CRC" in str(error):
            raise _not_a_zip(source, f"{entry_name} fails its CRC check") from None
        raise _not_a_zip(source, str(error)) from None
    except (EOFError, zlib.error, struct.error, ValueError, OSError, NotImplementedError) as error:
        raise _not_a_zip(source, str(error) or type(error).__name__) from None
    if len(data) > max_bytes:
        raise JobRejected(
            f"{entry_name} in {source.where} inflates past {max_bytes} bytes; keep the variables "
            "small"
        )
    return InputsRead(
        data=data,
        entry=entry_name,
        zip_size=source.size,
        requests=source.requests,
        bytes_fetched=source.bytes_fetched,
        etag=source.etag,
        metadata=source.metadata,
    )

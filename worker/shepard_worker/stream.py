"""Zips written straight into an S3 multipart upload: no temporary copy on the sheep's disk.

``MultipartWriter`` is a non-seekable binary stream. ``zipfile`` writing to it uses data
descriptors (sizes and CRC after each entry) and zip64 records where sizes or offsets need them,
as it does on any stream. The writer keeps one part in memory; when the part is full it is handed
to a background thread for UploadPart while the next one fills, with at most ``in_flight`` parts
waiting, so memory stays within ``(in_flight + 1) * part_size`` whatever the output's size.
``close()`` uploads the last part and completes the upload; any failure aborts it
(AbortMultipartUpload), so no half object and no stored parts are left behind. The multipart
upload is only started once a first part is full: a zip smaller than one part is one PutObject.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB  # S3's smallest part but the last
DEFAULT_PART_SIZE = 16 * MIB
MAX_PARTS = 10_000  # S3's most parts in one upload


def part_size_for(expected_bytes: int, *, smallest: int = DEFAULT_PART_SIZE) -> int:
    """A part size that fits ``expected_bytes`` (with room to spare) in S3's 10,000 parts."""
    needed = -(-int(expected_bytes * 1.1) // (MAX_PARTS - 100))
    return max(smallest, -(-needed // MIB) * MIB)


class MultipartWriter(io.RawIOBase):
    """A write-only stream whose bytes become the object ``s3://bucket/key``."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        in_flight: int = 2,
        content_type: str = "application/zip",
    ) -> None:
        super().__init__()
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.part_size = part_size
        self._buffer = bytearray()
        self._position = 0
        self._parts: list[Future[dict[str, Any]]] = []
        self._slots = threading.BoundedSemaphore(in_flight)
        self._pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="upload-part")
        self.content_type = content_type
        self.upload_id: str | None = None  # started with the first full part
        self.completed = False
        self.aborted = False

    # -- the stream --------------------------------------------------------------------------

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._position

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed upload stream")
        view = memoryview(data).cast("B")
        self._buffer += view
        self._position += len(view)
        while len(self._buffer) >= self.part_size:
            chunk = bytes(self._buffer[: self.part_size])
            del self._buffer[: self.part_size]
            self._send(chunk)
        return len(view)

    def _send(self, chunk: bytes) -> None:
        self._check_failed()
        if self.upload_id is None:
            answer = self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self.content_type
            )
            self.upload_id = str(answer["UploadId"])
        self._slots.acquire()  # at most in_flight parts wait for S3
        number = len(self._parts) + 1
        self._parts.append(self._pool.submit(self._upload_part, number, chunk))

    def _upload_part(self, number: int, chunk: bytes) -> dict[str, Any]:
        try:
            answer = self.s3.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=chunk,
            )
            return {"PartNumber": number, "ETag": answer["ETag"]}
        finally:
            self._slots.release()

    def _check_failed(self) -> None:
        for part in self._parts:
            if part.done() and part.exception() is not None:
                raise part.exception()  # type: ignore[misc]

    # -- the end -----------------------------------------------------------------------------

    def close(self) -> None:
        """Upload the last part and complete the upload (abort it if that fails)."""
        if self.closed:
            return
        try:
            if self.upload_id is None:  # smaller than one part: one PutObject
                self.s3.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=bytes(self._buffer),
                    ContentType=self.content_type,
                )
                self._buffer = bytearray()
                self.completed = True
                return
            if self._buffer:
                self._send(bytes(self._buffer))  # the last part may be small
                self._buffer = bytearray()
            parts = [part.result() for part in self._parts]
            self.s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            )
            self.completed = True
        except BaseException:
            self.abort()
            raise
        finally:
            self._pool.shutdown(wait=True)
            super().close()

    def abort(self) -> None:
        """Drop the upload and its stored parts (a failed zip leaves no object behind)."""
        if self.completed or self.aborted:
            return
        self.aborted = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._buffer = bytearray()
        if self.upload_id is not None:
            self.s3.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )
        super().close()


@contextmanager
def multipart_upload(
    s3: Any, bucket: str, key: str, *, part_size: int = DEFAULT_PART_SIZE, in_flight: int = 2
) -> Iterator[MultipartWriter]:
    """A MultipartWriter completed when the block ends, aborted when it raises."""
    writer = MultipartWriter(s3, bucket, key, part_size=part_size, in_flight=in_flight)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
    writer.close()

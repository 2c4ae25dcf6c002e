"""Packing what a job leaves: result zips to the outputs bucket, the error zip to the errors bucket.

Zips are written straight into an S3 multipart upload (``stream.MultipartWriter``): no temporary
copy, so a sheep needs no disk room beyond the outputs themselves, and memory stays within a few
parts. ``zipfile`` on a stream writes data descriptors and zip64 records where needed, so outputs
past 4 GiB or 65,535 files work; a failure aborts the upload and leaves no object.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Protocol, cast

from botocore.exceptions import BotoCoreError, ClientError

from shepard.errors import BackendError
from shepard.joblayer import clients
from shepard.joblayer.records import result_zip_name
from shepard.joblayer.tags import MAX_TAG_LENGTH, tag_in_name

from .stream import multipart_upload, part_size_for
from .workspace import Workspace

MAX_TAG = MAX_TAG_LENGTH  # the TAG rule: shepard/joblayer/tags.py


class Uploader(Protocol):
    """What the results are sent through: the worker's ``Aws`` (its S3 client)."""

    def client(self, service: str) -> Any: ...


@contextmanager
def _zip_upload(uploader: Uploader, bucket: str, key: str, size: int) -> Iterator[IO[bytes]]:
    """A stream into ``s3://bucket/key`` (completed at the end, aborted on error); a boto failure
    is worded ``while uploading ...: <cause>. <fix>.``"""
    doing = f"uploading s3://{bucket}/{key}"
    fix = "Check that the bucket exists and that the job role may write to it"
    try:
        with multipart_upload(
            uploader.client("s3"), bucket, key, part_size=part_size_for(size)
        ) as stream:
            yield cast(IO[bytes], stream)  # zipfile writes to any binary stream
    except (ClientError, BotoCoreError) as error:
        explained = clients.explain(error, doing, fix)
        raise BackendError(explained.message if explained else str(error)) from error


def _size(entries: list[tuple[Path, str]]) -> int:
    return sum(path.stat().st_size for path, name in entries if not name.endswith("/"))


def safe_tag(tag: str | None) -> str | None:
    """The TAG as it goes into an object name: no ``/`` or other character that could escape it.

    Runs of anything but letters, digits, ``.``, ``_`` and ``-`` become one ``_``, and leading
    dots go, so ``../x`` cannot become a folder and a name cannot hide. An empty result is no tag.
    The one TAG rule of the job layer, ``retrieve --tag`` and the worker (joblayer/tags.py).
    """
    if tag is None:
        return None
    return tag_in_name(tag) or None


def error_zip_name(job_id: str, start_time: str) -> str:
    return f"error@{job_id}_{start_time}.zip"


def _files(folder: Path, log: Callable[[str], None]) -> Iterator[tuple[Path, str]]:
    """Regular files and folders under ``folder`` with their zip names; links are left out."""
    for current, dirs, files in os.walk(folder, followlinks=False):
        base = Path(current)
        for name in sorted(dirs):
            path = base / name
            if path.is_symlink():
                log(f"shepard: not zipping {path}: a symbolic link")
        dirs[:] = sorted(d for d in dirs if not (base / d).is_symlink())
        for name in sorted(files):
            path = base / name
            if path.is_symlink() or not path.is_file():
                log(f"shepard: not zipping {path}: not a regular file")
                continue
            yield path, path.relative_to(folder).as_posix()
        for name in dirs:
            path = base / name
            if not any(path.iterdir()):
                yield path, path.relative_to(folder).as_posix() + "/"


def has_content(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def write_zip(target: Path | IO[bytes], entries: Iterator[tuple[Path, str]]) -> int:
    """Write ``entries`` (file, name in zip) to ``target`` (a path or a stream); return how many
    were written."""
    count = 0
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for path, name in entries:
            if name.endswith("/"):
                zf.writestr(zipfile.ZipInfo(name), b"")
            else:
                # ZipFile.write streams the file in blocks and sets zip64 from its size.
                zf.write(path, name)
            count += 1
    return count


def upload_results(
    uploader: Uploader,
    workspace: Workspace,
    *,
    bucket: str,
    job_id: str,
    start_time: str,
    tag: str | None,
    log: Callable[[str], None],
) -> list[str]:
    """Zip every non-empty output folder to the outputs bucket; return the keys written."""
    keys: list[str] = []
    for folders in workspace.folders:
        if not has_content(folders.output):
            log(f"shepard: {folders.location} output folder is empty: no zip")
            continue
        key = result_zip_name(job_id, start_time, folders.location, safe_tag(tag))
        entries = list(_files(folders.output, log))
        size = _size(entries)
        log(f"shepard: zipping {len(entries)} entries ({size} bytes) into s3://{bucket}/{key}")
        with _zip_upload(uploader, bucket, key, size) as stream:
            write_zip(stream, iter(entries))
        keys.append(key)
    return keys


def upload_error_zip(
    uploader: Uploader,
    workspace: Workspace,
    *,
    bucket: str,
    job_id: str,
    start_time: str,
    reason: str,
    log: Callable[[str], None],
) -> str:
    """Zip the payload's output folders, the worker's log and ``reason.txt`` to the errors
    bucket; return the key written."""
    key = error_zip_name(job_id, start_time)

    def entries() -> Iterator[tuple[Path, str]]:
        for folders in workspace.folders:
            if folders.output.is_dir():
                for path, name in _files(folders.output, log):
                    yield path, f"output_{folders.location}/{name}"
        if workspace.log_path.is_file():
            yield workspace.log_path, "worker.log"
        reason_path = workspace.scratch / "reason.txt"
        reason_path.write_text(reason + "\n", encoding="utf-8")
        yield reason_path, "reason.txt"

    listed = list(entries())
    log(f"shepard: uploading the logs as s3://{bucket}/{key}")
    with _zip_upload(uploader, bucket, key, _size(listed)) as stream:
        write_zip(stream, iter(listed))
    return key

"""Packing what a job leaves: result zips to the outputs bucket, the error zip to the errors bucket.

Zips are written to a temporary file in the job's scratch folder (never held in memory) and then
uploaded in multipart parts; zip64 is on, so outputs past 4 GiB or 65,535 files work.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from shepard.joblayer.records import result_zip_name
from shepard.joblayer.tags import MAX_TAG_LENGTH, tag_in_name

from .workspace import Workspace

MAX_TAG = MAX_TAG_LENGTH  # the TAG rule: shepard/joblayer/tags.py


class Uploader(Protocol):
    def upload(self, bucket: str, path: Path, key: str) -> None: ...


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


def write_zip(target: Path, entries: Iterator[tuple[Path, str]]) -> int:
    """Write ``entries`` (file, name in zip) to ``target``; return how many were written."""
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
        with tempfile.TemporaryDirectory(dir=workspace.scratch) as tmp:
            archive = Path(tmp) / "result.zip"
            count = write_zip(archive, _files(folders.output, log))
            log(f"shepard: uploading {count} entries ({archive.stat().st_size} bytes) as {key}")
            uploader.upload(bucket, archive, key)
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

    with tempfile.TemporaryDirectory(dir=workspace.scratch) as tmp:
        archive = Path(tmp) / "error.zip"
        write_zip(archive, entries())
        log(f"shepard: uploading the logs as s3://{bucket}/{key}")
        uploader.upload(bucket, archive, key)
    return key

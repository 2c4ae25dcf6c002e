"""CHECKPOINT_DIR: a folder the payload may write at any time, kept across attempts.

The worker restores it from ``s3://<outputs bucket>/checkpoints/<job id>/`` before the payload
starts, uploads it when an interruption comes (a Spot notice, SIGTERM) and, when the flock asks,
every ``SHEPARD_CHECKPOINT_INTERVAL_MINUTES``; only the files that changed since the last upload
go (a manifest of size and modification time), through boto3's managed transfer (multipart for
large files). A finished job's checkpoint is removed. A payload that never writes the folder
costs one listing at the start and nothing else.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from shepard.errors import BackendError
from shepard.joblayer import calls, clients, contract

from .workspace import safe_destination

VARIABLE = "CHECKPOINT_DIR"
INTERVAL_MINUTES = contract.CHECKPOINT_INTERVAL_MINUTES
PREFIX = "checkpoints"

Stamp = tuple[int, int]  # (size, mtime in ns)


def prefix_of(job_id: str) -> str:
    return f"{PREFIX}/{job_id}/"


def interval_minutes(env: Mapping[str, str]) -> float:
    """How often to upload while the payload runs (0: only on an interruption)."""
    text = env.get(INTERVAL_MINUTES, "").strip()
    try:
        return max(float(text), 0.0) if text else 0.0
    except ValueError:
        return 0.0


@contextmanager
def _backend(doing: str) -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError, Boto3Error) as error:
        fix = "Check the outputs bucket and that the job role may read, write and list checkpoints/"
        explained = clients.explain(error, doing, fix)
        raise BackendError(explained.message if explained else f"while {doing}: {error}") from error


class Checkpoint:
    """One job's checkpoint folder and its copy in S3."""

    def __init__(
        self, s3: Any, bucket: str, job_id: str, folder: Path, log: Callable[[str], None]
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix_of(job_id)
        self.folder = folder
        self.log = log
        self.manifest: dict[str, Stamp] = {}  # relative name -> stamp at its last upload
        # Whether S3 may hold files of this job: unknown (None) until a restore has listed.
        self._stored: bool | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _remote(self) -> list[str]:
        with _backend(f"listing s3://{self.bucket}/{self.prefix}"):
            return [o.key for o in calls.list_objects(self.s3, self.bucket, self.prefix)]

    def restore(self, *, nothing_stored: bool = False) -> int:
        """Make the folder and fill it with the last attempt's checkpoint; how many files.

        ``nothing_stored``: the job's record shows no earlier attempt that could have saved one
        (its first claim, no reclaim): the folder is made and S3 is not listed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if nothing_stored:
            with self._lock:
                self._stored = False
            return 0
        count = 0
        with self._lock:
            for key in self._remote():
                name = key[len(self.prefix) :]
                if not name or name.endswith("/"):
                    continue
                target = safe_destination(self.folder, name, what="the checkpoint file")
                target.parent.mkdir(parents=True, exist_ok=True)
                with _backend(f"restoring s3://{self.bucket}/{key}"):
                    calls.download(self.s3, self.bucket, key, target)
                self.manifest[name] = _stamp(target)
                count += 1
            self._stored = count > 0
        if count:
            self.log(f"checkpoint: restored {count} file(s) into {self.folder}")
        return count

    def _files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        if not self.folder.is_dir():
            return found
        for directory, subdirs, names in os.walk(self.folder):  # symlinks are not followed
            base = Path(directory)
            subdirs[:] = [d for d in subdirs if not (base / d).is_symlink()]
            for name in names:
                path = base / name
                if path.is_symlink() or not path.is_file():
                    continue
                found[path.relative_to(self.folder).as_posix()] = path
        return found

    def upload(self, why: str) -> int:
        """Upload what changed since the last upload, remove what the payload removed; how
        many files went up. Safe to call from several threads (one upload at a time)."""
        with self._lock:
            files = self._files()
            sent = 0
            for name, path in sorted(files.items()):
                try:
                    stamp = _stamp(path)
                except FileNotFoundError:
                    continue  # removed while we looked
                if self.manifest.get(name) == stamp:
                    continue
                key = self.prefix + name
                with _backend(f"uploading the checkpoint file {name} to s3://{self.bucket}/{key}"):
                    calls.upload(self.s3, path, self.bucket, key)
                self.manifest[name] = stamp
                self._stored = True
                sent += 1
            gone = [self.prefix + name for name in self.manifest if name not in files]
            if gone:
                self._delete(gone)
                for name in [n for n in self.manifest if n not in files]:
                    del self.manifest[name]
        if sent or gone:
            self.log(f"checkpoint ({why}): {sent} file(s) uploaded, {len(gone)} removed")
        return sent

    def remove(self) -> None:
        """The job finished: its checkpoint is of no more use."""
        self.stop_periodic()
        with self._lock:
            if self._stored is False:
                return  # nothing was restored or written: no request to make
            keys = self._remote()
            if keys:
                self._delete(keys)
                self.log(f"checkpoint: removed s3://{self.bucket}/{self.prefix} ({len(keys)})")
            self.manifest.clear()

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            with _backend(f"removing checkpoint files under s3://{self.bucket}/{self.prefix}"):
                answer = self.s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise BackendError(
                    f"while removing checkpoint files under s3://{self.bucket}/{self.prefix}: "
                    f"{len(errors)} not removed ({first.get('Key')}: {first.get('Code')}). "
                    "Check that the job role may delete under checkpoints/."
                )

    def start_periodic(self, minutes: float) -> None:
        """Upload every ``minutes`` while the payload runs (none when 0)."""
        if minutes <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._every, args=(minutes * 60.0,), name="checkpoint", daemon=True
        )
        self._thread.start()

    def _every(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                self.upload("every interval")
            except (BackendError, OSError) as error:
                self.log(f"checkpoint: the periodic upload failed: {error}")

    def stop_periodic(self) -> None:
        self._stop.set()


def _stamp(path: Path) -> Stamp:
    stat = path.stat()
    return (stat.st_size, stat.st_mtime_ns)

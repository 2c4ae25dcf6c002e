"""The job's folders, and the name checks that keep fetched files inside them."""

from __future__ import annotations

import io
import os
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shepard.errors import BadInput

LOCATIONS = ("root", "efs", "lustre")


@dataclass(frozen=True)
class Folders:
    """The input and output folder of one job on one file system."""

    location: str  # "root" | "efs" | "lustre"
    job_dir: Path
    input: Path
    output: Path


@dataclass(frozen=True)
class Workspace:
    """Every folder of one job: ``<root>/<job id>/{input,output}`` on each file system.

    ``scratch`` (``<root>/<job id>/.worker``) holds the worker's own files (its log, zips being
    written); only ``input`` and ``output`` are mounted into the payload.
    """

    job_id: str
    folders: tuple[Folders, ...]
    scratch: Path  # <root>/<job id>/.worker
    read_only: dict[str, Path]  # "efs"/"lustre" -> the file system's root

    @property
    def root(self) -> Folders:
        return self.folders[0]

    def get(self, location: str) -> Folders | None:
        return next((f for f in self.folders if f.location == location), None)

    @property
    def log_path(self) -> Path:
        return self.scratch / "worker.log"

    @classmethod
    def plan(
        cls, job_id: str, work_root: Path, efs_root: Path | None, lustre_root: Path | None
    ) -> Workspace:
        roots: list[tuple[str, Path]] = [("root", work_root)]
        read_only: dict[str, Path] = {}
        if efs_root is not None:
            roots.append(("efs", efs_root))
            read_only["efs"] = efs_root
        if lustre_root is not None:
            roots.append(("lustre", lustre_root))
            read_only["lustre"] = lustre_root
        folders = tuple(
            Folders(loc, base / job_id, base / job_id / "input", base / job_id / "output")
            for loc, base in roots
        )
        return cls(job_id, folders, work_root / job_id / ".worker", read_only)

    def create(self) -> None:
        for folders in self.folders:
            # A leftover of an interrupted attempt is stale: the retry starts clean.
            _remove_tree(folders.job_dir)
            folders.input.mkdir(parents=True)
            folders.output.mkdir(parents=True)
        self.scratch.mkdir(mode=0o700)

    def clean(self) -> None:
        for folders in self.folders:
            _remove_tree(folders.job_dir)


def _remove_tree(path: Path) -> None:
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def checked_relative(name: str, *, what: str) -> PurePosixPath:
    """A relative path that stays inside its folder, or :class:`BadInput` naming the problem."""
    fix = "Rename it with a relative path inside the folder (no '..', no leading '/')"
    if not name or "\x00" in name or "\\" in name:
        raise BadInput(
            f'while checking {what} "{name}": the name is empty or has "\\" or NUL. {fix}.'
        )
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        raise BadInput(f'while checking {what} "{name}": the name is an absolute path. {fix}.')
    if any(part == ".." for part in path.parts):
        raise BadInput(
            f'while checking {what} "{name}": the name leaves its folder with "..". {fix}.'
        )
    if not path.parts or path.parts == (".",):
        raise BadInput(f'while checking {what} "{name}": the name names no file. {fix}.')
    return path


def safe_destination(folder: Path, name: str, *, what: str) -> Path:
    """Where ``name`` goes under ``folder``, refusing names (or symlinks) that lead out of it."""
    relative = checked_relative(name, what=what)
    destination = folder.joinpath(*relative.parts)
    base = folder.resolve()
    # resolve() follows symlinks already on disk: a link planted earlier cannot redirect us.
    resolved = destination.resolve()
    if resolved != base and base not in resolved.parents:
        raise BadInput(
            f'while checking {what} "{name}": it resolves to {resolved}, outside {folder} '
            "(through a symbolic link). Remove the link from the folder."
        )
    return destination


def check_file_name(name: str, *, what: str) -> str:
    """A plain file name (no folder part), as secrets are stored."""
    checked = checked_relative(name, what=what)
    if len(checked.parts) != 1 or name in (".", ".."):
        raise BadInput(
            f'while checking {what} "{name}": it is not a plain file name. '
            "Store the file under its name alone, without folders."
        )
    return name


def safe_unzip(archive: Path, folder: Path, *, what: str) -> list[Path]:
    """Extract ``archive`` into ``folder``: names checked, no symlinks, size checked first."""
    written: list[Path] = []
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            total = sum(m.file_size for m in members)
            free = shutil.disk_usage(folder).free
            if total > free:
                raise BadInput(
                    f"while unzipping {what}: it holds {total} bytes, more than the {free} bytes "
                    "free on the job's disk. Make the zip smaller or the job's disk larger."
                )
            for member in members:
                mode = member.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise BadInput(
                        f'while unzipping {what}: "{member.filename}" is a symbolic link. '
                        "Put the file itself in the zip, not a link."
                    )
                target = safe_destination(folder, member.filename, what=f"the entry in {what}")
                if target.resolve() == archive.resolve():
                    raise BadInput(
                        f'while unzipping {what}: the entry "{member.filename}" has the name of '
                        "the zip itself. Rename the entry."
                    )
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                # Check again now that the parents exist: no link may have appeared on the way.
                safe_destination(folder, member.filename, what=f"the entry in {what}")
                with zf.open(member) as source, _create(target) as sink:
                    shutil.copyfileobj(source, sink, 1024 * 1024)
                written.append(target)
    except zipfile.BadZipFile as error:
        raise BadInput(
            f"while unzipping {what}: it is not a valid zip ({error}). Upload a zip file."
        ) from None
    return written


def _create(path: Path, mode: int = 0o644) -> io.BufferedWriter:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    return open(os.open(path, flags, mode), "wb")


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file only its owner can read (mode 0600), never through a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as sink:
        sink.write(data)
    os.chmod(path, 0o600)

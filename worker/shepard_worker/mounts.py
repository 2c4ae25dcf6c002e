"""Whether the flock's shared file systems are really mounted where the job expects them.

The user data mounts EFS at ``/mnt/efs`` and FSx for Lustre at ``/mnt/fsx``; the job definition
bind-mounts those host folders into the worker's container. When the host's mount failed, the
bind mount still exists (Docker binds the empty folder on the root volume), so
``os.path.ismount`` is true inside the container whatever happened on the host. The file
system's *type* tells them apart: a bind mount of an EFS mount is ``nfs4``, of a Lustre mount
``lustre``, of a bare folder the root volume's ``xfs`` or ``ext4``. It is read from
``/proc/self/mountinfo``, which shows the type of the file system under each mount point.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL = re.compile(r"\\([0-7]{3})")

FilesystemType = Callable[[Path], str | None]


@dataclass(frozen=True)
class Expected:
    """What the flock mounts for one location, and how to recognise it."""

    name: str  # in the reason a user reads
    types: frozenset[str]


EXPECTED = {
    "efs": Expected("EFS", frozenset({"nfs4", "nfs", "efs"})),
    "lustre": Expected("FSx for Lustre", frozenset({"lustre"})),
}


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as \040, \011, \012, \134.
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_points(mountinfo: str) -> dict[str, str]:
    """Mount point -> file system type, from the text of ``/proc/<pid>/mountinfo``.

    A line is ``id parent major:minor root mount-point options [optional...] - type source
    super-options``; a later line for the same mount point (mounted over) wins.
    """
    found: dict[str, str] = {}
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if "-" not in fields[6:] or len(fields) < 5:
            continue
        separator = fields.index("-", 6)
        if separator + 1 >= len(fields):
            continue
        found[_unescape(fields[4])] = fields[separator + 1]
    return found


def filesystem_type(path: Path, mountinfo: Path = MOUNTINFO) -> str | None:
    """The type of the file system ``path`` is on (its nearest mount point), or None when
    ``mountinfo`` cannot be read (not Linux)."""
    try:
        table = mount_points(mountinfo.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    current = Path(os.path.realpath(path))
    for candidate in (current, *current.parents):
        if str(candidate) in table:
            return table[str(candidate)]
    return None


def missing_mount(location: str, root: Path, found_type: str | None) -> str | None:
    """The reason a job cannot run when ``root`` is not the file system ``location`` names
    (None when it is, or when the type cannot be known)."""
    expected = EXPECTED[location]
    if found_type is None or found_type in expected.types:
        return None
    return (
        f"{expected.name} is not mounted at {root} on this instance (it is a {found_type} "
        f"folder of the instance's own disk): the instance's user data did not mount it, and "
        "the job's files there would be lost with the instance. The job was not run. Read the "
        "instance's /var/log/cloud-init-output.log for why the mount failed, then submit the "
        "job again."
    )

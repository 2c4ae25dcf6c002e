"""Recognising the flock's file systems from /proc/self/mountinfo (issue 8.5)."""

from __future__ import annotations

from pathlib import Path

from shepard_worker.mounts import filesystem_type, missing_mount, mount_points

# What a worker container on a sheep sees: its overlay root, the bind mounts of the job
# definition (EFS mounted through efs-utils' TLS tunnel, Lustre, /mnt/root on the data volume),
# and a folder with a space in its name mounted over another.
WORKER_MOUNTINFO = """\
812 640 0:52 / / rw,relatime master:322 - overlay overlay rw,lowerdir=/var/lib/docker/l1
813 812 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
900 812 0:61 / /mnt/efs rw,relatime shared:5 master:7 - nfs4 127.0.0.1:/ rw,vers=4.1
901 812 1:3 / /mnt/fsx rw,relatime - lustre 10.0.1.5@tcp:/abcdefgh rw,flock
902 812 202:80 /mnt/root /mnt/root rw,noatime - xfs /dev/nvme1n1 rw,attr2
903 812 202:1 /home/my\\040data /mnt/my\\040data rw - ext4 /dev/nvme0n1p1 rw
904 812 202:1 /x /mnt/my\\040data rw - tmpfs tmpfs rw
"""

# The same sheep after a failed EFS mount: Docker bound the empty folder of the root volume.
FAILED_EFS = """\
812 640 0:52 / / rw,relatime - overlay overlay rw
900 812 259:1 /mnt/efs /mnt/efs rw,noatime - xfs /dev/nvme0n1p1 rw,attr2
"""


def _types(text: str, tmp_path: Path) -> Path:
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return path


def test_mount_points_read_the_type_under_each_mount_point() -> None:
    table = mount_points(WORKER_MOUNTINFO)
    assert table["/mnt/efs"] == "nfs4"  # optional fields before "-" are skipped
    assert table["/mnt/fsx"] == "lustre"
    assert table["/mnt/root"] == "xfs"
    assert table["/mnt/my data"] == "tmpfs"  # escaped name; the later mount wins
    assert table["/"] == "overlay"


def test_filesystem_type_takes_the_nearest_mount_point(tmp_path: Path) -> None:
    info = _types(WORKER_MOUNTINFO, tmp_path)
    assert filesystem_type(Path("/mnt/efs"), info) == "nfs4"
    assert filesystem_type(Path("/mnt/efs/job/input"), info) == "nfs4"
    assert filesystem_type(Path("/mnt/fsx"), info) == "lustre"
    assert filesystem_type(Path("/mnt/other"), info) == "overlay"
    assert filesystem_type(Path("/mnt/efs"), _types(FAILED_EFS, tmp_path)) == "xfs"
    assert filesystem_type(Path("/mnt/efs"), tmp_path / "absent") is None


def test_filesystem_type_of_this_machine() -> None:
    # The real table of the test's process: /proc is procfs everywhere Linux runs.
    assert filesystem_type(Path("/proc/self")) == "proc"


def test_missing_mount_names_the_file_system_and_what_to_do() -> None:
    assert missing_mount("efs", Path("/mnt/efs"), "nfs4") is None
    assert missing_mount("lustre", Path("/mnt/fsx"), "lustre") is None
    assert missing_mount("efs", Path("/mnt/efs"), None) is None  # cannot tell: not refused
    reason = missing_mount("efs", Path("/mnt/efs"), "xfs")
    assert reason is not None
    assert reason.startswith("EFS is not mounted at /mnt/efs on this instance (it is a xfs ")
    assert "submit the job again" in reason
    lustre = missing_mount("lustre", Path("/mnt/fsx"), "nfs4")
    assert lustre is not None and lustre.startswith("FSx for Lustre is not mounted at /mnt/fsx")

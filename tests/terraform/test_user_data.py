"""The sheep's user data (terraform/modules/batch/user_data.tftpl), checked and run.

The user data comes from an offline plan's launch template (base64, a MIME multi-part document as
Batch requires) or, with EFS and Lustre (whose DNS names are known only after apply), from the
template rendered by `terraform console`. Each shell part must be shellcheck-clean. Each part is
then run with bash against a scratch root folder (SHEPARD_USER_DATA_ROOT) with stub commands first
on PATH: mount, systemctl, shutdown, dnf, mkfs and the other commands that touch the machine only
record their arguments, so nothing real is mounted, installed or shut down. The runs show that a
sheep whose file system does not mount shuts itself down and never starts the ECS agent, and that
a sheep whose mounts work starts it.
"""

from __future__ import annotations

import base64
import email
import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.terraform.conftest import FlockPlanner

pytestmark = [pytest.mark.terraform]

TEMPLATE = (
    Path(__file__).resolve().parents[2] / "terraform" / "modules" / "batch" / "user_data.tftpl"
)
BOOTHOOK_PREFIX = "#cloud-boothook\n"
EFS = "fs-0123456789abcdef0.efs.eu-west-1.amazonaws.com"
LUSTRE = "fs-0fedcba9876543210.fsx.eu-west-1.amazonaws.com"
LUSTRE_MOUNT = "abcdefgh"
AGENT_START = "systemctl enable --now --no-block ecs.service"
SHUTDOWN = "shutdown -h now"

# Every command of the scripts that would change the machine: each gets a recording stub.
STUBBED = (
    "mount", "umount", "mountpoint", "blkid", "mkfs", "mkfs.xfs", "dnf", "yum", "systemctl",
    "shutdown", "reboot", "poweroff", "halt", "docker", "sleep", "logger",
)  # fmt: skip

# A stub appends "<name> <args>" to $STUB_LOG, then fails when that line matches the extended
# regular expression $STUB_FAIL. mountpoint reports "not mounted" unless told otherwise.
STUB = """#!/bin/bash
line="$(basename "$0") $*"
echo "$line" >> "$STUB_LOG"
if [ -n "${STUB_FAIL:-}" ] && echo "$line" | grep -Eq -- "$STUB_FAIL"; then
  exit 1
fi
if [ "$(basename "$0")" = mountpoint ]; then
  exit 1
fi
exit 0
"""


@dataclass(frozen=True)
class UserData:
    """A rendered user data document: its MIME parts as (content type, script)."""

    document: str

    @property
    def parts(self) -> list[tuple[str, str]]:
        message = email.message_from_string(self.document)
        assert message.get_content_type() == "multipart/mixed"
        parts = []
        for part in message.walk():
            if part.is_multipart():
                continue
            body = part.get_payload()
            assert isinstance(body, str)
            # cloud-init drops the boothook marker line and runs the rest as a file.
            if part.get_content_type() == "text/cloud-boothook":
                assert body.startswith(BOOTHOOK_PREFIX)
                body = body[len(BOOTHOOK_PREFIX) :]
            parts.append((part.get_content_type(), body))
        return parts

    def script(self, content_type: str) -> str:
        [body] = [body for kind, body in self.parts if kind == content_type]
        return body


@dataclass(frozen=True)
class Run:
    """One boot of a sheep in a scratch root: the exit codes and the stubs' calls."""

    root: Path
    returncodes: tuple[int, ...]
    calls: list[str]
    stderr: str

    def called(self, prefix: str) -> bool:
        return any(call.startswith(prefix) for call in self.calls)

    def count(self, prefix: str) -> int:
        return sum(call.startswith(prefix) for call in self.calls)

    def read(self, path: str) -> str:
        return (self.root / path.lstrip("/")).read_text()


def render(variables: Mapping[str, object], workdir: Path) -> UserData:
    """The template rendered by Terraform itself (no provider, no AWS)."""
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not on PATH")
    expression = f"base64encode(templatefile({json.dumps(str(TEMPLATE))}, {json.dumps(variables)}))"
    result = subprocess.run(
        [terraform, "console"],
        input=expression,
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=60,
        check=True,
    )
    encoded = json.loads(result.stdout.strip().splitlines()[-1])
    return UserData(base64.b64decode(encoded).decode())


@pytest.fixture(scope="module")
def planned(planner: FlockPlanner) -> UserData:
    """The minimal flock's user data, as its offline plan gives it to the launch template."""
    plan = planner.plan("minimal")
    after = plan.resource_changes["module.batch.aws_launch_template.sheep"]["change"]["after"]
    return UserData(base64.b64decode(after["user_data"]).decode())


@pytest.fixture(scope="module")
def with_file_systems(tmp_path_factory: pytest.TempPathFactory) -> UserData:
    """The user data of a flock with EFS and Lustre (the variables the batch module passes)."""
    variables = {
        "ulimit_nofile": 65536,
        "work_device": "/dev/xvdcz",
        "efs_dns_name": EFS,
        "lustre_dns_name": LUSTRE,
        "lustre_mount_name": LUSTRE_MOUNT,
    }
    return render(variables, tmp_path_factory.mktemp("render"))


@pytest.fixture(params=["planned", "with_file_systems"])
def user_data(request: pytest.FixtureRequest) -> UserData:
    value: UserData = request.getfixturevalue(request.param)
    return value


def boot(
    user_data: UserData,
    tmp_path: Path,
    *,
    fail: str = "",
    volume: bool = True,
) -> Run:
    """Run the boothook, then the per-instance script, as cloud-init would on first boot."""
    root = tmp_path / "root"
    for folder in ("etc/sysconfig", "etc/ecs", "dev", "run"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "etc/fstab").write_text("")
    (root / "etc/sysconfig/docker").write_text('OPTIONS="--default-ulimit nofile=32768:65536"\n')
    if volume:
        (root / "dev/xvdcz").write_text("")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in STUBBED:
        stub = stubs / name
        stub.write_text(STUB)
        stub.chmod(0o755)
    log = tmp_path / "calls.log"
    log.write_text("")
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "SHEPARD_USER_DATA_ROOT": str(root),
        "STUB_LOG": str(log),
        "STUB_FAIL": fail,
    }
    codes = []
    stderr = []
    for kind in ("text/cloud-boothook", "text/x-shellscript"):
        script = tmp_path / f"{kind.split('/')[1]}.sh"
        script.write_text(user_data.script(kind))
        result = subprocess.run(
            ["bash", str(script)], env=env, capture_output=True, text=True, timeout=60
        )
        codes.append(result.returncode)
        stderr.append(result.stderr)
    calls = [line.replace(str(root), "") for line in log.read_text().splitlines()]
    return Run(root, tuple(codes), calls, "".join(stderr))


def test_user_data_is_mime_multipart_with_a_boothook_and_a_script(planned: UserData) -> None:
    kinds = [kind for kind, _ in planned.parts]
    assert kinds == ["text/cloud-boothook", "text/x-shellscript"]
    assert all(body.startswith("#!/bin/bash\n") for _, body in planned.parts)
    # Amazon Linux 2023: dnf, no amazon-linux-extras.
    assert "amazon-linux-extras" not in planned.document


def test_scripts_are_shellcheck_clean(user_data: UserData, tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck)")
    for index, (kind, body) in enumerate(user_data.parts):
        script = tmp_path / f"part{index}.sh"
        script.write_text(body)
        result = subprocess.run(
            [shellcheck, "--shell=bash", str(script)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{kind}:\n{result.stdout}"


def test_good_boot_mounts_everything_then_starts_the_agent(
    with_file_systems: UserData, tmp_path: Path
) -> None:
    run = boot(with_file_systems, tmp_path)
    assert run.returncodes == (0, 0), run.stderr
    assert not run.called("shutdown")
    # The container-storage volume, formatted only when blank, holds Docker and /mnt/root.
    assert run.called("mount /dev/xvdcz /mnt/storage")
    assert run.called("mount --bind /mnt/storage/root /mnt/root")
    options = run.read("/etc/sysconfig/docker")
    assert options == (
        'OPTIONS="--default-ulimit nofile=65536:65536 --data-root=/mnt/storage/docker"\n'
    )
    # EFS over TLS and Lustre with AL2023's packages, each before the agent starts.
    efs = f"mount -t efs -o tls {EFS}:/ /mnt/efs"
    lustre = f"mount -t lustre -o relatime,flock {LUSTRE}@tcp:/{LUSTRE_MOUNT} /mnt/fsx"
    assert run.called("dnf install -y amazon-efs-utils")
    assert run.called("dnf install -y lustre-client")
    assert run.calls.index(efs) < run.calls.index(AGENT_START)
    assert run.calls.index(lustre) < run.calls.index(AGENT_START)
    assert run.calls[-1] == AGENT_START
    fstab = run.read("/etc/fstab")
    assert f"{EFS}:/ /mnt/efs efs _netdev,tls,nofail 0 0" in fstab
    assert "/dev/xvdcz /mnt/storage xfs defaults,nofail 0 2" in fstab
    # Jobs get the job role from the agent; the agent and a timer clean up images.
    config = run.read("/etc/ecs/ecs.config").splitlines()
    assert {"ECS_ENABLE_TASK_IAM_ROLE=true", "ECS_AWSVPC_BLOCK_IMDS=true"} <= set(config)
    assert any(line.startswith("ECS_IMAGE_CLEANUP_INTERVAL=") for line in config)
    assert run.called("systemctl enable --now shepard-image-prune.timer")
    prune = run.read("/usr/local/sbin/shepard-image-prune")
    assert "docker image prune --all --force --filter until=6h" in prune
    # The Spot notice, read on the host, is left where the workers' containers see it.
    assert run.called("systemctl enable --now shepard-spot-notice.service")
    notice = run.read("/usr/local/sbin/shepard-spot-notice")
    assert "meta-data/$2" in notice and "spot/instance-action" in notice
    assert "X-aws-ec2-metadata-token-ttl-seconds" in notice
    assert "folder=/mnt/root/.shepard" in notice


def test_reboot_does_not_format_the_volume_again(planned: UserData, tmp_path: Path) -> None:
    run = boot(planned, tmp_path)
    assert run.returncodes == (0, 0), run.stderr
    assert not run.called("mkfs")  # blkid found a file system
    # The boothook runs on every boot: Docker's options are replaced, not appended to.
    options = run.read("/etc/sysconfig/docker")
    boothook = tmp_path / "cloud-boothook.sh"
    env = {"PATH": f"{tmp_path / 'stubs'}:/usr/bin:/bin", "STUB_LOG": str(tmp_path / "again.log")}
    again = subprocess.run(
        ["bash", str(boothook)],
        env={**env, "SHEPARD_USER_DATA_ROOT": str(run.root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert run.read("/etc/sysconfig/docker") == options
    blank = boot(planned, tmp_path / "blank", fail="^blkid ")
    assert blank.called("mkfs -t xfs /dev/xvdcz")


@pytest.mark.parametrize(
    ("failing", "reason"),
    [
        ("^mount -t efs ", f"EFS {EFS} could not be mounted at /mnt/efs"),
        ("^mount -t lustre ", f"Lustre {LUSTRE} could not be mounted at /mnt/fsx"),
        ("^dnf install -y amazon-efs-utils", "amazon-efs-utils could not be installed"),
        ("^systemctl daemon-reload", "line"),  # any other failure, through the ERR trap
    ],
)
def test_a_failed_mount_shuts_the_sheep_down_and_never_starts_the_agent(
    with_file_systems: UserData, tmp_path: Path, failing: str, reason: str
) -> None:
    run = boot(with_file_systems, tmp_path, fail=failing)
    assert run.returncodes[1] != 0
    assert reason in run.stderr
    assert run.called(SHUTDOWN)
    assert run.called("systemctl mask --runtime ecs.service")
    assert not run.called(AGENT_START)
    assert not any(call.startswith("systemctl start ecs") for call in run.calls)
    if failing.startswith("^mount"):
        assert run.count(failing.lstrip("^")) == 12  # retried while DNS catches up


def test_a_missing_storage_volume_shuts_the_sheep_down(planned: UserData, tmp_path: Path) -> None:
    run = boot(planned, tmp_path, volume=False)
    assert run.returncodes == (1, 1)
    assert "the container-storage volume /dev/xvdcz never appeared" in run.stderr
    assert run.count(SHUTDOWN) == 2  # the boothook, then the script that finds its mark
    assert not run.called(AGENT_START)
    assert not run.called("mount ")

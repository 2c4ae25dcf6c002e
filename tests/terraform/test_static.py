"""terraform fmt and validate for every module and the root module, offline."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.flock_checks import TERRAFORM_DIR, copy_terraform_tree, user_data_parts

pytestmark = pytest.mark.terraform

MODULE_DIRS = sorted(p.name for p in (TERRAFORM_DIR / "modules").iterdir() if p.is_dir())
ROOTS = ["flock", *(f"modules/{m}" for m in MODULE_DIRS)]
REQUIRED_MODULES = {
    "network", "storage", "job_table", "secrets", "registry", "batch",
    "efs", "lustre", "scheduler", "api", "iam",
}  # fmt: skip


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_every_designed_module_exists_with_its_files() -> None:
    assert set(MODULE_DIRS) >= REQUIRED_MODULES
    for name in MODULE_DIRS:
        folder = TERRAFORM_DIR / "modules" / name
        for file in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
            assert (folder / file).is_file(), f"modules/{name}/{file} is missing"
        readme = (folder / "README.md").read_text()
        assert "```hcl" in readme.split("\n\n", 2)[1], f"modules/{name}/README.md: usage first"


def test_fmt_is_clean(tf_env: dict[str, str]) -> None:
    result = run(["terraform", "fmt", "-check", "-recursive", "-diff"], TERRAFORM_DIR, tf_env)
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_terraform_tree(tmp_path_factory.mktemp("validate"))


@pytest.mark.parametrize("root", ROOTS)
def test_validate(root: str, tree: Path, tf_env: dict[str, str]) -> None:
    folder = tree / root
    init = run(["terraform", "init", "-backend=false", "-input=false", "-no-color"], folder, tf_env)
    assert init.returncode == 0, init.stdout + init.stderr
    result = run(["terraform", "validate", "-json", "-no-color"], folder, tf_env)
    report = json.loads(result.stdout)
    problems = [
        f"{d['severity']}: {d['summary']}: {d.get('detail', '')}" for d in report["diagnostics"]
    ]
    assert report["valid"], f"{root} is not valid:\n" + "\n".join(problems)
    assert not problems, f"{root} has warnings:\n" + "\n".join(problems)
    shutil.rmtree(folder / ".terraform", ignore_errors=True)


def test_no_data_source_needs_aws() -> None:
    """Offline plans work only if no data source calls AWS (see emulator-notes), except the zone
    lookup, which exists only when count turns it on (no availability_zones given)."""
    offline_ok = ("aws_iam_policy_document", "aws_partition", "aws_region")
    gated = ("aws_availability_zones",)
    for path in TERRAFORM_DIR.rglob("*.tf"):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.startswith("data "):
                kind = line.split('"')[1]
                if kind in gated:
                    first = lines[number + 1].strip()
                    assert first.startswith("count = var.availability_zones == null"), (
                        f"{path}:{number + 1}: data source {kind} must exist only when"
                        " availability_zones is null (count on its first line)"
                    )
                    continue
                assert kind in offline_ok, f"{path}: data source {kind} needs AWS"


def test_no_backend_block_in_the_root_module() -> None:
    for path in (TERRAFORM_DIR / "flock").glob("*.tf"):
        assert 'backend "' not in path.read_text(), f"{path}: the CLI adds the backend"


def render_user_data(tmp_path: Path, env: dict[str, str], **values: object) -> dict[str, str]:
    """Render the batch module's user data template with `terraform console` (no provider)."""
    template = TERRAFORM_DIR / "modules" / "batch" / "user_data.tftpl"
    expression = f"base64encode(templatefile({json.dumps(str(template))}, {json.dumps(values)}))"
    result = subprocess.run(
        ["terraform", "console"],
        input=expression + "\n",
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = base64.b64decode(result.stdout.strip().strip('"')).decode()
    return user_data_parts(text)


def test_user_data_mounts_both_file_systems_and_raises_nofile(
    tmp_path: Path, tf_env: dict[str, str]
) -> None:
    parts = render_user_data(
        tmp_path,
        tf_env,
        ulimit_nofile=65536,
        work_device="/dev/xvdcz",
        efs_dns_name="fs-1234.efs.eu-west-1.amazonaws.com",
        lustre_dns_name="fs-0abc.fsx.eu-west-1.amazonaws.com",
        lustre_mount_name="xyz12abc",
    )
    assert list(parts) == ["text/cloud-boothook", "text/x-shellscript"]
    boothook, script = parts["text/cloud-boothook"], parts["text/x-shellscript"]
    assert "mkdir -p /mnt/root" in boothook
    assert "--default-ulimit nofile=65536:65536" in boothook
    assert "mount /dev/xvdcz /mnt/root" in script
    assert "fs-1234.efs.eu-west-1.amazonaws.com:/ /mnt/efs" in script
    assert "fs-0abc.fsx.eu-west-1.amazonaws.com@tcp:/xyz12abc /mnt/fsx" in script


def test_user_data_without_file_systems_mounts_only_the_workspace(
    tmp_path: Path, tf_env: dict[str, str]
) -> None:
    parts = render_user_data(
        tmp_path,
        tf_env,
        ulimit_nofile=1048576,
        work_device="/dev/xvdcz",
        efs_dns_name="",
        lustre_dns_name="",
        lustre_mount_name="",
    )
    script = parts["text/x-shellscript"]
    assert "/mnt/efs" not in script and "/mnt/fsx" not in script
    assert "mount /dev/xvdcz /mnt/root" in script

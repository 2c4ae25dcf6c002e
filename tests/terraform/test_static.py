"""terraform fmt and validate for every module and the root module, offline.

The sheep's user data is rendered and run in test_user_data.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.flock_checks import TERRAFORM_DIR, copy_terraform_tree

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
                    body = (text.strip() for text in lines[number + 1 :])
                    first = next(text for text in body if not text.startswith("#"))
                    assert first.startswith("count = var.availability_zones == null"), (
                        f"{path}:{number + 1}: data source {kind} must exist only when"
                        " availability_zones is null (count on its first line)"
                    )
                    continue
                assert kind in offline_ok, f"{path}: data source {kind} needs AWS"


def test_no_backend_block_in_the_root_module() -> None:
    for path in (TERRAFORM_DIR / "flock").glob("*.tf"):
        assert 'backend "' not in path.read_text(), f"{path}: the CLI adds the backend"

"""deploy's sequence with a fake Docker engine: Terraform and ECR stand-ins record the calls.

The real Terraform path of deploy is run in tests/integration/test_cli_flock.py; this checks the
order that only matters with an engine: the repository must exist before the push, and the
flock is applied with the pushed image URIs, then the profile is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shepard import deploy, images
from shepard.aws.flock import Aws, RegistryLogin
from shepard.profiles import ProfileStore
from tests.unit.cli.helpers import run
from tests.unit.cli.test_images import FakeDocker

REPO_URL = "123456789012.dkr.ecr.us-east-1.amazonaws.com/demo"


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my-setup"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "Dockerfile.txt").write_text("FROM python:3.11-slim\n")
    (folder / "flock.yaml").write_text("name: demo\nregion: us-east-1\n")
    return folder


def _outputs() -> dict[str, Any]:
    return {
        "flock_name": "demo",
        "region": "us-east-1",
        "ecr_repository_url": REPO_URL,
        "cli_profile": {"shepard_cloudformation_stack_name": "demo", "shepard_region": "us-east-1"},
    }


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple[str, Any]], FakeDocker]:
    calls: list[tuple[str, Any]] = []
    docker = FakeDocker()
    state: dict[str, Any] = {"applied": False}

    def outputs(flock_file: Path, *, env: Any) -> dict[str, Any]:
        calls.append(("outputs", flock_file.name))
        return _outputs() if state["applied"] else {}

    def apply(flock_file: Path, **kwargs: Any) -> dict[str, Any]:
        calls.append(("apply", kwargs.get("images")))
        state["applied"] = True
        return _outputs()

    monkeypatch.setattr(deploy, "outputs", outputs)
    monkeypatch.setattr(deploy, "apply", apply)
    monkeypatch.setattr(images, "flock_target", lambda flock_file: "aws")
    monkeypatch.setattr(images, "docker_client", lambda env, required: docker)
    monkeypatch.setattr(Aws, "registry_login", lambda self: RegistryLogin("AWS", "pw", REPO_URL))
    return calls, docker


def test_first_deploy_creates_the_repository_then_pushes_then_applies_images(
    recorded: tuple[list[tuple[str, Any]], FakeDocker], tmp_path: Path
) -> None:
    calls, docker = recorded
    env = {"SHEPARD_CONFIG_DIR": str(tmp_path / "config"), "NO_COLOR": "1"}
    folder = _folder(tmp_path)
    result = run(
        [
            "deploy",
            "--cloudformation_stack_name",
            "testing",
            "--path_to_deployment_folder",
            str(folder),
            "--auto_approve",
        ],
        env,
    )
    assert result.code == 0, result.err
    pushed = {b["tag"].split(":")[-1].split("-")[0]: b["tag"] for b in docker.images.builds}
    assert calls == [
        ("outputs", "flock.yaml"),
        ("apply", None),  # creates the ECR repository
        ("apply", {"payload": pushed["payload"], "worker": pushed["worker"]}),
    ]
    assert docker.images.builds[0]["dockerfile"] == "Dockerfile.txt"
    assert all(p["repository"] == REPO_URL for p in docker.images.pushes)
    store = ProfileStore.from_env(env)
    assert store.current() == "testing"
    assert store.load("testing")["shepard_flock_file"] == str((folder / "flock.yaml").resolve())


def test_redeploy_pushes_before_the_only_apply(
    recorded: tuple[list[tuple[str, Any]], FakeDocker], tmp_path: Path
) -> None:
    calls, _ = recorded
    env = {"SHEPARD_CONFIG_DIR": str(tmp_path / "config"), "NO_COLOR": "1"}
    folder = _folder(tmp_path)
    args = ["deploy", "--path-to-deployment-folder", str(folder), "--auto-approve"]
    assert run(args, env).code == 0
    calls.clear()
    assert run(args, env).code == 0
    assert [name for name, _ in calls] == ["outputs", "apply"]
    assert calls[1][1] is not None and set(calls[1][1]) == {"payload", "worker"}
    assert ProfileStore.from_env(env).current() == "demo"  # default profile name: the flock's


def test_deploy_needs_a_flock_yaml(tmp_path: Path) -> None:
    env = {"SHEPARD_CONFIG_DIR": str(tmp_path / "config"), "NO_COLOR": "1"}
    result = run(["deploy", "--path_to_deployment_folder", str(tmp_path)], env)
    assert result.code == 2 and "has no flock.yaml" in result.err


def test_local_flock_without_an_engine_applies_without_images(
    recorded: tuple[list[tuple[str, Any]], FakeDocker],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls, docker = recorded
    monkeypatch.setattr(images, "flock_target", lambda flock_file: "local")
    monkeypatch.setattr(images, "docker_client", lambda env, required: None)
    env = {"SHEPARD_CONFIG_DIR": str(tmp_path / "config"), "NO_COLOR": "1"}
    result = run(
        ["deploy", "--path_to_deployment_folder", str(_folder(tmp_path)), "--auto-approve"], env
    )
    assert result.code == 0, result.err
    assert calls == [("apply", None)] and docker.images.builds == []
    assert "runs jobs as processes" in result.err


def test_terraform_gets_the_role_and_refuses_an_expired_one(tmp_path: Path) -> None:
    import argparse
    from datetime import UTC, datetime, timedelta

    from shepard.aws.session import RoleCredentials, save_role
    from shepard.cli import build_parser
    from shepard.commands import Context
    from shepard.core import terraform_env
    from shepard.errors import ShepardError

    config = tmp_path / "config"
    env = {"SHEPARD_CONFIG_DIR": str(config), "AWS_PROFILE": "mine", "AWS_ACCESS_KEY_ID": "own"}
    args = build_parser().parse_args(["plan", "flock.yaml", "--region", "eu-west-1"])
    ctx = Context.create(args, env=env, parser=argparse.ArgumentParser())
    assert terraform_env(ctx)["AWS_REGION"] == "eu-west-1"
    assert terraform_env(ctx)["AWS_ACCESS_KEY_ID"] == "own"

    def role(minutes: int) -> RoleCredentials:
        expiry = (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()
        return RoleCredentials("123456789012", "R", "arn:aws:iam::123456789012:role/R",
                               "AKROLE", "SK", "TOKEN", expiry)  # fmt: skip

    save_role(config, role(30))
    tf_env = terraform_env(ctx)
    assert tf_env["AWS_ACCESS_KEY_ID"] == "AKROLE" and tf_env["AWS_SESSION_TOKEN"] == "TOKEN"
    assert "AWS_PROFILE" not in tf_env
    save_role(config, role(-1))
    with pytest.raises(ShepardError, match="expired"):
        terraform_env(ctx)

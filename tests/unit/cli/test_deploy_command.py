"""deploy and apply as a user runs them, with real Terraform on a root module of
``terraform_data`` resources (tests/unit/tf/data/builtin, offline) and a fake Docker engine.

What only the command shows: the repository must exist before the push, the flock is applied with
the pushed image URIs, then the profile is written; and the flock file is read exactly once per
command, however many stages and Terraform runs follow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import shepard.config.loader
from shepard import images
from shepard.aws.flock import Aws, RegistryLogin
from shepard.deploy import AwsTarget, LocalTarget
from shepard.profiles import ProfileStore
from tests.unit.cli.helpers import run
from tests.unit.cli.test_images import FakeDocker

pytestmark = pytest.mark.terraform

REPO_URL = "123456789012.dkr.ecr.us-east-1.amazonaws.com/demo"  # the module's output
BUILTIN = Path(__file__).resolve().parents[1] / "tf" / "data" / "builtin"
FLOCK = "name: demo\nregion: us-east-1\nbatch:\n  instance_types: [c5.large]\n"


def _folder(tmp_path: Path, flock: str = FLOCK) -> Path:
    folder = tmp_path / "my-setup"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "Dockerfile.txt").write_text("FROM python:3.11-slim\n")
    (folder / "flock.yaml").write_text(flock)
    return folder


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_", "SHEPARD_"))}
    env.update(
        {
            "SHEPARD_CONFIG_DIR": str(tmp_path / "config"),
            "SHEPARD_TERRAFORM_DIR": str(BUILTIN),
            "NO_COLOR": "1",
        }
    )
    return env


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every parse of a flock file, by whichever path it is loaded."""
    read: list[str] = []
    parse = shepard.config.loader.parse_flock

    def counting(text: str, source: str = "<string>") -> Any:
        read.append(source)
        return parse(text, source)

    monkeypatch.setattr(shepard.config.loader, "parse_flock", counting)
    yield read


@pytest.fixture
def docker(monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    engine = FakeDocker()
    monkeypatch.setattr(images, "docker_client", lambda env, required: engine)
    monkeypatch.setattr(Aws, "registry_login", lambda self: RegistryLogin("AWS", "pw", REPO_URL))
    return engine


def _state(folder: Path) -> Path:
    return folder / ".shepard" / "demo"


def test_first_deploy_creates_the_repository_then_pushes_then_applies_images(
    docker: FakeDocker, loads: list[str], tmp_path: Path
) -> None:
    env = _env(tmp_path)
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
    assert len(loads) == 1, loads  # one read of flock.yaml for outputs, two applies, the profile
    pushed = {b["tag"].split(":")[-1].split("-")[0]: b["tag"] for b in docker.images.builds}
    assert set(pushed) == {"payload", "worker"}
    # First apply (no outputs yet): creates the repository; then the images go into the flock.
    assert result.err.count("Planning flock demo...") == 2
    assert result.err.index("Planning flock demo...") < result.err.rindex("Planning flock demo")
    tfvars = json.loads((_state(folder) / "flock.auto.tfvars.json").read_text())
    assert tfvars["images"] == {"payload": pushed["payload"], "worker": pushed["worker"]}
    outputs = json.loads((_state(folder) / "outputs.json").read_text())
    assert outputs["images"] == tfvars["images"]
    assert docker.images.builds[0]["dockerfile"] == "Dockerfile.txt"
    assert all(p["repository"] == REPO_URL for p in docker.images.pushes)
    store = ProfileStore.from_env(env)
    assert store.current() == "testing"
    assert store.load("testing")["shepard_flock_file"] == str((folder / "flock.yaml").resolve())


def test_redeploy_pushes_before_the_only_apply(
    docker: FakeDocker, loads: list[str], tmp_path: Path
) -> None:
    env = _env(tmp_path)
    folder = _folder(tmp_path)
    args = ["deploy", "--path-to-deployment-folder", str(folder), "--auto-approve"]
    assert run(args, env).code == 0
    loads.clear()
    again = run(args, env)
    assert again.code == 0, again.err
    assert len(loads) == 1
    assert again.err.count("Planning flock demo...") == 1  # the repository is known: one apply
    assert ProfileStore.from_env(env).current() == "demo"  # default profile name: the flock's


def test_apply_reads_the_flock_file_once(loads: list[str], tmp_path: Path) -> None:
    env = _env(tmp_path)
    folder = _folder(tmp_path)
    result = run(["apply", str(folder / "flock.yaml"), "--auto-approve"], env)
    assert result.code == 0, result.err
    assert loads == [str(folder / "flock.yaml")]
    assert "flock demo applied" in result.out


def test_deploy_needs_a_flock_yaml(tmp_path: Path) -> None:
    env = {"SHEPARD_CONFIG_DIR": str(tmp_path / "config"), "NO_COLOR": "1"}
    result = run(["deploy", "--path_to_deployment_folder", str(tmp_path)], env)
    assert result.code == 2 and "has no flock.yaml" in result.err


def test_local_flock_without_an_engine_applies_without_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[bool] = []

    def no_engine(env: Any, required: bool) -> None:
        asked.append(required)
        return None

    monkeypatch.setattr(images, "docker_client", no_engine)
    # The local flock's service is not what this checks: Terraform runs as for AWS.
    monkeypatch.setattr(LocalTarget, "environment", AwsTarget.environment)
    folder = _folder(tmp_path, FLOCK + "target: local\n")
    result = run(
        ["deploy", "--path_to_deployment_folder", str(folder), "--auto-approve"], _env(tmp_path)
    )
    assert result.code == 0, result.err
    assert asked == [False]  # a local flock does not require an engine
    assert "runs jobs as processes" in result.err
    assert result.err.count("Planning flock demo...") == 1
    tfvars = json.loads((_state(folder) / "flock.auto.tfvars.json").read_text())
    assert tfvars["images"] == {}
    overlay = json.loads((_state(folder) / "local.auto.tfvars.json").read_text())
    assert overlay["create_nat_gateway"] is False


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


def test_plan_out_then_apply_that_plan_and_plan_json(tmp_path: Path) -> None:
    env = _env(tmp_path)
    flock = str(_folder(tmp_path) / "flock.yaml")
    plan_file = str(tmp_path / "ci.tfplan")

    shown = run(["plan", flock, "--json"], env)
    assert shown.code == 0, shown.err
    plan = json.loads(shown.out)  # stdout is the JSON and nothing else
    assert {c["address"] for c in plan["resource_changes"]} == {
        f"terraform_data.sheep[{i}]" for i in range(3)
    }

    saved = run(["plan", flock, "--out", plan_file], env)
    assert saved.code == 0, saved.err
    assert "Plan: 3 to add, 0 to change, 0 to destroy." in saved.out
    assert f"shepard-tf apply {flock} {plan_file}" in saved.out

    applied = run(["apply", flock, plan_file], env)
    assert applied.code == 0, applied.err
    assert "flock demo applied" in applied.out
    assert ProfileStore.from_env(env).current() == "demo"

    stale = run(["apply", flock, plan_file], env)
    assert stale.code == 2
    assert "is stale" in stale.err and "Traceback" not in stale.err

"""The working copy: backend_override.tf for each backend, copying only when changed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from shepard.errors import BadInput, ShepardError
from shepard.tf.workdir import (
    Backend,
    backend_from_config,
    declared_outputs,
    render_backend_override,
    source_hash,
    sync_working_copy,
    terraform_source,
)

STATE = Path("/srv/flocks/.shepard/demo")


def render(backend: Backend) -> str:
    return render_backend_override(backend, state_dir=STATE, flock_name="demo", region="eu-west-1")


def test_local_backend_keeps_state_in_the_state_folder() -> None:
    text = render(Backend())
    assert 'backend "local" {\n    path = "/srv/flocks/.shepard/demo/terraform.tfstate"\n' in text


def test_s3_backend_defaults_key_and_region_and_encrypts() -> None:
    text = render(Backend(kind="s3", bucket="my-state", dynamodb_table="locks"))
    assert 'backend "s3" {' in text
    assert 'bucket         = "my-state"' in text
    assert 'key            = "shepard/demo/terraform.tfstate"' in text
    assert 'region         = "eu-west-1"' in text
    assert "encrypt        = true" in text
    assert 'dynamodb_table = "locks"' in text


def test_s3_backend_without_bucket_is_bad_input() -> None:
    with pytest.raises(BadInput, match=r"state.backend is s3 but state.bucket is not set"):
        render(Backend(kind="s3"))


def test_cloud_backend_names_organization_and_workspace() -> None:
    text = render(Backend(kind="cloud", organization="acme", hostname="tfe.example.com"))
    assert "cloud {" in text
    assert 'organization = "acme"' in text
    assert 'hostname     = "tfe.example.com"' in text
    assert 'workspaces {\n      name = "demo"\n    }' in text
    with pytest.raises(BadInput, match=r"state.organization is not set"):
        render(Backend(kind="cloud"))


def test_unknown_backend_is_bad_input() -> None:
    with pytest.raises(BadInput, match=r"unknown state.backend 'gcs'. Use local, s3 or cloud"):
        render(Backend(kind="gcs"))


def test_strings_cannot_escape_into_hcl() -> None:
    text = render(Backend(kind="s3", bucket="b", key='a"}\n${file("/etc/passwd")}'))
    assert 'key     = "a\\"}\\n$${file(\\"/etc/passwd\\")}"' in text


@pytest.mark.terraform
@pytest.mark.parametrize(
    "backend",
    [
        Backend(),
        Backend(kind="s3", bucket="b", key="k/${x}", dynamodb_table="t"),
        Backend(kind="cloud", organization="o", workspace="w", hostname="h"),
    ],
)
def test_backend_override_is_formatted_valid_hcl(backend: Backend) -> None:
    """terraform fmt parses the file and would rewrite it if it were not canonical."""
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-"],
        input=render(backend),
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CLI_CONFIG_FILE": ""},
    )
    assert result.returncode == 0, result.stderr


def test_backend_from_the_flock_config_dataclass() -> None:
    from shepard.config.model import StateConfig

    assert backend_from_config(None) == Backend()
    assert backend_from_config(StateConfig()) == Backend()
    state = StateConfig(backend="s3", bucket="my-state", key="k", region="us-west-2")
    assert backend_from_config(state) == Backend(
        kind="s3", bucket="my-state", key="k", region="us-west-2"
    )
    cloud = StateConfig(backend="cloud", organization="acme", workspace="prod")
    assert backend_from_config(cloud).workspace == "prod"
    assert backend_from_config({"backend": "s3", "bucket": "x"}).bucket == "x"


def make_source(root: Path) -> Path:
    (root / "flock").mkdir(parents=True)
    (root / "modules" / "storage").mkdir(parents=True)
    (root / "flock" / "main.tf").write_text('module "storage" { source = "../modules/storage" }\n')
    (root / "modules" / "storage" / "main.tf").write_text("# storage\n")
    return root


def test_working_copy_is_made_once_and_refreshed_on_change(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    # Files Terraform would pick up on its own, or that belong to a run, are never copied.
    (source / "flock" / "terraform.tfvars").write_text("name = 1\n")
    (source / "flock" / "x.auto.tfvars.json").write_text("{}")
    (source / "flock" / ".terraform").mkdir()
    (source / "flock" / ".terraform" / "junk").write_text("x")
    work = tmp_path / "state" / "terraform"
    assert sync_working_copy(source, work) is True
    assert (work / "flock" / "main.tf").is_file()
    assert (work / "modules" / "storage" / "main.tf").read_text() == "# storage\n"
    assert not (work / "flock" / "terraform.tfvars").exists()
    assert not (work / "flock" / "x.auto.tfvars.json").exists()
    assert not (work / "flock" / ".terraform").exists()

    # Terraform's own files in the copy survive a refresh; removed sources disappear.
    (work / "flock" / ".terraform").mkdir()
    (work / "flock" / ".terraform.lock.hcl").write_text("lock")
    assert sync_working_copy(source, work) is False
    (source / "modules" / "storage" / "main.tf").write_text("# storage v2\n")
    (source / "flock" / "extra.tf").write_text("# extra\n")
    assert sync_working_copy(source, work) is True
    assert (work / "modules" / "storage" / "main.tf").read_text() == "# storage v2\n"
    assert (work / "flock" / ".terraform").is_dir()
    assert (work / "flock" / ".terraform.lock.hcl").read_text() == "lock"
    (source / "flock" / "extra.tf").unlink()
    assert sync_working_copy(source, work) is True
    assert not (work / "flock" / "extra.tf").exists()


def test_source_hash_depends_on_names_and_bytes(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    first = source_hash(source)
    assert source_hash(source) == first
    (source / "flock" / "main.tf").rename(source / "flock" / "root.tf")
    assert source_hash(source) != first


def test_terraform_source_from_variable_and_repo(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    assert terraform_source({"SHEPARD_TERRAFORM_DIR": str(source)}) == source
    assert terraform_source({}).name == "terraform"
    with pytest.raises(ShepardError) as caught:
        terraform_source({"SHEPARD_TERRAFORM_DIR": str(tmp_path / "empty")})
    assert caught.value.message.startswith(
        f"while locating the Terraform modules: SHEPARD_TERRAFORM_DIR={tmp_path / 'empty'} has "
        "no flock/ root module"
    )


def test_declared_outputs_of_a_root_module(tmp_path: Path) -> None:
    (tmp_path / "outputs.tf").write_text(
        'output "efs_id" {\n  value = try(module.efs[0].id, null)\n}\n\n'
        'output "vpc_id" {\n  value = "x"\n}\n# output "commented" {\n'
    )
    (tmp_path / "extra.tf.json").write_text('{"output": {"lustre_id": {"value": null}}}')
    (tmp_path / "bad.tf.json").write_text("not json")
    assert declared_outputs(tmp_path) == ["efs_id", "vpc_id", "lustre_id"]

"""The provider mirror: discovery in a fake tree, the CLI config, the user's own config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from shepard.errors import ShepardError
from shepard.tf.mirror import find_plugin_dir, provider_environment, write_cli_config


def mirror(root: Path) -> Path:
    (root / "registry.terraform.io" / "hashicorp" / "aws" / "5.100.0" / "linux_amd64").mkdir(
        parents=True
    )
    return root


def test_explicit_mirror_is_used(tmp_path: Path) -> None:
    path = mirror(tmp_path / "m")
    assert find_plugin_dir({"SHEPARD_TF_PLUGIN_DIR": str(path), "HOME": str(tmp_path)}) == path


def test_explicit_mirror_without_the_provider_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ShepardError, match=r"SHEPARD_TF_PLUGIN_DIR=.* has no registry"):
        find_plugin_dir({"SHEPARD_TF_PLUGIN_DIR": str(tmp_path)})


def test_home_plugins_folder_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shepard.tf.mirror.Path.is_dir", _not_opt(Path.is_dir))
    home_mirror = mirror(tmp_path / ".terraform.d" / "plugins")
    assert find_plugin_dir({"HOME": str(tmp_path)}) == home_mirror


def _not_opt(is_dir: Callable[[Path], bool]) -> Callable[[Path], bool]:
    """Hide the machine's /opt/tf-plugins so the search reaches the home folder."""

    def patched(self: Path) -> bool:
        return not str(self).startswith("/opt/tf-plugins") and is_dir(self)

    return patched


def test_no_mirror_lists_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shepard.tf.mirror.Path.is_dir", _not_opt(Path.is_dir))
    with pytest.raises(ShepardError) as caught:
        find_plugin_dir({"HOME": str(tmp_path)})
    assert caught.value.message.startswith(
        "while looking for the Terraform provider mirror: no hashicorp/aws provider found in "
    )
    assert str(tmp_path / ".terraform.d" / "plugins") in caught.value.message
    assert "Set SHEPARD_TF_PLUGIN_DIR" in caught.value.message


def test_cli_config_is_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    config = tmp_path / "terraformrc"
    write_cli_config(Path('/odd "path"'), config)
    text = config.read_text()
    assert 'path    = "/odd \\"path\\""' in text
    before = config.stat().st_mtime_ns
    write_cli_config(Path('/odd "path"'), config)
    assert config.stat().st_mtime_ns == before


def test_provider_environment_points_at_the_mirror(tmp_path: Path) -> None:
    path = mirror(tmp_path / "m")
    env = {
        "SHEPARD_TF_PLUGIN_DIR": str(path),
        "TF_CLI_CONFIG_FILE": "/home/user/.terraformrc",
        "TF_PLUGIN_CACHE_DIR": "/home/user/.cache",
        "KEEP": "me",
    }
    result = provider_environment(env, tmp_path / "state" / "terraformrc")
    assert result["TF_CLI_CONFIG_FILE"] == str(tmp_path / "state" / "terraformrc")
    assert "TF_PLUGIN_CACHE_DIR" not in result
    assert result["KEEP"] == "me"
    assert f'path    = "{path}"' in (tmp_path / "state" / "terraformrc").read_text()


def test_user_config_is_honoured_and_needs_no_mirror(tmp_path: Path) -> None:
    env = {
        "SHEPARD_TF_USE_USER_CONFIG": "1",
        "SHEPARD_TF_PLUGIN_DIR": str(tmp_path / "no-mirror-here"),
        "TF_CLI_CONFIG_FILE": "/home/user/.terraformrc",
        "TF_PLUGIN_CACHE_DIR": "/home/user/.cache",
    }
    result = provider_environment(env, tmp_path / "terraformrc")
    assert result == env
    assert not (tmp_path / "terraformrc").exists()

"""Find the offline provider mirror and write a Terraform CLI config that uses it.

Terraform's own mechanism is used: a ``provider_installation { filesystem_mirror {...} }`` block
in a CLI config file named by ``TF_CLI_CONFIG_FILE``. The mirror is found from
``SHEPARD_TF_PLUGIN_DIR`` first, then the usual places.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from shepard.errors import ShepardError

PLUGIN_DIR_VARIABLE = "SHEPARD_TF_PLUGIN_DIR"
USER_CONFIG_VARIABLE = "SHEPARD_TF_USE_USER_CONFIG"
AWS_PROVIDER = Path("registry.terraform.io") / "hashicorp" / "aws"


def candidate_dirs(env: Mapping[str, str]) -> list[Path]:
    home = Path(env.get("HOME", str(Path.home())))
    data_home = Path(env.get("XDG_DATA_HOME", str(home / ".local" / "share")))
    return [
        Path("/opt/tf-plugins"),
        home / ".terraform.d" / "plugins",
        data_home / "terraform" / "plugins",
        Path("/usr/local/share/terraform/plugins"),
        Path("/usr/share/terraform/plugins"),
    ]


def find_plugin_dir(env: Mapping[str, str] | None = None) -> Path:
    """The folder that holds ``registry.terraform.io/hashicorp/aws/<version>/<platform>/``."""
    env = os.environ if env is None else env
    explicit = env.get(PLUGIN_DIR_VARIABLE)
    if explicit:
        path = Path(explicit)
        if not (path / AWS_PROVIDER).is_dir():
            raise ShepardError(
                "while looking for the Terraform provider mirror: "
                f"{PLUGIN_DIR_VARIABLE}={explicit} has no {AWS_PROVIDER} folder. "
                "Point it at the folder that holds "
                "registry.terraform.io/hashicorp/aws/<version>/<os_arch>/"
            )
        return path
    for path in candidate_dirs(env):
        if (path / AWS_PROVIDER).is_dir():
            return path
    searched = ", ".join(str(p) for p in candidate_dirs(env))
    raise ShepardError(
        "while looking for the Terraform provider mirror: no hashicorp/aws provider found in "
        f"{searched}. Set {PLUGIN_DIR_VARIABLE} to a filesystem mirror "
        "(see `terraform providers mirror`), or install the provider in one of those folders"
    )


def write_cli_config(plugin_dir: Path, path: Path) -> Path:
    """Write a CLI config that installs providers from ``plugin_dir`` only, never the network.

    The file is rewritten only when its text changes, so its timestamp says when the mirror moved.
    """
    text = (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(plugin_dir))}\n"
        '    include = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def uses_user_config(env: Mapping[str, str]) -> bool:
    """True when the user asked for their own Terraform CLI config (network, plugin cache)."""
    return env.get(USER_CONFIG_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def provider_environment(env: Mapping[str, str], config_path: Path) -> dict[str, str]:
    """``env`` with Terraform pointed at the offline mirror through a CLI config at ``config_path``.

    With ``SHEPARD_TF_USE_USER_CONFIG=1`` the user's own ``TF_CLI_CONFIG_FILE`` and
    ``TF_PLUGIN_CACHE_DIR`` are kept and no mirror is needed (real AWS users with network access).
    """
    result = dict(env)
    if uses_user_config(env):
        return result
    write_cli_config(find_plugin_dir(env), config_path)
    result["TF_CLI_CONFIG_FILE"] = str(config_path)
    # A plugin cache would be a second source of providers beside the mirror: leave it out.
    result.pop("TF_PLUGIN_CACHE_DIR", None)
    return result

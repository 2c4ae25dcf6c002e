"""Find the offline provider mirror and write a Terraform CLI config that uses it.

Terraform's own mechanism is used: a ``provider_installation { filesystem_mirror {...} }`` block
in a CLI config file named by ``TF_CLI_CONFIG_FILE``. The mirror is found from
``SHEPARD_TF_PLUGIN_DIR`` first, then the usual places.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from shepard.errors import ShepardError

PLUGIN_DIR_VARIABLE = "SHEPARD_TF_PLUGIN_DIR"
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
                f"while looking for the Terraform provider mirror: {PLUGIN_DIR_VARIABLE}={explicit} "
                f"has no {AWS_PROVIDER} folder. Point it at the folder that holds "
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
    """Write a CLI config that installs providers from ``plugin_dir`` only, never the network."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{plugin_dir}"\n'
        '    include = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "}\n"
    )
    return path

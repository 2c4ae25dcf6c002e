"""Finding the ``terraform`` executable and checking its version."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shepard.errors import ShepardError

BIN_VARIABLE = "SHEPARD_TERRAFORM_BIN"
MINIMUM_VERSION = (1, 5, 0)
INSTALL_HINT = (
    "Install Terraform 1.5 or newer (https://developer.hashicorp.com/terraform/install) "
    f"or set {BIN_VARIABLE}"
)

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]*)?")


@dataclass(frozen=True)
class Terraform:
    """A usable Terraform executable."""

    path: Path
    version: tuple[int, int, int]

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)


def parse_version(text: str) -> tuple[int, int, int]:
    """The version in ``terraform version`` output, JSON (1.x) or text (``Terraform v1.2.3``)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            stripped = str(json.loads(stripped).get("terraform_version", ""))
        except (ValueError, AttributeError):
            stripped = ""
    match = _VERSION.search(stripped)
    if match is None:
        raise ShepardError(
            "while checking the Terraform version: cannot read a version in "
            f"{text.strip()[:80]!r}. {INSTALL_HINT}"
        )
    major, minor, patch = (int(group) for group in match.groups())
    return major, minor, patch


def _locate(env: Mapping[str, str]) -> Path:
    explicit = env.get(BIN_VARIABLE)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ShepardError(
                f"while preparing Terraform: {BIN_VARIABLE}={explicit} is not a file. "
                "Point it at the terraform executable, or unset it to use terraform on PATH"
            )
        return path
    found = shutil.which("terraform", path=env.get("PATH", ""))
    if found is None:
        raise ShepardError(
            f"while preparing Terraform: terraform not found on PATH. {INSTALL_HINT}"
        )
    return Path(found)


_cache: dict[tuple[Path, float], tuple[int, int, int]] = {}


def find_terraform(env: Mapping[str, str]) -> Terraform:
    """The Terraform named by ``SHEPARD_TERRAFORM_BIN`` or found on ``PATH``, version >= 1.5."""
    path = _locate(env)
    key = (path.resolve(), path.stat().st_mtime)
    version = _cache.get(key)
    if version is None:
        try:
            result = subprocess.run(
                [str(path), "version", "-json"],
                capture_output=True,
                text=True,
                timeout=60,
                env={
                    "PATH": env.get("PATH", ""),
                    "HOME": env.get("HOME", "/"),
                    "CHECKPOINT_DISABLE": "1",
                },
                check=False,
            )
        except OSError as error:
            raise ShepardError(
                f"while preparing Terraform: {path} cannot run ({error.strerror}). {INSTALL_HINT}"
            ) from None
        # Terraform before 0.13 has no -json and prints text: parse_version reads both.
        version = parse_version(result.stdout or result.stderr)
        _cache[key] = version
    if version < MINIMUM_VERSION:
        found = ".".join(str(part) for part in version)
        raise ShepardError(
            f"while preparing Terraform: {path} is Terraform {found}, older than 1.5. "
            f"{INSTALL_HINT}"
        )
    return Terraform(path=path, version=version)

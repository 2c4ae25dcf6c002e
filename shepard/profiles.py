"""CLI profiles: named sets of defaults, one JSON file per profile, with the seed's field names.

The config folder is ``$SHEPARD_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/shepard-tf``, else
``~/.config/shepard-tf``. Profiles live in its ``profiles/`` folder (``where_am_i`` prints it; a
``NAME.json`` dropped there is a profile at once); ``current_profile`` names the one in use.
A value is looked up flag first, then the profile, then the environment (``SHEPARD_<FIELD>``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shepard.errors import BadInput, ShepardError

# The seed's fields, in the order ``configure`` asks for them, with the question it asks.
SEED_FIELDS: dict[str, str] = {
    "shepard_account_number": "AWS account number of the flock",
    "shepard_role_to_assume_to_target_account": "Role to assume into that account",
    "shepard_path_to_deployment_folder": "Path to the deployment folder",
    "shepard_ecr_repo_to_push_to": "ECR repository name",
    "shepard_path_to_local_folder_to_batch": "Local folder to batch",
    "shepard_s3_bucket_to_upload_to": "Inputs bucket",
    "shepard_dynamo_db_to_query": "Job table (DynamoDB)",
    "shepard_cloudformation_stack_name": "Flock name",
    "shepard_path_to_local_secrets": "Local folder of secrets",
    "shepard_secret_store": "Secrets Manager secret",
    "shepard_s3_bucket_for_results": "Outputs bucket",
    "shepard_directory_to_sync_s3_bucket_to": "Local folder to retrieve results to",
    "shepard_lambda_to_invoke": "API Lambda function",
}
# What shepard-tf adds (docs/contracts.md, section 6).
TF_FIELDS: dict[str, str] = {
    "shepard_region": "AWS region",
    "shepard_flock_file": "Path to flock.yaml",
    "shepard_endpoint_url": "Endpoint URL (local flock only)",
    "shepard_lambda_endpoint_url": "Lambda endpoint URL (local flock only)",
    "shepard_job_queue": "Batch job queue",
    "shepard_job_definition": "Batch job definition",
    "shepard_errors_bucket": "Errors bucket",
    "shepard_quick_deploy_bucket": "Quick-deploy bucket",
    "shepard_api_endpoint_url": "API endpoint URL",
}
ALL_FIELDS: dict[str, str] = {**SEED_FIELDS, **TF_FIELDS}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CURRENT_POINTER = "current_profile"
PROFILES_FOLDER = "profiles"


def config_dir(env: Mapping[str, str]) -> Path:
    """The user's shepard-tf config folder (not created here)."""
    if env.get("SHEPARD_CONFIG_DIR"):
        return Path(env["SHEPARD_CONFIG_DIR"]).expanduser()
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]).expanduser() / "shepard-tf"
    home = env.get("HOME") or str(Path.home())
    return Path(home).expanduser() / ".config" / "shepard-tf"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise BadInput(
            f"while reading the profile name {name!r}: it must be 1-64 letters, digits, '_', '.'"
            " or '-', starting with a letter or digit. Choose another name."
        )
    return name


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (profiles may name accounts; role caches hold keys)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass(frozen=True)
class ProfileStore:
    """The profiles in one config folder."""

    root: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProfileStore:
        return cls(config_dir(env))

    @property
    def folder(self) -> Path:
        return self.root / PROFILES_FOLDER

    def path(self, name: str) -> Path:
        return self.folder / f"{check_name(name)}.json"

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if _NAME.match(p.stem))

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def load(self, name: str) -> dict[str, str]:
        path = self.path(name)
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            known = ", ".join(self.names()) or "none"
            raise BadInput(
                f"while loading profile {name!r}: there is no {path}. Known profiles: {known}."
                f" Create it with `shepard-tf configure {name}`."
            ) from None
        except (OSError, ValueError) as exc:
            raise BadInput(
                f"while loading profile {name!r}: {path} is not readable JSON ({exc})."
                " Fix or delete the file."
            ) from None
        if not isinstance(data, dict):
            raise BadInput(
                f"while loading profile {name!r}: {path} must hold a JSON object."
                " Fix or delete the file."
            )
        return {str(k): "" if v is None else str(v) for k, v in data.items()}

    def save(self, name: str, values: Mapping[str, str]) -> Path:
        path = self.path(name)
        clean = {k: v for k, v in values.items() if v not in ("", None)}
        _write_private(path, json.dumps(clean, indent=2, sort_keys=True) + "\n")
        return path

    def delete(self, name: str) -> None:
        path = self.path(name)
        if not path.is_file():
            raise BadInput(
                f"while deleting profile {name!r}: there is no such profile."
                " List them with `shepard-tf check_profile`."
            )
        path.unlink()
        if self.current() == name:
            self.clear_current()

    # -- the current profile ------------------------------------------------------------------
    def current(self) -> str | None:
        pointer = self.root / CURRENT_POINTER
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return name or None

    def set_current(self, name: str) -> None:
        if not self.exists(name):
            known = ", ".join(self.names()) or "none"
            raise BadInput(
                f"while setting the profile: there is no profile {name!r} (known: {known})."
                f" Create it with `shepard-tf configure {name}` or `shepard-tf auto_configure`."
            )
        _write_private(self.root / CURRENT_POINTER, name + "\n")

    def clear_current(self) -> None:
        (self.root / CURRENT_POINTER).unlink(missing_ok=True)


def env_name(field: str) -> str:
    """The environment variable that supplies a field: ``SHEPARD_S3_BUCKET_TO_UPLOAD_TO``."""
    return field.upper()


@dataclass(frozen=True)
class Settings:
    """Values for one command: flag > profile > environment."""

    flags: Mapping[str, Any]
    profile: Mapping[str, str]
    env: Mapping[str, str]
    profile_name: str | None = None

    def get(self, name: str) -> str | None:
        """``name`` without the ``shepard_`` prefix, as the flag spells it."""
        flag = self.flags.get(name)
        if flag not in (None, ""):
            return str(flag)
        field = f"shepard_{name}"
        if self.profile.get(field):
            return self.profile[field]
        value = self.env.get(env_name(field))
        return value or None

    def require(self, name: str, doing: str) -> str:
        value = self.get(name)
        if value is None:
            where = f"profile {self.profile_name!r}" if self.profile_name else "no profile is set"
            raise BadInput(
                f"while {doing}: no {name} is known ({where}). Pass --{name}, set it in a profile"
                f" with `shepard-tf configure` or `shepard-tf auto_configure`, or set"
                f" {env_name('shepard_' + name)}."
            )
        return value


def profile_from_outputs(
    outputs: Mapping[str, Any], *, flock_file: Path | None, endpoint_url: str | None
) -> dict[str, str]:
    """A profile from the flock's Terraform outputs (``cli_profile`` plus region/endpoint)."""
    cli_profile = outputs.get("cli_profile")
    if not isinstance(cli_profile, Mapping):
        raise ShepardError(
            "while configuring a profile from the flock: its Terraform outputs have no"
            " `cli_profile` object. Apply the flock first (`shepard-tf apply flock.yaml`)."
        )
    values = {str(k): str(v) for k, v in cli_profile.items() if v is not None}
    if outputs.get("region") and not values.get("shepard_region"):
        values["shepard_region"] = str(outputs["region"])
    if flock_file is not None:
        values["shepard_flock_file"] = str(flock_file.resolve())
    if endpoint_url:
        values.setdefault("shepard_endpoint_url", endpoint_url)
    return values

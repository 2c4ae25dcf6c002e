"""The flock's Terraform working copy in its state folder (docs/contracts.md section 8).

``terraform/flock`` references ``../modules/*``, so both are copied side by side into
``<state>/terraform/``; Terraform runs in ``<state>/terraform/flock`` beside a generated
``backend_override.tf``. The copy is refreshed only when the source's content hash changes, and
``terraform init`` runs only when the source, the backend or the provider settings change, so a
second ``plan`` starts at once.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shepard
from shepard.errors import BadInput, ShepardError

TERRAFORM_DIR_VARIABLE = "SHEPARD_TERRAFORM_DIR"
BACKEND_FILE = "backend_override.tf"
SOURCE_STAMP = ".source-sha256"
INIT_STAMP = ".init-sha256"

# Never copied: Terraform's own data, state, and tfvars files Terraform would load on its own.
_SKIPPED_DIRS = {".terraform", "__pycache__"}
_SKIPPED_NAMES = {".terraform.lock.hcl", "terraform.tfvars", "terraform.tfvars.json", BACKEND_FILE}
_SKIPPED_SUFFIXES = (".tfstate", ".tfstate.backup", ".auto.tfvars", ".auto.tfvars.json", ".tfplan")
# Kept in the working copy when the source changes, so re-init is quick and nothing is lost.
_KEPT_IN_ROOT = {".terraform", ".terraform.lock.hcl", BACKEND_FILE}


def terraform_source(env: Mapping[str, str]) -> Path:
    """The folder holding ``flock/`` and ``modules/``: ``$SHEPARD_TERRAFORM_DIR`` or the repo's."""
    explicit = env.get(TERRAFORM_DIR_VARIABLE)
    path = (
        Path(explicit) if explicit else Path(shepard.__file__).resolve().parent.parent / "terraform"
    )
    root = path / "flock"
    if not root.is_dir() or not (any(root.glob("*.tf")) or any(root.glob("*.tf.json"))):
        named = f"{TERRAFORM_DIR_VARIABLE}={explicit}" if explicit else str(path)
        raise ShepardError(
            f"while locating the Terraform modules: {named} has no flock/ root module "
            "(a folder of .tf files). Set SHEPARD_TERRAFORM_DIR to the terraform/ folder of "
            "shepard-tf, the one holding flock/ and modules/"
        )
    return path


def _source_files(source: Path) -> Iterator[Path]:
    for part in ("flock", "modules"):
        top = source / part
        if not top.is_dir():
            continue
        for path in sorted(top.rglob("*")):
            relative = path.relative_to(source)
            if any(p in _SKIPPED_DIRS for p in relative.parts) or not path.is_file():
                continue
            if path.name in _SKIPPED_NAMES or path.name.endswith(_SKIPPED_SUFFIXES):
                continue
            yield path


def source_hash(source: Path) -> str:
    """sha256 over the copied files' relative paths and bytes, in a fixed order."""
    digest = hashlib.sha256()
    for path in _source_files(source):
        name = path.relative_to(source).as_posix().encode()
        data = path.read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def sync_working_copy(source: Path, workdir: Path) -> bool:
    """Copy ``source``'s flock/ and modules/ into ``workdir`` if changed; True when copied."""
    wanted = source_hash(source)
    stamp = workdir / SOURCE_STAMP
    if stamp.is_file() and stamp.read_text().strip() == wanted and (workdir / "flock").is_dir():
        return False
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(workdir / "modules", ignore_errors=True)
    root = workdir / "flock"
    if root.is_dir():
        for child in root.iterdir():
            if child.name in _KEPT_IN_ROOT:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    for path in _source_files(source):
        target = workdir / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    stamp.write_text(wanted + "\n")
    return True


@dataclass(frozen=True)
class Backend:
    """Where Terraform keeps the flock's state: ``local`` (default), ``s3`` or ``cloud``."""

    kind: str = "local"
    bucket: str | None = None
    key: str | None = None
    region: str | None = None
    dynamodb_table: str | None = None
    encrypt: bool = True
    organization: str | None = None
    workspace: str | None = None
    hostname: str | None = None


def _field(settings: Any, *names: str) -> Any:
    for name in names:
        if isinstance(settings, Mapping):
            if settings.get(name) is not None:
                return settings[name]
        elif getattr(settings, name, None) is not None:
            return getattr(settings, name)
    return None


def backend_from_config(settings: Any) -> Backend:
    """A :class:`Backend` from flock.yaml's ``state`` section (a dataclass or a mapping; None ->
    local)."""
    if settings is None:
        return Backend()
    kind = str(_field(settings, "backend", "kind", "type") or "local").lower()
    encrypt = _field(settings, "encrypt")
    return Backend(
        kind=kind,
        bucket=_field(settings, "bucket"),
        key=_field(settings, "key"),
        region=_field(settings, "region"),
        dynamodb_table=_field(settings, "dynamodb_table"),
        encrypt=True if encrypt is None else bool(encrypt),
        organization=_field(settings, "organization"),
        workspace=_field(settings, "workspace", "workspace_name", "workspaces"),
        hostname=_field(settings, "hostname"),
    )


def _hcl(value: str) -> str:
    """An HCL string literal: JSON escapes, plus HCL's own template sequences escaped."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def _attributes(pairs: list[tuple[str, str]], *, indent: int) -> str:
    """HCL attribute lines with the ``=`` aligned as ``terraform fmt`` writes them."""
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"{' ' * indent}{name:<{width}} = {value}" for name, value in pairs)


def render_backend_override(
    backend: Backend, *, state_dir: Path, flock_name: str, region: str
) -> str:
    """The text of ``backend_override.tf`` for the flock's working copy."""
    head = "# Written by shepard-tf from flock.yaml's `state` section. Do not edit.\n"
    if backend.kind == "local":
        path = _hcl(str(state_dir / "terraform.tfstate"))
        return f'{head}terraform {{\n  backend "local" {{\n    path = {path}\n  }}\n}}\n'
    if backend.kind == "s3":
        if not backend.bucket:
            raise BadInput(
                "while writing the Terraform backend: state.backend is s3 but state.bucket is "
                "not set. Add state.bucket (an existing S3 bucket for the state) to flock.yaml"
            )
        attributes = [
            ("bucket", _hcl(backend.bucket)),
            ("key", _hcl(backend.key or f"shepard/{flock_name}/terraform.tfstate")),
            ("region", _hcl(backend.region or region)),
            ("encrypt", "true" if backend.encrypt else "false"),
        ]
        if backend.dynamodb_table:
            attributes.append(("dynamodb_table", _hcl(backend.dynamodb_table)))
        body = _attributes(attributes, indent=4)
        return f'{head}terraform {{\n  backend "s3" {{\n{body}\n  }}\n}}\n'
    if backend.kind == "cloud":
        if not backend.organization:
            raise BadInput(
                "while writing the Terraform backend: state.backend is cloud but "
                "state.organization is not set. Add your Terraform Cloud organization to flock.yaml"
            )
        attributes = [("organization", _hcl(backend.organization))]
        if backend.hostname:
            attributes.append(("hostname", _hcl(backend.hostname)))
        workspace = _attributes([("name", _hcl(backend.workspace or flock_name))], indent=6)
        body = f"{_attributes(attributes, indent=4)}\n    workspaces {{\n{workspace}\n    }}"
        return f"{head}terraform {{\n  cloud {{\n{body}\n  }}\n}}\n"
    raise BadInput(
        f"while writing the Terraform backend: unknown state.backend {backend.kind!r}. "
        "Use local, s3 or cloud"
    )


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds exactly that; True when written."""
    if path.is_file() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomically: the local flock service watches some of these files (outputs.json) and must
    # never read one half written.
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)
    return True


def init_fingerprint(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


_OUTPUT_BLOCK = re.compile(r'^output\s+"([A-Za-z_][A-Za-z0-9_-]*)"\s*\{', re.MULTILINE)


def declared_outputs(root: Path) -> list[str]:
    """The output names the root module declares. ``terraform output -json`` leaves out outputs
    whose value is null (``efs_id`` without EFS), so callers add them back as ``None``."""
    names: list[str] = []
    for path in sorted(root.glob("*.tf")):
        names.extend(_OUTPUT_BLOCK.findall(path.read_text()))
    for path in sorted(root.glob("*.tf.json")):
        try:
            names.extend(json.loads(path.read_text()).get("output", {}))
        except (ValueError, AttributeError):
            continue
    return names

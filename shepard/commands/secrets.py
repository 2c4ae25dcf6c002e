"""secretify: a folder's files -> the flock's secret as JSON ``{file name: base64}``.

One Secrets Manager secret holds 64 KiB. More than that is split across ``<secret>-part-N``
secrets, listed in the main secret under ``"__shepard_parts__"``; the worker rebuilds the files
from all of them (docs/decisions/0006-cli.md). A single file too large for one secret is refused.
The parts are encrypted with the main secret's key (the flock key) and carry its tags and
``shepard:secret = <main secret>``.
Secret values are never printed.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from shepard.aws.flock import SECRET_LIMIT, Aws
from shepard.commands import Context
from shepard.errors import BadInput
from shepard.joblayer.calls import PART_SUFFIX, PART_TAG

PARTS_KEY = "__shepard_parts__"
MAX_PARTS = 20
# Room for the part list itself in the main secret.
_MAIN_RESERVE = 2048


def _size(value: dict[str, object]) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def read_files(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        raise BadInput(
            f"while reading secrets from {folder}: it is not a folder. Pass the folder of files."
        )
    files: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            files[path.name] = base64.b64encode(path.read_bytes()).decode("ascii")
    return files


def split(secret: str, files: dict[str, str]) -> dict[str, dict[str, object]]:
    """The secrets to write: ``{name: JSON object}``; the main one last."""
    if _size(dict(files)) <= SECRET_LIMIT:
        return {secret: dict(files)}
    parts: list[dict[str, object]] = [{}]
    for name, encoded in sorted(files.items(), key=lambda kv: -len(kv[1])):
        if _size({name: encoded}) > SECRET_LIMIT:
            raise BadInput(
                f"while packing secrets: {name} is {len(encoded) * 3 // 4} bytes, more than one"
                f" secret holds ({SECRET_LIMIT // 1024} KiB as base64, about 48 KiB of file)."
                " Put large files in the quick-deploy bucket or the input zip instead."
            )
        for part in parts:
            if _size({**part, name: encoded}) <= SECRET_LIMIT:
                part[name] = encoded
                break
        else:
            parts.append({name: encoded})
    if len(parts) > MAX_PARTS:
        raise BadInput(
            f"while packing secrets: they need {len(parts)} secrets, more than {MAX_PARTS}."
            " Keep fewer or smaller files in the secrets folder."
        )
    names = [f"{secret}{PART_SUFFIX}{i}" for i in range(1, len(parts) + 1)]
    out: dict[str, dict[str, object]] = dict(zip(names, parts, strict=True))
    out[secret] = {PARTS_KEY: names}
    return out


def _part_settings(aws: Aws, secret: str) -> tuple[str | None, dict[str, str]]:
    """The key and tags of the part secrets: the flock key that encrypts the main secret
    (terraform/modules/secrets) and its tags, plus ``shepard:secret`` naming it, so that
    ``destroy`` finds the parts and no part uses Secrets Manager's default key."""
    found = aws.secret_settings(secret)
    if found is None:  # no flock secret yet: it and its parts are made with the default key
        return None, {PART_TAG: secret}
    return found.kms_key_id, {**found.tags, PART_TAG: secret}


def secretify(ctx: Context) -> int:
    folder = ctx.path_flag("path_to_local_secrets", "storing secrets")
    secret = ctx.settings.require("secret_store", "storing secrets")
    files = read_files(folder)
    secrets = split(secret, files)
    aws = ctx.aws
    part_key, part_tags = _part_settings(aws, secret) if len(secrets) > 1 else (None, {})
    for name, value in secrets.items():  # parts first, the main secret (the list) last
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
        if name == secret:
            aws.put_secret(name, text)
        else:
            aws.put_secret(name, text, kms_key_id=part_key, tags=part_tags)
    extra = f" in {len(secrets)} secrets" if len(secrets) > 1 else ""
    ctx.console.print(f"stored {len(files)} file(s) from {folder} in secret {secret}{extra}")
    skipped = [p.name for p in folder.iterdir() if not p.is_file()]
    if skipped:
        ctx.console.note(f"skipped sub-folders (only files are stored): {', '.join(skipped)}")
    return 0

"""Fetching what a job reads: the input zip, the quick-deploy folder and the secrets."""

from __future__ import annotations

import base64
import binascii
import json
import shutil
from pathlib import Path, PurePosixPath
from typing import Protocol

from shepard.errors import BadInput

from .workspace import (
    check_file_name,
    checked_relative,
    safe_destination,
    safe_unzip,
    write_private,
)

PARTS_KEY = "__shepard_parts__"
RUN_SCRIPT = "run.sh"


class Storage(Protocol):
    def download(self, bucket: str, key: str, path: Path, size: int | None = None) -> None: ...
    def list_keys(self, bucket: str, prefix: str) -> list[str]: ...
    def secret_text(self, name: str) -> str | None: ...


def fetch_input_zip(
    storage: Storage, bucket: str, key: str, input_dirs: list[Path], *, size: int | None = None
) -> None:
    """Put the input zip, and what it holds, into each input folder (root, then EFS/Lustre).

    ``size``: the zip's size when known (the record's INPUT_ZIP_SIZE): a zip under the multipart
    threshold is then one GetObject, without the HeadObject a download of unknown size makes."""
    name = PurePosixPath(key).name
    check_file_name(name, what="the input zip's name")
    first = input_dirs[0] / name
    storage.download(bucket, key, first, size=size)
    for folder in input_dirs[1:]:
        shutil.copyfile(first, folder / name)
    for folder in input_dirs:
        safe_unzip(folder / name, folder, what=f'the input zip "{key}"')


def quick_deploy_folder(name: str) -> PurePosixPath:
    """The checked QUICK_DEPLOY_DIRECTORY value (a relative folder of the quick-deploy bucket)."""
    return checked_relative(name.strip("/"), what="QUICK_DEPLOY_DIRECTORY")


def fetch_quick_deploy(storage: Storage, bucket: str, directory: str, input_dir: Path) -> Path:
    """Fetch every object under ``<directory>/`` into ``input_dir/<directory>``; return run.sh."""
    folder_name = quick_deploy_folder(directory)
    prefix = f"{folder_name.as_posix()}/"
    keys = storage.list_keys(bucket, prefix)
    target = input_dir.joinpath(*folder_name.parts)
    target.mkdir(parents=True, exist_ok=True)
    # Check every name before writing any file, so a bad folder fails without half a download.
    planned: list[tuple[str, Path]] = []
    for key in keys:
        relative = key[len(prefix) :]
        if relative == "" or relative.endswith("/"):
            continue  # a "folder" marker made by the S3 console
        what = f'the quick-deploy object "{key}"'
        planned.append((key, safe_destination(target, relative, what=what)))
    for key, destination in planned:
        destination.parent.mkdir(parents=True, exist_ok=True)
        # Resolve again now that the parent folders exist (the input zip was unpacked here first).
        safe_destination(target, key[len(prefix) :], what=f'the quick-deploy object "{key}"')
        storage.download(bucket, key, destination)
    script = target / RUN_SCRIPT
    if not script.is_file():
        raise BadInput(
            f'while fetching the quick-deploy folder "{directory}" from s3://{bucket}: '
            f"it has no {RUN_SCRIPT} ({len(planned)} objects under {prefix}). "
            f"Upload the folder with a {RUN_SCRIPT} at its top."
        )
    return script


def _secret_files(name: str, text: str) -> tuple[dict[str, str], list[str]]:
    fix = "Write the secret with `shepard-tf secretify`"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(
            f'while reading the secret "{name}": it is not JSON ({error.msg}). {fix}.'
        ) from None
    if not isinstance(value, dict):
        raise BadInput(f'while reading the secret "{name}": it is not a JSON object. {fix}.')
    parts = value.pop(PARTS_KEY, [])
    if not isinstance(parts, list) or not all(isinstance(p, str) and p for p in parts):
        raise BadInput(
            f'while reading the secret "{name}": {PARTS_KEY} is not a list of secret names. {fix}.'
        )
    for key, encoded in value.items():
        if not isinstance(encoded, str):
            raise BadInput(
                f'while reading the secret "{name}": the value of "{key}" is not a base64 string. '
                f"{fix}."
            )
    return value, parts


def rebuild_secrets(storage: Storage, secret_name: str, secrets_dir: Path) -> list[str]:
    """Rebuild the secret's files (name -> base64 content) in ``secrets_dir`` (mode 0600)."""

    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    text = storage.secret_text(secret_name)
    if text is None or not text.strip():
        return []
    files, parts = _secret_files(secret_name, text)
    sources = dict.fromkeys(files, secret_name)
    for part in parts:
        part_text = storage.secret_text(part)
        if part_text is None:
            raise BadInput(
                f'while reading the secret "{secret_name}": its part "{part}" does not exist. '
                "Run `shepard-tf secretify` again."
            )
        part_files, nested = _secret_files(part, part_text)
        if nested:
            raise BadInput(
                f'while reading the secret "{part}": a part lists parts of its own. '
                "Run `shepard-tf secretify` again."
            )
        for file_name in part_files:
            if file_name in files:
                raise BadInput(
                    f'while reading the secret "{part}": the file "{file_name}" is also in '
                    f'"{sources[file_name]}". Run `shepard-tf secretify` again.'
                )
            sources[file_name] = part
        files.update(part_files)
    written: list[str] = []
    for file_name, encoded in sorted(files.items()):
        check_file_name(file_name, what=f'the file name in the secret "{sources[file_name]}"')
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput(
                f'while reading the secret "{sources[file_name]}": "{file_name}" is not valid '
                "base64. Run `shepard-tf secretify` again."
            ) from None
        write_private(secrets_dir / file_name, data)
        written.append(file_name)
    return written

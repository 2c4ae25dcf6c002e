"""The payload command of a local flock in process mode, read from the code folder's Dockerfile.

Without a Docker engine the local flock runs the user's container as a plain process: its
``ENTRYPOINT`` + ``CMD`` (as ``docker run`` combines them), run from the code folder. Paths the
Dockerfile ``COPY``s into the image are mapped back to the files in the code folder, so
``COPY testing_code.py /`` + ``CMD ["/testing_code.py"]`` runs ``<code>/testing_code.py``, and a
``python``/``python3`` interpreter becomes this Python. A shell-form instruction runs as
``["/bin/sh", "-c", text]``: the text is the user's own Dockerfile, never job data.
"""

from __future__ import annotations

import json
import posixpath
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from shepard.errors import BadInput

DOCKERFILE_NAMES = ("Dockerfile", "Dockerfile.txt")
_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
_INSTRUCTION = re.compile(r"^\s*([A-Za-z]+)\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class PayloadCommand:
    """What the worker runs in process mode: an argument list and the folder to run it from."""

    argv: tuple[str, ...]
    cwd: Path
    source: str  # where it came from, for messages: "Dockerfile" or "local.command"


def find_dockerfile(code_dir: Path) -> Path:
    for name in DOCKERFILE_NAMES:
        candidate = code_dir / name
        if candidate.is_file():
            return candidate
    raise BadInput(
        f"while reading the payload of the local flock: {code_dir} has no Dockerfile "
        f"(or Dockerfile.txt). Put the container's Dockerfile in the code folder, or set "
        f"local.command in flock.yaml."
    )


def logical_lines(text: str) -> list[str]:
    """The instructions of a Dockerfile: comments dropped, ``\\`` continuations joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continuation are skipped by Docker too
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        lines.append((pending + stripped).strip())
        pending = ""
    if pending.strip():
        lines.append(pending.strip())
    return lines


def _exec_or_shell(argument: str, *, where: str) -> list[str]:
    argument = argument.strip()
    if argument.startswith("["):
        try:
            parsed = json.loads(argument)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return list(parsed)
        # Docker itself treats an unparsable "[..." as shell form.
    if not argument:
        raise BadInput(
            f"while reading the payload of the local flock: {where} is empty. "
            f'Write it in exec form, e.g. ["python", "main.py"].'
        )
    return ["/bin/sh", "-c", argument]


def _copy_sources_and_dest(argument: str) -> tuple[list[str], str] | None:
    words: list[str]
    stripped = argument.strip()
    flags: list[str] = []
    while stripped.startswith("--"):
        flag, _, stripped = stripped.partition(" ")
        flags.append(flag)
        stripped = stripped.strip()
    if any(flag.startswith("--from") for flag in flags):
        return None  # copied from another stage or image: nothing in the code folder
    if stripped.startswith("["):
        try:
            parsed = json.loads(stripped)
        except json.JSONDecodeError:
            return None
        if not isinstance(parsed, list):
            return None
        words = [str(item) for item in parsed]
    else:
        words = stripped.split()
    if len(words) < 2:
        return None
    return words[:-1], words[-1]


@dataclass
class _Stage:
    workdir: str = "/"
    entrypoint: list[str] | None = None
    entrypoint_is_shell: bool = False
    cmd: list[str] | None = None
    copies: dict[str, str] | None = None  # image path -> path relative to the code folder


def _record_copy(stage: _Stage, argument: str) -> None:
    parsed = _copy_sources_and_dest(argument)
    if parsed is None:
        return
    sources, dest = parsed
    if stage.copies is None:
        stage.copies = {}
    dest_abs = posixpath.normpath(posixpath.join(stage.workdir, dest))
    into_dir = dest.endswith("/") or len(sources) > 1 or dest in (".", "./")
    for source in sources:
        clean = posixpath.normpath(source)
        if clean in (".", "./"):
            stage.copies[dest_abs] = "."
        elif into_dir:
            stage.copies[posixpath.join(dest_abs, posixpath.basename(clean))] = clean
        else:
            stage.copies[dest_abs] = clean


def parse_dockerfile(text: str) -> _Stage:
    """The last stage's ENTRYPOINT, CMD, WORKDIR and COPY/ADD map."""
    stage = _Stage()
    for line in logical_lines(text):
        match = _INSTRUCTION.match(line)
        if match is None:
            continue
        instruction, argument = match.group(1).upper(), match.group(2)
        if instruction == "FROM":
            stage = _Stage()
        elif instruction == "WORKDIR":
            stage.workdir = posixpath.normpath(posixpath.join(stage.workdir, argument.strip()))
        elif instruction in ("COPY", "ADD"):
            _record_copy(stage, argument)
        elif instruction == "ENTRYPOINT":
            stage.entrypoint = _exec_or_shell(argument, where="ENTRYPOINT")
            stage.entrypoint_is_shell = not argument.strip().startswith("[")
        elif instruction == "CMD":
            stage.cmd = _exec_or_shell(argument, where="CMD")
    return stage


def _map_path(arg: str, stage: _Stage, code_dir: Path) -> str:
    """An image path that a COPY put there -> the file in the code folder."""
    copies = stage.copies or {}
    if not arg or arg.startswith("-"):
        return arg
    if not arg.startswith("/"):
        # Relative to WORKDIR in the image; the process runs from the code folder, which is
        # the same place when the code folder was copied to WORKDIR.
        image_path = posixpath.normpath(posixpath.join(stage.workdir, arg))
    else:
        image_path = posixpath.normpath(arg)
    candidates: list[Path] = []
    if image_path in copies:
        candidates.append(code_dir / copies[image_path])
    for dest, source in copies.items():
        prefix = dest.rstrip("/") + "/"
        if image_path.startswith(prefix):
            candidates.append(code_dir / source / image_path[len(prefix) :])
    for candidate in candidates:
        # Only a file the code folder really holds: an argument that merely looks like a path
        # stays as it is.
        resolved = candidate.resolve()
        if resolved.exists() and resolved.is_relative_to(code_dir):
            return str(resolved)
    return arg


def payload_command(code_dir: Path, local_command: list[str] | None = None) -> PayloadCommand:
    """The command that stands in for ``docker run <payload image>`` on this machine."""
    code_dir = code_dir.resolve()
    if local_command:
        return PayloadCommand(tuple(local_command), code_dir, "local.command")
    dockerfile = find_dockerfile(code_dir)
    stage = parse_dockerfile(dockerfile.read_text(encoding="utf-8"))
    if stage.entrypoint is not None and stage.entrypoint_is_shell:
        argv = stage.entrypoint  # Docker ignores CMD after a shell-form ENTRYPOINT
    else:
        argv = (stage.entrypoint or []) + (stage.cmd or [])
    if not argv:
        raise BadInput(
            f"while reading the payload of the local flock: {dockerfile} sets no ENTRYPOINT or "
            f"CMD (its base image's cannot be read without Docker). Add an exec-form CMD, "
            f'e.g. CMD ["python", "main.py"], or set local.command in flock.yaml.'
        )
    if argv[:2] == ["/bin/sh", "-c"]:
        return PayloadCommand(tuple(argv), code_dir, dockerfile.name)
    mapped = [_map_path(arg, stage, code_dir) if i > 0 else arg for i, arg in enumerate(argv)]
    if _PYTHON.match(mapped[0]):
        mapped[0] = sys.executable
    else:
        mapped[0] = _map_path(mapped[0], stage, code_dir)
    return PayloadCommand(tuple(mapped), code_dir, dockerfile.name)

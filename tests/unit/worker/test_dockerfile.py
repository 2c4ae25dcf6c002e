"""The worker image's Dockerfile (no engine here to build it): every COPY source exists in the
repository, and the image runs ``python -m shepard_worker``."""

from __future__ import annotations

import ast
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "worker" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, rest = (pending + line).partition(" ")
        lines.append((instruction.upper(), rest.strip()))
        pending = ""
    return lines


def test_copy_sources_exist_with_the_repository_root_as_context() -> None:
    copies = [rest for instruction, rest in _instructions() if instruction == "COPY"]
    assert copies, "the Dockerfile copies nothing"
    sources = [source for rest in copies for source in shlex.split(rest)[:-1]]
    for source in sources:
        assert (ROOT / source).exists(), f"COPY source {source} is missing"
    copied = {s.rstrip("/") for s in sources}
    assert {"shepard/joblayer", "worker/shepard_worker", "shepard/errors.py"} <= copied


def test_everything_the_image_imports_is_in_it() -> None:
    # The image holds the standard library, boto3, the Docker SDK, shepard/__init__.py,
    # shepard/errors.py, shepard/joblayer/ and shepard_worker/: nothing may import more.
    installed = {"boto3", "botocore", "docker", "shepard_worker"}
    copied = ("shepard.errors", "shepard.joblayer")
    paths = [
        *(ROOT / "worker" / "shepard_worker").glob("*.py"),
        *(ROOT / "shepard" / "joblayer").glob("*.py"),
        ROOT / "shepard" / "__init__.py",
        ROOT / "shepard" / "errors.py",
    ]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top == "shepard":
                    assert module.startswith(copied), f"{path.name} imports {module}"
                else:
                    assert top in sys.stdlib_module_names or top in installed, (
                        f"{path.name} imports {module}, which the worker image does not install"
                    )


def test_base_image_and_entrypoint() -> None:
    instructions = _instructions()
    assert instructions[0] == ("FROM", "python:3.12-slim")
    entrypoint = [rest for instruction, rest in instructions if instruction == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoint] == [["python", "-m", "shepard_worker"]]
    pip = " ".join(rest for instruction, rest in instructions if instruction == "RUN")
    assert "boto3" in pip and "docker" in pip

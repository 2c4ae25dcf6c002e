"""The worker image's Dockerfile and its prepared build context (the build itself runs in
tests/docker/): every COPY source exists, the base is an argument, the image runs the worker."""

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
    # ${WHEELS_DIR:-...}: a folder of the prepared context (shepard.worker_image), or nothing
    sources = [s for rest in copies for s in shlex.split(rest)[:-1] if not s.startswith("$")]
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


def test_base_image_is_an_argument_and_the_entrypoint_runs_the_worker_in_its_venv() -> None:
    instructions = _instructions()
    assert instructions[:2] == [("ARG", "BASE_IMAGE=python:3.12-slim"), ("FROM", "${BASE_IMAGE}")]
    assert ("ARG", "WHEELS_DIR=") in instructions
    entrypoint = [rest for instruction, rest in instructions if instruction == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoint] == [["/opt/venv/bin/python", "-m", "shepard_worker"]]
    run = " ".join(rest for instruction, rest in instructions if instruction == "RUN")
    assert "python3 -m venv /opt/venv" in run
    assert "--no-index --find-links /tmp/worker-install" in run  # offline, from WHEELS_DIR
    assert "-r /tmp/worker-install/requirements.txt" in run
    requirements = (ROOT / "worker" / "requirements.txt").read_text()
    assert "boto3" in requirements and "docker" in requirements


def test_the_prepared_context_holds_what_the_dockerfile_copies_and_no_caches(
    tmp_path: Path,
) -> None:
    from shepard.worker_image import WORKER_FILES, prepare_context

    wheels = tmp_path / "wheels-cache"
    wheels.mkdir()
    (wheels / "boto3-1-py3-none-any.whl").write_bytes(b"wheel")
    (wheels / ".complete").write_text("boto3\n")
    context = prepare_context(tmp_path / "context", wheels=wheels)

    copies = [rest for instruction, rest in _instructions() if instruction == "COPY"]
    sources = [s for rest in copies for s in shlex.split(rest)[:-1] if not s.startswith("$")]
    for source in sources:
        assert (context / source).exists(), f"COPY source {source} is not in the context"
    assert all((context / name).exists() for name in WORKER_FILES)
    assert sorted(p.name for p in (context / "wheels").iterdir()) == ["boto3-1-py3-none-any.whl"]
    assert not list(context.rglob("__pycache__"))
    assert not (context / "tests").exists() and not (context / ".git").exists()

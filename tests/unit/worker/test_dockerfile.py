"""The worker image's Dockerfile (no engine here to build it): every COPY source exists in the
repository, and the image runs ``python -m shepard_worker``."""

from __future__ import annotations

import json
import shlex
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


def test_everything_the_worker_imports_from_shepard_is_copied() -> None:
    # The image holds shepard/__init__.py, errors.py and joblayer/ only: the worker and the job
    # layer may import nothing else of shepard.
    allowed = ("shepard.errors", "shepard.joblayer")
    for folder in (ROOT / "worker" / "shepard_worker", ROOT / "shepard" / "joblayer"):
        for path in folder.glob("*.py"):
            for line in path.read_text().splitlines():
                words = line.split()
                if len(words) >= 2 and words[0] in ("from", "import"):
                    module = words[1]
                    if module == "shepard" or module.startswith("shepard."):
                        assert module.startswith(allowed), f"{path.name} imports {module}"


def test_base_image_and_entrypoint() -> None:
    instructions = _instructions()
    assert instructions[0] == ("FROM", "python:3.12-slim")
    entrypoint = [rest for instruction, rest in instructions if instruction == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoint] == [["python", "-m", "shepard_worker"]]
    pip = " ".join(rest for instruction, rest in instructions if instruction == "RUN")
    assert "boto3" in pip and "docker" in pip

"""The corpus of flock files: every bad file fails with exactly the messages its comments expect.

A bad file states what it must produce in comment lines ``# expect: <key path>: <message> (line N)``
(one per problem, in file order); a good file may state the warnings it must produce with
``# warn: ...``, and must produce no others.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shepard.config import FlockError, load_flock
from shepard.errors import BadInput, ExitStatus

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
BAD = sorted((HERE / "bad").glob("*.yaml"))
GOOD = sorted((HERE / "good").glob("*.yaml")) + sorted(
    (ROOT / "examples" / "flocks").glob("*.yaml")
)


def _comments(path: Path, tag: str) -> list[str]:
    prefix = f"# {tag}: "
    return [
        line[len(prefix) :].rstrip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith(prefix)
    ]


def test_corpus_is_large_enough() -> None:
    assert len(BAD) >= 20
    assert all(_comments(path, "expect") for path in BAD), "every bad file states its messages"


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_flock_is_rejected_with_its_messages(path: Path) -> None:
    with pytest.raises(FlockError) as caught:
        load_flock(path)
    error = caught.value
    assert isinstance(error, BadInput)
    assert error.exit_status is ExitStatus.BAD_INPUT
    assert [str(issue) for issue in error.issues] == _comments(path, "expect")
    message = error.message
    assert message.startswith(f"while reading flock file {path}: ")
    for expected in _comments(path, "expect"):
        assert f"\n  {expected}\n" in message
    assert "Traceback" not in message


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_flock_loads_with_only_its_warnings(path: Path) -> None:
    config = load_flock(path)
    assert list(config.warnings) == _comments(path, "warn")
    assert config.source == str(path)

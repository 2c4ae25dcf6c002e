"""The session's summary of its background flocks: how long each run took and was waited for."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import background


def test_a_stopped_flock_says_how_long_its_runs_took_and_were_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(background, "SUMMARY", [])
    folder = tmp_path / "flock"
    folder.mkdir()
    flock = background.Flock(
        "demo",
        folder,
        None,
        [sys.executable, "-c", "import time; time.sleep(0.3)"],
        [sys.executable, "-c", "pass"],
        {},
    )
    assert flock.summary() == "demo: apply not run, destroy not run"
    flock.start_apply()
    flock.applied()
    assert flock.waited > 0.1  # the apply was still running when the test asked for it
    flock.destroyed()
    flock.stop(cleanup=False)
    flock.stop(cleanup=False)  # once
    assert len(background.SUMMARY) == 1
    line = background.SUMMARY[0]
    assert line.startswith("demo: apply 0 s (tests waited 0 s), destroy 0 s (tests waited 0 s)")

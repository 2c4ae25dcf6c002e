"""How long `shepard-tf --help` takes, against `python -c pass` in the same run.

Prints ours, the baseline and the ratio (median of several runs each, interleaved so that machine
load hits both alike). Target: under 0.3 s. Exit 1 when over it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 9
TARGET_SECONDS = 0.3
SCRIPT = Path(sys.executable).with_name("shepard-tf")


def _time(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    ours_cmd = (
        [str(SCRIPT), "--help"]
        if SCRIPT.exists()
        else [sys.executable, "-m", "shepard.cli", "--help"]
    )
    base_cmd = [sys.executable, "-c", "pass"]
    _time(ours_cmd)  # warm the file cache
    ours, base = [], []
    for _ in range(RUNS):
        ours.append(_time(ours_cmd))
        base.append(_time(base_cmd))
    ours_s, base_s = statistics.median(ours), statistics.median(base)
    print(
        f"cli startup (shepard-tf --help): ours {ours_s * 1000:.0f} ms, "
        f"baseline (python -c pass) {base_s * 1000:.0f} ms, ratio {ours_s / base_s:.2f}x, "
        f"target < {TARGET_SECONDS * 1000:.0f} ms"
    )
    return 0 if ours_s < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())

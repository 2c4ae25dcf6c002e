"""The job's log: every line to stdout (CloudWatch on Batch) and to ``worker.log``."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import IO, TextIO


class JobLog:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._file: IO[str] | None = None
        # Re-entrant: the signal handler logs from the main thread, maybe while it holds the lock.
        self._lock = threading.RLock()

    def open(self, path: Path) -> None:
        """From now on, also append every line to ``path`` (the job's scratch folder)."""
        self.close()
        self._file = path.open("a", encoding="utf-8", errors="replace")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __call__(self, line: str) -> None:
        with self._lock:
            print(line, file=self._stream, flush=True)
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()

    def worker(self, message: str) -> None:
        """A line of the worker's own (payload lines go through ``__call__`` as they are)."""
        self(f"shepard: {message}")

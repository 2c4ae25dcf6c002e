"""The live display of a Terraform apply or destroy: resources done of total, the ones in
progress, elapsed time. A rich live panel on a terminal; plain, stable lines when the stream is
not a terminal or ``NO_COLOR`` is set (CI logs, tests, pipes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from shepard.tf.events import (
    ApplyComplete,
    ApplyErrored,
    ApplyProgress,
    ApplyStart,
    Diagnostic,
    Event,
)

_PAST = {
    "create": "created",
    "update": "updated",
    "delete": "destroyed",
    "replace": "replaced",
    "read": "read",
    "import": "imported",
}
_ING = {
    "create": "creating",
    "update": "updating",
    "delete": "destroying",
    "replace": "replacing",
    "read": "reading",
    "import": "importing",
}


def wants_rich(stream: IO[str], env: Mapping[str, str]) -> bool:
    """Rich output only on a terminal, and never with ``NO_COLOR`` or ``TERM=dumb``."""
    if "NO_COLOR" in env or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclass
class ApplyState:
    """What the display shows, updated from Terraform's events (no I/O here)."""

    total: int
    done: int = 0
    failed: int = 0
    in_progress: dict[str, tuple[str, float]] = field(default_factory=dict)

    def update(self, event: Event, now: float) -> str | None:
        """Apply one event; return a line worth logging, if any."""
        if isinstance(event, ApplyStart):
            self.in_progress[event.address] = (event.action, now)
            return None
        if isinstance(event, ApplyProgress):
            return (
                f"  still {_ING.get(event.action, event.action)} {event.address} "
                f"({_duration(event.elapsed_seconds)})"
            )
        if isinstance(event, ApplyComplete):
            self.in_progress.pop(event.address, None)
            self.done += 1
            self.total = max(self.total, self.done)
            verb = _PAST.get(event.action, event.action)
            return (
                f"[{self.done}/{self.total}] {event.address}: {verb} "
                f"({_duration(event.elapsed_seconds)})"
            )
        if isinstance(event, ApplyErrored):
            self.in_progress.pop(event.address, None)
            self.done += 1
            self.failed += 1
            return f"[{self.done}/{self.total}] {event.address}: FAILED"
        if isinstance(event, Diagnostic) and event.severity == "error":
            return event.describe()
        return None


class ApplyDisplay:
    """Shows an :class:`ApplyState` on ``stream``; use as a context manager, feed ``handle``."""

    def __init__(
        self,
        stream: IO[str],
        *,
        title: str,
        total: int,
        env: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.title = title
        self.state = ApplyState(total=total)
        self.clock = clock
        self.rich = wants_rich(stream, env)
        self.started = clock()
        self._live: Any = None

    def __enter__(self) -> ApplyDisplay:
        self.started = self.clock()
        if self.rich:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, highlight=False)
            self._live = Live(
                console=console,
                get_renderable=self._render,
                refresh_per_second=4,
                transient=True,
            )
            self._live.start()
        else:
            self._print(f"{self.title}: {self.state.total} to do")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        elapsed = _duration(self.clock() - self.started)
        failed = f", {self.state.failed} failed" if self.state.failed else ""
        self._print(f"{self.title}: {self.state.done}/{self.state.total} done{failed} in {elapsed}")

    def handle(self, event: Event) -> None:
        line = self.state.update(event, self.clock())
        if line is None:
            return
        if self.rich and isinstance(event, ApplyProgress):
            return  # the live panel already shows what is in progress
        self._print(line)

    def note(self, text: str) -> None:
        self._print(text)

    def _print(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, markup=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        now = self.clock()
        table = Table.grid(padding=(0, 1))
        header = Text(
            f"{self.title}: {self.state.done}/{self.state.total} resources, "
            f"{_duration(now - self.started)} elapsed",
            style="bold",
        )
        table.add_row(header)
        for address, (action, since) in list(self.state.in_progress.items())[:5]:
            table.add_row(
                Text(
                    f"  {_ING.get(action, action)} {address} ({_duration(now - since)})",
                    style="cyan",
                )
            )
        return table

"""What the command line prints: rich tables and progress bars on a terminal, plain text otherwise.

Output goes through one :class:`Console` built by ``main()`` from the streams and the environment it
was given, so tests read exactly what a user would see. ``rich`` is imported only when a table or a
progress bar is drawn on a terminal; piped output and ``NO_COLOR`` get plain, stable text.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Protocol


class Progress(Protocol):
    """A byte counter for one transfer (upload, download)."""

    def advance(self, amount: int) -> None: ...


class _NoProgress:
    def advance(self, amount: int) -> None:
        return None


@dataclass
class _RichProgress:
    bar: Any
    task: Any

    def advance(self, amount: int) -> None:
        self.bar.update(self.task, advance=amount)


def _rich_console(stream: IO[str]) -> Any:
    from rich.console import Console as RichConsole

    return RichConsole(file=stream, highlight=False, soft_wrap=False)


@dataclass
class Console:
    """The streams of one run of the CLI, and how to draw on them."""

    out: IO[str] = field(default_factory=lambda: sys.stdout)
    err: IO[str] = field(default_factory=lambda: sys.stderr)
    inp: IO[str] = field(default_factory=lambda: sys.stdin)
    rich: bool = False
    show_progress: bool = True

    @classmethod
    def for_streams(
        cls,
        env: Mapping[str, str],
        out: IO[str] | None = None,
        err: IO[str] | None = None,
        inp: IO[str] | None = None,
    ) -> Console:
        out = out if out is not None else sys.stdout
        is_tty = bool(getattr(out, "isatty", lambda: False)())
        fancy = is_tty and "NO_COLOR" not in env and env.get("TERM") != "dumb"
        return cls(
            out=out,
            err=err if err is not None else sys.stderr,
            inp=inp if inp is not None else sys.stdin,
            rich=fancy,
            show_progress=fancy and env.get("SHEPARD_NO_PROGRESS", "") == "",
        )

    # -- text -------------------------------------------------------------------------------
    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A message about what is happening: stderr, so stdout stays data."""
        self.err.write(text + "\n")
        self.err.flush()

    def error(self, text: str) -> None:
        self.err.write(f"error: {text}\n")
        self.err.flush()

    def json(self, value: Any) -> None:
        self.print(json.dumps(value, indent=2, sort_keys=True, default=str))

    def ask(self, question: str, default: str) -> str:
        """One prompt with the current value as default (``configure``)."""
        shown = f" [{default}]" if default else ""
        self.err.write(f"{question}{shown}: ")
        self.err.flush()
        line = self.inp.readline()
        answer = line.rstrip("\n").strip()
        return answer if answer else default

    # -- tables -----------------------------------------------------------------------------
    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        title: str | None = None,
        highlight_row: int | None = None,
    ) -> None:
        if self.rich:
            from rich.table import Table

            table = Table(title=title)
            for column in columns:
                table.add_column(column)
            for index, row in enumerate(rows):
                style = "underline bold" if index == highlight_row else None
                table.add_row(*row, style=style)
            _rich_console(self.out).print(table)
            return
        if title:
            self.print(title)
        widths = [len(c) for c in columns]
        for row in rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        self.print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        for row in rows:
            line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            self.print(line)

    # -- progress ---------------------------------------------------------------------------
    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Progress]:
        """A progress bar on a terminal; nothing when piped (the caller prints the result)."""
        if not self.show_progress:
            yield _NoProgress()
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        with RichProgress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=_rich_console(self.err),
            transient=True,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield _RichProgress(bar, task)

    def clear(self) -> None:
        """Clear the screen before a ``--watch`` refresh (terminal only)."""
        if self.rich:
            self.out.write("\x1b[2J\x1b[H")

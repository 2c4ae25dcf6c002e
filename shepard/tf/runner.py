"""Running Terraform: argument lists (never a shell), ``-json`` streams, Ctrl-C handled safely.

Terraform runs in its own process group, so a Ctrl-C at the terminal reaches only shepard-tf,
which forwards exactly one SIGINT: Terraform then finishes the operations in flight, writes its
state, releases the lock and exits. A second SIGINT would make Terraform exit at once and could
leave the state locked, so later Ctrl-Cs are only acknowledged.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from shepard.errors import BackendError, ExitStatus, ShepardError
from shepard.tf.binary import Terraform
from shepard.tf.events import Diagnostic, Event, Message, parse_line


@dataclass
class RunResult:
    args: list[str]
    returncode: int
    events: list[Event] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    interrupted: bool = False

    @property
    def errors(self) -> list[Diagnostic]:
        return [e for e in self.events if isinstance(e, Diagnostic) and e.severity == "error"]


def _clean(text: str) -> str:
    """Terraform's human output without the box drawing around diagnostics."""
    lines = []
    for line in text.splitlines():
        stripped = line.lstrip("│╷╵ ").rstrip()
        if stripped:
            lines.append(stripped)
    return "\n".join(lines)


def failure_message(doing: str, result: RunResult) -> str:
    """``while <doing>: Terraform failed: <its own error lines>. <what to do>``."""
    if result.errors:
        cause = "\n".join(d.describe() for d in result.errors)
    else:
        texts = [e.text for e in result.events if isinstance(e, Message) and e.level == "error"]
        cause = _clean(result.stderr) or "\n".join(texts) or _clean(result.stdout)
        cause = cause or f"terraform exited with status {result.returncode}"
    return (
        f"while {doing}: Terraform failed:\n{cause}\nFix the cause above and run the command again"
    )


class TerraformRunner:
    """One Terraform executable, one working directory, one environment."""

    def __init__(self, terraform: Terraform, workdir: Path, env: Mapping[str, str]) -> None:
        self.terraform = terraform
        self.workdir = workdir
        self.env = dict(env)

    def run(
        self,
        args: Sequence[str],
        *,
        doing: str,
        json_stream: bool = False,
        on_event: Callable[[Event], None] | None = None,
        on_interrupt: Callable[[], None] | None = None,
        check: bool = True,
    ) -> RunResult:
        """Run ``terraform <args>``; raise :class:`BackendError` naming ``doing`` on failure."""
        command = [str(self.terraform.path), *args]
        try:
            process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                process_group=0,
            )
        except OSError as error:
            raise BackendError(
                f"while {doing}: {command[0]} cannot run ({error.strerror}). "
                "Check SHEPARD_TERRAFORM_BIN or the terraform on PATH"
            ) from None
        result = RunResult(args=list(args), returncode=-1)
        stderr_chunks: list[str] = []
        assert process.stderr is not None and process.stdout is not None
        reader = threading.Thread(target=_drain, args=(process.stderr, stderr_chunks), daemon=True)
        reader.start()
        with _ForwardInterrupts(process, on_interrupt) as forward:
            stdout_lines: list[str] = []
            for line in process.stdout:
                if not json_stream:
                    stdout_lines.append(line)
                    continue
                event = parse_line(line)
                if event is None:
                    continue
                result.events.append(event)
                if on_event is not None:
                    on_event(event)
            result.returncode = process.wait()
        reader.join()
        result.stdout = "".join(stdout_lines)
        result.stderr = "".join(stderr_chunks)
        result.interrupted = forward.interrupted
        if result.interrupted:
            raise ShepardError(
                f"while {doing}: interrupted. Terraform stopped cleanly and saved its state; "
                "run the command again to continue",
                exit_status=ExitStatus.INTERRUPTED,
            )
        if check and result.returncode != 0:
            raise BackendError(failure_message(doing, result))
        return result


def _drain(stream: IO[str], chunks: list[str]) -> None:
    for chunk in stream:
        chunks.append(chunk)


class _ForwardInterrupts:
    """While Terraform runs, turn SIGINT/SIGTERM to shepard-tf into one SIGINT to Terraform."""

    def __init__(
        self, process: subprocess.Popen[str], on_interrupt: Callable[[], None] | None
    ) -> None:
        self.process = process
        self.on_interrupt = on_interrupt
        self.interrupted = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.interrupted:
            self.interrupted = True
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
            if self.on_interrupt is not None:
                self.on_interrupt()

    def __enter__(self) -> _ForwardInterrupts:
        # Signal handlers can only be set from the main thread; elsewhere nothing is forwarded
        # (and Ctrl-C is delivered to the main thread anyway).
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            # An exception in our own code while Terraform runs: stop it the safe way and wait.
            self.process.send_signal(signal.SIGINT)
            self.process.wait()
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]

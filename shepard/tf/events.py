"""Terraform's machine-readable UI (``-json``): one JSON object a line, read into plain events.

The messages used here are documented at
https://developer.hashicorp.com/terraform/internals/machine-readable-ui: ``planned_change``,
``change_summary``, ``apply_start``/``apply_progress``/``apply_complete``/``apply_errored``,
``diagnostic`` and ``outputs``. Unknown types and lines that are not JSON (a crash, a provider
printing to stdout) become :class:`Message` so nothing Terraform says is lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PlannedChange:
    address: str
    action: str  # create, update, delete, replace, read, noop, move, import, forget


@dataclass(frozen=True)
class ChangeSummary:
    add: int
    change: int
    remove: int
    operation: str  # plan, apply, destroy


@dataclass(frozen=True)
class ApplyStart:
    address: str
    action: str


@dataclass(frozen=True)
class ApplyProgress:
    address: str
    action: str
    elapsed_seconds: float


@dataclass(frozen=True)
class ApplyComplete:
    address: str
    action: str
    elapsed_seconds: float


@dataclass(frozen=True)
class ApplyErrored:
    address: str
    action: str
    elapsed_seconds: float


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # error, warning
    summary: str
    detail: str = ""
    address: str = ""
    filename: str = ""
    line: int | None = None

    def describe(self) -> str:
        """Terraform's own words: summary, where, detail."""
        where = []
        if self.address:
            where.append(f"with {self.address}")
        if self.filename:
            where.append(f"on {self.filename}" + (f" line {self.line}" if self.line else ""))
        head = f"{self.severity.capitalize()}: {self.summary}"
        if where:
            head += f" ({', '.join(where)})"
        return f"{head}\n  {self.detail}" if self.detail else head


@dataclass(frozen=True)
class Message:
    """Anything else: a log line, or text that is not JSON."""

    level: str
    text: str


Event = (
    PlannedChange
    | ChangeSummary
    | ApplyStart
    | ApplyProgress
    | ApplyComplete
    | ApplyErrored
    | Diagnostic
    | Message
)


def _hook_address(hook: dict[str, Any]) -> str:
    resource = hook.get("resource") or {}
    return str(resource.get("addr", ""))


def _diagnostic(raw: dict[str, Any]) -> Diagnostic:
    place = raw.get("range") or {}
    start = place.get("start") or {}
    line = start.get("line")
    return Diagnostic(
        severity=str(raw.get("severity", "error")),
        summary=str(raw.get("summary", "")).strip(),
        detail=str(raw.get("detail", "")).strip(),
        address=str(raw.get("address", "")),
        filename=str(place.get("filename", "")),
        line=int(line) if isinstance(line, int) else None,
    )


def parse_line(line: str) -> Event | None:
    """One line of ``terraform <verb> -json`` output as an event (None for a blank line)."""
    text = line.strip()
    if not text:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return Message(level="info", text=text)
    if not isinstance(message, dict):
        return Message(level="info", text=text)
    kind = message.get("type")
    raw_hook = message.get("hook")
    hook: dict[str, Any] = raw_hook if isinstance(raw_hook, dict) else {}
    if kind == "planned_change":
        change = message.get("change") or {}
        return PlannedChange(address=_hook_address(change), action=str(change.get("action", "")))
    if kind == "change_summary":
        changes = message.get("changes") or {}
        return ChangeSummary(
            add=int(changes.get("add", 0)),
            change=int(changes.get("change", 0)),
            remove=int(changes.get("remove", 0)),
            operation=str(changes.get("operation", "")),
        )
    if kind == "apply_start":
        return ApplyStart(address=_hook_address(hook), action=str(hook.get("action", "")))
    if kind in {"apply_progress", "apply_complete", "apply_errored"}:
        address = _hook_address(hook)
        action = str(hook.get("action", ""))
        elapsed = float(hook.get("elapsed_seconds", 0) or 0)
        if kind == "apply_progress":
            return ApplyProgress(address, action, elapsed)
        if kind == "apply_complete":
            return ApplyComplete(address, action, elapsed)
        return ApplyErrored(address, action, elapsed)
    if kind == "diagnostic":
        raw = message.get("diagnostic")
        if isinstance(raw, dict):
            return _diagnostic(raw)
    return Message(level=str(message.get("@level", "info")), text=str(message.get("@message", "")))

"""Starting, finding, checking and stopping the local flock service from the CLI side."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shepard.emulator import emulator_environment
from shepard.errors import BackendError
from shepard.local.settings import LocalSettings, Paths, settings_from_config

log = logging.getLogger(__name__)

SERVICE_MODULE = "shepard.local.service"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0
LOG_TAIL_LINES = 15

# Popen objects of services this process started, so they are reaped (no zombies) and so
# Python does not warn about a child it forgot.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class LocalFlock:
    """A running local flock service: where its AWS and its Lambda endpoint answer."""

    endpoint_url: str
    lambda_endpoint_url: str
    env: dict[str, str]
    pid: int
    state_dir: Path
    notice: str | None = None  # e.g. "the previous service had died; started a new one"


@dataclass(frozen=True)
class LocalStatus:
    """What ``shepard-tf local status`` shows."""

    state: str  # "running", "stopped" or "dead"
    pid: int | None = None
    endpoint_url: str | None = None
    lambda_endpoint_url: str | None = None
    started_at: str | None = None
    runner: str | None = None
    parallel_jobs: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    log_tail: list[str] = field(default_factory=list)
    message: str | None = None  # what is wrong and what to do, when it is not running

    @property
    def running(self) -> bool:
        return self.state == "running"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _reap(pid: int) -> bool:
    """Reap our own child if it has exited; True if it is gone."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            _children.pop(pid, None)
            return True
        return False
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return reaped == pid


def _is_service(pid: int, state_dir: Path) -> bool:
    """True when ``pid`` is alive and is the service of this state folder (not a reused pid)."""
    if pid <= 0 or _reap(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no /proc (not Linux): the signal check is all we have
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
            return False
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [part.decode(errors="replace") for part in cmdline]
    return SERVICE_MODULE in args and str(state_dir) in args


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def logs(state_dir: Path, n: int = 50) -> list[str]:
    """The last ``n`` lines of the service's log."""
    path = Paths(state_dir.resolve()).service_log
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            lines = handle.read().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return lines[-n:] if n > 0 else lines


def status(state_dir: Path) -> LocalStatus:
    """Whether the service of this flock runs, has died, or was never started / was stopped."""
    paths = Paths(state_dir.resolve())
    info = _read_json(paths.service_json)
    stats = _read_json(paths.stats_json) or {}
    if info is None:
        return LocalStatus(
            state="stopped",
            stats=stats,
            message=f"the local flock in {paths.state_dir} is not running. Run "
            f"`shepard-tf apply <flock.yaml>` to start it.",
        )
    pid = int(info.get("pid", 0))
    alive = _is_service(pid, paths.state_dir)
    return LocalStatus(
        state="running" if alive else "dead",
        pid=pid,
        endpoint_url=info.get("endpoint_url"),
        lambda_endpoint_url=info.get("lambda_endpoint_url"),
        started_at=info.get("started_at"),
        runner=info.get("runner"),
        parallel_jobs=info.get("parallel_jobs"),
        stats=stats,
        log_tail=[] if alive else logs(paths.state_dir, LOG_TAIL_LINES),
        message=None if alive else _died_message(pid, paths.state_dir, "checking the local flock"),
    )


def _flock(info: dict[str, Any], state_dir: Path, notice: str | None = None) -> LocalFlock:
    endpoint = str(info["endpoint_url"])
    return LocalFlock(
        endpoint_url=endpoint,
        lambda_endpoint_url=str(info["lambda_endpoint_url"]),
        env=emulator_environment(endpoint, str(info.get("region") or "us-east-1")),
        pid=int(info["pid"]),
        state_dir=state_dir,
        notice=notice,
    )


def _died_message(pid: int, state_dir: Path, doing: str) -> str:
    tail = logs(state_dir, LOG_TAIL_LINES)
    shown = "\n  ".join(tail) if tail else "(the log is empty)"
    return (
        f"while {doing}: the local flock service (pid {pid}) is no longer running; the last "
        f"lines of {Paths(state_dir).service_log}:\n  {shown}\n"
        f"Its emulated AWS resources and jobs went with it. Run `shepard-tf apply <flock.yaml>` "
        f"to start a fresh local flock, or `shepard-tf local stop` to clear what is left."
    )


def require_running(state_dir: Path, *, doing: str = "reaching the local flock") -> LocalFlock:
    """The running service, or a BackendError that says what happened and what to do.

    Every command that talks to a local flock calls this first, so a dead service is reported
    at once instead of boto3 retrying against a closed port.
    """
    state_dir = state_dir.resolve()
    info = _read_json(Paths(state_dir).service_json)
    if info is None:
        raise BackendError(
            f"while {doing}: the local flock in {state_dir} is not running. Run "
            f"`shepard-tf apply <flock.yaml>` to start it."
        )
    pid = int(info.get("pid", 0))
    if not _is_service(pid, state_dir):
        raise BackendError(_died_message(pid, state_dir, doing))
    return _flock(info, state_dir)


def _spawn(paths: Paths) -> subprocess.Popen[bytes]:
    paths.root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    with paths.service_log.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", SERVICE_MODULE, "--state-dir", str(paths.state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=paths.root,
            env=env,
            start_new_session=True,  # outlives the CLI; its own process group for stop()
            close_fds=True,
        )
    _children[process.pid] = process
    return process


def _wait_ready(process: subprocess.Popen[bytes], paths: Paths, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _children.pop(process.pid, None)
            raise BackendError(
                _died_message(process.pid, paths.state_dir, "starting the local flock")
            )
        info = _read_json(paths.service_json)
        if info is not None and int(info.get("pid", 0)) == process.pid:
            return info
        time.sleep(0.1)
    _terminate(process.pid, paths.state_dir)
    raise BackendError(
        f"while starting the local flock: its service did not get ready in {timeout:.0f} s. "
        f"See {paths.service_log} and try again."
    )


def ensure_running(config: object, state_dir: Path) -> LocalFlock:
    """Start the local flock service of ``config`` unless it already runs; where it answers.

    A service recorded in ``service.json`` whose process has died is reported (``notice``, and
    a warning with the tail of its log) and replaced by a new one.
    """
    return ensure_running_with(settings_from_config(config), state_dir)


def ensure_running_with(settings: LocalSettings, state_dir: Path) -> LocalFlock:
    paths = Paths(state_dir.resolve())
    paths.root.mkdir(parents=True, exist_ok=True)
    settings.write(paths.settings_json)  # a running service picks changes up by itself
    info = _read_json(paths.service_json)
    notice = None
    if info is not None:
        pid = int(info.get("pid", 0))
        if _is_service(pid, paths.state_dir):
            return _flock(info, paths.state_dir)
        notice = (
            f"the local flock service recorded in {paths.service_json} (pid {pid}) had died; "
            f"starting a new one (the resources it emulated are gone and will be created again)"
        )
        log.warning("%s. Last lines of its log:\n%s", notice, "\n".join(logs(paths.state_dir, 10)))
        _kill_group(pid, paths.state_dir)
        paths.service_json.unlink(missing_ok=True)
        # The old Terraform state describes resources that died with the emulator.
    process = _spawn(paths)
    info = _wait_ready(process, paths, START_TIMEOUT_SECONDS)
    return _flock(info, paths.state_dir, notice)


def _kill_group(pid: int, state_dir: Path) -> None:
    """SIGKILL what is left of a service's process group (its workers and their payloads)."""
    if pid <= 0:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return


def _terminate(pid: int, state_dir: Path, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    if _is_service(pid, state_dir):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _is_service(pid, state_dir):
            time.sleep(0.1)
    # Whatever is left in its process group (the service if it hung, workers, payloads).
    _kill_group(pid, state_dir)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _is_service(pid, state_dir):
        time.sleep(0.05)
    _reap(pid)


def stop(state_dir: Path) -> bool:
    """Stop the service: no process and no port left. False when nothing was running."""
    paths = Paths(state_dir.resolve())
    info = _read_json(paths.service_json)
    if info is None:
        return False
    pid = int(info.get("pid", 0))
    was_running = _is_service(pid, paths.state_dir)
    _terminate(pid, paths.state_dir)
    ports = [int(p) for p in (info.get("ports") or {}).values()]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_port_open(p) for p in ports):
        time.sleep(0.1)
    paths.service_json.unlink(missing_ok=True)
    return was_running

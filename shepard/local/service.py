"""The local flock service: ``python -m shepard.local.service --state-dir DIR``.

One process per local flock, started detached by :func:`shepard.local.ensure_running`. It runs
moto's server (the flock's AWS), a Lambda endpoint for the API function, the dispatcher (SQS ->
scheduler handler) and the executor (submitted Batch jobs -> worker processes), and keeps running
after the CLI exits until :func:`shepard.local.stop` sends it SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.errors import ShepardError
from shepard.local import emulator_tuning
from shepard.local.dispatcher import Dispatcher
from shepard.local.dockerfile import PayloadCommand, payload_command
from shepard.local.executor import Executor
from shepard.local.invoke_server import Handler, InvokeServer
from shepard.local.outputs import FlockOutputs, read_outputs
from shepard.local.settings import LocalSettings, Paths

log = logging.getLogger("shepard.local.service")

WATCH_INTERVAL_SECONDS = 0.5


def _scheduler_handler() -> Handler:
    from lambdas.scheduler.handler import handler

    return handler


def _api_handler() -> Handler:
    from lambdas.api.handler import handler

    return handler


# The Lambda handlers, imported on first use: the service starts before the flock's outputs
# exist, and a handler reads its environment (the flock's names) when it is first called.
HANDLERS: dict[str, Callable[[], Handler]] = {"scheduler": _scheduler_handler, "api": _api_handler}


def _load_handler(key: str) -> Handler | None:
    try:
        return HANDLERS[key]()
    except ImportError as exc:
        log.error("cannot load the %s Lambda's handler: %s", key, exc)
        return None


def docker_engine_answers(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers a ping (the client alone is not enough)."""
    try:
        import docker

        client = docker.from_env(timeout=int(max(1, timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def choose_runner(setting: str, engine_answers: bool) -> str:
    """``docker`` where an engine answers (or is demanded), else ``process``."""
    if setting in ("docker", "process"):
        return setting
    return "docker" if engine_answers else "process"


def _mtime(path: Path) -> tuple[int, int, int] | None:
    """What says a watched file changed: file timestamps tick coarsely (a few ms), so two
    writes within one tick share an mtime; the inode (a rename) and size tell them apart."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_ino, stat.st_size)


@dataclass
class _State:
    """What the threads share; replaced as a whole when a file changes."""

    settings: LocalSettings
    outputs: FlockOutputs | None = None
    payload: PayloadCommand | None = None
    payload_error: str | None = None
    runner: str = "process"
    handlers: dict[str, Handler] = field(default_factory=dict)


class Service:
    def __init__(self, state_dir: Path) -> None:
        self.paths = Paths(state_dir.resolve())
        self.stop_event = threading.Event()
        self.state = _State(settings=LocalSettings.read(self.paths.settings_json))
        self.emulator = InProcessEmulator()
        self.invoke: InvokeServer | None = None
        self.executor: Executor | None = None
        self.dispatcher: Dispatcher | None = None
        self._threads: list[threading.Thread] = []
        self._outputs_mtime: tuple[int, int, int] | None = None
        self._settings_mtime: tuple[int, int, int] | None = None
        self._outputs_lock = threading.Lock()
        self._applied_lambda_env: dict[str, str] = {}

    # -- start ------------------------------------------------------------------------------

    def start(self) -> None:
        emulator_tuning.install()  # before the first request: transactions cost their items
        self.emulator.start()
        os.environ.update(
            emulator_environment(self.emulator.endpoint_url, self.state.settings.region)
        )
        # An Invoke right after an apply may come before the watcher saw the new outputs.
        self.invoke = InvokeServer({}, on_unknown_function=self._load_outputs)
        lambda_url = self.invoke.start()
        self.state.runner = choose_runner(self.state.settings.runner, docker_engine_answers())
        self._load_settings(force=True)

        from shepard.joblayer.clients import client

        region = self.state.settings.region
        self.executor = Executor(
            dynamodb=client("dynamodb", region=region),
            batch=client("batch", region=region),
            outputs=lambda: self.state.outputs,
            paths=self.paths,
            parallel=lambda: self.state.settings.parallel_jobs,
            runner=lambda: self.state.runner,
            payload=self._payload,
            stop=self.stop_event,
            base_env=dict(os.environ),
            warm=True,
            runner_setting=lambda: self.state.settings.runner,
        )
        self.dispatcher = Dispatcher(
            client("sqs", region=region),
            scheduler=lambda: self.state.handlers.get("scheduler"),
            outputs=lambda: self.state.outputs,
            stop=self.stop_event,
            on_dispatched=self.executor.wake,
            batch_size=lambda: self.state.settings.scheduler_batch_size,
            batching_window=lambda: self.state.settings.scheduler_batching_window_seconds,
            concurrency=lambda: self.state.settings.dispatch_concurrency,
        )
        self._load_outputs()
        for name, target in (("dispatcher", self.dispatcher.run), ("executor", self.executor.run)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._write_service_json(lambda_url)
        log.info(
            "local flock %s: emulator %s, lambda %s, runner %s, %d job(s) at once",
            self.state.settings.flock_name,
            self.emulator.endpoint_url,
            lambda_url,
            self.state.runner,
            self.state.settings.parallel_jobs,
        )

    def _write_service_json(self, lambda_url: str) -> None:
        assert self.invoke is not None
        info = {
            "pid": os.getpid(),
            "state_dir": str(self.paths.state_dir),
            "flock": self.state.settings.flock_name,
            "region": self.state.settings.region,
            "endpoint_url": self.emulator.endpoint_url,
            "lambda_endpoint_url": lambda_url,
            "ports": {"emulator": self.emulator.port, "lambda": self.invoke.port},
            "runner": self.state.runner,
            "parallel_jobs": self.state.settings.parallel_jobs,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "log": str(self.paths.service_log),
        }
        tmp = self.paths.service_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2), encoding="utf-8")
        tmp.replace(self.paths.service_json)

    # -- watching the state folder -----------------------------------------------------------

    def _payload(self) -> PayloadCommand | None:
        if self.state.payload_error:
            raise ShepardError(self.state.payload_error)
        return self.state.payload

    def _load_settings(self, *, force: bool = False) -> None:
        mtime = _mtime(self.paths.settings_json)
        if not force and (mtime is None or mtime == self._settings_mtime):
            return
        self._settings_mtime = mtime
        settings = LocalSettings.read(self.paths.settings_json)
        emulator_tuning.set_enabled(settings.tuned_emulator)
        payload, error = None, None
        # runner auto may still run processes (the flock's images not pushed): keep the command.
        if self.state.runner == "process" or settings.runner == "auto":
            try:
                code_dir = Path(settings.code_dir) if settings.code_dir else None
                if code_dir is None and not settings.command:
                    raise ShepardError(
                        "while reading the payload of the local flock: the flock has no code "
                        "folder. Put a code/ folder with a Dockerfile beside flock.yaml, or set "
                        "local.command."
                    )
                payload = payload_command(code_dir or self.paths.state_dir, settings.command)
            except ShepardError as exc:
                error = exc.message
                log.error("%s", error)
        self.state = _State(
            settings=settings,
            outputs=self.state.outputs,
            payload=payload,
            payload_error=error,
            runner=self.state.runner,
            handlers=self.state.handlers,
        )
        if payload is not None:
            log.info("payload command (%s): %s", payload.source, list(payload.argv))
        if not force and self.invoke is not None and self.paths.service_json.exists():
            self._write_service_json(self.invoke.url)  # parallelism may have changed

    def _load_outputs(self) -> None:
        with self._outputs_lock:  # the watcher and the Invoke server's threads
            self._load_outputs_locked()

    def _load_outputs_locked(self) -> None:
        mtime = _mtime(self.paths.outputs_json)
        if mtime == self._outputs_mtime:
            return
        self._outputs_mtime = mtime
        outputs = read_outputs(self.paths.outputs_json)
        handlers = dict(self.state.handlers)
        if outputs is not None:
            self._apply_lambda_environment(outputs.lambda_environment)
            for key in HANDLERS:
                if key not in handlers:
                    loaded = _load_handler(key)
                    if loaded is not None:
                        handlers[key] = loaded
            functions: dict[str, Handler] = {}
            if outputs.api_function_name and "api" in handlers:
                functions[outputs.api_function_name] = handlers["api"]
            if outputs.scheduler_function_name and "scheduler" in handlers:
                functions[outputs.scheduler_function_name] = handlers["scheduler"]
            assert self.invoke is not None
            self.invoke.functions = functions
            log.info(
                "flock applied: queue %s, functions %s", outputs.sqs_queue_url, sorted(functions)
            )
        else:
            log.info("flock not applied (no outputs.json yet): the dispatcher and executor wait")
        self.state = _State(
            settings=self.state.settings,
            outputs=outputs,
            payload=self.state.payload,
            payload_error=self.state.payload_error,
            runner=self.state.runner,
            handlers=handlers,
        )

    def _apply_lambda_environment(self, env: dict[str, str]) -> None:
        # This process is the flock's Lambda runtime: the handlers read os.environ.
        for key in self._applied_lambda_env:
            if key not in env:
                os.environ.pop(key, None)
        os.environ.update(env)
        self._applied_lambda_env = dict(env)

    def _write_stats(self) -> None:
        executor, dispatcher = self.executor, self.dispatcher
        if executor is None or dispatcher is None:
            return
        stats = {
            "applied": self.state.outputs is not None,
            "messages": dispatcher.messages,
            "message_failures": dispatcher.failures,
            "jobs_started": executor.started,
            "jobs_finished": executor.finished,
            "jobs_running": executor.running,
            "jobs_waiting": executor.pending,
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        tmp = self.paths.stats_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats, indent=2), encoding="utf-8")
        tmp.replace(self.paths.stats_json)

    def watch(self) -> None:
        while not self.stop_event.is_set():
            try:
                self._load_settings()
                self._load_outputs()
                self._write_stats()
            except Exception:
                log.exception("watching %s failed", self.paths.state_dir)
            self.stop_event.wait(WATCH_INTERVAL_SECONDS)

    # -- stop -------------------------------------------------------------------------------

    def shutdown(self) -> None:
        log.info("stopping")
        self.stop_event.set()
        if self.executor is not None:
            self.executor.shutdown()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.invoke is not None:
            self.invoke.stop()
        self.emulator.stop()
        self._write_stats()
        self.paths.service_json.unlink(missing_ok=True)
        log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shepard.local.service")
    parser.add_argument("--state-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("werkzeug", "botocore", "urllib3", "moto"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    service = Service(args.state_dir)

    def on_signal(signum: int, frame: Any) -> None:
        log.info("signal %d received", signum)
        service.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    try:
        service.start()
        log.info("ready in %.2f s", time.monotonic() - started)
        service.watch()
    finally:
        service.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

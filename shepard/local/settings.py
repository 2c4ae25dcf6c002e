"""What the local flock service needs to know about a flock, and where it keeps its files."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_VCPUS = 2
DEFAULT_MAX_PARALLEL_JOBS = 4


def parallelism(cpu_count: int | None, vcpus: float, max_parallel_jobs: int) -> int:
    """How many jobs run at once here: as many as fit the machine's CPUs, capped, at least 1.

    ``min(os.cpu_count() // vcpus, local.max_parallel_jobs)``, as a Batch compute environment
    of this machine's size would place them.
    """
    cpus = cpu_count or 1
    per_job = max(1, math.ceil(vcpus))
    return max(1, min(cpus // per_job, max(1, max_parallel_jobs)))


@dataclass(frozen=True)
class Paths:
    """The files of the local flock under ``<state>/local/`` (contracts section 8)."""

    state_dir: Path

    @property
    def root(self) -> Path:
        return self.state_dir / "local"

    @property
    def service_json(self) -> Path:
        return self.root / "service.json"

    @property
    def service_log(self) -> Path:
        return self.root / "service.log"

    @property
    def settings_json(self) -> Path:
        return self.root / "settings.json"

    @property
    def stats_json(self) -> Path:
        return self.root / "stats.json"

    @property
    def work_root(self) -> Path:
        return self.root / "work"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    @property
    def outputs_json(self) -> Path:
        return self.state_dir / "outputs.json"


@dataclass(frozen=True)
class LocalSettings:
    """The parts of flock.yaml the service uses; written to ``settings.json`` by the CLI side."""

    flock_name: str
    region: str
    code_dir: str | None
    vcpus: float = DEFAULT_VCPUS
    max_parallel_jobs: int = DEFAULT_MAX_PARALLEL_JOBS
    command: list[str] | None = None
    runner: str = "auto"  # "auto" (Docker when an engine answers), "process" or "docker"
    # The queue's event source mapping (flock.yaml ``scheduler``): the dispatcher gathers up to
    # this many zip drops per scheduler invocation, for at most this many seconds.
    scheduler_batch_size: int = 10
    scheduler_batching_window_seconds: float = 0.0
    # Scheduler invocations at once (the dispatcher's pollers).
    dispatch_concurrency: int = 3
    # The emulator's transactions copy only the items they touch (shepard.local.emulator_tuning).
    tuned_emulator: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def parallel_jobs(self) -> int:
        return parallelism(os.cpu_count(), self.vcpus, self.max_parallel_jobs)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> LocalSettings:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _get(obj: object, *names: str) -> Any:
    """The first attribute (dotted) that exists on ``obj``, else None."""
    for name in names:
        value: Any = obj
        for part in name.split("."):
            value = getattr(value, part, None) if not isinstance(value, dict) else value.get(part)
            if value is None:
                break
        if value is not None:
            return value
    return None


def settings_from_config(config: object) -> LocalSettings:
    """LocalSettings from a ``shepard.config.FlockConfig`` (contracts section 9)."""
    local = _get(config, "local")
    command = _get(local, "command") if local is not None else None
    if isinstance(command, str):
        command = ["/bin/sh", "-c", command]
    source = _get(config, "source")
    base = Path(str(source)).resolve().parent if source and source != "<string>" else Path.cwd()
    code_dir: Path | None = None
    configured = _get(local, "code_dir") if local is not None else None
    if configured:
        code_dir = base / str(configured)  # an absolute code_dir stays as it is
    elif (base / "code").is_dir():
        code_dir = base / "code"
    vcpus = _get(config, "batch.desired_cpu", "job.vcpus")
    max_parallel = _get(local, "max_parallel_jobs") if local is not None else None
    runner = _get(local, "runner") if local is not None else None
    batch_size = _get(config, "scheduler.batch_size")
    window = _get(config, "scheduler.batching_window_seconds")
    return LocalSettings(
        flock_name=str(_get(config, "name")),
        region=str(_get(config, "region") or "us-east-1"),
        code_dir=str(code_dir.resolve()) if code_dir is not None else None,
        vcpus=float(vcpus) if vcpus is not None else DEFAULT_VCPUS,
        max_parallel_jobs=int(max_parallel) if max_parallel else DEFAULT_MAX_PARALLEL_JOBS,
        command=[str(part) for part in command] if command else None,
        runner=str(runner) if runner else "auto",
        scheduler_batch_size=int(batch_size) if batch_size else 10,
        scheduler_batching_window_seconds=float(window) if window is not None else 0.0,
    )

"""The local stand-in for AWS Batch: it runs the worker for every submitted job.

moto's Batch runs nothing, so the executor finds submitted jobs itself: the queued records
(read through ``JobStore``, the only reader of the job table) that carry a ``BATCH_JOB_ID``, and
the Batch job's own environment overrides from ``DescribeJobs``. Each job runs
``python -m shepard_worker`` with the job definition's environment (the ``job_environment``
output), as many at once as this machine's CPUs allow for the flock's ``vcpus``. The worker
claims the record, so a job is never run twice even if the executor sees it twice.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from botocore.exceptions import ClientError

from shepard.errors import ShepardError
from shepard.joblayer import contract as c
from shepard.joblayer.records import Phase
from shepard.joblayer.store import JobRecord, JobStore
from shepard.local.dockerfile import PayloadCommand
from shepard.local.outputs import FlockOutputs
from shepard.local.settings import Paths

log = logging.getLogger(__name__)

SCAN_INTERVAL_SECONDS = 0.5
REAP_INTERVAL_SECONDS = 0.05
# Passed through from the service's environment to every worker; everything else is explicit.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "PYTHONPATH", "VIRTUAL_ENV")


@dataclass(frozen=True)
class JobRun:
    """One worker run: a job (or one child of an array job) and its Batch environment."""

    job_id: str  # the record's UUID (an array child: <parent>-<index>)
    batch_job_id: str
    environment: dict[str, str]
    array_index: int | None = None


def _overrides(job: dict[str, Any]) -> dict[str, str]:
    """The environment a described Batch job's container gets from its SubmitJob overrides."""
    return {
        str(e["name"]): str(e["value"])
        for e in job.get("container", {}).get("environment", [])
        if "name" in e and "value" in e
    }


@dataclass
class _Running:
    run: JobRun
    process: subprocess.Popen[bytes]
    log_file: IO[bytes] | None  # None: a warm spare that opened its log itself
    started: float = field(default_factory=time.monotonic)


def worker_environment(
    run: JobRun,
    outputs: FlockOutputs,
    *,
    base: Mapping[str, str],
    paths: Paths,
    runner: str,
    payload: PayloadCommand | None,
) -> dict[str, str]:
    """The environment a Batch container of the flock's job definition gets, adapted to here."""
    env = {key: base[key] for key in PASSTHROUGH if key in base}
    env.update({k: v for k, v in base.items() if k.startswith("AWS_")})
    env.update(outputs.job_environment)
    env.update(run.environment)
    env[c.JOB_ID] = run.job_id.split("-", 1)[0] if run.array_index is not None else run.job_id
    env[c.BATCH_JOB_ID] = run.batch_job_id
    env[c.BATCH_JOB_ATTEMPT] = "1"
    if outputs.job_queue_arn:
        env[c.BATCH_QUEUE_NAME] = outputs.job_queue_arn.rsplit("/", 1)[-1]
    if run.array_index is not None:
        env[c.BATCH_JOB_ARRAY_INDEX] = str(run.array_index)
    # The host paths of the sheep, moved under the state folder.
    env[c.WORK_ROOT] = str(paths.work_root)
    if c.EFS_ROOT in env:
        env[c.EFS_ROOT] = str(paths.root / "efs")
    if c.LUSTRE_ROOT in env:
        env[c.LUSTRE_ROOT] = str(paths.root / "fsx")
    env[c.RUNNER] = runner
    if runner == "process" and payload is not None:
        env[c.PAYLOAD_COMMAND] = json.dumps(list(payload.argv))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Executor:
    """Finds submitted jobs and runs a worker for each, ``parallel`` at a time."""

    def __init__(
        self,
        *,
        dynamodb: Any,
        batch: Any,
        outputs: Callable[[], FlockOutputs | None],
        paths: Paths,
        parallel: Callable[[], int],
        runner: Callable[[], str],
        payload: Callable[[], PayloadCommand | None],
        stop: threading.Event,
        base_env: Mapping[str, str] | None = None,
        worker_argv: tuple[str, ...] = (sys.executable, "-m", "shepard_worker"),
        warm: bool = False,
    ) -> None:
        self._dynamodb = dynamodb
        self._batch = batch
        self._outputs = outputs
        self._paths = paths
        self._parallel = parallel
        self._runner = runner
        self._payload = payload
        self._stop = stop
        self._base_env = dict(base_env if base_env is not None else os.environ)
        self._worker_argv = worker_argv
        self._warm = warm
        self._spares: list[subprocess.Popen[bytes]] = []
        self._wake = threading.Event()
        self._seen: set[str] = set()  # job ids handed to a worker, never started again
        self._described: set[str] = set()  # Batch array jobs already looked at
        self._array_jobs: dict[str, tuple[str, dict[str, str]]] = {}  # parent -> Batch job
        self._pending: deque[JobRun] = deque()
        self._running: dict[str, _Running] = {}
        self.started = 0
        self.finished = 0
        self.exit_codes: dict[str, int] = {}

    # -- finding jobs -----------------------------------------------------------------------

    def wake(self) -> None:
        """Look for new jobs now (the dispatcher calls this after each batch)."""
        self._wake.set()

    def _queued_records(self, outputs: FlockOutputs) -> list[JobRecord]:
        store = JobStore(outputs.table_name, self._dynamodb, index=outputs.table_status_index)
        return store.query_phase(Phase.QUEUED, newest_first=False)

    def _describe(self, batch_ids: list[str]) -> dict[str, dict[str, Any]]:
        described: dict[str, dict[str, Any]] = {}
        for start in range(0, len(batch_ids), 100):
            try:
                response = self._batch.describe_jobs(jobs=batch_ids[start : start + 100])
            except Exception:
                log.exception("executor: DescribeJobs failed; running with the record only")
                return described
            for job in response.get("jobs", []):
                described[str(job["jobId"])] = job
        return described

    def _resolve_array_parents(self, outputs: FlockOutputs) -> None:
        """Map array parents (SHEPARD_JOB_ID) to their Batch array jobs on the queue.

        Children's records carry no BATCH_JOB_ID (the parent has one Batch job); a child runs
        only once its array job exists, as on Batch.
        """
        if not outputs.job_queue_arn:
            return
        listed = self._batch.list_jobs(jobQueue=outputs.job_queue_arn).get("jobSummaryList", [])
        # Summaries may lack arrayProperties (moto's do): describe each parent-level job once.
        new = [
            str(job["jobId"])
            for job in listed
            if ":" not in str(job["jobId"]) and str(job["jobId"]) not in self._described
        ]
        for batch_id, job in self._describe(new).items():
            self._described.add(batch_id)
            env = _overrides(job)
            parent = env.get("SHEPARD_JOB_ID")
            if parent and (job.get("arrayProperties") or {}).get("size"):
                self._array_jobs[parent] = (batch_id, env)

    def scan_once(self) -> list[JobRun]:
        """Queue the submitted jobs not seen before; the runs queued by this scan."""
        outputs = self._outputs()
        if outputs is None:
            return []
        singles: list[tuple[str, str]] = []
        children: list[tuple[str, str, int]] = []
        for record in self._queued_records(outputs):
            if record.job_id in self._seen:
                continue
            if record.array_parent is not None and record.array_index is not None:
                children.append((record.job_id, record.array_parent, record.array_index))
            elif record.batch_job_id:
                singles.append((record.job_id, record.batch_job_id))
            # else: written but not submitted yet; Batch would not run it either
        runs: list[JobRun] = []
        if singles:
            described = self._describe([batch_id for _, batch_id in singles])
            for job_id, batch_id in singles:
                env = _overrides(described.get(batch_id, {}))
                runs.append(JobRun(job_id, batch_id, env))
        if any(parent not in self._array_jobs for _, parent, _ in children):
            self._resolve_array_parents(outputs)
        for job_id, parent, index in children:
            if parent in self._array_jobs:
                batch_id, env = self._array_jobs[parent]
                runs.append(JobRun(job_id, f"{batch_id}:{index}", env, array_index=index))
        for run in runs:
            self._seen.add(run.job_id)
        self._pending.extend(runs)
        return runs

    # -- running them -----------------------------------------------------------------------

    def _launch(self, run: JobRun, outputs: FlockOutputs) -> None:
        runner = self._runner()
        payload = None
        if runner == "process":
            try:
                payload = self._payload()
            except ShepardError as exc:
                # The worker then fails the job for want of a command: the record says so.
                log.error("job %s: %s", run.job_id, exc)
        env = worker_environment(
            run, outputs, base=self._base_env, paths=self._paths, runner=runner, payload=payload
        )
        self._paths.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._paths.work_root.mkdir(parents=True, exist_ok=True)
        log_path = self._paths.jobs_dir / f"{run.job_id}.log"
        cwd = payload.cwd if payload is not None else self._paths.work_root
        spare = self._take_spare()
        if spare is not None:
            order = {"env": env, "cwd": str(cwd), "log": str(log_path)}
            assert spare.stdin is not None
            spare.stdin.write(json.dumps(order).encode() + b"\n")
            spare.stdin.close()
            self._running[run.job_id] = _Running(run, spare, None)
            how = "warm"
        else:
            log_file = log_path.open("ab")
            process = subprocess.Popen(
                list(self._worker_argv),
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            self._running[run.job_id] = _Running(run, process, log_file)
            how = "cold"
        self.started += 1
        log.info(
            "job %s: worker pid %d started (%s, %s)",
            run.job_id,
            self._running[run.job_id].process.pid,
            runner,
            how,
        )

    # -- warm spares ------------------------------------------------------------------------

    def _take_spare(self) -> subprocess.Popen[bytes] | None:
        while self._spares:
            spare = self._spares.pop(0)
            if spare.poll() is None:
                return spare
            log.warning("a warm worker exited early (%s); see jobs/spare.log", spare.returncode)
        return None

    def top_up_spares(self) -> None:
        """Keep one started worker waiting per job slot (warm mode only).

        One per slot, busy or not: a spare does its imports while the slot's current job runs,
        so the next job starts without them.
        """
        if not self._warm or self._outputs() is None:
            return
        self._spares = [s for s in self._spares if s.poll() is None]
        wanted = self._parallel()
        self._paths.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._paths.work_root.mkdir(parents=True, exist_ok=True)
        while len(self._spares) < wanted:
            with (self._paths.jobs_dir / "spare.log").open("ab") as spare_log:
                self._spares.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "shepard.local.warm_worker"],
                        env={k: self._base_env[k] for k in PASSTHROUGH if k in self._base_env},
                        cwd=self._paths.work_root,
                        stdin=subprocess.PIPE,
                        stdout=spare_log,
                        stderr=subprocess.STDOUT,
                    )
                )

    def reap(self) -> int:
        """Collect finished workers; how many finished."""
        done = [key for key, r in self._running.items() if r.process.poll() is not None]
        for key in done:
            running = self._running.pop(key)
            if running.log_file is not None:
                running.log_file.close()
            code = int(running.process.returncode)
            self.exit_codes[key] = code
            self.finished += 1
            log.info(
                "job %s: worker exited %d after %.1f s",
                key,
                code,
                time.monotonic() - running.started,
            )
        return len(done)

    def fill(self) -> int:
        """Start queued runs while there is room; how many started."""
        outputs = self._outputs()
        if outputs is None:
            return 0
        started = 0
        while self._pending and len(self._running) < self._parallel():
            self._launch(self._pending.popleft(), outputs)
            started += 1
        return started

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def step(self, *, scan: bool = True) -> None:
        """Reap finished workers and fill their slots at once; then look for new jobs."""
        self.reap()
        self.fill()
        # While enough known work waits, leave the job table alone: new jobs are newer and
        # would queue behind it anyway, and every query loads the emulator the workers use.
        if scan and len(self._pending) < 2 * max(1, self._parallel()):
            self.scan_once()
            self.fill()
        self.top_up_spares()

    def run(self) -> None:
        last_scan = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            woken = self._wake.is_set()
            scan = woken or now - last_scan >= SCAN_INTERVAL_SECONDS
            if woken:
                self._wake.clear()
            try:
                self.step(scan=scan)
                if scan:
                    last_scan = now
            except ClientError as exc:
                log.warning("executor: %s; retrying in 2 s", exc)
                self._stop.wait(2)
            except Exception:
                log.exception("executor: looking for jobs failed; retrying in 2 s")
                self._stop.wait(2)
            # Short naps while workers run (a finished one frees its slot at once).
            self._wake.wait(REAP_INTERVAL_SECONDS if self._running else SCAN_INTERVAL_SECONDS)

    def shutdown(self, grace_seconds: float = 10.0) -> None:
        """Stop every worker: SIGTERM (the worker marks its job interrupted), then SIGKILL."""
        for spare in self._spares:
            if spare.stdin is not None and not spare.stdin.closed:
                spare.stdin.close()  # EOF: a spare with no job exits at once
        for spare in self._spares:
            try:
                spare.wait(timeout=5)
            except subprocess.TimeoutExpired:
                spare.kill()
                spare.wait(timeout=5)
        self._spares.clear()
        for running in self._running.values():
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for running in self._running.values():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                running.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait(timeout=5)
        self.reap()

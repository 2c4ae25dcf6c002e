"""The local stand-in for AWS Batch: it runs the worker for every submitted job.

moto's Batch runs nothing, so the executor finds submitted jobs itself: the queued records
(read through ``JobStore``, the only reader of the job table) that carry a ``BATCH_JOB_ID``, and
the Batch job's own environment overrides from ``DescribeJobs``. Each job runs
``python -m shepard_worker`` with the job definition's environment (the ``job_environment``
output), as many at once as this machine's CPUs allow for the flock's ``vcpus``. The worker
claims the record, so a job is never run twice even if the executor sees it twice.

In docker mode (``runner: docker``, or ``auto`` when an engine answers and the flock's images
are there) each worker is instead the job definition's image run as a container, as Batch runs
it on a sheep (:mod:`shepard.local.containers`).
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
from pathlib import Path
from typing import IO, Any, Protocol

from botocore.exceptions import ClientError

from shepard.errors import ShepardError
from shepard.joblayer import contract as c
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.store import JobRecord, JobStore
from shepard.local.batch_events import LocalBatchEvents, attach
from shepard.local.cancels import LocalCancels
from shepard.local.containers import (
    CHECK_MOUNTS,
    DEFAULT_NOFILE,
    WORKER_AWS,
    ContainerOrder,
    DockerJobs,
    JobDefinition,
    job_limits,
)
from shepard.local.credentials import CredentialsServer
from shepard.local.dockerfile import PayloadCommand
from shepard.local.outputs import FlockOutputs
from shepard.local.retries import LocalRetries
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
    attempt: int = 1  # AWS_BATCH_JOB_ATTEMPT: one more for each retry (shepard.local.retries)
    # The DescribeJobs answer (the array job's, for a child): its definition and limits.
    described: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


def _overrides(job: dict[str, Any]) -> dict[str, str]:
    """The environment a described Batch job's container gets from its SubmitJob overrides."""
    return {
        str(e["name"]): str(e["value"])
        for e in job.get("container", {}).get("environment", [])
        if "name" in e and "value" in e
    }


class _Worker(Protocol):
    """A started worker: its process, or its container (``containers.ContainerJob``)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


@dataclass
class _Running:
    run: JobRun
    process: _Worker
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
    _batch_and_folders(env, run, outputs, paths)
    env[c.RUNNER] = runner
    if runner == "process" and payload is not None:
        env[c.PAYLOAD_COMMAND] = json.dumps(list(payload.argv))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def container_environment(
    run: JobRun,
    outputs: FlockOutputs,
    definition: JobDefinition,
    *,
    base: Mapping[str, str],
    paths: Paths,
) -> dict[str, str]:
    """The environment of a job's worker container: the job definition's, the job's overrides,
    Batch's variables, the local folders and, for the worker alone, the emulator's endpoint and
    keys (the job role's credentials endpoint is added when the container starts)."""
    env = dict(definition.environment or outputs.job_environment)
    env.update(run.environment)
    _batch_and_folders(env, run, outputs, paths)
    env[c.RUNNER] = "docker"
    env[CHECK_MOUNTS] = "False"  # the EFS folder here is a plain folder, not an nfs4 mount
    env.update({key: base[key] for key in WORKER_AWS if base.get(key)})
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance here: do not wait for IMDS
    env["PYTHONUNBUFFERED"] = "1"
    return env


def job_folders(env: Mapping[str, str]) -> tuple[Path, ...]:
    """The host folders a job's worker container mounts at the same paths."""
    names = (c.WORK_ROOT, c.EFS_ROOT, c.LUSTRE_ROOT)
    return tuple(Path(env[name]) for name in names if env.get(name))


def _batch_and_folders(
    env: dict[str, str], run: JobRun, outputs: FlockOutputs, paths: Paths
) -> None:
    env[c.JOB_ID] = run.job_id.split("-", 1)[0] if run.array_index is not None else run.job_id
    env[c.BATCH_JOB_ID] = run.batch_job_id
    env[c.BATCH_JOB_ATTEMPT] = str(run.attempt)
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
        runner_setting: Callable[[], str] | None = None,
        docker_jobs: DockerJobs | None = None,
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
        # parent -> its Batch array job: (id, environment, DescribeJobs answer)
        self._array_jobs: dict[str, tuple[str, dict[str, str], dict[str, Any]]] = {}
        self._pending: deque[JobRun] = deque()
        self._running: dict[str, _Running] = {}
        self._runner_setting = runner_setting
        self._docker_jobs = docker_jobs
        self._definitions: dict[str, JobDefinition] = {}
        self._credential_servers: dict[str, CredentialsServer] = {}
        self._credentials_lock = threading.Lock()
        self._notes: set[str] = set()
        self._region: str | None = None
        self.started = 0
        self.finished = 0
        self.exit_codes: dict[str, int] = {}
        # Batch's job state events, as AWS Batch would send them, to the events handler.
        self.batch_events = LocalBatchEvents(dynamodb=dynamodb, batch=batch, outputs=outputs)
        attach(self.batch_events)
        # Interrupted jobs run again as the retry strategy says; `local interrupt` simulates a
        # reclaim through the jobs' instance metadata (shepard/local/retries.py).
        self._retries = LocalRetries(
            dynamodb=dynamodb,
            outputs=outputs,
            paths=paths,
            signal_worker=self._signal_worker,
            requeue=self._pending.append,
        )

        # `shepard-tf cancel`: cancelled jobs are dropped or their workers stopped (cancels.py).
        self._cancels = LocalCancels(dynamodb=dynamodb, outputs=outputs)

    def _signal_worker(self, job_id: str, sig: int) -> bool:
        """Send ``sig`` to a job's running worker (0: only ask whether it runs)."""
        running = self._running.get(job_id)
        if running is None or running.process.poll() is not None:
            return False
        if sig:
            running.process.send_signal(sig)
        return True

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
                self._array_jobs[parent] = (batch_id, env, job)

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
                job = described.get(batch_id, {})
                runs.append(JobRun(job_id, batch_id, _overrides(job), described=job))
        if any(parent not in self._array_jobs for _, parent, _ in children):
            self._resolve_array_parents(outputs)
        for job_id, parent, index in children:
            if parent in self._array_jobs:
                batch_id, env, job = self._array_jobs[parent]
                runs.append(
                    JobRun(job_id, f"{batch_id}:{index}", env, array_index=index, described=job)
                )
        for run in runs:
            self._seen.add(run.job_id)
        self._pending.extend(runs)
        for run in runs:
            self.batch_events.emit("RUNNABLE", run)
        return runs

    # -- running them -----------------------------------------------------------------------

    def _launch(self, run: JobRun, outputs: FlockOutputs) -> None:
        runner, definition = self._choose_runner(run, outputs)
        if runner == "docker":
            self._launch_container(run, outputs, definition)
            return
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
        env.update(self._retries.worker_environment(run))
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

    # -- docker mode ------------------------------------------------------------------------

    def _note(self, message: str) -> None:
        """Log ``message`` once (the runner's choice, said when it is made or changes)."""
        if message not in self._notes:
            self._notes.add(message)
            log.info("%s", message)

    def _docker(self) -> DockerJobs:
        if self._docker_jobs is None:
            self._docker_jobs = DockerJobs(
                credentials=self._credentials_environment, record_failure=self.record_failure
            )
        return self._docker_jobs

    def _definition(self, run: JobRun, outputs: FlockOutputs) -> JobDefinition:
        """The job's definition, as Batch reads it: the job's own ``jobDefinition`` (else the
        flock's), described once per revision."""
        arn = str(run.described.get("jobDefinition") or outputs.job_definition_arn or "")
        if arn and arn not in self._definitions:
            try:
                answer = self._batch.describe_job_definitions(jobDefinitions=[arn])
            except Exception as error:
                log.warning("executor: DescribeJobDefinitions %s failed: %s", arn, error)
                answer = {}
            found = answer.get("jobDefinitions") or []
            if found:
                self._definitions[arn] = JobDefinition.from_described(found[0])
        return self._definitions.get(arn) or JobDefinition(arn, "", {}, None, None, None, None)

    def _choose_runner(
        self, run: JobRun, outputs: FlockOutputs
    ) -> tuple[str, JobDefinition | None]:
        """``docker`` (with the job's definition) or ``process`` for this job.

        ``runner: auto`` runs containers when an engine answers (the service's ``runner()``)
        AND the job definition's image and the payload image are on this machine or in its
        registry (``shepard-tf apply`` pushed them); otherwise processes, and the log says why.
        """
        runner = self._runner()
        if runner != "docker":
            return runner, None
        definition = self._definition(run, outputs)
        setting = self._runner_setting() if self._runner_setting is not None else "docker"
        if setting == "auto":
            payload_image = definition.environment.get(c.PAYLOAD_IMAGE) or (
                outputs.job_environment.get(c.PAYLOAD_IMAGE, "")
            )
            try:
                why = self._docker().images_missing((definition.image, payload_image))
            except ShepardError as error:
                why = error.message
            if why is not None:
                self._note(f"runner auto: jobs run as processes, not containers: {why}")
                return "process", None
            self._note(
                "runner auto: jobs run in containers (a Docker engine answers and the flock's "
                f"images are there: worker {definition.image}, payload {payload_image})"
            )
        return "docker", definition

    def _launch_container(
        self, run: JobRun, outputs: FlockOutputs, definition: JobDefinition | None
    ) -> None:
        definition = definition or self._definition(run, outputs)
        self._region = outputs.region
        env = container_environment(
            run, outputs, definition, base=self._base_env, paths=self._paths
        )
        # The worker container shares the host's network: the local metadata endpoint answers it.
        env.update(self._retries.worker_environment(run))
        folders = job_folders(env)
        for folder in (self._paths.jobs_dir, *folders):
            folder.mkdir(parents=True, exist_ok=True)
        vcpus, memory = job_limits(run.described, definition)
        nofile_text = env.get(c.ULIMIT_FILENO, "")
        order = ContainerOrder(
            job_id=run.job_id,
            batch_job_id=run.batch_job_id,
            definition=definition,
            env=env,
            vcpus=vcpus,
            memory_mib=memory,
            nofile=int(nofile_text)
            if nofile_text.isdigit()
            else definition.nofile or DEFAULT_NOFILE,
            folders=folders,
            log_path=self._paths.jobs_dir / f"{run.job_id}.log",
            labels={
                "shepard.job": run.job_id,
                "shepard.flock": env.get(c.FLOCK, ""),
                "shepard.state-dir": str(self._paths.state_dir),
            },
        )
        job = self._docker().start(order)
        self._running[run.job_id] = _Running(run, job, None)
        self.started += 1
        log.info(
            "job %s: worker container %s starting (docker, image %s, %g vCPU, %d MiB)",
            run.job_id,
            job.name,
            definition.image or "none",
            vcpus,
            memory,
        )

    def _credentials_environment(self, role_arn: str) -> dict[str, str]:
        """The job role's credentials endpoint (one server per role, started on first use)."""
        with self._credentials_lock:
            server = self._credential_servers.get(role_arn)
            if server is None:
                import boto3

                key = self._base_env.get("AWS_ACCESS_KEY_ID")
                session = (
                    boto3.Session(
                        aws_access_key_id=key,
                        aws_secret_access_key=self._base_env.get("AWS_SECRET_ACCESS_KEY"),
                        aws_session_token=self._base_env.get("AWS_SESSION_TOKEN"),
                    )
                    if key
                    else None
                )
                server = CredentialsServer(
                    role_arn=role_arn,
                    endpoint_url=self._base_env.get("AWS_ENDPOINT_URL"),
                    region=self._region or self._base_env.get("AWS_REGION"),
                    session=session,
                ).start()
                self._credential_servers[role_arn] = server
                log.info("job role %s: credentials served at %s", role_arn, server.full_uri)
            return server.environment()

    def record_failure(
        self,
        job_id: str,
        batch_job_id: str | None,
        reason: str,
        *,
        exit_code: int | None = None,
        worker_ran: bool = False,
    ) -> None:
        """Record a job failed whose worker could not do it: a worker container that could not
        be pulled, created or started (the job is claimed first, so a job another worker has is
        left alone), or one killed while the job was running (``worker_ran``)."""
        outputs = self._outputs()
        if outputs is None:
            return
        store = JobStore(outputs.table_name, self._dynamodb, index=outputs.table_status_index)
        try:
            if worker_ran:
                record = store.get(job_id)
                if record is None or record.phase != Phase.RUNNING:
                    return
            elif store.claim(job_id, batch_job_id=batch_job_id) is None:
                log.info("job %s: not recording the failure, another worker has it", job_id)
                return
            store.finish(
                job_id, Result.FAILED, exit_code=exit_code, reason=reason, status=Status.DONE
            )
            log.info("job %s: failed: %s", job_id, reason)
        except Exception:
            log.exception("job %s: could not record its failure (%s)", job_id, reason)

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
        setting = self._runner_setting() if self._runner_setting is not None else "docker"
        if self._runner() == "docker" and setting == "docker":
            return  # every worker is a container: a spare process would never be used
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
            code = running.process.poll()
            code = 1 if code is None else int(code)
            self.exit_codes[key] = code
            self.finished += 1
            self._retries.after_exit(running.run, code)
            self.batch_events.worker_exited(
                running.run, code, retried=any(r.job_id == key for r in self._pending)
            )
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
            run = self._pending.popleft()
            self.batch_events.emit("STARTING", run)
            try:
                self._launch(run, outputs)
            except Exception as error:  # the job fails with the reason, never stays queued
                log.exception("job %s: its worker could not be started", run.job_id)
                self.batch_events.start_failed(run, error)
                continue
            self.batch_events.emit("RUNNING", run)
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
        self._cancels.sweep(self._pending, list(self._running), self._signal_worker)
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
        for server in self._credential_servers.values():
            server.stop()
        self._credential_servers.clear()
        self.batch_events.close()
        self._retries.stop()

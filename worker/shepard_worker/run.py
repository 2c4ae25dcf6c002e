"""One job, start to end: claim, prepare, run the payload, push results or logs, clean up."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from shepard.errors import ShepardError
from shepard.joblayer import contract
from shepard.joblayer.records import Result, Status
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.variables import find_quick_deploy, find_tag

from . import instance as ec2_instance
from . import mounts, spot, usage
from .aws import AWS_ERRORS, Aws
from .checkpoint import VARIABLE as CHECKPOINT_VARIABLE
from .checkpoint import Checkpoint, interval_minutes
from .environment import payload_environment
from .fetch import fetch_input_zip, fetch_quick_deploy, rebuild_secrets
from .joblog import JobLog
from .results import upload_error_zip, upload_results
from .runners import DockerRunner, Mount, ProcessRunner, Runner, RunResult, RunSpec
from .settings import Settings
from .workspace import Workspace

SECRETS_FOLDER = "secrets"


class Interrupted(Exception):
    """SIGTERM or SIGINT reached the worker (Spot reclaim, Batch terminate, Ctrl-C)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Failed(Exception):
    """The job failed (fetch error, bad name, non-zero exit): report it, keep the logs."""

    def __init__(self, reason: str, exit_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


@dataclass(frozen=True)
class Prepared:
    env: dict[str, str]
    command: tuple[str, ...] | None
    workdir: Path | None


class Worker:
    """Runs the job of ``settings.job_id``. ``run()`` returns the worker's exit status.

    Exit statuses: 0 when the job finished (succeeded) or was not ours to run; 1 when it
    finished failed; 128+signal when it was interrupted (Batch's retry strategy runs it again).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: JobStore,
        aws: Aws,
        make_runner: Callable[[], Runner],
        log: JobLog,
        environ: Mapping[str, str],
        find_hostname: Callable[[Mapping[str, str]], str | None] = ec2_instance.metadata_hostname,
        filesystem_type: mounts.FilesystemType | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.aws = aws
        self.make_runner = make_runner
        self.runner: Runner | None = None  # made after the claim: a job that cannot run fails
        self.log = log
        self.environ = environ
        self.find_hostname = find_hostname
        # None: the EFS/Lustre roots are not checked (the local flock's are plain folders).
        self.filesystem_type = filesystem_type
        self.workspace = Workspace.plan(
            settings.job_id, settings.work_root, settings.efs_root, settings.lustre_root
        )
        self._signal: int | None = None
        self._may_raise = False
        self._payload_running = False
        self._hostname: str | None = None
        # Spot: the interruption notice, the attempt's entry, the payload's checkpoint.
        self.imds = spot.Imds(spot.endpoint(environ))
        self.retry_strategy = spot.RetryStrategy.from_env(environ)
        self.watcher: spot.NoticeWatcher | None = None
        self.checkpoint: Checkpoint | None = None
        self._attempt_number = 0
        self._meter: usage.Meter | None = None
        # Requests per job (bench/bench_requests_per_job.py): the claim opens the attempt's
        # entry when Batch's attempt number is known, and the finish closes it (its index here)
        # and writes the usage in the same write as the result.
        self._attempt_index: int | None = None
        self._attempt_started = False
        self._usage_before: Mapping[str, Any] = {}

    # -- signals ----------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._signal is not None:
            return  # the first signal is being handled already
        self._signal = signum
        # A handler runs between two bytecodes of the main thread, maybe in the middle of a
        # write to the log: it must take no lock and write nothing. A thread does the stopping.
        if self._payload_running:
            threading.Thread(target=self._stop_payload, args=(signum,), daemon=True).start()
        elif self._may_raise:
            raise Interrupted(signum)

    def _stop_payload(self, signum: int) -> None:
        grace = self.settings.stop_grace_seconds
        name = signal.Signals(signum).name
        self.log.worker(f"received {name}: stopping the payload (killed after {grace:g} s)")
        if self.runner is not None:
            self.runner.stop(grace)

    def _check_signal(self) -> None:
        if self._signal is not None:
            raise Interrupted(self._signal)

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        """A stretch of work that a signal may cut short (not the job-record writes)."""
        self._check_signal()
        self._may_raise = True
        try:
            yield
        finally:
            self._may_raise = False
        self._check_signal()

    def _status(self, status: Status) -> None:
        self.log.worker(f"JOB_STATUS {status.value}")
        self.store.set_status(self.settings.job_id, status)

    # -- the job ----------------------------------------------------------------------------

    def run(self) -> int:
        job_id = self.settings.job_id
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            number = self.settings.batch_attempt
            record = self.store.claim(
                job_id,
                batch_job_id=self.settings.batch_job_id,
                batch_attempt=number,
                attempt=self._attempt_entry(number) if number else None,
            )
            if record is None:
                self._explain_unclaimable(job_id)
                return 0
            self.log.worker(f"claimed job {job_id} (attempt {record.attempt})")
            self._attempt_number = number or record.attempt or 1
            self._usage_before = record.usage
            if number:
                self._attempt_started = True
                try:
                    self._attempt_index = self.store.claimed_attempt(record, number)
                except Exception as error:  # the record of attempts never stops the job
                    self.log.worker(f"could not tidy the entry of attempt {number}: {error}")
            try:
                return self._run_claimed(record)
            finally:
                if self.watcher is not None:
                    self.watcher.stop()
                if self.checkpoint is not None:
                    self.checkpoint.stop_periodic()
        except Interrupted as interrupted:
            return 128 + interrupted.signum
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.log.close()

    def _explain_unclaimable(self, job_id: str) -> None:
        existing = self.store.get(job_id)
        if existing is None:
            why = "the job table has no record with that id"
        else:
            result = existing.result.value if existing.result else "none yet"
            why = (
                f"it is {existing.phase.value} (status {existing.status.value}, "
                f"result {result}): another worker runs or ran it"
            )
        self.log.worker(f"not running job {job_id}: {why}")

    def _run_claimed(self, record: JobRecord) -> int:
        job_id = self.settings.job_id
        start_time = record.start_time or ""
        self._meter = usage.Meter.start(record, self.environ)  # USAGE at its end: docs/cost.md
        try:
            try:
                unmounted = self._unmounted()
                if unmounted:
                    # Nothing may be written where the file system should be: only the root
                    # folders are made, for the log and the error zip.
                    s = self.settings
                    self.workspace = Workspace.plan(job_id, s.work_root, None, None)
                with self._interruptible():
                    self.workspace.create()
                    self.log.open(self.workspace.log_path)
                    if unmounted:
                        raise _Failed(" ".join(unmounted))
                    if self._hostname is None:
                        self._hostname = self.find_hostname(self.environ)
                    if not self._attempt_started:
                        self._start_attempt()
                    self.watcher = spot.NoticeWatcher(
                        self.imds,
                        self._on_notice,
                        interval=spot.poll_seconds(self.environ),
                        host_folder=self._host_folder(),
                    ).start()
                    prepared = self._prepare(record, start_time)
                    self._restore_checkpoint(prepared, nothing_stored=self._first_run(record))
                self._status(Status.CALLING_PAYLOAD_CODE)
                prepared.env["JOB_STATUS"] = Status.CALLING_PAYLOAD_CODE.value
                outcome = self._run_payload(prepared)
                self._check_signal()
                if outcome.exit_code != 0:
                    detail = f" ({outcome.reason})" if outcome.reason else ""
                    raise _Failed(
                        f"the payload exited with code {outcome.exit_code}{detail}",
                        outcome.exit_code,
                    )
                self._status(Status.COMPLETE_PUSHING_TO_S3)
                with self._interruptible():
                    try:
                        keys = upload_results(
                            self.aws,
                            self.workspace,
                            bucket=self.settings.outputs_bucket,
                            job_id=job_id,
                            start_time=start_time,
                            tag=record.tag or find_tag(record.variables),
                            log=self.log,
                        )
                    except (ShepardError, OSError) as error:
                        cause = error.message if isinstance(error, ShepardError) else str(error)
                        raise _Failed(f"the results could not be pushed: {cause}", 0) from error
            except _Failed as failed:
                return self._finish_failed(start_time, failed)
            # Each JOB_STATUS the seed's README lists is its own write, in its order: the README
            # gives them as the values a job's record takes while the job runs, and no two are
            # back to back here to be merged (preparing the inputs lies between in_progress and
            # calling_payload_code, the payload before job_complete_pushing_to_s3, the upload
            # before job_complete_cleaning_up_workspace, the clean-up before <done>). What else
            # the worker records rides on them instead: the attempt's start on the claim
            # (in_progress), its end and the run's usage on <done>.
            self._status(Status.COMPLETE_CLEANING_UP)
            self._remove_checkpoint()
            self.workspace.clean()
            self._finish(Result.SUCCEEDED, exit_code=0, outputs=keys)
            self.log.worker(f"job {job_id} succeeded: {len(keys)} result zip(s)")
            return 0
        except Interrupted as interrupted:
            self._interrupted(interrupted)
            return 128 + interrupted.signum
        except Exception as error:  # a bug, or AWS failing mid-job: never leave it "running"
            return self._worker_failed(start_time, error)
        finally:
            self.workspace.clean()

    def _worker_failed(self, start_time: str, error: Exception) -> int:
        cause = (
            error.message if isinstance(error, ShepardError) else f"{type(error).__name__}: {error}"
        )
        self.log.worker(f"the worker failed: {cause}")
        try:
            self._finish_failed(start_time, _Failed(f"the worker failed: {cause}"))
        except Exception as again:  # the record cannot be written either: say so, and go
            self.log.worker(f"could not record the failure either: {again}")
        return 1

    def _finish_failed(self, start_time: str, failed: _Failed) -> int:
        job_id = self.settings.job_id
        self.log.worker(f"job {job_id} failed: {failed.reason}")
        self._status(Status.FAILED_PUSHING_LOGS)
        error_key: str | None = None
        try:
            with self._interruptible():
                error_key = upload_error_zip(
                    self.aws,
                    self.workspace,
                    bucket=self.settings.errors_bucket,
                    job_id=job_id,
                    start_time=start_time,
                    reason=failed.reason,
                    log=self.log,
                )
        except (ShepardError, OSError) as error:
            self.log.worker(f"could not push the logs: {error}")
        self._status(Status.FAILED_CLEANING_UP)
        self._remove_checkpoint()
        self.workspace.clean()
        self._finish(
            Result.FAILED, exit_code=failed.exit_code, reason=failed.reason, error_zip=error_key
        )
        return 1

    def _finish(
        self,
        result: Result,
        *,
        exit_code: int | None,
        reason: str | None = None,
        outputs: list[str] | None = None,
        error_zip: str | None = None,
    ) -> None:
        """The result, <done>, the attempt's end and the run's usage: one write
        (``JobStore.finish_run``). The usage is measured before; a usage that cannot be measured
        is said and left out, never failing the job."""
        job_id = self.settings.job_id
        total: dict[str, Any] | None = None
        if self._meter is not None and not self._meter.recorded:
            self._meter.recorded = True
            try:
                total = self.store.add_usage(self._usage_before, self._meter.usage(self.imds.get))
            except Exception as error:  # the usage record never fails a job
                self.log.worker(f"could not record the usage of job {job_id}: {error}")
        fields = {"exit_code": exit_code, "reason": reason}
        self.store.finish_run(
            job_id,
            result,
            attempt_number=self._attempt_number,
            attempt_index=self._attempt_index,
            attempt_fields={k: v for k, v in fields.items() if v is not None},
            usage=total,
            exit_code=exit_code,
            reason=reason,
            outputs=outputs or (),
            error_zip=error_zip,
            status=Status.DONE,
        )

    def _interrupted(self, interrupted: Interrupted) -> None:
        """End an attempt cut short: a cancelled job uploads nothing and stays cancelled; any
        other saves its checkpoint and is put back in the queue when Batch retries it (a reclaim
        with attempts left), else finishes ``interrupted`` with its cause."""
        job_id = self.settings.job_id
        name = signal.Signals(interrupted.signum).name
        exit_code = 128 + interrupted.signum
        if self.watcher is not None:
            self.watcher.stop()
        if self.checkpoint is not None:
            self.checkpoint.stop_periodic()
        try:
            current = self.store.get(job_id)
        except AWS_ERRORS as error:
            self.log.worker(f"could not read the job record: {error}")
            current = None
        if current is not None and current.result is Result.CANCELLED:
            self.log.worker(f"job {job_id} was cancelled: payload stopped, nothing uploaded")
            self._end_attempt(exit_code=exit_code, reason="cancelled", cause="cancelled")
            return
        notice = self.watcher.check_now() if self.watcher is not None else None
        cause = spot.cause_of(notice)
        self._save_checkpoint(f"{name}, {cause}")
        retried, why = self.retry_strategy.retried(cause, self._attempt_number)
        reason = f"the worker received {name} ({cause}); {why}"
        self.log.worker(f"job {job_id} interrupted: {reason}")
        self._end_attempt(
            exit_code=exit_code,
            reason=reason,
            cause=cause,
            reclaimed=cause in spot.RECLAIM_CAUSES,
        )
        try:
            if retried:
                self.store.mark_interrupted(job_id, reason)
            else:
                self.store.finish_interrupted(job_id, reason, exit_code=exit_code)
        except AWS_ERRORS as error:
            self.log.worker(f"could not mark the job interrupted: {error}")

    # -- attempts, the Spot notice, checkpoints -------------------------------------------------

    def _host_folder(self) -> Path | None:
        """Where the sheep's host leaves the metadata it read (spot.py); None when absent."""
        folder = self.settings.work_root / spot.HOST_FOLDER
        return folder if folder.is_dir() else None

    def _attempt_entry(self, number: int) -> dict[str, Any]:
        """The ATTEMPTS entry of attempt ``number`` as it starts (what this host is)."""
        if self._hostname is None:
            self._hostname = self.find_hostname(self.environ)
        facts = spot.instance_facts(self.imds, self._host_folder())
        return {
            "number": number,
            "queue": self.environ.get(contract.BATCH_QUEUE_NAME) or None,
            "instance_type": facts.instance_type,
            "lifecycle": facts.lifecycle,
            "host": facts.host or ec2_instance.hostname(self._hostname),
        }

    def _first_run(self, record: JobRecord) -> bool:
        """Whether no earlier run of this job can have saved a checkpoint: its first claim
        (ATTEMPT 1), no reclaim, no earlier attempt entry that started."""
        if record.attempt != 1 or record.reclaims:
            return False
        started = [entry for entry in record.attempts if "started" in entry]
        return len(started) <= (1 if self._attempt_started else 0)

    def _start_attempt(self) -> None:
        entry = self._attempt_entry(self._attempt_number)
        number = entry.pop("number")
        try:
            self.store.start_attempt(self.settings.job_id, number, **entry)
        except Exception as error:  # the record of attempts never stops the job
            number = self._attempt_number
            self.log.worker(f"could not record the start of attempt {number}: {error}")

    def _end_attempt(self, **fields: Any) -> None:
        if self._meter is not None:  # the run's usage and cost, before its result is written
            self._meter.record(self.store, self.settings.job_id, self.imds.get, self.log.worker)
        try:
            self.store.end_attempt(self.settings.job_id, self._attempt_number, **fields)
        except Exception as error:
            self.log.worker(f"could not record the end of attempt {self._attempt_number}: {error}")

    def _on_notice(self, notice: spot.Notice) -> None:
        """The Spot interruption notice (from the watcher's thread): save the checkpoint now,
        while the payload still runs; SIGTERM follows within two minutes."""
        self.log.worker(
            f"Spot interruption notice: the instance will {notice.action} at {notice.time}"
        )
        self._save_checkpoint("Spot interruption notice")

    def _restore_checkpoint(self, prepared: Prepared, *, nothing_stored: bool = False) -> None:
        folder = self.workspace.root.job_dir / "checkpoint"
        self.checkpoint = Checkpoint(
            self.aws.client("s3"),
            self.settings.outputs_bucket,
            self.settings.job_id,
            folder,
            self.log.worker,
        )
        try:
            self.checkpoint.restore(nothing_stored=nothing_stored)
        except (ShepardError, OSError) as error:
            # A payload that keeps no checkpoint must run as before: say it, and go on.
            cause = error.message if isinstance(error, ShepardError) else str(error)
            self.log.worker(f"checkpoint: not restored ({cause}); the payload starts without it")
        prepared.env[CHECKPOINT_VARIABLE] = str(folder)
        self.checkpoint.start_periodic(interval_minutes(self.environ))

    def _save_checkpoint(self, why: str) -> None:
        if self.checkpoint is None:
            return
        try:
            self.checkpoint.upload(why)
        except (ShepardError, OSError) as error:
            cause = error.message if isinstance(error, ShepardError) else str(error)
            self.log.worker(f"checkpoint: the upload failed: {cause}")

    def _remove_checkpoint(self) -> None:
        if self.checkpoint is None:
            return
        try:
            self.checkpoint.remove()
        except (ShepardError, OSError) as error:
            cause = error.message if isinstance(error, ShepardError) else str(error)
            self.log.worker(f"checkpoint: could not remove it: {cause}")

    # -- steps ------------------------------------------------------------------------------

    def _unmounted(self) -> list[str]:
        """Why the job cannot run here: an EFS or Lustre root that is not that file system."""
        if self.filesystem_type is None:
            return []
        roots = {"efs": self.settings.efs_root, "lustre": self.settings.lustre_root}
        reasons = []
        for location, root in roots.items():
            if root is None:
                continue
            reason = mounts.missing_mount(location, root, self.filesystem_type(root))
            if reason is not None:
                reasons.append(reason)
        return reasons

    def _prepare(self, record: JobRecord, start_time: str) -> Prepared:
        s = self.settings
        ws = self.workspace
        try:
            if record.input_zip_name:
                self.log.worker(f"fetching s3://{s.inputs_bucket}/{record.input_zip_name}")
                fetch_input_zip(
                    self.aws,
                    s.inputs_bucket,
                    record.input_zip_name,
                    [f.input for f in ws.folders],
                    size=record.input_zip_size,
                )
            secrets_dir = ws.root.input / SECRETS_FOLDER
            if secrets_dir.is_symlink() or secrets_dir.is_file():
                secrets_dir.unlink()
            elif secrets_dir.exists():
                self.log.worker("the input zip has a secrets folder: replaced by the flock's")
                shutil.rmtree(secrets_dir)
            names = rebuild_secrets(self.aws, s.secret_name, secrets_dir)
            self.log.worker(f"secrets: {len(names)} file(s)")
            command = s.payload_command
            workdir: Path | None = ws.root.job_dir if s.runner == "process" else None
            quick = find_quick_deploy(record.variables)
            if quick:
                self.log.worker(f"fetching quick-deploy folder {quick}")
                script = fetch_quick_deploy(self.aws, s.quick_deploy_bucket, quick, ws.root.input)
                command = ("bash", str(script))
                workdir = script.parent
        except (ShepardError, OSError) as error:
            reason = error.message if isinstance(error, ShepardError) else str(error)
            raise _Failed(reason) from error
        env = payload_environment(
            variables=record.variables,
            job_id=s.job_id,
            start_time=start_time,
            job_status=Status.IN_PROGRESS.value,
            workspace=ws,
            inputs_bucket=s.inputs_bucket,
            outputs_bucket=s.outputs_bucket,
            errors_bucket=s.errors_bucket,
            input_zip_name=record.input_zip_name or "",
            is_invoked="True" if record.is_invoked else "False",
            hostname=ec2_instance.hostname(self._hostname),
            ulimit_nofile=s.ulimit_nofile,
            # The image keeps its own PATH; a process inherits the worker's.
            path=self.environ.get("PATH", os.defpath) if s.runner == "process" else None,
            worker_environ=self.environ,
        )
        return Prepared(env, command, workdir)

    def _mounts(self) -> tuple[Mount, ...]:
        mounts = [Mount(p, read_only=True) for p in self.workspace.read_only.values()]
        for folders in self.workspace.folders:
            mounts += [Mount(folders.input), Mount(folders.output)]
        if self.checkpoint is not None:
            mounts.append(Mount(self.checkpoint.folder))
        return tuple(mounts)

    def _run_payload(self, prepared: Prepared) -> RunResult:
        s = self.settings
        limits = ec2_instance.job_limits(self.environ)
        spec = RunSpec(
            env=prepared.env,
            mounts=self._mounts(),
            ulimit_nofile=s.ulimit_nofile,
            log=self.log,
            image=s.payload_image,
            command=prepared.command,
            workdir=prepared.workdir,
            allow_docker_daemon=s.allow_docker_daemon,
            user=payload_user(),
            cpus=limits.cpus,
            memory_mib=limits.memory_mib,
            gpu_ids=limits.gpu_ids,
            name=f"shepard-{s.job_id}",
            labels={"shepard.job": s.job_id, "shepard.flock": s.flock},
        )
        try:
            runner = self.runner = self.make_runner()
        except ShepardError as error:
            raise _Failed(error.message) from error
        self._payload_running = True
        try:
            if self._signal is not None:  # a signal between the last check and here
                runner.stop(s.stop_grace_seconds)
            outcome = runner.run(spec)
        except ShepardError as error:
            raise _Failed(error.message) from error
        finally:
            self._payload_running = False
        self.log.worker(f"payload exited with code {outcome.exit_code}")
        return outcome


def payload_user() -> str | None:
    """A worker that runs as root lets the payload image choose its user; a non-root worker runs
    the payload as itself, so that it can zip and remove everything the payload writes (and the
    payload can read the secrets, mode 0600). See docs/decisions/0005-worker-runtime.md."""
    uid = os.getuid()
    return None if uid == 0 else f"{uid}:{os.getgid()}"


def make_runner(settings: Settings, aws: Aws, environ: Mapping[str, str]) -> Runner:
    if settings.runner == "process":
        return ProcessRunner()
    return DockerRunner.from_env(
        environ,
        lock_path=settings.work_root / ".shepard-image-pull.lock",
        ecr_login=aws.ecr_login,
        ecr_digest=aws.ecr_digest,
    )


def main(
    argv: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    filesystem_type: mounts.FilesystemType | None = None,
) -> int:
    """``python -m shepard_worker``: run the job named by the environment.

    On Batch (the docker runner) the EFS and Lustre roots must be those file systems
    (``mounts.filesystem_type``); the process runner's (local flock) are plain folders, checked
    only when a test passes ``filesystem_type``.
    """
    environ = os.environ if env is None else env
    log = JobLog()
    try:
        settings = Settings.from_env(environ)
        aws = Aws()
        store = JobStore(
            settings.table_name,
            aws.dynamodb(),
            days_to_keep_finished_jobs=settings.days_to_keep_finished_jobs,
        )
        worker = Worker(
            settings,
            store=store,
            aws=aws,
            make_runner=lambda: make_runner(settings, aws, environ),
            log=log,
            environ=environ,
            filesystem_type=filesystem_type
            or (
                mounts.filesystem_type
                if settings.runner == "docker" and settings.check_mounts
                else None
            ),
        )
        return worker.run()
    except ShepardError as error:
        print(f"shepard: {error.message}", file=sys.stderr, flush=True)
        return int(error.exit_status)
    except AWS_ERRORS as error:
        print(
            f"shepard: while updating the job record: {error}. "
            "Check the job table's name and that the job role may write to it.",
            file=sys.stderr,
            flush=True,
        )
        return 3

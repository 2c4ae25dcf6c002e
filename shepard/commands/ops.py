"""Operating jobs: ``wait`` for a batch or jobs, ``query --batch``, ``cancel`` and ``logs``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shepard.commands import Context
from shepard.errors import BadInput, ExitStatus, ShepardError

if TYPE_CHECKING:
    from shepard.aws.flock import Aws
    from shepard.joblayer.store import JobRecord

# The order results are shown in (what is not listed comes after, by name).
RESULT_ORDER = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "rejected",
    "cancelled",
    "interrupted",
)
MAX_ARRAY_CHILDREN = 10_000


def _ordered(counts: dict[str, int]) -> list[tuple[str, int]]:
    known = [(name, counts[name]) for name in RESULT_ORDER if counts.get(name)]
    rest = sorted((k, v) for k, v in counts.items() if k not in RESULT_ORDER and v)
    return known + rest


def total_cost(records: Sequence[JobRecord]) -> tuple[float, int]:
    """The sum of USAGE.cost_usd over the records that have one, and how many had one."""
    total = 0.0
    priced = 0
    for record in records:
        cost = record.usage.get("cost_usd") if record.usage else None
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            total += float(cost)
            priced += 1
    return total, priced


def counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in _ordered(counts)) or "no jobs"


# --------------------------------------------------------------------------------------------
# query --batch


def query_batch(ctx: Context, table: str, batch_id: str) -> int:
    from shepard.joblayer.store import JobStore

    records = ctx.aws.query_batch(table, batch_id)
    counts = JobStore.count_by_result(records)
    cost, priced = total_cost(records)
    if ctx.flag("json"):
        ctx.console.json(
            {
                "batch_id": batch_id,
                "jobs": len(records),
                "counts": dict(_ordered(counts)),
                "cost_usd": round(cost, 6) if priced else None,
                "records": [r.to_plain() for r in records],
            }
        )
        return 0
    if not records:
        ctx.console.note(
            f"no job has batch id {batch_id} in {table}. Check the id (`batch` and"
            " `batch_via_api` print it); the scheduler may not have made the jobs yet."
        )
        return int(ExitStatus.FAILURE)
    rows = [[name, str(n)] for name, n in _ordered(counts)]
    rows.append(["total", str(len(records))])
    ctx.console.table(["result", "jobs"], rows, title=f"batch {batch_id} in {table}")
    if priced:
        ctx.console.print(f"cost: ${cost:.4f} (USAGE.cost_usd of {priced} job(s))")
    return 0


# --------------------------------------------------------------------------------------------
# which jobs: a batch, or job ids (an array parent stands for its children)


@dataclass
class JobSet:
    """The jobs a command acts on, read again on each poll."""

    aws: Aws
    table: str
    batch_id: str | None = None
    job_ids: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()

    def read(self) -> list[JobRecord]:
        if self.batch_id is not None:
            return self.aws.query_batch(self.table, self.batch_id)
        records = []
        for job_id in self.job_ids:
            record = self.aws.get_job(self.table, job_id)
            if record is not None:
                records.append(record)
        return records


def _children(aws: Aws, table: str, parent: str) -> list[str]:
    """The child ids of array job ``parent`` that have records (contiguous from 0)."""
    from shepard.joblayer.ids import child_job_id

    found: list[str] = []
    for index in range(MAX_ARRAY_CHILDREN):
        child = child_job_id(parent, index)
        if aws.get_job(table, child) is None:
            break
        found.append(child)
    return found


def resolve(ctx: Context, table: str, job_ids: Sequence[str], batch_id: str | None) -> JobSet:
    """A JobSet from ``--batch`` or job ids; ids with no record (nor children) are ``unknown``."""
    if batch_id:
        if job_ids:
            raise BadInput(
                f"while choosing jobs: give --batch or job ids, not both ({batch_id} and"
                f" {' '.join(job_ids)}). Run once for each."
            )
        return JobSet(ctx.aws, table, batch_id=batch_id)
    if not job_ids:
        raise BadInput("while choosing jobs: none given. Pass job ids, or --batch BATCH_ID.")
    known: list[str] = []
    unknown: list[str] = []
    for job_id in dict.fromkeys(job_ids):
        if ctx.aws.get_job(table, job_id) is not None:
            known.append(job_id)
            continue
        children = _children(ctx.aws, table, job_id)
        if children:
            known.extend(children)
        else:
            unknown.append(job_id)
    return JobSet(ctx.aws, table, job_ids=tuple(known), unknown=tuple(unknown))


# --------------------------------------------------------------------------------------------
# wait


def _finished(record: JobRecord) -> bool:
    from shepard.joblayer.records import Phase

    return record.phase is Phase.FINISHED


@contextmanager
def _bar(ctx: Context, description: str) -> Iterator[Callable[[int, int, str], None]]:
    """A live bar of finished/total on a terminal; nothing when output is piped (CI)."""
    if not ctx.console.show_progress:
        yield lambda done, total, text: None
        return
    from rich.console import Console as RichConsole
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"),
        console=RichConsole(file=ctx.console.err, highlight=False),
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=None, counts="")

        def update(done: int, total: int, text: str) -> None:
            progress.update(task, completed=done, total=max(total, 1), counts=text)

        yield update


def wait(ctx: Context) -> int:
    from shepard.joblayer.records import Result
    from shepard.joblayer.store import JobStore

    table = ctx.settings.require("dynamo_db_to_query", "waiting for jobs")
    batch_id: str | None = ctx.flag("batch")
    jobs = resolve(ctx, table, list(ctx.flag("jobs") or []), batch_id)
    for job_id in jobs.unknown:
        ctx.console.note(f"job {job_id} has no record in {table}; not waiting for it")
    if not jobs.batch_id and not jobs.job_ids:
        raise BadInput(
            f"while waiting for jobs: none of {' '.join(jobs.unknown)} is in {table}. Check the"
            " ids (shepard-tf query)."
        )
    timeout: float | None = ctx.flag("timeout")
    interval: float = ctx.flag("interval") or 5.0
    expect: int = ctx.flag("expect") or 0
    what = f"batch {batch_id}" if batch_id else f"{len(jobs.job_ids)} job(s)"
    started = time.monotonic()
    noted_empty = False
    with _bar(ctx, f"waiting for {what}") as update:
        while True:
            records = jobs.read()
            counts = JobStore.count_by_result(records)
            done = sum(1 for r in records if _finished(r))
            total = max(len(records), expect)
            update(done, total, counts_line(counts))
            if records and done == len(records) and len(records) >= expect:
                break
            if not records and not noted_empty:
                ctx.console.note(f"no job of {what} in {table} yet; waiting for the scheduler")
                noted_empty = True
            elapsed = time.monotonic() - started
            if timeout is not None and elapsed >= timeout:
                ctx.console.print(
                    f"{what}: timed out after {_clock(elapsed)} with {total - done} of {total}"
                    f" job(s) not finished ({counts_line(counts)})"
                )
                return int(ExitStatus.FAILURE)
            pause = interval if timeout is None else min(interval, max(0.0, timeout - elapsed))
            ctx.sleep(pause)
    elapsed = time.monotonic() - started
    bad = [r for r in records if r.result is not Result.SUCCEEDED]
    ctx.console.print(
        f"{what}: {len(records)} job(s) finished in {_clock(elapsed)}: {counts_line(counts)}"
    )
    for record in bad[:10]:
        reason = f": {record.reason}" if record.reason else ""
        ctx.console.note(f"  {record.job_id} {record.result}{reason}")
    if len(bad) > 10:
        ctx.console.note(f"  ... and {len(bad) - 10} more (shepard-tf query --batch ...)")
    return int(ExitStatus.FAILURE if bad else ExitStatus.OK)


def _clock(seconds: float) -> str:
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# --------------------------------------------------------------------------------------------
# cancel


def _who(ctx: Context) -> str:
    """Who is cancelling, for the record's REASON: the caller's AWS identity."""
    try:
        return ctx.aws.caller_identity()["arn"]
    except ShepardError:
        import getpass

        return getpass.getuser()


def _unfinished(ctx: Context, table: str, tag: str | None, queued_only: bool) -> list[JobRecord]:
    """Queued (and, unless ``queued_only``, running) jobs, with this TAG if given: one Query
    per phase on the phase index, never a Scan."""
    from shepard.joblayer.records import Phase

    store = ctx.aws.job_store(table)
    phases = [Phase.QUEUED] if queued_only else [Phase.QUEUED, Phase.RUNNING]
    with aws_errors_while(f"querying the job table {table} for jobs to cancel"):
        records = [r for phase in phases for r in store.query_phase(phase, newest_first=False)]
    return [r for r in records if tag is None or r.tag == tag]


@contextmanager
def aws_errors_while(doing: str) -> Iterator[None]:
    from shepard.aws.errors import aws_errors

    with aws_errors(doing):
        yield


def cancel(ctx: Context) -> int:
    from shepard.joblayer.batch import job_name
    from shepard.joblayer.cancel import Done, cancel_records, whole_arrays

    table = ctx.settings.require("dynamo_db_to_query", "cancelling jobs")
    job_ids: list[str] = list(ctx.flag("jobs") or [])
    batch_id: str | None = ctx.flag("batch")
    tag: str | None = ctx.flag("tag")
    all_queued: bool = bool(ctx.flag("all_queued"))
    chosen = [bool(job_ids), batch_id is not None, tag is not None, all_queued]
    if sum(chosen) != 1:
        raise BadInput(
            "while choosing jobs to cancel: give exactly one of job ids, --batch BATCH_ID,"
            " --tag TAG or --all-queued."
        )
    unknown: tuple[str, ...] = ()
    whole = False
    if tag is not None or all_queued:
        records = _unfinished(ctx, table, tag, all_queued)
        what = f"jobs tagged {tag!r}" if tag is not None else "queued jobs"
    else:
        jobs = resolve(ctx, table, job_ids, batch_id)
        records = jobs.read()
        unknown = jobs.unknown
        whole = batch_id is not None or any(i not in jobs.job_ids for i in job_ids)
        what = f"batch {batch_id}" if batch_id else f"{len(job_ids)} job id(s)"
    given = ctx.flag("reason") or "no reason given"
    reason = f"cancelled by {_who(ctx)}: {given}"
    counts: dict[str, int] = {}
    for record in records:
        if record.array_parent:
            counts[record.array_parent] = counts.get(record.array_parent, 0) + 1
    aws = ctx.aws
    queue = ctx.settings.get("job_queue")

    def find_parent(parent: str, child: JobRecord, size: int) -> str | None:
        # No child has started, so none knows the array's Batch id: Batch's own list has it.
        return aws.find_array_job(queue, job_name(parent, child.tag), size) if queue else None

    arrays = whole_arrays(records, lambda parent: counts[parent], find_parent) if whole else set()
    done = cancel_records(
        records,
        cancel_record=lambda job_id, why: aws.cancel_job_record(table, job_id, why),
        batch=aws,
        reason=reason,
        whole_arrays=arrays,
    )
    for item in done:
        line = f"{item.job_id} {item.done.value}: {item.detail}"
        if item.done is Done.FAILED:
            ctx.console.note(line)
        else:
            ctx.console.print(line)
    for job_id in unknown:
        ctx.console.note(f"{job_id}: no such job in {table}; check the id (shepard-tf query)")
    stopped = sum(1 for item in done if item.stopped)
    finished = sum(1 for item in done if item.done is Done.FINISHED)
    failed = sum(1 for item in done if item.done is Done.FAILED)
    ctx.console.note(
        f"{what}: {stopped} cancelled, {finished} already finished, {failed} not stopped in"
        f" Batch, {len(unknown)} unknown"
    )
    if not records and not unknown:
        ctx.console.note("nothing to cancel")
        return 0
    return int(ExitStatus.OK if stopped else ExitStatus.FAILURE)


# --------------------------------------------------------------------------------------------
# logs


def _local_log_path(ctx: Context, job_id: str) -> Path | None:
    """The job's log file on a local flock (``<state>/local/jobs/<job>.log``); None on AWS."""
    from shepard.commands.local_cmds import state_dir_of
    from shepard.local.settings import Paths

    if not (ctx.flag("state_dir") or ctx.settings.get("endpoint_url")):
        return None  # a flock on AWS: its log is in CloudWatch
    try:
        state_dir = state_dir_of(ctx)
    except (ShepardError, OSError):
        return None
    return Paths(state_dir).jobs_dir / f"{job_id}.log"


def logs(ctx: Context) -> int:
    from shepard.joblayer.logs import NoStream, follow_file, follow_stream, log_group, stream_of
    from shepard.joblayer.records import Phase

    table = ctx.settings.require("dynamo_db_to_query", "reading a job's log")
    job_id: str = ctx.flag("job")
    follow = bool(ctx.flag("follow"))
    attempt: int | None = ctx.flag("attempt")
    aws = ctx.aws
    record = aws.get_job(table, job_id)
    if record is None:
        raise BadInput(
            f"while reading the log of job {job_id}: {table} has no such job. Check the id"
            " (shepard-tf query)."
        )

    def finished() -> bool:
        current = aws.get_job(table, job_id)
        return current is None or current.phase is Phase.FINISHED

    local = _local_log_path(ctx, job_id)
    if local is not None:
        if attempt is not None:
            ctx.console.note("note: a local flock keeps one log per job; --attempt is ignored")
        if not local.is_file() and not follow:
            raise ShepardError(
                f"while reading the log of job {job_id}: the local flock has no log for it"
                f" ({local}); it has not started. Try again with --follow to wait for it."
            )

        def read_from(offset: int) -> bytes:
            try:
                with local.open("rb") as handle:
                    handle.seek(offset)
                    return handle.read(1 << 20)
            except FileNotFoundError:
                return b""

        follow_file(read_from, ctx.console.print, follow=follow, finished=finished, sleep=ctx.sleep)
        return 0

    group = ctx.flag("log_group") or log_group(
        ctx.settings.require("cloudformation_stack_name", "finding the flock's log group")
    )
    while True:
        try:
            stream = stream_of(record, attempt)
            break
        except NoStream as exc:
            if not follow or record.phase is Phase.FINISHED:
                raise ShepardError(
                    f"while reading the log of job {job_id}: {exc}. Its reason:"
                    f" {record.reason or record.batch_reason or 'none recorded'}."
                ) from None
        ctx.sleep(2.0)
        record = aws.get_job(table, job_id) or record
    ctx.console.note(f"{group} {stream}")
    follow_stream(
        _cloudwatch_pages(aws, group, stream),
        ctx.console.print,
        follow=follow,
        finished=finished,
        sleep=ctx.sleep,
    )
    return 0


def _cloudwatch_pages(aws: Aws, group: str, stream: str) -> Callable[[str | None], Any]:
    from botocore.exceptions import ClientError

    from shepard.aws.errors import aws_errors
    from shepard.joblayer.logs import Throttled

    def fetch(token: str | None) -> Any:
        try:
            return aws.log_events(group, stream, token)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ThrottlingException":
                raise Throttled(str(exc)) from None
            with aws_errors(
                f"reading the log stream {stream} of {group}",
                "Check the flock's name (the log group is /aws/batch/<flock>) or pass --log_group",
            ):
                raise

    return fetch

"""Operating jobs: ``wait`` for a batch or jobs, ``query --batch``, ``cancel`` and ``logs``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shepard.commands import Context
from shepard.errors import BadInput, ExitStatus

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

"""why JOB: why a job waits, or why it failed, in plain sentences (``--json`` for scripts)."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from shepard.commands import Context
from shepard.errors import BadInput

LOG_LINES = 10


def _local_log(ctx: Context, job_id: str) -> Path | None:
    """The job's log on the local flock (``<state>/local/jobs/<job>.log``), when there is one."""
    from shepard.commands.local_cmds import state_dir_of
    from shepard.errors import ShepardError
    from shepard.local.settings import Paths

    if not (ctx.flag("state_dir") or ctx.settings.get("endpoint_url")):
        return None  # a flock on AWS: its log is in CloudWatch
    try:
        state_dir = state_dir_of(ctx)
    except (ShepardError, OSError):
        return None
    path = Paths(state_dir).jobs_dir / f"{job_id}.log"
    return path if path.is_file() else None


def _tail(path: Path, lines: int = LOG_LINES) -> list[str]:
    with path.open("rb") as handle:
        return [
            line.decode("utf-8", "replace").rstrip("\n") for line in deque(handle, maxlen=lines)
        ]


def why(ctx: Context) -> int:
    from shepard.aws.errors import aws_errors
    from shepard.joblayer.why import explain

    table = ctx.settings.require("dynamo_db_to_query", "explaining a job")
    job_id: str = ctx.flag("job")
    record = ctx.aws.get_job(table, job_id)
    if record is None:
        raise BadInput(
            f"while explaining job {job_id}: the job table {table} has no record with that id."
            " Check the id (`shepard-tf query`), or the profile's table."
        )
    local_log = None if record.phase.value == "queued" else _local_log(ctx, job_id)
    view = ctx.aws.batch_view()
    with aws_errors(
        f"reading what AWS Batch says about job {job_id}",
        "Check the profile's region and credentials (docs/iam.md lists what `why` needs)",
    ):
        facts = view.gather(record, read_log=record.phase.value == "finished" and not local_log)
    if local_log is not None and not facts.log_lines:
        facts.log_lines = _tail(local_log)
        facts.log_source = str(local_log)
    diagnosis = explain(record, facts)
    if ctx.flag("json"):
        ctx.console.json(diagnosis.to_json())
        return 0
    _print(ctx, diagnosis.to_json())
    return 0


def _print(ctx: Context, data: dict[str, Any]) -> None:
    head = f"job {data['job_id']}: {data['state']}"
    if data.get("batch_job_id"):
        head += f" (Batch job {data['batch_job_id']}"
        head += f", {data['batch_status']})" if data.get("batch_status") else ")"
    ctx.console.print(head)
    for sentence in data["sentences"]:
        ctx.console.print(f"  {sentence}")
    for line in data["log_lines"]:
        ctx.console.print(f"    | {line}")
    if data["environments"]:
        rows = [
            [
                env["name"],
                f"{env['state']}/{env['status']}",
                ",".join(env["instance_types"]),
                f"{env['desired_vcpus']}/{env['max_vcpus']}",
                "?" if env["fits"] is None else ("yes" if env["fits"] else "no"),
            ]
            for env in data["environments"]
        ]
        ctx.console.table(
            ["compute environment", "state", "instance types", "vCPUs used/max", "fits"],
            rows,
            title=f"queue {data['queue']}: {data['queue_state']}/{data['queue_status']}",
        )

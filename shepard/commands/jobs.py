"""Jobs: batch (zip drop), batch_via_api (the API Lambda), query (the job table)."""

from __future__ import annotations

import json
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shepard.commands import Context
from shepard.errors import BadInput, ShepardError
from shepard.joblayer.records import STATUS_INDEX, Phase, Result

# Folders zipped and uploaded at once by `batch` (results downloaded at once by `retrieve`):
# enough to hide S3's per-request latency, few enough for 2 cores and the disk (--parallel).
TRANSFER_WORKERS = 8


# --------------------------------------------------------------------------------------------
# batch


@dataclass(frozen=True)
class JobFolder:
    folder: Path
    zip_name: str


def _check_inputs(folder: Path) -> dict[str, str]:
    """Refuse a folder whose inputs.json the scheduler would reject, before uploading it."""
    from shepard.joblayer.variables import JobRejected, parse_inputs_json

    if not folder.is_dir():
        raise BadInput(f"while batching {folder}: it is not a folder. Pass a folder to batch.")
    inputs = folder / "inputs.json"
    if not inputs.is_file():
        raise BadInput(
            f"while batching {folder}: it has no inputs.json. Add an inputs.json holding a JSON"
            ' object of variables, e.g. {"test1": "test1"}.'
        )
    try:
        return parse_inputs_json(inputs.read_bytes(), source=str(inputs))
    except JobRejected as exc:
        raise BadInput(
            f"while checking {inputs}: {exc.reason}. Fix it and batch again; nothing was uploaded."
        ) from None


def zip_folder(folder: Path, target: Path, on_bytes: Callable[[int], None] | None = None) -> int:
    """Zip (zip64 allowed) every file under ``folder``, paths relative to it; return the size.
    ``on_bytes`` hears each file's size once it is in the zip."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
                if on_bytes is not None:
                    on_bytes(path.stat().st_size)
    return target.stat().st_size


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class _Scaled:
    """Upload progress (bytes of the zip) told in bytes of the folder it holds, so that one bar
    counts both halves of a job in the same unit."""

    def __init__(self, advance: Callable[[int], None], folder_bytes: int, zip_bytes: int) -> None:
        self.advance = advance
        self.folder_bytes = folder_bytes
        self.zip_bytes = max(zip_bytes, 1)
        self.sent = 0
        self.told = 0

    def __call__(self, amount: int) -> None:
        self.sent = min(self.zip_bytes, self.sent + amount)
        due = self.folder_bytes * self.sent // self.zip_bytes
        if due > self.told:
            self.advance(due - self.told)
            self.told = due

    def finish(self) -> None:
        self(self.zip_bytes)


def transfer_workers(ctx: Context, jobs: int) -> int:
    """How many folders (or results) move at once: ``--parallel``, default TRANSFER_WORKERS."""
    given: int | None = ctx.flag("parallel")
    if given is not None and given < 1:
        raise BadInput(
            f"while reading --parallel: {given} is not a number of workers. Pass 1 or more."
        )
    return max(1, min(given or TRANSFER_WORKERS, jobs))


def _zip_name(override: str | None) -> str:
    if not override:
        return f"{uuid.uuid4().hex}.zip"
    if "/" in override or "\\" in override or override in {".", ".."} or not override.strip():
        raise BadInput(
            f"while naming the job zip: {override!r} must be a plain file name. Pass a name"
            " without slashes."
        )
    return override if override.lower().endswith(".zip") else f"{override}.zip"


def _folders(ctx: Context) -> list[Path]:
    given: list[str] = list(ctx.flag("path_to_local_folder_to_batch") or [])
    given += list(ctx.flag("folders") or [])
    if not given:
        default = ctx.settings.get("path_to_local_folder_to_batch")
        if default:
            given = [default]
    if not given:
        raise BadInput(
            "while batching: no folder was given. Pass --path_to_local_folder_to_batch FOLDER"
            " (several folders may follow as arguments), or set it in the profile."
        )
    return [Path(g).expanduser() for g in given]


def batch(ctx: Context) -> int:
    if ctx.flag("array"):
        return _batch_array(ctx)
    folders = _folders(ctx)
    override = ctx.flag("zip_name_override")
    if override and len(folders) > 1:
        raise BadInput(
            "while batching several folders: --zip_name_override names one zip. Drop it, or"
            " batch one folder."
        )
    for folder in folders:
        _check_inputs(folder)
    bucket = ctx.settings.require("s3_bucket_to_upload_to", "batching")
    from shepard.joblayer.contract import BATCH_ID_METADATA
    from shepard.joblayer.ids import new_batch_id

    batch_id = new_batch_id()
    metadata = {BATCH_ID_METADATA: batch_id}
    jobs = [JobFolder(f, _zip_name(override)) for f in folders]
    aws = ctx.aws
    workers = transfer_workers(ctx, len(jobs))
    sizes = {job.folder: folder_size(job.folder) for job in jobs}
    # One bar over every folder's bytes: half for zipping them, half for uploading the zips.
    total = 2 * sum(sizes.values())
    description = f"zipping and uploading {len(jobs)} job zip(s), {workers} at a time"
    with (
        tempfile.TemporaryDirectory(prefix="shepard-batch-") as tmp,
        ctx.console.progress(description, total) as bar,
    ):
        lock = threading.Lock()

        def advance(amount: int) -> None:
            with lock:
                bar.advance(amount)

        def zip_and_upload(job: JobFolder) -> None:
            target = Path(tmp) / job.zip_name
            size = zip_folder(job.folder, target, advance)
            uploaded = _Scaled(advance, sizes[job.folder], size)
            aws.upload_file(target, bucket, job.zip_name, uploaded, metadata=metadata)
            uploaded.finish()
            target.unlink()  # the disk holds at most `workers` zips at once

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(zip_and_upload, jobs))
    for job in jobs:
        ctx.console.note(f"{job.folder} -> s3://{bucket}/{job.zip_name}")
        ctx.console.print(job.zip_name)
    _note_batch(ctx, batch_id, len(jobs))
    return 0


def _note_batch(ctx: Context, batch_id: str | None, jobs: int) -> None:
    """Say the submission's batch id, and how to wait for it (stderr: stdout stays data)."""
    if batch_id:
        ctx.console.note(
            f"batch {batch_id}: {jobs} job(s); wait for them with"
            f" `shepard-tf wait --batch {batch_id} --expect {jobs}`"
        )


def _array_inputs(items: Sequence[str]) -> list[tuple[Path, dict[str, str]]]:
    from shepard.joblayer.variables import JobRejected, parse_inputs_json

    files: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            if (path / "inputs.json").is_file():
                files.append(path / "inputs.json")
            else:
                found = sorted(path.glob("*.json"))
                if not found:
                    raise BadInput(
                        f"while collecting array inputs: {path} holds no .json files."
                        " Pass JSON files or folders of them."
                    )
                files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise BadInput(f"while collecting array inputs: {path} does not exist. Check it.")
    inputs = []
    for file in files:
        try:
            inputs.append((file, parse_inputs_json(file.read_bytes(), source=str(file))))
        except JobRejected as exc:
            raise BadInput(
                f"while checking {file}: {exc.reason}. Fix it; no job was submitted."
            ) from None
    if len(inputs) < 2:  # past 10,000 the API Lambda cuts it into several array jobs
        raise BadInput(
            f"while building an array job: it needs 2 or more inputs, not {len(inputs)}."
            " Use batch_via_api for one job."
        )
    return inputs


def _batch_array(ctx: Context) -> int:
    inputs = _array_inputs(ctx.flag("array"))
    function = ctx.settings.require("lambda_to_invoke", "submitting an array job")
    # A JSON list of variable objects is an array job (docs/contracts.md, API Lambda event).
    answer = _invoke_api(ctx, function, [variables for _, variables in inputs])
    job_id = _job_id(answer)
    for part in answer.get("array_parts") or [{"job_id": job_id, "array_size": len(inputs)}]:
        size = int(part["array_size"])
        ctx.console.note(
            f"array job of {size} children: {part['job_id']}-0 .. {part['job_id']}-{size - 1}"
        )
    ctx.console.print(job_id)
    _note_batch(ctx, answer.get("batch_id"), len(inputs))
    return 0


# --------------------------------------------------------------------------------------------
# batch_via_api


def _invoke_api(ctx: Context, function: str, payload: Any) -> dict[str, Any]:
    """Invoke the API Lambda; its refusal becomes exit 2, its crash exit 1."""
    invocation = ctx.aws.invoke(function, payload)
    body: Any = invocation.payload
    if invocation.function_error:
        detail = body.get("errorMessage") if isinstance(body, dict) else body
        raise ShepardError(
            f"while submitting the job through {function}: the Lambda failed ({detail})."
            " Check its logs (CloudWatch, or `shepard-tf local logs` for a local flock)."
        )
    if isinstance(body, dict) and "statusCode" in body:
        # The contract's refusal ({"error", "statusCode"}), or an HTTP-shaped answer with a body.
        status = int(body["statusCode"])
        if "body" in body:
            inner = body["body"]
            try:
                parsed = json.loads(inner) if isinstance(inner, str) else inner
            except ValueError:
                parsed = {"error": inner}
            body = parsed if isinstance(parsed, dict) else {"error": parsed}
        if status >= 400:
            reason = body.get("error") or body.get("reason") or body.get("message") or body
            if 400 <= status < 500:
                raise BadInput(
                    f"while submitting the job through {function}: the flock refused it"
                    f" ({reason}). Fix the payload; no job was started."
                )
            raise ShepardError(
                f"while submitting the job through {function}: the flock could not start it"
                f" (HTTP {status}: {reason}). Try again; see the Lambda's logs if it persists."
            )
    if not isinstance(body, dict):
        raise ShepardError(
            f"while submitting the job through {function}: it answered {body!r}, not a job."
            " Check that the function is the flock's API Lambda."
        )
    if body.get("error") or body.get("rejected"):
        raise BadInput(
            f"while submitting the job through {function}: the flock refused it"
            f" ({body.get('reason') or body.get('error')}). Fix the payload; no job was started."
        )
    return body


def _job_id(body: dict[str, Any]) -> str:
    for key in ("job_id", "UUID", "uuid", "id"):
        if body.get(key):
            return str(body[key])
    raise ShepardError(
        f"while reading the API Lambda's answer: it has no job id ({body}). Check the flock's"
        " API Lambda version."
    )


def batch_via_api(ctx: Context) -> int:
    from shepard.joblayer.variables import JobRejected, parse_json, validate_variables

    text: str = ctx.flag("json_payload")
    try:
        payload = parse_json(text, source="--json_payload")
        validate_variables(payload)
    except JobRejected as exc:
        raise BadInput(
            f"while reading --json_payload: {exc.reason}. Fix it and submit again."
        ) from None
    function = ctx.settings.require("lambda_to_invoke", "submitting a job through the API")
    body = _invoke_api(ctx, function, payload)
    if ctx.flag("json"):
        ctx.console.json(body)
    else:
        ctx.console.print(_job_id(body))
        _note_batch(ctx, body.get("batch_id"), 1)
    return 0


# --------------------------------------------------------------------------------------------
# query

COLUMNS = ["job", "status", "result", "tag", "start", "duration", "cost"]
_PHASES = [Phase.QUEUED.value, Phase.RUNNING.value, Phase.FINISHED.value]
_RESULTS = {r.value for r in Result}


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value)
    for fmt in ("%Y%m%dT%H%M%SZ",):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def job_row(record: dict[str, Any], now: datetime) -> list[str]:
    start = _parse_time(record.get("START_TIME"))
    end = _parse_time(record.get("END_TIME"))
    duration = ""
    if start is not None:
        duration = _duration(((end or now) - start).total_seconds())
    shown_start = start or _parse_time(record.get("CREATED_AT"))
    return [
        str(record.get("UUID", "")),
        str(record.get("JOB_STATUS", "")),
        str(record.get("RESULT", "")),
        str(record.get("TAG", "")),
        shown_start.strftime("%Y-%m-%d %H:%M:%S") if shown_start else "",
        duration,
        usage_cost(record.get("USAGE")),
    ]


def usage_cost(usage: Any) -> str:
    """A job's estimated cost from its USAGE (docs/cost.md): ``$0.0123``, ``$0 (local)``,
    ``unknown`` when no price was known, empty before the job ends."""
    if not isinstance(usage, dict) or "cost_usd" not in usage:
        return ""
    cost = usage.get("cost_usd")
    if cost is None:
        return "unknown"
    if usage.get("lifecycle") == "local":
        return "$0 (local)"
    return f"${float(cost):.4f}"


def fetch_jobs(
    ctx: Context, table: str, status: str | None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Jobs by status through the phase-index GSI: one Query per phase, never a Scan, newest
    first and paged until ``limit`` (None: all); returned oldest first."""
    aws = ctx.aws
    if status in _RESULTS:
        # An interrupted job is back in the queue for its retry, or has ended with its cause.
        ended = [Phase.FINISHED.value]
        where = [Phase.QUEUED.value, *ended] if status == Result.INTERRUPTED.value else ended
        records = [
            r
            for phase in where
            for r in aws.query_phase(table, STATUS_INDEX, phase, result=status, limit=limit)
        ]
    else:
        phases = [status] if status else _PHASES
        records = [
            r for phase in phases for r in aws.query_phase(table, STATUS_INDEX, phase, limit=limit)
        ]
    records.sort(key=lambda r: (str(r.get("CREATED_AT", "")), str(r.get("UUID", ""))))
    return records if limit is None else records[-limit:]


QUERY_LIMIT = 100  # jobs `query` shows by default: the newest, from a few pages of the index


def _query_limit(ctx: Context) -> int | None:
    if ctx.flag("all"):
        return None
    given: int | None = ctx.flag("limit")
    if given is not None and given < 1:
        raise BadInput(f"while reading --limit: {given} is not a number of jobs. Pass 1 or more.")
    return given or QUERY_LIMIT


def query(ctx: Context) -> int:
    table = ctx.settings.require("dynamo_db_to_query", "querying jobs")
    if ctx.flag("batch"):
        from shepard.commands.ops import query_batch

        return query_batch(ctx, table, str(ctx.flag("batch")))
    status: str | None = ctx.flag("status")
    watch: float | None = ctx.flag("watch")
    limit = _query_limit(ctx)
    while True:
        records = fetch_jobs(ctx, table, status, limit)
        if ctx.flag("json"):
            ctx.console.json(records)
        else:
            now = datetime.now(UTC)
            if watch is not None:
                ctx.console.clear()
            title = f"jobs in {table}" + (f" ({status})" if status else "")
            ctx.console.table(COLUMNS, [job_row(r, now) for r in records], title=title)
            more = limit is not None and len(records) == limit
            ctx.console.note(
                f"{len(records)} job(s)"
                + (f", the newest {limit}: --limit N or --all for more" if more else "")
            )
        if watch is None:
            return 0
        try:
            ctx.sleep(watch)
        except KeyboardInterrupt:
            return 0

"""local status|logs|stop|interrupt: the local flock service (:mod:`shepard.local`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict
from pathlib import Path

import shepard.local
from shepard import deploy
from shepard.commands import Context
from shepard.core import flock_file_of
from shepard.errors import BackendError, BadInput
from shepard.joblayer.ids import is_job_id


def state_dir_of(ctx: Context) -> Path:
    given = ctx.flag("state_dir")
    if given:
        return Path(given).expanduser()
    flock_file = flock_file_of(ctx, "finding the local flock")
    return deploy.load_flock(flock_file, ctx.env).state_dir


def local(ctx: Context) -> int:
    action = ctx.flag("action")
    if action == "interrupt":
        return interrupt(ctx)
    state_dir = state_dir_of(ctx)
    if action == "logs":
        for line in shepard.local.logs(state_dir):
            ctx.console.print(line.rstrip("\n"))
        return 0
    if action == "stop":
        stopped = shepard.local.stop(state_dir)
        ctx.console.print("local flock stopped" if stopped else "local flock was not running")
        return 0
    status = shepard.local.status(state_dir)
    if ctx.flag("json"):
        ctx.console.json(asdict(status))
        return 0
    rows = [
        [key, str(value)]
        for key, value in asdict(status).items()
        if key not in ("log_tail", "stats") and value not in (None, "")
    ]
    rows += [[f"jobs {k}", str(v)] for k, v in sorted(status.stats.items())]
    ctx.console.table(["local flock", str(state_dir)], rows)
    return 0 if status.running else 1


def interrupt(ctx: Context) -> int:
    """``local interrupt JOB [FLOCK_YAML]``: a simulated Spot reclaim of a running local job.

    The job's local instance metadata gives EC2's interruption notice, and its worker gets
    SIGTERM ``--warning`` seconds later, as on a reclaimed sheep (shepard/local/metadata.py)."""
    from shepard.local.retries import METADATA_FILE
    from shepard.local.settings import Paths

    job_id = str(ctx.flag("flock_file") or "")
    doing = f"interrupting job {job_id or '(none given)'}"
    if not is_job_id(job_id):
        raise BadInput(
            f"while {doing}: {job_id!r} is not a job id. Give the job's id first: "
            "`shepard-tf local interrupt JOB [FLOCK_YAML]` (ids: `shepard-tf query`)."
        )
    ctx.args.flock_file = ctx.flag("more")  # the flock file comes after the job id
    state_dir = state_dir_of(ctx)
    shepard.local.require_running(state_dir, doing=doing)
    endpoint = Paths(state_dir.resolve()).root / METADATA_FILE
    try:
        url = str(json.loads(endpoint.read_text())["url"])
    except (FileNotFoundError, ValueError, KeyError):
        raise BadInput(
            f"while {doing}: the local flock has run no job yet ({endpoint} is missing). "
            "Interrupt a job while it runs (`shepard-tf query --status running`)."
        ) from None
    warning = float(ctx.flag("warning") or 2.0)
    query = urllib.parse.urlencode({"warning": f"{warning:g}"})
    request = urllib.request.Request(  # noqa: S310 (the local flock's endpoint, http on 127.0.0.1)
        f"{url}/control/interrupt/{job_id}?{query}", method="POST", data=b""
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            cause = json.loads(error.read()).get("error") or str(error)
        except ValueError:
            cause = str(error)
        raise BadInput(f"while {doing}: {cause}.") from None
    except (OSError, ValueError) as error:
        raise BackendError(
            f"while {doing}: the local flock's metadata endpoint {url} did not answer ({error}). "
            "Check `shepard-tf local status`."
        ) from None
    if ctx.flag("json"):
        ctx.console.json(answer)
        return 0
    notice = answer.get("notice") or {}
    ctx.console.print(
        f"job {job_id}: Spot interruption notice given ({notice.get('action', 'terminate')} at "
        f"{notice.get('time', '?')}); its worker gets SIGTERM in {warning:g} s"
    )
    return 0

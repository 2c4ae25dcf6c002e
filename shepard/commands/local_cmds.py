"""local status|logs|stop: the local flock service (:mod:`shepard.local`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import shepard.local
from shepard import deploy
from shepard.commands import Context
from shepard.core import flock_file_of


def state_dir_of(ctx: Context) -> Path:
    given = ctx.flag("state_dir")
    if given:
        return Path(given).expanduser()
    flock_file = flock_file_of(ctx, "finding the local flock")
    return deploy.load_flock(flock_file, ctx.env).state_dir


def local(ctx: Context) -> int:
    state_dir = state_dir_of(ctx)
    action = ctx.flag("action")
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

"""``shepard-tf check [FLOCK_YAML] [--no-canary] [--timeout SECONDS] [--json]``.

Checks every hop of an applied flock (:mod:`shepard.check`) and prints one row per hop: ok or
FAIL, the time it took, what was found, and for a failure its cause and the fix. Exit 0 when
every hop is ok, 1 when one failed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shepard.commands import Context
from shepard.errors import BadInput, ExitStatus

SERVICES = ("batch", "s3", "sqs", "logs", "dynamodb")


def _clients(ctx: Context, settings: Any) -> Any:
    from shepard.aws.errors import aws_errors
    from shepard.aws.session import client, session
    from shepard.check import Clients

    with aws_errors("loading AWS credentials"):
        boto = session(settings)
    made = {name: client(boto, settings, name) for name in SERVICES}
    # The Lambda control plane is the account's (or emulator's); invoking may go elsewhere
    # (the local flock's Lambda endpoint).
    control = client(boto, replace(settings, lambda_endpoint_url=None), "lambda")
    return Clients(
        batch=made["batch"],
        s3=made["s3"],
        sqs=made["sqs"],
        lambda_=control,
        invoke=client(boto, settings, "lambda"),
        logs=made["logs"],
        dynamodb=made["dynamodb"],
    )


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def check(ctx: Context) -> int:
    from shepard import check as checks
    from shepard import deploy
    from shepard.core import flock_file_of, flock_outputs, terraform_env

    flock_file = flock_file_of(ctx, "checking the flock")
    env = terraform_env(ctx)
    flock = deploy.load_flock(flock_file, env)
    outputs = flock_outputs(ctx, flock_file)
    if not outputs.get("job_queue_name"):
        raise BadInput(
            f"while checking the flock of {flock_file}: it has not been applied (Terraform has no"
            f" outputs). Run `shepard-tf apply {flock_file}` first."
        )
    settings = ctx.aws_settings()
    running = deploy.target_for(flock, env).running_service(
        flock, doing=f"checking the local flock {flock.name}"
    )
    if running is not None:
        import shepard.local

        settings = replace(
            settings,
            region=flock.region,
            endpoint_url=running.endpoint_url,
            lambda_endpoint_url=running.lambda_endpoint_url,
        )
        target = checks.Target(
            checks.LOCAL,
            flock_file=str(flock_file),
            local_state_dir=flock.state_dir,
            local_status=lambda: shepard.local.status(flock.state_dir),
        )
    else:
        settings = replace(settings, region=settings.region or flock.region)
        target = checks.Target(checks.AWS, flock_file=str(flock_file))
    timeout = float(ctx.flag("timeout") or 120.0)
    if timeout <= 0:
        raise BadInput(
            f"while checking the flock: --timeout {timeout:g} must be a positive number of"
            " seconds. Pass, for example, --timeout 300."
        )
    report = checks.run_checks(
        _clients(ctx, settings),
        outputs,
        target,
        canary=not ctx.flag("no_canary"),
        timeout=timeout,
    )
    if ctx.flag("json"):
        ctx.console.json(report.to_json())
    else:
        _show(ctx, report)
    return int(ExitStatus.OK if report.ok else ExitStatus.FAILURE)


def _show(ctx: Context, report: Any) -> None:
    rows = [[hop.name, hop.status, _seconds(hop.seconds), hop.detail] for hop in report.hops]
    title = f"flock {report.flock} ({report.target})"
    ctx.console.table(["hop", "result", "time", "found"], rows, title=title)
    for hop in report.failed:
        ctx.console.print("")
        ctx.console.print(f"FAIL {hop.name}: {hop.cause}.")
        ctx.console.print(f"  fix: {hop.fix}")
    ctx.console.print("")
    if report.ok:
        ctx.console.print(f"all {len(report.hops)} hops ok")
    else:
        names = ", ".join(hop.name for hop in report.failed)
        ctx.console.print(f"{len(report.failed)} hop(s) failed: {names}")

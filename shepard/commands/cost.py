"""``shepard-tf cost FLOCK``: the flock's fixed monthly cost, read from its Terraform plan.

Nothing is applied: the flock is planned as ``plan`` does (``terraform show -json`` of the plan),
and every resource that costs money whether or not a job runs is listed with the setting that
causes it and its price from the table shipped with shepard-tf (shepard/cost/prices.json, whose
date and regions are printed). docs/cost.md explains the numbers.
"""

from __future__ import annotations

from shepard.commands import Context
from shepard.core import deployer_of, flock_file_of
from shepard.cost import Estimate, estimate_plan
from shepard.errors import ShepardError


def cost(ctx: Context) -> int:
    flock_file = flock_file_of(ctx, "estimating the flock's cost")
    deployer = deployer_of(ctx, flock_file)
    if deployer.where.kind != "aws":
        # A local flock's plan (and an emulator's) leaves out what an emulator cannot do, so
        # it is not the plan AWS would bill; nothing of it is billed by AWS either.
        where = (
            "runs on this machine"
            if deployer.where.kind == "local"
            else "is planned for an emulator"
        )
        ctx.console.print(
            f"flock {deployer.flock.name} {where}: AWS bills nothing for it. Its cost on AWS is "
            "that of the same flock.yaml with target: aws and no AWS_ENDPOINT_URL (docs/cost.md)"
        )
        return 0
    result = deployer.plan(show_json=True)
    if result.shown is None:  # pragma: no cover - show_json always shows
        raise ShepardError(
            f"while estimating the cost of {flock_file}: the plan could not be read. "
            f"Run `shepard-tf plan {flock_file}` to see why"
        )
    estimate = estimate_plan(result.shown)
    if ctx.flag("json"):
        ctx.console.json(estimate.as_json())
        return 0
    for line in report_lines(estimate):
        ctx.console.print(line)
    return 0


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def report_lines(estimate: Estimate) -> list[str]:
    """The text ``cost`` prints: one line per fixed cost, the total, what is billed by use."""
    out = [
        f"Fixed monthly cost of the flock in {estimate.region} "
        f"(prices of {estimate.date}, shepard/cost/prices.json):"
    ]
    if not estimate.known_region:
        out.append(
            f"  the price table has no prices for {estimate.region}: the resources below cost "
            "money, but how much is not known here"
        )
    width = max((len(line.kind) for line in estimate.lines), default=0)
    for line in estimate.lines:
        note = f" ({line.note})" if line.note else ""
        out.append(
            f"  {_money(line.monthly_usd):>10}  {line.kind.ljust(width)}  "
            f"{line.setting}{note}  [{line.address}]"
        )
    if not estimate.lines:
        out.append("  nothing: no resource of this flock is billed while it is idle")
    total = f"${estimate.monthly_usd:,.2f} a month"
    if estimate.unpriced:
        total += f" plus {len(estimate.unpriced)} item(s) without a price"
    out.append(f"  total when idle: {total}")
    if estimate.usage_only:
        kinds = ", ".join(
            f"{k.removeprefix('aws_')} x{n}" for k, n in sorted(estimate.usage_only.items())
        )
        out.append(f"Billed only by use (nothing while idle): {kinds}.")
    out.append(
        "Jobs add the instances they run on (`shepard-tf query` shows each job's estimate); "
        "in network mode public each running sheep's public IPv4 address adds $0.005 an hour."
    )
    if estimate.unclassified:
        out.append(
            "Not in the price table (check their cost yourself): "
            + ", ".join(estimate.unclassified)
        )
    return out

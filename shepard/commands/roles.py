"""set_role, check_role, release_role: a role assumed once, cached (0600) until it expires."""

from __future__ import annotations

from datetime import UTC, datetime

from shepard.commands import Context
from shepard.errors import BadInput


def set_role(ctx: Context) -> int:
    from shepard.aws.session import role_arn, save_role

    role = ctx.settings.get("role_to_assume_to_target_account")
    if not role:
        raise BadInput(
            "while setting a role: no role was given. Pass --role_to_assume_to_target_account"
            " ROLE (and --shepard_account_number ACCOUNT), or set them in the profile."
        )
    arn = role_arn(ctx.settings.get("account_number"), role)
    duration = int(ctx.flag("duration_seconds", 3600))
    if not 900 <= duration <= 43200:
        raise BadInput(
            f"while setting a role: --duration_seconds {duration} is outside 900-43200."
            " Pick a duration in that range."
        )
    creds = ctx.aws.assume_role(arn, duration_seconds=duration)
    path = save_role(ctx.store.root, creds)
    ctx.console.print(
        f"role {creds.role_arn} set until {creds.expiration}; every command uses it"
        f" (cached in {path}). Release it with `shepard-tf release_role`."
    )
    return 0


def check_role(ctx: Context) -> int:
    from shepard.aws.session import load_role

    role = load_role(ctx.store.root)
    if role is None:
        if ctx.flag("json"):
            ctx.console.json({"role": None})
        else:
            ctx.console.print("no role is set; commands use your own AWS credentials")
        return 0
    now = datetime.now(UTC)
    left = int((role.expires_at - now).total_seconds())
    if ctx.flag("json"):
        ctx.console.json(
            {
                "account": role.account,
                "role": role.role,
                "role_arn": role.role_arn,
                "expiration": role.expiration,
                "expired": left <= 0,
            }
        )
        return 0
    state = f"expires in {left // 60} min" if left > 0 else "EXPIRED: run set_role again"
    ctx.console.table(
        ["account", "role", "expiration", "state"],
        [[role.account, role.role, role.expiration, state]],
    )
    return 0 if left > 0 else 1


def release_role(ctx: Context) -> int:
    from shepard.aws.session import release_role as forget

    if forget(ctx.store.root):
        ctx.console.print("role released; commands use your own AWS credentials")
    else:
        ctx.console.print("no role was set")
    return 0

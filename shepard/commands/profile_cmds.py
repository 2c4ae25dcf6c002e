"""Profile commands: configure, auto_configure, set_profile, check_profile, clear_profile_config,
delete_profile, where_am_i."""

from __future__ import annotations

from shepard.commands import Context
from shepard.core import flock_file_of, flock_outputs, write_profile_from_outputs
from shepard.errors import BadInput
from shepard.profiles import ALL_FIELDS, SEED_FIELDS, check_name


def _name_arg(ctx: Context, doing: str) -> str:
    name = ctx.flag("name") or ctx.flag("profile_name")
    if not name:
        raise BadInput(
            f"while {doing}: no profile name was given."
            f" Pass it: `shepard-tf {doing.split()[0]} NAME`."
        )
    return check_name(str(name))


def configure(ctx: Context) -> int:
    """Ask the seed's questions, current values as defaults; an empty answer keeps the value."""
    name = _name_arg(ctx, "configure a profile")
    current = ctx.store.load(name) if ctx.store.exists(name) else {}
    values = dict(current)
    ctx.console.note(f"Configuring profile {name!r} (Enter keeps the value in brackets).")
    for field, question in {**SEED_FIELDS, "shepard_region": ALL_FIELDS["shepard_region"]}.items():
        values[field] = ctx.console.ask(f"{field} ({question})", current.get(field, ""))
    path = ctx.store.save(name, values)
    if ctx.store.current() is None:
        ctx.store.set_current(name)
    ctx.console.print(f"profile {name} written to {path}")
    return 0


def set_profile(ctx: Context) -> int:
    name = _name_arg(ctx, "set_profile")
    ctx.store.set_current(name)
    ctx.console.print(f"current profile: {name}")
    return 0


def clear_profile_config(ctx: Context) -> int:
    had = ctx.store.current()
    ctx.store.clear_current()
    ctx.console.print(f"profile {had} is no longer current" if had else "no profile was current")
    return 0


def delete_profile(ctx: Context) -> int:
    name = _name_arg(ctx, "delete_profile")
    ctx.store.delete(name)
    ctx.console.print(f"deleted profile {name}")
    return 0


def where_am_i(ctx: Context) -> int:
    ctx.console.print(str(ctx.store.folder))
    return 0


def check_profile(ctx: Context) -> int:
    names = ctx.store.names()
    current = ctx.store.current()
    values = ctx.store.load(current) if current and current in names else {}
    if ctx.flag("json"):
        ctx.console.json({"profiles": names, "current": current, "values": values})
        return 0
    if not names:
        ctx.console.print(
            f"no profiles in {ctx.store.folder}; create one with `shepard-tf configure NAME`"
        )
        return 0
    rows = [[("* " if n == current else "  ") + n] for n in names]
    highlight = names.index(current) if current in names else None
    ctx.console.table(["profile (* = current)"], rows, highlight_row=highlight)
    if current is None or current not in names:
        ctx.console.print("no profile is currently set; choose one with `shepard-tf set_profile`")
        return 0
    ctx.console.print("")
    ctx.console.table(
        ["field", "value"], [[k, v] for k, v in sorted(values.items())], title=f"profile {current}"
    )
    return 0


def auto_configure(ctx: Context) -> int:
    flock_file = flock_file_of(ctx, "auto-configuring a profile")
    outputs = flock_outputs(ctx, flock_file)
    name = ctx.flag("profile_name") or ctx.flag("cloudformation_stack_name")
    written = write_profile_from_outputs(ctx, outputs, flock_file, name)
    ctx.console.print(written)
    return 0

"""Session services the commands share: which flock file, Terraform's environment, the flock's
outputs, and the profile written from them.

Command modules import these from here and never from one another.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shepard import deploy
from shepard.aws.session import active_role
from shepard.commands import Context
from shepard.emulator import EMULATOR_CREDENTIALS, is_loopback_url
from shepard.errors import BadInput
from shepard.local import status as local_status
from shepard.profiles import check_name, profile_from_outputs


def flock_file_of(ctx: Context, doing: str) -> Path:
    """The flock file: the argument, else the profile of ``--cloudformation_stack_name``, else
    the current profile's ``shepard_flock_file``."""
    given = ctx.flag("flock_file")
    if given:
        path = Path(given).expanduser()
    else:
        stack = ctx.flag("cloudformation_stack_name")
        found: str | None = None
        if stack:
            for name in ctx.store.names():
                values = ctx.store.load(name)
                if name == stack or values.get("shepard_cloudformation_stack_name") == stack:
                    found = values.get("shepard_flock_file") or found
                    if found:
                        break
            if not found:
                raise BadInput(
                    f"while {doing}: no profile knows the flock file of {stack!r}. Pass the"
                    " flock file (`shepard-tf destroy path/to/flock.yaml`), or write the profile"
                    " with `shepard-tf auto_configure path/to/flock.yaml`."
                )
        else:
            found = ctx.settings.require("flock_file", doing)
        path = Path(found).expanduser()
    if not path.is_file():
        raise BadInput(f"while {doing}: the flock file {path} does not exist. Check the path.")
    return path


def terraform_env(ctx: Context) -> dict[str, str]:
    """The environment Terraform runs with: ours, plus the chosen AWS profile, region, role."""
    env = dict(ctx.env)
    aws_profile = ctx.flag("aws_profile")
    if aws_profile:
        env["AWS_PROFILE"] = aws_profile
    region = ctx.settings.get("region")
    if region:
        env["AWS_REGION"] = region
        env["AWS_DEFAULT_REGION"] = region
    endpoint = ctx.settings.get("endpoint_url")
    if endpoint and not env.get("AWS_ENDPOINT_URL"):
        # A flock applied to an emulator: its profile remembers where (a local flock's service
        # may have moved since; its target asks the service itself).
        env["AWS_ENDPOINT_URL"] = endpoint
        if is_loopback_url(endpoint):
            env.update(EMULATOR_CREDENTIALS)
    role = active_role(ctx.store.root)
    if role is not None:
        env.pop("AWS_PROFILE", None)
        env["AWS_ACCESS_KEY_ID"] = role.access_key_id
        env["AWS_SECRET_ACCESS_KEY"] = role.secret_access_key
        env["AWS_SESSION_TOKEN"] = role.session_token
    return env


def console_confirm(ctx: Context) -> deploy.Confirm:
    """A yes/no question on the console; only 'yes' goes ahead."""

    def confirm(question: str) -> bool:
        answer = ctx.console.ask(f"{question} Only 'yes' will be accepted", "")
        return answer.strip().lower() == "yes"

    return confirm


def deployer_of(
    ctx: Context, flock_file: Path, *, images: Mapping[str, str] | None = None
) -> deploy.Deployer:
    """The flock file loaded (once) into a deployer with Terraform's environment, the console
    for progress and questions, and the deploy stages (``images``: what ``deploy`` pushed)."""
    env = terraform_env(ctx)
    return deploy.Deployer(
        deploy.load_flock(flock_file, env),
        env=env,
        stages=deploy.default_stages(images),
        stream=ctx.console.err,
        confirm=console_confirm(ctx),
    )


def flock_outputs(ctx: Context, flock_file: Path) -> dict[str, Any]:
    """The flock's Terraform outputs (``{}`` before its first apply)."""
    return deployer_of(ctx, flock_file).outputs()


def local_endpoints(ctx: Context, flock_file: Path | None, name: str | None) -> dict[str, str]:
    """A running local flock's endpoints (its service), else a loopback ``AWS_ENDPOINT_URL``."""
    found: dict[str, str] = {}
    if flock_file is not None and name:
        state = local_status(deploy.state_dir_for(flock_file, name, ctx.env))
        if state.running and state.endpoint_url:
            found["shepard_endpoint_url"] = state.endpoint_url
            if state.lambda_endpoint_url:
                found["shepard_lambda_endpoint_url"] = state.lambda_endpoint_url
            return found
    url = ctx.env.get("AWS_ENDPOINT_URL", "")
    if is_loopback_url(url):
        found["shepard_endpoint_url"] = url
        lambda_url = ctx.env.get("AWS_ENDPOINT_URL_LAMBDA")
        if lambda_url:
            found["shepard_lambda_endpoint_url"] = lambda_url
    return found


def write_profile_from_outputs(
    ctx: Context, outputs: dict[str, Any], flock_file: Path | None, name: str | None
) -> str:
    """Write (merge into) the profile named ``name`` (default: the flock's stack name) from the
    flock's outputs and make it current; return its name."""
    values = profile_from_outputs(outputs, flock_file=flock_file, endpoint_url=None)
    flock_name = outputs.get("flock_name")
    for key, value in local_endpoints(ctx, flock_file, str(flock_name or "")).items():
        values.setdefault(key, value)
    profile_name = check_name(name or values.get("shepard_cloudformation_stack_name") or "default")
    old = ctx.store.load(profile_name) if ctx.store.exists(profile_name) else {}
    merged = {**old, **values}
    path = ctx.store.save(profile_name, merged)
    ctx.store.set_current(profile_name)
    ctx.console.note(f"profile {profile_name} written to {path} and made current")
    return profile_name

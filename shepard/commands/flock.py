"""The flock's infrastructure: render, plan, apply, output, describe, destroy, deploy.

The Terraform work itself is :mod:`shepard.deploy` (docs/contracts.md, section 9); these commands
find the flock file, pass the environment (credentials of a role set with ``set_role`` included),
ask before changing anything unless ``--auto-approve``, and write the profile afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shepard.commands import Context
from shepard.core import flock_file_of, flock_outputs, terraform_env, write_profile_from_outputs
from shepard.errors import BadInput

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


def _confirm(ctx: Context) -> Callable[[str], bool]:
    def confirm(question: str) -> bool:
        answer = ctx.console.ask(f"{question} Only 'yes' will be accepted", "")
        return answer.strip().lower() == "yes"

    return confirm


def _print_mapping(ctx: Context, values: Mapping[str, Any], title: str) -> None:
    rows = []
    for key, value in sorted(values.items()):
        if isinstance(value, Mapping | list):
            import json

            text = json.dumps(value, sort_keys=True)
        else:
            text = "" if value is None else str(value)
        rows.append([key, text])
    ctx.console.table(["name", "value"], rows, title=title)


def render(ctx: Context) -> int:
    from shepard import deploy

    path = deploy.render(flock_file_of(ctx, "rendering the flock"), env=ctx.env)
    ctx.console.print(str(path))
    return 0


def plan(ctx: Context) -> int:
    from shepard import deploy

    summary = deploy.plan(flock_file_of(ctx, "planning the flock"), env=terraform_env(ctx))
    ctx.console.print(summary.describe())
    return 0


def apply(ctx: Context) -> int:
    from shepard import deploy

    flock_file = flock_file_of(ctx, "applying the flock")
    outputs = deploy.apply(
        flock_file,
        env=terraform_env(ctx),
        auto_approve=bool(ctx.flag("auto_approve")),
        confirm=_confirm(ctx),
        progress=ctx.console.err,
    )
    write_profile_from_outputs(ctx, dict(outputs), flock_file, ctx.flag("profile_name"))
    ctx.console.print(f"flock {outputs.get('flock_name', '')} applied")
    return 0


def output(ctx: Context) -> int:
    outputs = flock_outputs(ctx, flock_file_of(ctx, "reading the flock's outputs"))
    if ctx.flag("json"):
        ctx.console.json(outputs)
    else:
        _print_mapping(ctx, outputs, "outputs")
    return 0


def describe(ctx: Context) -> int:
    """The flock's outputs (from Terraform when the flock file is known, else the profile)."""
    try:
        flock_file: Path | None = flock_file_of(ctx, "describing the flock")
    except BadInput:
        if not ctx.settings.profile:
            raise
        flock_file = None
    data: dict[str, Any] = {}
    if flock_file is not None:
        data["outputs"] = flock_outputs(ctx, flock_file)
    data["profile"] = dict(ctx.settings.profile)
    if ctx.flag("json"):
        ctx.console.json(data)
        return 0
    if "outputs" in data:
        _print_mapping(ctx, data["outputs"], f"flock {flock_file}")
    if data["profile"]:
        ctx.console.print("")
        _print_mapping(ctx, data["profile"], f"profile {ctx.settings.profile_name}")
    return 0


def destroy(ctx: Context) -> int:
    from shepard import deploy

    flock_file = flock_file_of(ctx, "destroying the flock")
    deploy.destroy(
        flock_file,
        env=terraform_env(ctx),
        auto_approve=bool(ctx.flag("auto_approve")),
        confirm=_confirm(ctx),
        progress=ctx.console.err,
    )
    ctx.console.print(f"flock of {flock_file} destroyed")
    return 0


def deployment_folder(value: str) -> Path:
    """A path, or the bare name of a bundled example (``testing-setup`` -> examples/...)."""
    path = Path(value).expanduser()
    looks_like_path = path.is_absolute() or "/" in value or value.startswith(".")
    if path.is_dir():
        return path
    if not looks_like_path and (EXAMPLES / value).is_dir():
        return EXAMPLES / value
    bundled = (
        ", ".join(sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
        if (EXAMPLES.is_dir())
        else "none"
    )
    raise BadInput(
        f"while finding the deployment folder: {value!r} is neither a folder nor a bundled"
        f" example (bundled: {bundled}). Pass a folder holding flock.yaml and code/."
    )


def deploy(ctx: Context) -> int:
    """Build and push the images, apply the flock with them, write the profile."""
    from shepard import deploy as tf

    folder = deployment_folder(
        ctx.settings.require("path_to_deployment_folder", "deploying a flock")
    )
    flock_file = folder / "flock.yaml"
    if not flock_file.is_file():
        raise BadInput(
            f"while deploying {folder}: it has no flock.yaml. Add one (see"
            " examples/testing-setup/flock.yaml)."
        )
    env = terraform_env(ctx)
    apply_args: dict[str, Any] = {
        "env": env,
        "auto_approve": bool(ctx.flag("auto_approve")),
        "confirm": _confirm(ctx),
        "progress": ctx.console.err,
    }
    images: dict[str, str] | None = None
    if not ctx.flag("skip_images"):
        from shepard import images as image_builder

        target = image_builder.flock_target(flock_file)
        docker_client = image_builder.docker_client(ctx.env, required=target != "local")
        if docker_client is None:
            ctx.console.note("no Docker engine answers: the local flock runs jobs as processes")
        else:
            outputs = _known_outputs(ctx, flock_file, env)
            if not outputs.get("ecr_repository_url"):
                outputs = dict(tf.apply(flock_file, **apply_args))  # creates the repository
            images = image_builder.build_and_push(
                docker_client,
                code_dir=folder / "code",
                repository_url=str(outputs["ecr_repository_url"]),
                login=ctx.aws.registry_login(),
                console=ctx.console,
            )
    outputs = dict(tf.apply(flock_file, images=images, **apply_args))
    write_profile_from_outputs(ctx, outputs, flock_file, ctx.flag("cloudformation_stack_name"))
    ctx.console.print(f"flock {outputs.get('flock_name', '')} deployed")
    return 0


def _known_outputs(ctx: Context, flock_file: Path, env: Mapping[str, str]) -> dict[str, Any]:
    from shepard import deploy as tf
    from shepard.errors import ShepardError

    try:
        return dict(tf.outputs(flock_file, env=env))
    except ShepardError:
        return {}

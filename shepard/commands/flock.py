"""The flock's infrastructure: render, plan, apply, output, describe, destroy, deploy.

The Terraform work itself is :mod:`shepard.deploy` (docs/contracts.md, section 9); these commands
find the flock file, load it once into a deployer (:func:`shepard.core.deployer_of`: the
environment with a role set by ``set_role``, the console for progress and questions), and write
the profile afterwards. ``plan --out PLAN`` then ``apply FLOCK PLAN`` is the CI way: the plan
reviewed is the plan applied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shepard import images as image_builder
from shepard.commands import Context
from shepard.core import deployer_of, flock_file_of, flock_outputs, write_profile_from_outputs
from shepard.cost import cost_summary
from shepard.deploy import Deployer, default_stages
from shepard.errors import BadInput, ShepardError

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


def _print_mapping(ctx: Context, values: Mapping[str, Any], title: str) -> None:
    rows = []
    for key, value in sorted(values.items()):
        if isinstance(value, Mapping | list):
            text = json.dumps(value, sort_keys=True)
        else:
            text = "" if value is None else str(value)
        rows.append([key, text])
    ctx.console.table(["name", "value"], rows, title=title)


def render(ctx: Context) -> int:
    path = deployer_of(ctx, flock_file_of(ctx, "rendering the flock")).render()
    ctx.console.print(str(path))
    return 0


def plan(ctx: Context) -> int:
    """What an apply would change; ``--out PLAN`` keeps the plan for ``apply FLOCK PLAN``,
    ``--json`` prints it as ``terraform show -json`` does (and nothing else on stdout)."""
    flock_file = flock_file_of(ctx, "planning the flock")
    out = ctx.flag("out")
    as_json = bool(ctx.flag("json"))
    deployer = deployer_of(ctx, flock_file)
    with_cost = deployer.where.kind == "aws"  # an emulator's flock costs nothing
    result = deployer.plan(
        out_file=Path(out).expanduser() if out else None, show_json=as_json or with_cost
    )
    if as_json:
        ctx.console.print(json.dumps(result.shown))
        return 0
    if result.summary.has_changes:
        ctx.console.print(result.summary.listing().rstrip("\n"))
    ctx.console.print(result.summary.describe())
    if with_cost and result.shown is not None:
        ctx.console.print(cost_summary(result.shown, deployer.flock.region))
    if out:
        ctx.console.print(
            f"plan saved to {out}; apply exactly this plan with"
            f" `shepard-tf apply {flock_file} {out}`"
        )
    return 0


def apply(ctx: Context) -> int:
    """Plan, confirm and apply; with a saved plan (``apply FLOCK PLAN``), apply exactly that."""
    flock_file = flock_file_of(ctx, "applying the flock")
    plan_file = ctx.flag("plan_file")
    deployer = deployer_of(ctx, flock_file)
    image_stages = deployer.where.image_stages(deployer.flock, stream=ctx.console.err)
    if image_stages and not plan_file:  # a saved plan carries its own images
        deployer.stages = [*deployer.stages, *image_stages]
    result = deployer.apply(
        auto_approve=bool(ctx.flag("auto_approve")),
        plan_file=Path(plan_file).expanduser() if plan_file else None,
    )
    write_profile_from_outputs(ctx, result.outputs, flock_file, ctx.flag("profile_name"))
    ctx.console.print(f"flock {result.outputs.get('flock_name', '')} applied")
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
    flock_file = flock_file_of(ctx, "destroying the flock")
    deployer_of(ctx, flock_file).destroy(auto_approve=bool(ctx.flag("auto_approve")))
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
    folder = deployment_folder(
        ctx.settings.require("path_to_deployment_folder", "deploying a flock")
    )
    flock_file = folder / "flock.yaml"
    if not flock_file.is_file():
        raise BadInput(
            f"while deploying {folder}: it has no flock.yaml. Add one (see"
            " examples/testing-setup/flock.yaml)."
        )
    deployer = deployer_of(ctx, flock_file)
    auto_approve = bool(ctx.flag("auto_approve"))
    if not ctx.flag("skip_images"):
        image_stages = deployer.where.image_stages(
            deployer.flock, stream=ctx.console.err, code_dir=folder / "code"
        )
        if image_stages is not None:
            deployer.stages = [*deployer.stages, *image_stages]
        else:
            deployer.stages = default_stages(_push_to_ecr(ctx, deployer, folder, auto_approve))
    outputs = deployer.apply(auto_approve=auto_approve).outputs
    write_profile_from_outputs(ctx, outputs, flock_file, ctx.flag("cloudformation_stack_name"))
    ctx.console.print(f"flock {outputs.get('flock_name', '')} deployed")
    return 0


def _push_to_ecr(
    ctx: Context, deployer: Deployer, folder: Path, auto_approve: bool
) -> dict[str, str]:
    """The payload and worker images in the flock's ECR repository (built and pushed unless it
    holds them already); the first deploy applies once before, to create the repository."""
    docker_client = image_builder.docker_client(ctx.env, required=deployer.where.needs_docker)
    outputs = _known_outputs(deployer)
    if not outputs.get("ecr_repository_url"):
        outputs = deployer.apply(auto_approve=auto_approve).outputs
    registry = image_builder.ecr_registry(
        str(outputs["ecr_repository_url"]), ctx.aws.registry_login()
    )
    wanted = [
        image_builder.payload_image(docker_client, folder / "code"),
        image_builder.worker_image(docker_client),
    ]
    progress = image_builder.ImageProgress.for_stream(ctx.console.err, ctx.env)
    return image_builder.publish(docker_client, wanted, registry, progress).images


def _known_outputs(deployer: Deployer) -> dict[str, Any]:
    try:
        return deployer.outputs()
    except ShepardError:
        return {}

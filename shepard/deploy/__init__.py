"""Deploying a flock with Terraform: render, plan, apply, destroy, outputs.

A command loads the flock once (:func:`load_flock`) and hands it to a :class:`Deployer`, which
runs the stages that build the tfvars (:mod:`shepard.deploy.stages`), prepares Terraform
(:class:`~shepard.tf.flock.FlockTerraform`) in the environment of the flock's target
(:mod:`shepard.deploy.targets`: AWS, an emulator, or the local flock's own service) and gives it
to an executor: plan only, apply, apply a saved plan, destroy. Everything takes the environment
as a parameter, so tests run it in-process against an emulator.

The functions below are the same for callers that hold only a path.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from shepard.deploy.deployer import (
    PLAN_FILE,
    TFVARS_FILE,
    Apply,
    ApplyResult,
    ApplySaved,
    Confirm,
    Deployer,
    Destroy,
    PlanOnly,
    PlanResult,
    confirm_on_terminal,
)
from shepard.deploy.flock import (
    OWNER_FILE,
    STATE_DIR_VARIABLE,
    Flock,
    claim_state_dir,
    load_flock,
    state_dir_for,
)
from shepard.deploy.stages import (
    IMAGES_FILE,
    PackageLambdas,
    RememberImages,
    RenderTfvars,
    Stage,
    default_stages,
)
from shepard.deploy.targets import (
    OVERLAY_FILE,
    AwsTarget,
    EmulatorTarget,
    LocalTarget,
    emulator_overlay,
    target_for,
)
from shepard.tf.flock import OUTPUTS_FILE, FlockTerraform, PlanSummary, Timings

__all__ = [
    "IMAGES_FILE",
    "OUTPUTS_FILE",
    "OVERLAY_FILE",
    "OWNER_FILE",
    "PLAN_FILE",
    "STATE_DIR_VARIABLE",
    "TFVARS_FILE",
    "Apply",
    "ApplyResult",
    "ApplySaved",
    "AwsTarget",
    "Confirm",
    "Deployer",
    "Destroy",
    "EmulatorTarget",
    "Flock",
    "FlockTerraform",
    "LocalTarget",
    "PackageLambdas",
    "PlanOnly",
    "PlanResult",
    "PlanSummary",
    "RememberImages",
    "RenderTfvars",
    "Stage",
    "Timings",
    "apply",
    "claim_state_dir",
    "confirm_on_terminal",
    "default_stages",
    "destroy",
    "emulator_overlay",
    "load_flock",
    "outputs",
    "plan",
    "render",
    "state_dir_for",
    "target_for",
]


def _deployer(
    flock_file: Path,
    env: Mapping[str, str],
    *,
    progress: IO[str] | None = None,
    confirm: Confirm | None = None,
    images: Mapping[str, str] | None = None,
    timings: Timings | None = None,
) -> Deployer:
    return Deployer(
        load_flock(Path(flock_file), env),
        env=env,
        stages=default_stages(images),
        stream=sys.stderr if progress is None else progress,
        confirm=confirm or confirm_on_terminal,
        timings=Timings() if timings is None else timings,
    )


def render(flock_file: Path, *, env: Mapping[str, str]) -> Path:
    """Render ``flock_file`` into its state folder; return the tfvars file."""
    return _deployer(flock_file, env).render()


def plan(
    flock_file: Path,
    *,
    env: Mapping[str, str],
    progress: IO[str] | None = None,
    timings: Timings | None = None,
) -> PlanSummary:
    """Render and plan the flock; return what an apply would do (changes nothing)."""
    summary = _deployer(flock_file, env, progress=progress, timings=timings).plan().summary
    if progress is not None:
        progress.write(summary.describe() + "\n")
    return summary


def apply(
    flock_file: Path,
    *,
    env: Mapping[str, str],
    auto_approve: bool = False,
    confirm: Confirm | None = None,
    progress: IO[str] | None = None,
    images: Mapping[str, str] | None = None,
    timings: Timings | None = None,
) -> dict[str, Any]:
    """Deploy the flock; return its outputs (also in ``<state>/outputs.json``).

    ``progress`` is the stream of the live display (default stderr); ``confirm`` is asked before
    anything changes unless ``auto_approve``; ``images`` (``payload``/``worker`` URIs) sets and
    remembers the ``images`` tfvar; ``timings`` collects the seconds of each Terraform command.
    """
    deployer = _deployer(
        flock_file, env, progress=progress, confirm=confirm, images=images, timings=timings
    )
    return deployer.apply(auto_approve=auto_approve).outputs


def destroy(
    flock_file: Path,
    *,
    env: Mapping[str, str],
    auto_approve: bool = False,
    confirm: Confirm | None = None,
    progress: IO[str] | None = None,
    timings: Timings | None = None,
) -> None:
    """Destroy everything the flock created; for ``target: local`` also stop its service."""
    deployer = _deployer(flock_file, env, progress=progress, confirm=confirm, timings=timings)
    deployer.destroy(auto_approve=auto_approve)


def outputs(flock_file: Path, *, env: Mapping[str, str]) -> dict[str, Any]:
    """The flock's Terraform outputs as plain values (``{}`` before the first apply)."""
    return _deployer(flock_file, env).outputs()

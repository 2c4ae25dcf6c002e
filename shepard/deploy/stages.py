"""The stages that build a flock's tfvars, in order, each adding to one mapping.

:class:`RenderTfvars` computes every variable from the flock's config (:mod:`shepard.render`);
:class:`PackageLambdas` builds the Lambda packages and points the tfvars at them when they differ
from the ones kept in ``terraform/flock/lambda/``; :class:`RememberImages` sets the images that
``deploy`` pushed, remembered so that a later plan does not roll them back. The deployer writes
the mapping once, through the template, to ``<state>/flock.auto.tfvars.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shepard import render
from shepard.deploy.flock import Flock
from shepard.package import build_lambda_zips, module_lambda_dir
from shepard.tf.workdir import terraform_source, write_if_changed

IMAGES_FILE = "images.json"


class Stage(Protocol):
    """One step of building the tfvars: reads the flock, adds to ``tfvars``."""

    def run(self, flock: Flock, tfvars: dict[str, Any], env: Mapping[str, str]) -> None: ...


class RenderTfvars:
    """Every variable of ``terraform/flock`` from the flock's config."""

    def run(self, flock: Flock, tfvars: dict[str, Any], env: Mapping[str, str]) -> None:
        assert flock.config is not None
        tfvars.update(render.tfvars(flock.config))


class PackageLambdas:
    """The Lambda packages of this checkout, in ``<state>/lambda/``. The root module keeps its
    own copies in ``lambda/``; the tfvars name these only when they differ (code edited since
    the module's packages were built), so an unchanged checkout deploys exactly those."""

    def run(self, flock: Flock, tfvars: dict[str, Any], env: Mapping[str, str]) -> None:
        built = build_lambda_zips(flock.state_dir / "lambda")
        kept = module_lambda_dir(terraform_source(env))
        lambda_vars = dict(tfvars.get("lambda") or {})
        for name, path in built.items():
            in_module = kept / f"{name}.zip"
            if not in_module.is_file() or in_module.read_bytes() != path.read_bytes():
                lambda_vars[f"{name}_zip"] = str(path)
        tfvars["lambda"] = lambda_vars


@dataclass
class RememberImages:
    """The ``images`` variable: what ``deploy`` pushed now, else what it pushed last
    (``<state>/images.json``), else the module's defaults."""

    pushed: Mapping[str, str] | None = None

    def run(self, flock: Flock, tfvars: dict[str, Any], env: Mapping[str, str]) -> None:
        remembered_file = flock.state_dir / IMAGES_FILE
        remembered: dict[str, str] = {}
        if remembered_file.is_file():
            remembered = json.loads(remembered_file.read_text())
        if self.pushed:
            remembered.update({k: v for k, v in self.pushed.items() if v})
            write_if_changed(
                remembered_file, json.dumps(remembered, indent=2, sort_keys=True) + "\n"
            )
        if remembered:
            tfvars["images"] = {**(tfvars.get("images") or {}), **remembered}


def default_stages(images: Mapping[str, str] | None = None) -> list[Stage]:
    """Render, package the Lambdas, set the images: the stages of every plan and apply."""
    return [RenderTfvars(), PackageLambdas(), RememberImages(images)]


def write_tfvars(path: Path, tfvars: Mapping[str, Any]) -> Path:
    """Write the built tfvars through the template (rewritten only when they change)."""
    write_if_changed(path, render.tfvars_text(tfvars))
    return path

"""The images stage of a local flock: its payload and worker images, as on AWS.

``deploy`` and ``apply`` of a ``target: local`` flock add :class:`LocalImages` to their stages:
it builds the payload image from the code folder and the worker image from the offline base
image (``shepard-base:bookworm``, or ``$SHEPARD_BASE_IMAGE``), tags both by content and pushes
them to the local registry that stands in for ECR (``127.0.0.1:5000``, or
``$SHEPARD_REGISTRY``) through :func:`shepard.images.publish`, the code that pushes to ECR. The
URIs become the ``images`` variable (remembered in ``<state>/images.json``): the job
definition's image is the worker image and its ``SHEPARD_PAYLOAD_IMAGE`` the payload image.

Without a Docker engine (or with ``local.runner: process``) the flock runs its jobs as plain
processes and the stage says so in one line. Without a registry the images are built into the
engine only, and the stage says that too.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from shepard import images
from shepard.deploy.flock import Flock
from shepard.deploy.stages import RememberImages
from shepard.errors import BadInput


def repository_name(flock: Flock) -> str:
    """The flock's repository name, as terraform/flock names it (``ecr.repository_name``,
    else the flock's name with runs of dashes folded)."""
    config = flock.config
    configured = config.ecr.repo_name if config is not None else None
    return configured or re.sub("-+", "-", flock.name).strip("-")


def code_folder(flock: Flock) -> Path | None:
    """The local flock's code folder: ``local.code_dir``, else ``code/`` beside the flock file."""
    from shepard.local.settings import settings_from_config

    if flock.config is None:
        return None
    found = settings_from_config(flock.config).code_dir
    return Path(found) if found else None


@dataclass
class LocalImages:
    """Build and push a local flock's images, then set them as the ``images`` variable.
    ``code_dir`` (``deploy``: the deployment folder's ``code/``) defaults to the flock's own
    code folder. ``published`` holds what the last run did."""

    code_dir: Path | None = None
    stream: IO[str] = field(default_factory=lambda: sys.stderr)
    published: images.Published | None = None

    def run(self, flock: Flock, tfvars: dict[str, Any], env: Mapping[str, str]) -> None:
        progress = images.ImageProgress.for_stream(self.stream, env)
        runner = flock.config.local.runner if flock.config is not None else "auto"
        if runner == "process":
            progress.note("images: local.runner is process, so the local flock builds none")
            return
        client = images.docker_client(env, required=False)
        if client is None:
            progress.note(
                f"images: no Docker engine answers at {images.engine_url(env)}, so none are "
                "built: the local flock runs jobs as processes"
            )
            return
        try:
            self.published = publish_local(flock, client, env, progress, self.code_dir)
        finally:
            client.close()
        RememberImages(self.published.images).run(flock, tfvars, env)


def publish_local(
    flock: Flock,
    client: Any,
    env: Mapping[str, str],
    progress: images.ImageProgress,
    code_dir: Path | None = None,
) -> images.Published:
    """The local flock's payload (when it has a code folder) and worker images, in its
    registry under their content tags."""
    base = env.get(images.BASE_IMAGE_VARIABLE) or images.LOCAL_BASE_IMAGE
    if images.image_id(client, base) is None:
        raise BadInput(
            f"while building the images of local flock {flock.name}: the base image {base} is "
            "not in the Docker engine. Build it with `scripts/engine.sh base-image`, or set "
            f"{images.BASE_IMAGE_VARIABLE} to a local image with python3"
        )
    address = images.registry_address(env)
    reachable = images.registry_answers(address)
    registry = images.local_registry(address, repository_name(flock), reachable=reachable)
    if not reachable:
        progress.note(
            f"images: no registry answers at {address}, so they stay in this Docker engine "
            "(start one with `scripts/engine.sh up`, or set "
            f"{images.REGISTRY_VARIABLE})"
        )
    code = code_dir if code_dir is not None else code_folder(flock)
    wanted: list[images.Image] = []
    if code is not None:
        wanted.append(images.payload_image(client, code, base_image=base))
    else:
        progress.note(f"images: local flock {flock.name} has no code folder: no payload image")
    wanted.append(images.worker_image(client, base_image=base))
    return images.publish(client, wanted, registry, progress)

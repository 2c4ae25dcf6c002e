"""Where a flock is deployed, and everything that differs because of it.

- :class:`AwsTarget`: an AWS account; Terraform runs with the caller's environment.
- :class:`EmulatorTarget`: an AWS flock pointed at an emulator (a loopback ``AWS_ENDPOINT_URL``,
  as the tests do): the same, plus the overlay of what an emulator cannot do.
- :class:`LocalTarget`: ``target: local``: the flock's own service (an emulator, its Lambdas and
  jobs on this machine) is started first, and destroying it is stopping it.

The overlay is the one place where a flock deliberately differs from what ships to AWS: the
intent-named root variables of ``terraform/flock`` (docs/contracts.md), written to
``<state>/local.auto.tfvars.json`` and passed after the flock's own tfvars.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import shepard.local
from shepard.deploy.flock import Flock
from shepard.deploy.images import LocalImages
from shepard.deploy.stages import Stage
from shepard.emulator import MOTO_ACCOUNT_ID, is_loopback_url
from shepard.tf.workdir import write_if_changed

OVERLAY_FILE = "local.auto.tfvars.json"
# moto answers 500 for actions it lacks and the default 25 retries hang; 3 was too few for a
# connection the emulator drops under load (a full apply failed on GetInstanceProfile).
EMULATOR_MAX_RETRIES = 5
DROPPED_CONNECTION = re.compile(r"use of closed network connection|connection reset by peer")
REMOVED_BY_LOCAL_DESTROY = ("terraform.tfstate", "terraform.tfstate.backup", "outputs.json")

Ask = Callable[[str, str], None]  # (question, what was not done) -> raises when declined


def emulator_overlay() -> dict[str, Any]:
    """The root variables an emulator needs (each default is the secure AWS value)."""
    return {
        # moto evaluates a bucket policy without its conditions: the TLS-only Deny would deny
        # every request, over https too (measured: docs/local-flock.md).
        "enforce_tls": False,
        "s3_lifecycle_rules": False,
        "create_nat_gateway": False,
        "enable_event_source_mapping": False,
        # moto's Batch sends no events: the local executor hands them to the events handler
        # in-process, so the rule and its queues (about 50 s of queue waiters) are left out.
        "batch_events_delivery": False,
        "pin_launch_template_version": False,
        # Batch's service-linked role does not exist in an emulator.
        "create_batch_service_role": True,
        # moto keeps neither (each re-plan would show them again).
        "cancel_stuck_jobs": False,
        "compute_environment_update_policy": False,
        # moto cannot delete an EFS file-system policy (500), so a destroy would fail.
        "efs_file_system_policy": False,
        "aws_provider": {
            "max_retries": EMULATOR_MAX_RETRIES,
            # moto's fixed account: a guard against an emulator run reaching real AWS.
            "allowed_account_ids": [MOTO_ACCOUNT_ID],
            "skip_credentials_validation": True,
            "s3_use_path_style": True,
        },
    }


class AwsTarget:
    """A flock in an AWS account."""

    kind = "aws"
    needs_docker = True

    def environment(self, flock: Flock, env: Mapping[str, str]) -> dict[str, str]:
        """The environment Terraform runs with for plan, apply and destroy."""
        return dict(env)

    def outputs_environment(self, flock: Flock, env: Mapping[str, str]) -> dict[str, str]:
        """The environment for reading the outputs (nothing is started for that)."""
        return self.environment(flock, env)

    def overlay(self, run_env: Mapping[str, str]) -> dict[str, Any] | None:
        """Root variables set over the flock's own tfvars, or None."""
        return None

    def write_overlay(self, flock: Flock, run_env: Mapping[str, str]) -> Path | None:
        """Write (or remove) ``<state>/local.auto.tfvars.json``; return it when there is one."""
        path = flock.state_dir / OVERLAY_FILE
        values = self.overlay(run_env)
        if values is None:
            path.unlink(missing_ok=True)
            return None
        write_if_changed(path, json.dumps(values, indent=2, sort_keys=True) + "\n")
        return path

    def destroy_shortcut(self, flock: Flock, ask: Ask, *, stream: IO[str]) -> float | None:
        """Destroy without Terraform when that is the same thing; seconds taken, or None."""
        return None

    def image_stages(
        self, flock: Flock, *, stream: IO[str], code_dir: Path | None = None
    ) -> list[Stage] | None:
        """Stages that build and publish the flock's images before Terraform runs; None when
        they go to ECR, which exists only after a first apply (``deploy`` pushes them)."""
        return None

    def running_service(self, flock: Flock, *, doing: str) -> Any | None:
        """The service that stands in for AWS on this machine (its endpoints), or None."""
        return None

    def after_destroy(self, flock: Flock) -> None:
        """What follows a Terraform destroy."""

    def dropped_connection(self, message: str) -> bool:
        """Whether a failed apply failed only on a connection the other side dropped (worth a
        second plan and apply: Terraform converges)."""
        return False


class EmulatorTarget(AwsTarget):
    """An AWS flock whose Terraform talks to an emulator (a loopback ``AWS_ENDPOINT_URL``)."""

    kind = "emulator"

    def overlay(self, run_env: Mapping[str, str]) -> dict[str, Any] | None:
        return emulator_overlay()

    def dropped_connection(self, message: str) -> bool:
        # moto's server, busy on 2 cores, drops a kept-alive connection now and then; the
        # provider's retries give up on it (measured: GetInstanceProfile, 1 apply in ~30).
        return DROPPED_CONNECTION.search(message) is not None


class LocalTarget(EmulatorTarget):
    """``target: local``: the flock's service on this machine is its AWS."""

    kind = "local"
    needs_docker = False

    def environment(self, flock: Flock, env: Mapping[str, str]) -> dict[str, str]:
        assert flock.config is not None
        running = shepard.local.ensure_running(flock.config, flock.state_dir)
        return {**env, **running.env}

    def outputs_environment(self, flock: Flock, env: Mapping[str, str]) -> dict[str, str]:
        if flock.backend.kind == "local":
            return dict(env)  # the state is a local file: reading it needs no emulator
        return self.environment(flock, env)

    def destroy_shortcut(self, flock: Flock, ask: Ask, *, stream: IO[str]) -> float | None:
        """A local flock lives in its service's in-memory emulator: stopping the service
        destroys every resource at once, so a Terraform destroy (about 90 s against moto) would
        only delete what is about to vanish. The state that described those resources is
        removed with them, so the next apply starts from nothing, as after a real destroy."""
        if flock.backend.kind != "local":
            return None
        ask(
            f"Destroy local flock {flock.name}: stop its service and forget its buckets, job "
            "table and results?",
            "Nothing was destroyed",
        )
        started = time.monotonic()
        was_running = shepard.local.stop(flock.state_dir)
        for name in REMOVED_BY_LOCAL_DESTROY:
            (flock.state_dir / name).unlink(missing_ok=True)
        stream.write(
            f"Destroyed local flock {flock.name}: "
            + ("its service is stopped" if was_running else "its service was not running")
            + "; every resource lived in its emulator, and its Terraform state is removed.\n"
        )
        return time.monotonic() - started

    def after_destroy(self, flock: Flock) -> None:
        shepard.local.stop(flock.state_dir)

    def image_stages(
        self, flock: Flock, *, stream: IO[str], code_dir: Path | None = None
    ) -> list[Stage] | None:
        """Built, tagged by content and pushed to the local registry standing in for ECR."""
        return [LocalImages(code_dir=code_dir, stream=stream)]

    def running_service(self, flock: Flock, *, doing: str) -> Any | None:
        return shepard.local.require_running(flock.state_dir, doing=doing)


def target_for(flock: Flock, env: Mapping[str, str]) -> AwsTarget:
    """The target of ``flock``: its ``target`` setting, and for ``aws`` the endpoint in ``env``."""
    if flock.target == "local":
        return LocalTarget()
    if is_loopback_url(env.get("AWS_ENDPOINT_URL")):
        return EmulatorTarget()
    return AwsTarget()

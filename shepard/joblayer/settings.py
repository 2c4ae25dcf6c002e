"""The flock settings the Lambdas read from their environment (docs/contracts.md, section 3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(Exception):
    """The Lambda environment lacks a setting or holds a bad one."""


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise SettingsError(
            f"while reading the flock settings: environment variable {name} is not set. "
            "Deploy the flock again so the function gets its environment."
        )
    return value


def _number(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(
            f"while reading the flock settings: {name}={raw!r} is not a whole number. "
            "Set it to a number of days or seconds."
        ) from None
    if value < 0:
        raise SettingsError(
            f"while reading the flock settings: {name}={raw!r} is negative. Set it to 0 or more."
        )
    return value


@dataclass(frozen=True)
class FlockSettings:
    flock: str
    table_name: str
    job_queue: str
    job_definition: str
    inputs_bucket: str
    outputs_bucket: str
    errors_bucket: str
    quick_deploy_bucket: str
    days_to_keep_failed_launch_indexes: int = 2
    days_to_keep_finished_jobs: int = 30
    job_timeout_seconds: int = 86400

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FlockSettings:
        return cls(
            flock=_required(env, "SHEPARD_FLOCK"),
            table_name=_required(env, "SHEPARD_TABLE_NAME"),
            job_queue=_required(env, "SHEPARD_JOB_QUEUE"),
            job_definition=_required(env, "SHEPARD_JOB_DEFINITION"),
            inputs_bucket=_required(env, "SHEPARD_INPUTS_BUCKET"),
            outputs_bucket=_required(env, "SHEPARD_OUTPUTS_BUCKET"),
            errors_bucket=_required(env, "SHEPARD_ERRORS_BUCKET"),
            quick_deploy_bucket=_required(env, "SHEPARD_QUICK_DEPLOY_BUCKET"),
            days_to_keep_failed_launch_indexes=_number(
                env, "SHEPARD_DAYS_TO_KEEP_FAILED_LAUNCH_INDEXES", 2
            ),
            days_to_keep_finished_jobs=_number(env, "SHEPARD_DAYS_TO_KEEP_FINISHED_JOBS", 30),
            job_timeout_seconds=_number(env, "SHEPARD_JOB_TIMEOUT_SECONDS", 86400),
        )

    def to_env(self) -> dict[str, str]:
        """The environment that ``from_env`` reads back (tests and the local flock)."""
        return {
            "SHEPARD_FLOCK": self.flock,
            "SHEPARD_TABLE_NAME": self.table_name,
            "SHEPARD_JOB_QUEUE": self.job_queue,
            "SHEPARD_JOB_DEFINITION": self.job_definition,
            "SHEPARD_INPUTS_BUCKET": self.inputs_bucket,
            "SHEPARD_OUTPUTS_BUCKET": self.outputs_bucket,
            "SHEPARD_ERRORS_BUCKET": self.errors_bucket,
            "SHEPARD_QUICK_DEPLOY_BUCKET": self.quick_deploy_bucket,
            "SHEPARD_DAYS_TO_KEEP_FAILED_LAUNCH_INDEXES": str(
                self.days_to_keep_failed_launch_indexes
            ),
            "SHEPARD_DAYS_TO_KEEP_FINISHED_JOBS": str(self.days_to_keep_finished_jobs),
            "SHEPARD_JOB_TIMEOUT_SECONDS": str(self.job_timeout_seconds),
        }

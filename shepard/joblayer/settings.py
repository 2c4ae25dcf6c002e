"""The flock settings the Lambdas read from their environment (docs/contracts.md, section 3)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

from shepard.joblayer.contract import LAMBDA_ENVIRONMENT_FIELDS


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
    job_resources: str = ""  # JSON for the fit check (shepard/joblayer/fit.py); "" checks nothing
    # shepard/joblayer/retry.py (RetryPolicy.from_settings): empty/0 when the flock has none.
    on_demand_job_queue: str = ""
    spot_attempts: int = 0
    oom_factor: int = 0
    oom_max_memory_mib: int = 0
    job_memory_mib: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FlockSettings:
        values: dict[str, Any] = {}
        for name, variable in LAMBDA_ENVIRONMENT_FIELDS.items():
            default = _DEFAULTS.get(name)
            if name in _OPTIONAL_TEXT:
                values[name] = env.get(variable, "")
            elif default is None:
                values[name] = _required(env, variable)
            else:
                values[name] = _number(env, variable, default)
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The environment that ``from_env`` reads back (tests and the local flock)."""
        return {
            variable: str(getattr(self, name))
            for name, variable in LAMBDA_ENVIRONMENT_FIELDS.items()
        }


# The numbers the Lambdas' environment may leave out (the job definition always sets them).
_DEFAULTS: dict[str, int] = {
    field.name: int(field.default)
    for field in fields(FlockSettings)
    if isinstance(field.default, int)
}


# The text settings the Lambdas' environment may leave out (empty: the feature is off).
_OPTIONAL_TEXT: frozenset[str] = frozenset(
    field.name for field in fields(FlockSettings) if field.default == ""
)

T = TypeVar("T")


class PerEnvironment(Generic[T]):
    """What a Lambda container keeps between invocations, made from the flock settings on first
    use and again whenever the environment (or the endpoint) changes."""

    def __init__(self, make: Callable[[FlockSettings], T]) -> None:
        self._make = make
        self._made: tuple[tuple[FlockSettings, str], T] | None = None

    def get(self, env: Mapping[str, str] = os.environ) -> T:
        settings = FlockSettings.from_env(env)
        key = (settings, env.get("AWS_ENDPOINT_URL", ""))
        if self._made is None or self._made[0] != key:
            self._made = (key, self._make(settings))
        return self._made[1]

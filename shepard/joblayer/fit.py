"""The fit check at submit time: refuse a job that no compute environment of the flock can place.

A job asks the job definition's vCPUs, memory and GPUs (flock.yaml ``batch.desired_cpu``,
``batch.desired_ram``, ``batch.gpus``; SubmitJob sends no resource overrides today), or the
record's VCPUS / MEMORY_MIB / GPUS where a resubmission raised them. The Lambdas learn the flock's
compute environments and the job's resources from one variable of their environment,
``SHEPARD_JOB_RESOURCES`` (docs/contracts.md section 3), a JSON object that terraform/flock
writes from the same values it gives the job definition and the compute environments:

    {"vcpus": 2, "memory_mib": 7000, "gpus": 0,
     "compute_environments": {"default": ["optimal"], "gpu": ["g5"]}}

No AWS call is needed to accept a job. Without the variable (a flock deployed before it existed)
nothing is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shepard.joblayer.instances import Fit, fits


class ResourcesError(ValueError):
    """SHEPARD_JOB_RESOURCES is not the JSON object described above."""


@dataclass(frozen=True)
class FlockResources:
    """What every job asks, and the instance types each compute environment may launch."""

    vcpus: int
    memory_mib: int
    gpus: int = 0
    compute_environments: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> FlockResources | None:
        """Read the variable's value; None when it is empty."""
        if not text:
            return None
        try:
            data: Any = json.loads(text)
            environments = {
                str(name): tuple(str(t) for t in types)
                for name, types in dict(data.get("compute_environments") or {}).items()
            }
            return cls(
                vcpus=int(data["vcpus"]),
                memory_mib=int(data["memory_mib"]),
                gpus=int(data.get("gpus") or 0),
                compute_environments=environments,
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ResourcesError(
                f"while reading SHEPARD_JOB_RESOURCES: {exc!s} in {text[:200]!r}. Deploy the "
                "flock again so the function gets its environment."
            ) from None

    def to_json(self) -> str:
        return json.dumps(
            {
                "vcpus": self.vcpus,
                "memory_mib": self.memory_mib,
                "gpus": self.gpus,
                "compute_environments": {k: list(v) for k, v in self.compute_environments.items()},
            },
            sort_keys=True,
        )

    def fit_by_environment(
        self, *, vcpus: int | None = None, memory_mib: int | None = None, gpus: int | None = None
    ) -> dict[str, Fit]:
        """Each compute environment's fit for a job asking these (default: the flock's)."""
        return {
            name: fits(
                vcpus if vcpus is not None else self.vcpus,
                memory_mib if memory_mib is not None else self.memory_mib,
                gpus if gpus is not None else self.gpus,
                types,
            )
            for name, types in self.compute_environments.items()
        }

    def refusal(
        self, *, vcpus: int | None = None, memory_mib: int | None = None, gpus: int | None = None
    ) -> str | None:
        """Why no compute environment can ever place the job, with the numbers; None if one can
        (or might: an instance type not in the table counts as maybe)."""
        found = self.fit_by_environment(vcpus=vcpus, memory_mib=memory_mib, gpus=gpus)
        if not found or any(f.fits for f in found.values()):
            return None
        return unplaceable_reason(found)


def unplaceable_reason(found: Mapping[str, Fit]) -> str:
    """The sentence a refused job's record and the user get."""
    first = next(iter(found.values()))
    asks = f"{first.vcpus} vCPUs, {first.memory_mib} MiB of memory"
    if first.gpus:
        asks += f", {first.gpus} GPUs"
    parts = [f"compute environment {name}: {fit.reason}" for name, fit in found.items()]
    return (
        f"no compute environment of the flock can ever place this job ({asks}): "
        + "; ".join(parts)
        + ". Lower batch.desired_ram / desired_cpu / gpus in flock.yaml, or add a larger "
        "instance type to a compute environment, and apply the flock"
    )

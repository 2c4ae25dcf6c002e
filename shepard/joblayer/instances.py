"""The EC2 instance types flocks use: vCPUs, memory, GPUs, and the memory jobs can have.

A compute environment names instance types (``m5.2xlarge``), families (``m5``) or Batch's keywords
(``optimal``, ``default_x86_64``, ``default_arm64``); :func:`expand` turns each into the sizes
Batch may launch for it, and :func:`fits` says whether a job's vCPUs, memory and GPUs fit one of
them, and when not, by how much they fall short. Types not in the table (an exotic family) are
reported as unknown, and a check that meets one never refuses a job: an unknown type might fit.

The table covers the families ``optimal`` and the ``default_*`` keywords resolve to (c/m/r of
the 4th to 7th generations, Graviton c/m/r 6g and c7g) and the GPU families flocks use (g4dn,
g5, p3). Sizes and memory: the EC2 instance type pages (metal sizes left out: Batch's managed
environments launch virtualised sizes for these families).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# AWS Batch user guide, "Compute resource memory management"
# (https://docs.aws.amazon.com/batch/latest/userguide/memory-management.html): the ECS agent
# registers an instance with the memory the OS reports, which is less than the installed memory
# (platform overhead and the kernel: the guide's m4.large has 8192 MiB installed and reports
# 7985 MiB, 97.47%), and the ECS-optimized AMI Batch uses reserves another 32 MiB
# (ECS_RESERVED_MEMORY, "Reserve system memory") for the agent and system processes. A job
# asking more than what is left is never placed on that type.
OS_VISIBLE_FRACTION = 7985 / 8192
ECS_RESERVED_MEMORY_MIB = 32

GIB = 1024


@dataclass(frozen=True)
class InstanceType:
    name: str  # "m5.2xlarge"
    vcpus: int
    memory_mib: int  # installed memory
    gpus: int
    family: str  # "m5"

    @property
    def usable_memory_mib(self) -> int:
        return usable_memory_mib(self.name)


def _ladder(
    family: str, sizes: Iterable[tuple[str, int]], gib_per_vcpu: float, gpus: int = 0
) -> dict[str, InstanceType]:
    return {
        f"{family}.{size}": InstanceType(
            f"{family}.{size}", vcpus, int(vcpus * gib_per_vcpu * GIB), gpus, family
        )
        for size, vcpus in sizes
    }


def _listed(family: str, rows: Iterable[tuple[str, int, float, int]]) -> dict[str, InstanceType]:
    return {
        f"{family}.{size}": InstanceType(f"{family}.{size}", vcpus, int(gib * GIB), gpus, family)
        for size, vcpus, gib, gpus in rows
    }


_S = [("large", 2), ("xlarge", 4), ("2xlarge", 8), ("4xlarge", 16)]
_GEN5 = [*_S, ("8xlarge", 32), ("12xlarge", 48), ("16xlarge", 64), ("24xlarge", 96)]
_GEN6I = [*_GEN5, ("32xlarge", 128)]
_GEN7I = [*_GEN5, ("48xlarge", 192)]
_GRAVITON = [("medium", 1), *_GEN5[:-1]]  # up to 16xlarge

_TABLE: dict[str, InstanceType] = {
    # 4th generation (optimal before November 2025)
    **_listed(
        "c4",
        [
            ("large", 2, 3.75, 0),
            ("xlarge", 4, 7.5, 0),
            ("2xlarge", 8, 15, 0),
            ("4xlarge", 16, 30, 0),
            ("8xlarge", 36, 60, 0),
        ],
    ),
    **_ladder("m4", [*_S, ("10xlarge", 40), ("16xlarge", 64)], 4),
    **_ladder("r4", [*_S, ("8xlarge", 32), ("16xlarge", 64)], 7.625),
    # 5th generation
    **_ladder(
        "c5",
        [*_S, ("9xlarge", 36), ("12xlarge", 48), ("18xlarge", 72), ("24xlarge", 96)],
        2,
    ),
    **_ladder("m5", _GEN5, 4),
    **_ladder("r5", _GEN5, 8),
    # 6th and 7th generation Intel (optimal and default_x86_64 from November 2025)
    **_ladder("c6i", _GEN6I, 2),
    **_ladder("m6i", _GEN6I, 4),
    **_ladder("r6i", _GEN6I, 8),
    **_ladder("c7i", _GEN7I, 2),
    **_ladder("m7i", _GEN7I, 4),
    **_ladder("r7i", _GEN7I, 8),
    # Graviton (default_arm64)
    **_ladder("c6g", _GRAVITON, 2),
    **_ladder("m6g", _GRAVITON, 4),
    **_ladder("r6g", _GRAVITON, 8),
    **_ladder("c7g", _GRAVITON, 2),
    # GPU
    **_listed(
        "g4dn",
        [
            ("xlarge", 4, 16, 1),
            ("2xlarge", 8, 32, 1),
            ("4xlarge", 16, 64, 1),
            ("8xlarge", 32, 128, 1),
            ("12xlarge", 48, 192, 4),
            ("16xlarge", 64, 256, 1),
        ],
    ),
    **_listed(
        "g5",
        [
            ("xlarge", 4, 16, 1),
            ("2xlarge", 8, 32, 1),
            ("4xlarge", 16, 64, 1),
            ("8xlarge", 32, 128, 1),
            ("12xlarge", 48, 192, 4),
            ("16xlarge", 64, 256, 1),
            ("24xlarge", 96, 384, 4),
            ("48xlarge", 192, 768, 8),
        ],
    ),
    **_listed("p3", [("2xlarge", 8, 61, 1), ("8xlarge", 32, 244, 4), ("16xlarge", 64, 488, 8)]),
}

INSTANCE_TYPES: Mapping[str, InstanceType] = MappingProxyType(_TABLE)

# What Batch's keywords stand for (the ComputeResource.instanceTypes reference): "optimal" was
# c4/m4/r4/c5/m5/r5 and from November 2025 follows default_x86_64; both sets are kept, so a job
# that fits either is never refused.
KEYWORD_FAMILIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "optimal": ("c4", "m4", "r4", "c5", "m5", "r5", "c6i", "m6i", "r6i", "c7i"),
        "default_x86_64": ("c6i", "m6i", "r6i", "c7i"),
        "default_arm64": ("c6g", "m6g", "r6g", "c7g"),
    }
)


def usable_memory_mib(instance_type: str) -> int:
    """MiB of an instance type's memory that jobs can ask for (after the OS and the ECS agent).

    Raises KeyError for a type not in :data:`INSTANCE_TYPES`.
    """
    installed = INSTANCE_TYPES[instance_type].memory_mib
    return int(installed * OS_VISIBLE_FRACTION) - ECS_RESERVED_MEMORY_MIB


def family_of(name: str) -> str:
    return name.split(".", 1)[0]


def expand(names: Iterable[str]) -> tuple[list[InstanceType], list[str]]:
    """The instance types a compute environment's ``instanceTypes`` allow, and the names of them
    not in the table (unknown: neither fitting nor too small)."""
    known: dict[str, InstanceType] = {}
    unknown: list[str] = []
    for name in names:
        families: tuple[str, ...]
        if name in KEYWORD_FAMILIES:
            families = KEYWORD_FAMILIES[name]
        elif "." in name:
            if name in INSTANCE_TYPES:
                known[name] = INSTANCE_TYPES[name]
            else:
                unknown.append(name)
            continue
        else:
            families = (name,)
        for family in families:
            members = [t for t in INSTANCE_TYPES.values() if t.family == family]
            if not members:
                unknown.append(family)
            known.update((t.name, t) for t in members)
    return list(known.values()), unknown


@dataclass(frozen=True)
class Fit:
    """Whether a job's request fits one of some instance types, and if not, how far off."""

    fits: bool  # False only when every type is known and none is large enough
    vcpus: int
    memory_mib: int
    gpus: int
    fitting: tuple[str, ...] = ()  # the types that fit, smallest first
    unknown: tuple[str, ...] = ()  # names not in the table (treated as maybe fitting)
    # The largest of each resource among the types (usable memory for memory), and the type
    # that has it; set when some types are known.
    most_vcpus: tuple[str, int] | None = None
    most_memory_mib: tuple[str, int] | None = None
    most_gpus: tuple[str, int] | None = None
    shortfalls: tuple[str, ...] = field(default=())  # plain sentences, one per short resource

    @property
    def reason(self) -> str | None:
        """Why it can never be placed (None when it fits or might)."""
        if self.fits:
            return None
        return "; ".join(self.shortfalls) or (
            f"no single instance type has {self.vcpus} vCPUs, {self.memory_mib} MiB and "
            f"{self.gpus} GPUs at once"
        )


def fits(vcpus: int, memory_mib: int, gpus: int, instance_types: Iterable[str]) -> Fit:
    """Does a job asking ``vcpus``, ``memory_mib`` (MiB) and ``gpus`` fit one of ``instance_types``
    (types, families or keywords, as a compute environment lists them)?"""
    known, unknown = expand(instance_types)
    fitting = sorted(
        (
            t
            for t in known
            if t.vcpus >= vcpus and t.usable_memory_mib >= memory_mib and t.gpus >= gpus
        ),
        key=lambda t: (t.memory_mib, t.vcpus, t.gpus),
    )
    if not known:
        return Fit(True, vcpus, memory_mib, gpus, unknown=tuple(unknown))
    most_v = max(known, key=lambda t: t.vcpus)
    most_m = max(known, key=lambda t: t.usable_memory_mib)
    most_g = max(known, key=lambda t: t.gpus)
    shortfalls: list[str] = []
    if vcpus > most_v.vcpus:
        shortfalls.append(
            f"it asks {vcpus} vCPUs and the largest instance type, {most_v.name}, has "
            f"{most_v.vcpus} ({vcpus - most_v.vcpus} short)"
        )
    if memory_mib > most_m.usable_memory_mib:
        shortfalls.append(
            f"it asks {memory_mib} MiB of memory and the largest instance type, {most_m.name}, "
            f"leaves {most_m.usable_memory_mib} MiB to jobs "
            f"({memory_mib - most_m.usable_memory_mib} MiB short)"
        )
    if gpus > most_g.gpus:
        shortfalls.append(
            f"it asks {gpus} GPUs and the instance type with the most, {most_g.name}, has "
            f"{most_g.gpus} ({gpus - most_g.gpus} short)"
            if most_g.gpus
            else f"it asks {gpus} GPUs and none of the instance types has a GPU"
        )
    return Fit(
        fits=bool(fitting) or bool(unknown),
        vcpus=vcpus,
        memory_mib=memory_mib,
        gpus=gpus,
        fitting=tuple(t.name for t in fitting),
        unknown=tuple(unknown),
        most_vcpus=(most_v.name, most_v.vcpus),
        most_memory_mib=(most_m.name, most_m.usable_memory_mib),
        most_gpus=(most_g.name, most_g.gpus),
        shortfalls=tuple(shortfalls),
    )

"""What the flock validator knows about EC2 instance types: families, sizes, memory.

AWS Batch accepts an instance family (``m5``), a size (``c5.xlarge``) or ``optimal``. The family
list is the set of families AWS Batch can launch today (current and still-offered previous
generations); a typo such as ``c5x.large`` is caught here, before Terraform and AWS say something
less readable. Memory is known for the families whose size ladder follows a fixed GiB-per-vCPU
ratio, plus a few GPU sizes; for anything else the memory check is simply skipped.
"""

from __future__ import annotations

import difflib
import re

# Keywords AWS Batch accepts in place of an instance type.
BATCH_KEYWORDS: frozenset[str] = frozenset({"optimal", "default_x86_64", "default_arm64"})

# Instance families that AWS Batch can launch (EC2 "current generation" plus the previous
# generations still offered). Keep sorted within each line; add new families as AWS ships them.
INSTANCE_FAMILIES: frozenset[str] = frozenset(
    {
        "a1",
        "c1",
        "c3",
        "c4",
        "c5",
        "c5a",
        "c5ad",
        "c5d",
        "c5n",
        "c6a",
        "c6g",
        "c6gd",
        "c6gn",
        "c6i",
        "c6id",
        "c6in",
        "c7a",
        "c7g",
        "c7gd",
        "c7gn",
        "c7i",
        "c7i-flex",
        "c8g",
        "c8gd",
        "c8gn",
        "d2",
        "d3",
        "d3en",
        "dl1",
        "dl2q",
        "f1",
        "f2",
        "g3",
        "g3s",
        "g4ad",
        "g4dn",
        "g5",
        "g5g",
        "g6",
        "g6e",
        "g6f",
        "gr6",
        "gr6f",
        "h1",
        "hpc6a",
        "hpc6id",
        "hpc7a",
        "hpc7g",
        "i2",
        "i3",
        "i3en",
        "i4g",
        "i4i",
        "i7i",
        "i7ie",
        "i8g",
        "im4gn",
        "inf1",
        "inf2",
        "is4gen",
        "m1",
        "m2",
        "m3",
        "m4",
        "m5",
        "m5a",
        "m5ad",
        "m5d",
        "m5dn",
        "m5n",
        "m5zn",
        "m6a",
        "m6g",
        "m6gd",
        "m6i",
        "m6id",
        "m6idn",
        "m6in",
        "m7a",
        "m7g",
        "m7gd",
        "m7i",
        "m7i-flex",
        "m8g",
        "m8gd",
        "p2",
        "p3",
        "p3dn",
        "p4d",
        "p4de",
        "p5",
        "p5e",
        "p5en",
        "p6-b200",
        "r3",
        "r4",
        "r5",
        "r5a",
        "r5ad",
        "r5b",
        "r5d",
        "r5dn",
        "r5n",
        "r6a",
        "r6g",
        "r6gd",
        "r6i",
        "r6id",
        "r6idn",
        "r6in",
        "r7a",
        "r7g",
        "r7gd",
        "r7i",
        "r7iz",
        "r8g",
        "r8gd",
        "t1",
        "t2",
        "t3",
        "t3a",
        "t4g",
        "trn1",
        "trn1n",
        "trn2",
        "u-3tb1",
        "u-6tb1",
        "u-9tb1",
        "u-12tb1",
        "u-18tb1",
        "u-24tb1",
        "u7i-12tb",
        "vt1",
        "x1",
        "x1e",
        "x2gd",
        "x2idn",
        "x2iedn",
        "x2iezn",
        "x8g",
        "z1d",
    }
)

# Families whose instances carry NVIDIA GPUs (they need the ECS_AL2_NVIDIA image type).
GPU_FAMILIES: frozenset[str] = frozenset(
    {"g3", "g3s", "g4dn", "g5", "g5g", "g6", "g6e", "g6f", "gr6", "gr6f", "p2", "p3", "p3dn"}
    | {"p4d", "p4de", "p5", "p5e", "p5en", "p6-b200"}
)

_SIZE = re.compile(r"^(nano|micro|small|medium|large|xlarge|[1-9][0-9]*xlarge|metal(-[0-9]+xl)?)$")

# vCPUs of each size name for the regular ladders.
_SIZE_VCPUS: dict[str, int] = {
    "medium": 1,
    "large": 2,
    "xlarge": 4,
    **{f"{n}xlarge": 4 * n for n in (2, 3, 4, 6, 8, 9, 12, 16, 18, 24, 32, 48)},
}

# GiB of memory per vCPU for families whose every size follows the ratio.
_GIB_PER_VCPU: dict[str, int] = {
    **dict.fromkeys(
        ("c5", "c5a", "c5ad", "c5d", "c6a", "c6g", "c6gd", "c6i", "c6id", "c7a", "c7g", "c7i"),
        2,
    ),
    **dict.fromkeys(
        ("m5", "m5a", "m5ad", "m5d", "m5n", "m6a", "m6g", "m6gd", "m6i", "m6id", "m7a", "m7g"),
        4,
    ),
    "m7i": 4,
    **dict.fromkeys(
        ("r5", "r5a", "r5ad", "r5b", "r5d", "r5n", "r6a", "r6g", "r6gd", "r6i", "r6id", "r7a"),
        8,
    ),
    "r7g": 8,
    "r7i": 8,
}

# Sizes that do not follow a ratio but are common in Batch flocks (GiB).
_SIZE_GIB: dict[str, int] = {
    "g4dn.xlarge": 16,
    "g4dn.2xlarge": 32,
    "g4dn.4xlarge": 64,
    "g4dn.8xlarge": 128,
    "g4dn.12xlarge": 192,
    "g4dn.16xlarge": 256,
    "g5.xlarge": 16,
    "g5.2xlarge": 32,
    "g5.4xlarge": 64,
    "g5.8xlarge": 128,
    "g5.12xlarge": 192,
    "g5.16xlarge": 256,
    "g5.24xlarge": 384,
    "g5.48xlarge": 768,
    "p3.2xlarge": 61,
    "p3.8xlarge": 244,
    "p3.16xlarge": 488,
    "c5n.large": 5,
    "c5n.xlarge": 10,
    "c5n.2xlarge": 21,
    "c5n.4xlarge": 42,
    "c5n.9xlarge": 96,
    "c5n.18xlarge": 192,
    "t3.medium": 4,
    "t3.large": 8,
    "t3.xlarge": 16,
    "t3.2xlarge": 32,
}


def family_of(instance_type: str) -> str:
    """``c5.xlarge`` -> ``c5``; ``m5`` -> ``m5``."""
    return instance_type.split(".", 1)[0]


def check_instance_type(instance_type: str) -> str | None:
    """Return why ``instance_type`` is not something AWS Batch accepts, or None when it is."""
    if instance_type in BATCH_KEYWORDS:
        return None
    family, dot, size = instance_type.partition(".")
    if family not in INSTANCE_FAMILIES:
        hint = suggest(family, INSTANCE_FAMILIES | BATCH_KEYWORDS)
        did_you_mean = f"; did you mean {hint}?" if hint else ""
        return f"unknown instance family {family!r}{did_you_mean}"
    if dot and not _SIZE.match(size):
        return (
            f"unknown instance size {size!r} in {instance_type!r} (sizes look like large, 2xlarge)"
        )
    return None


def memory_mib(instance_type: str) -> int | None:
    """Memory of one instance size in MiB, or None when unknown (families, odd sizes)."""
    if instance_type in _SIZE_GIB:
        return _SIZE_GIB[instance_type] * 1024
    family, _, size = instance_type.partition(".")
    if family in _GIB_PER_VCPU and size in _SIZE_VCPUS:
        return _GIB_PER_VCPU[family] * _SIZE_VCPUS[size] * 1024
    return None


def is_gpu(instance_type: str) -> bool:
    return family_of(instance_type) in GPU_FAMILIES


def suggest(word: str, choices: frozenset[str] | set[str] | list[str]) -> str | None:
    """The closest of ``choices`` to ``word`` (for "did you mean"), or None."""
    matches = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None

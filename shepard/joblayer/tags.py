"""The TAG rule: which TAGs a job may have, and what a TAG becomes in an output's name.

One rule for every part, so that what the worker names a result is what ``retrieve --tag``
looks for: the job layer refuses a TAG with :func:`check_tag` (the job is recorded rejected with
the reason), the worker names outputs with :func:`tag_in_name` (through
``records.result_zip_name``), and ``retrieve --tag TAG`` lists ``tag_in_name(TAG) + "_result@"``.

An ordinary TAG (letters, digits, ``.``, ``_``, ``-``; at most 128 characters; not starting with
a dot) is used as it is, so the seed's names (``test_file_result@<UUID>_...``) do not change.
Anything else is made safe the same way everywhere: each run of other characters (a space,
``ü``, ``;``) becomes one ``_`` and leading dots go, so ``"my run ü"`` names
``my_run__result@...`` and ``retrieve --tag "my run ü"`` finds it.
"""

from __future__ import annotations

import re

MAX_TAG_LENGTH = 128
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def tag_in_name(tag: str) -> str:
    """What ``tag`` becomes in an output's name (the same for the worker and ``retrieve``).

    Idempotent: a name made from a TAG is its own name. Truncated to ``MAX_TAG_LENGTH``, which
    only matters for a TAG that did not come through :func:`check_tag`.
    """
    return _UNSAFE.sub("_", tag).lstrip(".")[:MAX_TAG_LENGTH]


def check_tag(tag: str) -> str | None:
    """Why a job may not have this TAG, or None when it may."""
    if not tag:
        return "it is empty; give a TAG or leave it out"
    if len(tag) > MAX_TAG_LENGTH:
        return (
            f"it is {len(tag)} characters long; a TAG prefixes output file names and may be at"
            f" most {MAX_TAG_LENGTH}"
        )
    if "/" in tag or "\\" in tag or _CONTROL.search(tag):
        return (
            "it prefixes output file names, so it may not contain a slash, a backslash or a"
            " control character"
        )
    if not tag_in_name(tag):
        return "it is only dots, which an output name cannot start with; give a TAG with a letter"
    return None

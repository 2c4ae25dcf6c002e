"""A job's variables: parse and validate what the user sends (inputs.json or an API payload).

The rules (docs/decisions/0004-job-records.md):

- the request is one JSON object whose names are valid environment variable names
  (``^[A-Za-z_][A-Za-z0-9_]*$``); the seed's reserved names are refused in any letter case;
- values become strings: a string as it is, a number or a boolean as its JSON text (``3``,
  ``2.5``, ``true``), an object or a list as compact JSON text; ``null`` is refused (it would be
  ambiguous between "unset" and "empty": send ``""``); a value may not contain a NUL character,
  which no environment can hold;
- ``TAG`` and ``QUICK_DEPLOY_DIRECTORY`` are found in any letter case; two spellings of the same
  one are refused, and their values must be usable as a file name prefix / bucket folder;
- the whole request must fit Batch's 30 KiB SubmitJob limit, so that it can always be handed on as
  an environment.

Every refusal is a :class:`JobRejected` whose ``reason`` names the variable and the cause.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from shepard.joblayer.records import QUICK_DEPLOY_VARIABLE, RESERVED_VARIABLES, TAG_VARIABLE
from shepard.joblayer.tags import MAX_TAG_LENGTH, check_tag

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# AWS Batch refuses a SubmitJob request larger than 30 KiB.
BATCH_SUBMIT_LIMIT = 30 * 1024
__all__ = ["MAX_TAG_LENGTH"]  # the TAG rule lives in tags.py; the name stays importable here
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class JobRejected(Exception):
    """A job request that can never run; ``reason`` says why, fit to show the user as it is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _value_text(name: str, value: object) -> str:
    if isinstance(value, str):
        text = value
    elif value is None:
        raise JobRejected(
            f'variable "{name}" is null; give it a string value ("" for an empty value) '
            "or leave it out"
        )
    elif isinstance(value, bool | int | float | list | dict):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    else:  # only reachable from Python callers, not from JSON
        raise JobRejected(
            f'variable "{name}" has a value of type {type(value).__name__}; '
            "use a string, a number or a boolean"
        )
    if "\x00" in text:
        raise JobRejected(
            f'variable "{name}" contains a NUL character, which an environment variable '
            "cannot hold; remove it"
        )
    return text


def _check_special(name: str, value: str) -> None:
    upper = name.upper()
    if upper == TAG_VARIABLE:
        # One rule with the worker's output names and `retrieve --tag` (shepard/joblayer/tags.py).
        refused = check_tag(value)
        if refused is not None:
            raise JobRejected(f'variable "{name}" ({value[:40]!r}): {refused}')
    elif upper == QUICK_DEPLOY_VARIABLE:
        parts = value.strip("/").split("/")
        if not value.strip("/") or ".." in parts or _CONTROL.search(value):
            raise JobRejected(
                f'variable "{name}" ({value!r}) must name a folder of the quick-deploy bucket: '
                "not empty, no '..' and no control characters"
            )


def validate_variables(obj: object) -> dict[str, str]:
    """Check a decoded request and return its variables as strings (see the module rules)."""
    if not isinstance(obj, dict):
        kind = "a list" if isinstance(obj, list) else f"a {type(obj).__name__}"
        if obj is None:
            kind = "null"
        raise JobRejected(
            f"the job's variables must be a JSON object of names to values, not {kind}; "
            'write e.g. {"NAME": "value"}'
        )
    variables: dict[str, str] = {}
    special_seen: dict[str, str] = {}
    for name, value in obj.items():
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise JobRejected(
                f"variable name {name!r} is not a valid environment variable name; use letters, "
                "digits and underscores, not starting with a digit"
            )
        if name.upper() in RESERVED_VARIABLES:
            raise JobRejected(
                f'variable "{name}" is reserved by Shepard ({name.upper()}, any letter case); '
                "rename it"
            )
        text = _value_text(name, value)
        upper = name.upper()
        if upper in (TAG_VARIABLE, QUICK_DEPLOY_VARIABLE):
            if upper in special_seen:
                raise JobRejected(
                    f'variables "{special_seen[upper]}" and "{name}" both set {upper} '
                    "(names are matched in any letter case); keep one"
                )
            special_seen[upper] = name
            _check_special(name, text)
        variables[name] = text
    return variables


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JobRejected(f'variable "{key}" appears twice; keep one')
        result[key] = value
    return result


def parse_json(data: bytes | str, *, source: str = "inputs.json") -> object:
    """Decode JSON text (UTF-8, a BOM tolerated); duplicate names and bad JSON are refused."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise JobRejected(
                f"{source} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
            ) from None
    else:
        text = data
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise JobRejected(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise JobRejected(f"{source} is nested too deeply to read") from None


def parse_inputs_json(data: bytes, *, source: str = "inputs.json") -> dict[str, str]:
    """Parse and validate an ``inputs.json``: the job's variables as strings."""
    variables = validate_variables(parse_json(data, source=source))
    check_request_size(variables)
    return variables


def _find(variables: Mapping[str, str], wanted: str) -> str | None:
    for name, value in variables.items():
        if name.upper() == wanted:
            return value
    return None


def find_tag(variables: Mapping[str, str]) -> str | None:
    """The TAG variable's value (name in any letter case), or None."""
    return _find(variables, TAG_VARIABLE)


def find_quick_deploy(variables: Mapping[str, str]) -> str | None:
    """The QUICK_DEPLOY_DIRECTORY variable's value (name in any letter case), or None."""
    return _find(variables, QUICK_DEPLOY_VARIABLE)


def request_size(variables: Mapping[str, str]) -> int:
    """Bytes the variables take as a SubmitJob ``environment`` list (JSON, UTF-8)."""
    entries = [{"name": name, "value": value} for name, value in variables.items()]
    return len(json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def check_request_size(variables: Mapping[str, str], *, limit: int = BATCH_SUBMIT_LIMIT) -> int:
    """Refuse variables that would not fit in one Batch SubmitJob request; return their size."""
    size = request_size(variables)
    if size > limit:
        largest = max(variables, key=lambda name: len(variables[name]))
        raise JobRejected(
            f"the job's variables take {size} bytes, more than the {limit // 1024} KiB a Batch "
            f'job request can carry (the largest is "{largest}"); put large data in a file '
            "of the input zip instead"
        )
    return size

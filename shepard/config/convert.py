"""Turn the loaded YAML into the model's dataclasses, one key at a time, collecting every issue.

The conversion is driven by the dataclasses' annotations and :class:`Spec`: a key the model does
not have, a value of the wrong type, a number out of range, a string that misses its pattern or
a malformed CIDR each become one :class:`Issue` naming the key path and the line. A bad value is
replaced by the field's default (or an empty placeholder for a required field) so that the
cross-field rules can still run and report everything in one pass.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, Literal

from shepard.config import model
from shepard.config.ec2 import suggest
from shepard.config.model import Spec, spec_of, yaml_key
from shepard.config.source import Document, Issue, Path_, format_path

_INVALID = object()


_HINTS: dict[type[Any], dict[str, Any]] = {}


def type_hints(cls: type[Any]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, vars(model))
    return _HINTS[cls]


def yaml_fields(cls: type[Any]) -> list[dataclasses.Field[Any]]:
    """The fields of ``cls`` that are YAML keys, in declaration order."""
    return [f for f in dataclasses.fields(cls) if not spec_of(f).internal]


@cache
def key_index() -> dict[str, list[str]]:
    """Each YAML key name -> the sections (key paths) that have it."""
    out: dict[str, list[str]] = {}

    def walk(cls: type[Any], prefix: str) -> None:
        for f in yaml_fields(cls):
            out.setdefault(yaml_key(f), []).append(prefix.rstrip(".") or "the top level")
            hint = type_hints(cls)[f.name]
            element = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint
            if dataclasses.is_dataclass(element) and isinstance(element, type):
                suffix = "[]." if element is not hint else "."
                walk(element, f"{prefix}{yaml_key(f)}{suffix}")

    walk(model.FlockConfig, "")
    return out


@cache
def seed_index() -> dict[str, str]:
    """Lowercased seed (cdk.json) parameter names -> the key path that replaces them."""
    out: dict[str, str] = {}

    def walk(cls: type[Any], prefix: str) -> None:
        for f in yaml_fields(cls):
            key = f"{prefix}{yaml_key(f)}"
            seed = spec_of(f).seed
            if seed:
                for name in seed.split(", "):
                    out[name.lower()] = key
            hint = type_hints(cls)[f.name]
            if dataclasses.is_dataclass(hint) and isinstance(hint, type):
                walk(hint, f"{key}.")

    walk(model.FlockConfig, "")
    return out


def describe_int(s: Spec) -> str:
    if s.choices:
        return "must be one of " + ", ".join(str(c) for c in s.choices)
    if s.minimum is not None and s.maximum is not None:
        return f"must be an integer from {s.minimum} to {s.maximum}"
    if s.minimum == 1:
        return "must be a positive integer"
    if s.minimum == 0:
        return "must be a non-negative integer"
    if s.minimum is not None:
        return f"must be an integer of at least {s.minimum}"
    return "must be an integer"


class Converter:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.issues: list[Issue] = []
        self.given: set[Path_] = set()  # key paths the file sets (to a non-null value)

    def error(self, path: Path_, message: str) -> None:
        self.issues.append(Issue(path, message, self.doc.line_of(path)))

    # -- sections ------------------------------------------------------------------------------

    def section(self, cls: type[Any], raw: Any, path: Path_) -> Any:
        """Build ``cls`` from the mapping ``raw`` at ``path``."""
        if raw is None:
            raw = {}
        fields = yaml_fields(cls)
        if not isinstance(raw, dict):
            self.error(path, f"must be a mapping of keys to values, got {_kind(raw)}")
            if any(_is_required(f) for f in fields):
                return _INVALID
            raw = {}
        known = {yaml_key(f): f for f in fields}
        for key in raw:
            if isinstance(key, str) and key not in known:
                self.error((*path, key), self._unknown_key(cls, key, path))
        hints = type_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in fields:
            key = yaml_key(f)
            child = (*path, key)
            value = raw.get(key)
            required = _is_required(f)
            if value is None:
                if required:
                    self.error(child, f"required: {_sentence_case(spec_of(f).doc)}")
                    kwargs[f.name] = _placeholder(hints[f.name])
                continue
            self.given.add(child)
            converted = self.value(hints[f.name], value, child, spec_of(f))
            if converted is not _INVALID:
                kwargs[f.name] = converted
            elif required:
                kwargs[f.name] = _placeholder(hints[f.name])
        return cls(**kwargs)

    def _unknown_key(self, cls: type[Any], key: str, path: Path_) -> str:
        known = [yaml_key(f) for f in yaml_fields(cls)]
        where = f"in {format_path(path)}" if path else "at the top level"
        seed = seed_index().get(key.lower())
        if seed:
            return f"unknown key {where}; the seed's {key} is {seed} in flock.yaml"
        sections = key_index().get(key)
        if sections:
            return f"unknown key {where}; it belongs in {' or '.join(sections)}"
        containing = [k for k in known if len(key) >= 3 and key.lower() in k]
        hint = (
            containing[0]
            if len(containing) == 1
            else suggest(key, known) or suggest(key.lower().replace("-", "_"), known)
        )
        if hint:
            return f"unknown key {where}; did you mean {hint}?"
        return f"unknown key {where}; docs/flock.md lists the keys"

    # -- values --------------------------------------------------------------------------------

    def value(self, hint: Any, raw: Any, path: Path_, s: Spec) -> Any:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (types.UnionType, typing.Union):
            options = [a for a in args if a is not type(None)]
            if len(options) == 1:
                return self.value(options[0], raw, path, s)
            return self._union(options, raw, path, s)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self.section(hint, raw, path)
        if origin is Literal:
            return self._choice(args, raw, path)
        if origin is tuple:
            return self._list(args[0], raw, path, s)
        if origin is Mapping:
            return self._mapping(args[1], raw, path)
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            self.error(path, f"must be true or false, got {_kind(raw)}")
            return _INVALID
        if hint is int:
            return self._int(raw, path, s)
        if hint is str:
            return self._str(raw, path, s)
        raise TypeError(f"no conversion for {hint!r}")  # pragma: no cover - model is fixed

    def _int(self, raw: Any, path: Path_, s: Spec) -> Any:
        ok = isinstance(raw, int) and not isinstance(raw, bool)
        if ok and s.choices is not None:
            ok = raw in s.choices
        if ok and s.minimum is not None:
            ok = raw >= s.minimum
        if ok and s.maximum is not None:
            ok = raw <= s.maximum
        if ok:
            return raw
        self.error(path, describe_int(s))
        return _INVALID

    def _str(self, raw: Any, path: Path_, s: Spec) -> Any:
        if not isinstance(raw, str):
            self.error(path, f"must be a string, got {_kind(raw)}")
            return _INVALID
        if s.pattern and not re.match(s.pattern, raw):
            self.error(path, f"must be {s.pattern_hint or 'of the form ' + s.pattern}, got {raw!r}")
            return _INVALID
        if s.cidr:
            problem = cidr_problem(raw)
            if problem:
                self.error(path, problem)
                return _INVALID
        return raw

    def _choice(self, choices: tuple[Any, ...], raw: Any, path: Path_) -> Any:
        if isinstance(raw, str):
            for choice in choices:
                if raw.lower() == str(choice).lower():
                    return choice
        listed = ", ".join(str(c) for c in choices)
        self.error(path, f"must be one of {listed}, got {raw!r}")
        return _INVALID

    def _union(self, options: list[Any], raw: Any, path: Path_, s: Spec) -> Any:
        # Only `Literal[...] | int` exists in the model (efs.throughput).
        literal = next(o for o in options if typing.get_origin(o) is Literal)
        if isinstance(raw, str):
            return self._choice(typing.get_args(literal), raw, path)
        if isinstance(raw, int) and not isinstance(raw, bool):
            return self._int(raw, path, s)
        listed = ", ".join(typing.get_args(literal))
        self.error(path, f"must be one of {listed}, or {describe_int(s)[8:]}, got {_kind(raw)}")
        return _INVALID

    def _list(self, item: Any, raw: Any, path: Path_, s: Spec) -> Any:
        if not isinstance(raw, list):
            noun = "mappings" if dataclasses.is_dataclass(item) else "strings"
            self.error(path, f"must be a list of {noun}, got {_kind(raw)}")
            return _INVALID
        out = []
        for index, value in enumerate(raw):
            if value is None:
                self.error((*path, index), "empty list item; remove it or give a value")
                continue
            converted = self.value(item, value, (*path, index), s)
            if converted is not _INVALID:
                out.append(converted)
        return tuple(out)

    def _mapping(self, value_type: Any, raw: Any, path: Path_) -> Any:
        if not isinstance(raw, dict):
            self.error(path, f"must be a mapping, got {_kind(raw)}")
            return _INVALID
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                continue  # reported while reading the file
            if value_type is str:
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    self.error((*path, key), f"must be a string, got {_kind(value)}")
                    continue
                value = str(value)
            out[key] = value
        return out


def cidr_problem(text: str) -> str | None:
    """Why ``text`` is not an IPv4 CIDR block, or None."""
    if "/" not in text:
        return f"{text!r} is not a CIDR block; add the prefix length, such as {text}/16"
    try:
        ipaddress.IPv4Network(text, strict=True)
    except ipaddress.NetmaskValueError:
        return f"{text!r} has a bad prefix length; use /0 to /32"
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.IPv4Network(text, strict=False)
            return f"{text!r} has host bits set; did you mean {fixed}?"
        return f"{text!r} is not an IPv4 CIDR block such as 10.0.0.0/16"
    return None


def _sentence_case(text: str) -> str:
    """``The flock's name.`` -> ``the flock's name`` (acronyms such as ``AWS`` stay)."""
    text = text.rstrip(".")
    return text[0].lower() + text[1:] if text[1:2].islower() else text


def _is_required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _placeholder(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return None
    if origin is tuple:
        return ()
    if origin is Literal:
        return typing.get_args(hint)[0]
    if hint is int:
        return 0
    if hint is bool:
        return False
    return ""


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return f"{value!r} (a number)"
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__

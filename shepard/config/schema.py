"""The JSON Schema of flock.yaml and the key reference of docs/flock.md, both from the model.

``python -m shepard.config.schema`` rewrites ``shepard/schema/flock.schema.json`` and the
generated part of ``docs/flock.md``; tests fail when either is stale. The schema gives editors
completion and per-key checks (types, ranges, patterns, enums); the cross-field rules (subnets
inside the VPC, Lustre sizes, ...) live only in the loader.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from shepard.config.convert import type_hints, yaml_fields
from shepard.config.model import FlockConfig, Spec, spec_of, yaml_key

SCHEMA_ID = "https://github.com/shepard-tf/shepard-tf/blob/main/shepard/schema/flock.schema.json"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "flock.schema.json"
DOCS_PATH = Path(__file__).resolve().parents[2] / "docs" / "flock.md"
BEGIN = "<!-- BEGIN GENERATED: python -m shepard.config.schema -->"
END = "<!-- END GENERATED -->"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
CIDR_PATTERN = rf"^{_OCTET}(\.{_OCTET}){{3}}/([0-9]|[12][0-9]|3[0-2])$"


def flock_schema() -> dict[str, Any]:
    """The draft 2020-12 JSON Schema of a flock file."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "shepard-tf flock file (flock.yaml)",
    }
    schema.update(_object(FlockConfig))
    schema["description"] = (
        "A flock: the infrastructure of one shepard-tf batch workflow. docs/flock.md describes "
        "every key; the loader also checks rules across keys."
    )
    return schema


def _object(cls: type[Any]) -> dict[str, Any]:
    hints = type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in yaml_fields(cls):
        s = spec_of(f)
        prop = _value(hints[f.name], s)
        prop["description"] = _description(s)
        default = _default(f)
        if default is not dataclasses.MISSING:
            prop["default"] = default
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(yaml_key(f))
        properties[yaml_key(f)] = prop
    out: dict[str, Any] = {"type": "object", "additionalProperties": False}
    out["properties"] = properties
    if required:
        out["required"] = required
    return out


def _value(hint: Any, s: Spec) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        options = [_value(a, s) for a in args if a is not type(None)]
        if type(None) in args:
            options.append({"type": "null"})
        return options[0] if len(options) == 1 else {"anyOf": options}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _object(hint)
    if origin is Literal:
        return {"enum": list(args)}
    if origin is tuple:
        return {"type": "array", "items": _value(args[0], s)}
    if origin is Mapping:
        if args[1] is str:
            return {
                "type": "object",
                "additionalProperties": {"type": ["string", "integer", "number"]},
            }
        return {"type": "object"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        if s.choices:
            return {"enum": list(s.choices)}
        out: dict[str, Any] = {"type": "integer"}
        if s.minimum is not None:
            out["minimum"] = s.minimum
        if s.maximum is not None:
            out["maximum"] = s.maximum
        return out
    if hint is str:
        out = {"type": "string"}
        if s.pattern:
            out["pattern"] = s.pattern
        elif s.cidr:
            out["pattern"] = CIDR_PATTERN
        return out
    raise TypeError(f"no schema for {hint!r}")  # pragma: no cover - model is fixed


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return list(f.default) if isinstance(f.default, tuple) else f.default
    factory = f.default_factory
    if factory is not dataclasses.MISSING and not dataclasses.is_dataclass(factory):
        return factory()
    return dataclasses.MISSING


def _description(s: Spec) -> str:
    text = s.doc
    if s.default_doc:
        text += f" Default: {s.default_doc}."
    if s.seed:
        text += f" Seed: {s.seed}."
    return text.replace("`", "")


# -- docs/flock.md ---------------------------------------------------------------------------------


def reference_markdown() -> str:
    """The key reference of docs/flock.md: one table per section."""
    parts: list[str] = []
    hints = type_hints(FlockConfig)
    top = [f for f in yaml_fields(FlockConfig) if not _is_section(hints[f.name])]
    parts.append(_table("Top level", FlockConfig, top, ""))
    for f in yaml_fields(FlockConfig):
        hint = hints[f.name]
        if _is_section(hint):
            parts.extend(_section_tables(yaml_key(f), hint, spec_of(f).doc))
    return "\n".join(parts)


def _is_section(hint: Any) -> bool:
    return dataclasses.is_dataclass(hint) and isinstance(hint, type)


def _section_tables(path: str, cls: type[Any], doc: str) -> list[str]:
    hints = type_hints(cls)
    fields = yaml_fields(cls)
    out = [
        _table(f"`{path}`", cls, [f for f in fields if not _is_section(hints[f.name])], path, doc)
    ]
    for f in fields:
        hint = hints[f.name]
        if _is_section(hint):
            out.extend(_section_tables(f"{path}.{yaml_key(f)}", hint, spec_of(f).doc))
        element = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else None
        if element is not None and _is_section(element):
            out.extend(_section_tables(f"{path}.{yaml_key(f)}[]", element, spec_of(f).doc))
    return out


def _table(
    title: str, cls: type[Any], fields: list[dataclasses.Field[Any]], path: str, doc: str = ""
) -> str:
    hints = type_hints(cls)
    rows = [f"### {title}", ""]
    if doc:
        rows += [doc, ""]
    rows += ["| key | type | default | seed name | meaning |", "|---|---|---|---|---|"]
    for f in fields:
        s = spec_of(f)
        key = f"{path}.{yaml_key(f)}" if path else yaml_key(f)
        rows.append(
            f"| `{key}` | {_type_name(hints[f.name], s)} | {_default_text(f, s)} "
            f"| {s.seed or ''} | {s.doc} |"
        )
    return "\n".join(rows) + "\n"


def _type_name(hint: Any, s: Spec) -> str:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        names = [_type_name(a, s) for a in args if a is not type(None)]
        return " or ".join(names)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is tuple:
        inner = args[0]
        return "list of mappings" if _is_section(inner) else f"list of {_type_name(inner, s)}s"
    if origin is Mapping:
        return "mapping"
    if hint is int:
        if s.choices:
            return "integer (" + ", ".join(str(c) for c in s.choices) + ")"
        if s.minimum is not None and s.maximum is not None:
            return f"integer {s.minimum}-{s.maximum}"
        if s.minimum is not None:
            return f"integer >= {s.minimum}"
        return "integer"
    if hint is str and s.cidr:
        return "CIDR"
    return {bool: "boolean", str: "string"}.get(hint, str(hint))


def _default_text(f: dataclasses.Field[Any], s: Spec) -> str:
    if s.default_doc:
        return s.default_doc
    value = _default(f)
    if value is dataclasses.MISSING:
        return "**required**"
    if value is None:
        return "none"
    return f"`{json.dumps(value)}`"


def _write_docs(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + "\n\n" + reference_markdown() + "\n" + text[end:]
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def render_schema() -> str:
    return json.dumps(flock_schema(), indent=2) + "\n"


def main() -> int:
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(render_schema(), encoding="utf-8")
    _write_docs(DOCS_PATH)
    sys.stdout.write(f"wrote {SCHEMA_PATH} and the reference in {DOCS_PATH}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Load a flock file: read, convert, check, resolve; one error listing every problem."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from shepard.config.convert import Converter
from shepard.config.model import FlockConfig
from shepard.config.rules import Rules
from shepard.config.source import Issue, YamlSyntaxError, load_document
from shepard.errors import BadInput

DOCS_HINT = "docs/flock.md describes every key"


class FlockError(BadInput):
    """A flock file with problems; ``issues`` holds each one (key path, message, line)."""

    def __init__(self, source: str, issues: list[Issue]) -> None:
        count = f"{len(issues)} problem{'s' if len(issues) != 1 else ''}"
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(
            f"while reading flock file {source}: {count}:\n{lines}\n"
            f"Fix {'it' if len(issues) == 1 else 'them'} and run again ({DOCS_HINT})."
        )
        self.source = source
        self.issues = issues


def _in_file_order(issues: list[Issue]) -> list[Issue]:
    return sorted(issues, key=lambda i: i.line if i.line is not None else 0)


def parse_flock(text: str, source_name: str = "<string>") -> FlockConfig:
    """Validate the flock file ``text`` (named ``source_name`` in messages) into a config.

    Raises :class:`FlockError` (a ``BadInput``, exit status 2) listing every problem in file
    order. Warnings do not raise: they are on ``config.warnings``.
    """
    try:
        doc = load_document(text)
    except YamlSyntaxError as exc:
        where = f" at line {exc.line}" if exc.line else ""
        raise BadInput(
            f"while reading flock file {source_name}: it is not valid YAML{where}: "
            f"{exc.problem}. Fix the syntax (indentation, colons, quotes) and run again."
        ) from None
    if not isinstance(doc.data, dict):
        got = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise BadInput(
            f"while reading flock file {source_name}: the file is {got}, not a mapping of keys. "
            "Start from examples/flocks/minimal.yaml (name, region, batch.instance_types)."
        )
    converter = Converter(doc)
    config = converter.section(FlockConfig, doc.data, ())
    rules = Rules(config, converter.given, doc, {i.path for i in converter.issues})
    config = rules.run()
    errors = _in_file_order(doc.issues + converter.issues + rules.errors)
    if errors:
        raise FlockError(source_name, errors)
    warnings = tuple(str(w) for w in _in_file_order(rules.warnings))
    return dataclasses.replace(config, warnings=warnings, source=source_name)


def load_flock(path: Path) -> FlockConfig:
    """Read and validate the flock file at ``path``.

    ``local.code_dir`` is made absolute relative to the file's folder (default: ``code/`` beside
    the file, when it exists).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(
            f"while reading flock file {path}: no such file. Check the path, or start from "
            "examples/flocks/minimal.yaml."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(
            f"while reading flock file {path}: {exc}. Make it a readable UTF-8 text file."
        ) from None
    config = parse_flock(text, str(path))
    base = path.resolve().parent
    local = config.local
    warnings = list(config.warnings)
    if local.code_dir is not None:
        code_dir = (base / local.code_dir).resolve()
        if not code_dir.is_dir():
            warnings.append(f"local.code_dir: {code_dir} is not a folder")
        local = dataclasses.replace(local, code_dir=str(code_dir))
    elif (base / "code").is_dir():
        local = dataclasses.replace(local, code_dir=str(base / "code"))
    return dataclasses.replace(config, local=local, warnings=tuple(warnings))

"""Read YAML safely and remember the line of every key.

``yaml.safe_load`` forgets where things were. Here the document is composed into nodes first;
the nodes give each key path its line, then the same nodes are constructed with the safe
constructor, so the values are exactly what ``yaml.safe_load`` would return. Duplicate keys,
which PyYAML silently collapses to the last, are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


def format_path(path: Path_) -> str:
    """``("batch", "instance_types", 1)`` -> ``batch.instance_types[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


@dataclass(frozen=True)
class Issue:
    """One problem (or warning) in a flock file, at a key path and a line."""

    path: Path_
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{format_path(self.path)}: {self.message}{where}"


@dataclass
class Document:
    """The loaded YAML value, the line of each key path, and the problems found while loading."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def line_of(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that is in the file."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


class YamlSyntaxError(Exception):
    def __init__(self, problem: str, line: int | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


def load_document(text: str) -> Document:
    """Parse ``text`` with the safe loader; raise :class:`YamlSyntaxError` when it is not YAML."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(data=None)
        doc = Document(data=None, lines={(): node.start_mark.line + 1})
        _index(loader, node, (), doc)
        doc.data = loader.construct_document(node)
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        raise YamlSyntaxError(problem, mark.line + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc), None) from exc
    finally:
        loader.dispose()


def _index(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, doc: Document) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            line = key_node.start_mark.line + 1
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                doc.issues.append(
                    Issue(path, f"keys must be strings, got {key!r}; quote the key", line)
                )
            elif key in seen:
                doc.issues.append(
                    Issue(
                        (*path, key),
                        f"duplicate key (first on line {seen[key]}); keep one of them",
                        line,
                    )
                )
            else:
                seen[key] = line
        # Resolve `<<` merge keys as the constructor will: merged pairs first, then the
        # mapping's own, the last of a key winning.
        loader.flatten_mapping(node)
        effective: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, str):
                effective[key] = (key_node, value_node)
        for key, (key_node, value_node) in effective.items():
            child = (*path, key)
            doc.lines[child] = key_node.start_mark.line + 1
            _index(loader, value_node, child, doc)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            doc.lines[child] = item.start_mark.line + 1
            _index(loader, item, child, doc)

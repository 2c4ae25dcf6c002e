"""Run the CLI in-process, as a user would, and read what it printed."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

from shepard.cli import main


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(argv: list[str], env: Mapping[str, str], stdin: str = "") -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return Run(code, out.getvalue(), err.getvalue())

"""The process-mode payload command read from a code folder's Dockerfile."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from shepard.errors import BadInput
from shepard.local.dockerfile import logical_lines, payload_command

ROOT = Path(__file__).resolve().parents[3]


def _code(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        path = code / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return code


def test_the_testing_setup_runs_its_script_from_the_code_folder() -> None:
    code = ROOT / "examples" / "testing-setup" / "code"
    command = payload_command(code)
    assert command.argv == (sys.executable, str(code / "testing_code.py"))
    assert command.cwd == code
    assert command.source == "Dockerfile"


def test_copy_into_a_workdir_maps_relative_and_absolute_paths(tmp_path: Path) -> None:
    code = _code(
        tmp_path,
        'FROM python:3.12 AS build\nCMD ["ignored"]\n'
        "FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\n"
        'ENTRYPOINT ["python3", "-u"]\nCMD ["src/main.py", "--flag", "/app/data/x.csv"]\n',
        {"src/main.py": "", "data/x.csv": ""},
    )
    argv = payload_command(code).argv
    assert argv == (
        sys.executable,
        "-u",
        str(code / "src" / "main.py"),
        "--flag",
        str(code / "data" / "x.csv"),
    )


def test_arguments_that_only_look_like_paths_are_left_alone(tmp_path: Path) -> None:
    code = _code(
        tmp_path,
        'FROM alpine\nCOPY run /usr/local/bin/\nENTRYPOINT ["/usr/local/bin/run", "/etc/hosts"]\n',
        {"run": "#!/bin/sh\n"},
    )
    assert payload_command(code).argv == (str(code / "run"), "/etc/hosts")


def test_shell_form_runs_through_sh_and_a_shell_entrypoint_ignores_cmd(tmp_path: Path) -> None:
    code = _code(tmp_path, 'FROM alpine\nENTRYPOINT echo hello \\\n  world\nCMD ["x"]\n')
    assert payload_command(code).argv == ("/bin/sh", "-c", "echo hello world")


def test_local_command_wins_over_the_dockerfile(tmp_path: Path) -> None:
    code = _code(tmp_path, 'FROM alpine\nCMD ["a"]\n')
    command = payload_command(code, ["./run.sh", "x"])
    assert command.argv == ("./run.sh", "x")
    assert command.source == "local.command"


def test_no_command_is_bad_input_naming_the_fix(tmp_path: Path) -> None:
    code = _code(tmp_path, "FROM python:3.12\n# only a base image\nCOPY a.py /\n")
    with pytest.raises(BadInput, match=r"sets no ENTRYPOINT or CMD.*local\.command"):
        payload_command(code)


def test_no_dockerfile_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="has no Dockerfile"):
        payload_command(tmp_path)


def test_dockerfile_txt_is_accepted_like_the_seed(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile.txt").write_text('FROM alpine\nCMD ["echo", "hi"]\n')
    assert payload_command(tmp_path).argv == ("echo", "hi")


def test_logical_lines_join_continuations_and_drop_comments() -> None:
    text = '# c\nRUN a \\\n# inside\n  b\n\nCMD ["x"]\n'
    assert logical_lines(text) == ["RUN a b", 'CMD ["x"]']

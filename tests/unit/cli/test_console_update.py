"""Rich output on a terminal, plain text when piped or NO_COLOR; check_update vs a PyPI stand-in."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from shepard.console import Console
from tests.unit.cli.helpers import run


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_rich_tables_and_pipes_get_plain_text() -> None:
    tty = _Tty()
    console = Console.for_streams({"TERM": "xterm"}, out=tty, err=_Tty())
    assert console.rich and console.show_progress
    console.table(["job", "status"], [["abc", "in_progress"]])
    assert "┃" in tty.getvalue() or "│" in tty.getvalue()  # a box-drawn table
    with console.progress("uploading", 10) as bar:
        bar.advance(10)
    for env, out in (({"NO_COLOR": "1"}, _Tty()), ({}, io.StringIO())):
        plain = Console.for_streams(env, out=out, err=io.StringIO())
        assert not plain.rich and not plain.show_progress
        plain.table(["job", "status"], [["abc", "in_progress"]])
        assert out.getvalue().splitlines() == ["job  status", "abc  in_progress"]


@pytest.fixture
def pypi() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"info": {"version": "99.0.0"}}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/pypi/shepard-tf/json"
    finally:
        server.shutdown()
        server.server_close()


def test_check_update_reports_a_newer_release(pypi: str, tmp_path: Path) -> None:
    env = {"SHEPARD_CONFIG_DIR": str(tmp_path), "SHEPARD_PYPI_URL": pypi, "NO_COLOR": "1"}
    data = json.loads(run(["check_update", "--json"], env).out)
    assert data["latest"] == "99.0.0" and data["update_available"] is True
    assert "shepard-tf 99.0.0 is available" in run(["check_update"], env).out

"""The local flock's instance metadata service: IMDSv2 as a sheep's worker sees it.

Each job's worker is pointed at ``<endpoint>/jobs/<job id>`` (``SHEPARD_IMDS_ENDPOINT``), so that
each job has a "host" of its own: ``PUT /latest/api/token`` (with the TTL header) gives a token,
and the GETs that carry it answer ``instance-type`` ("local"), ``instance-life-cycle`` ("local"),
``local-hostname`` and ``spot/instance-action`` (404 until the job is interrupted, then EC2's
two-minute warning: ``{"action": "terminate", "time": ...}``). ``shepard-tf local interrupt``
asks for that notice with ``POST /control/interrupt/<job id>?warning=SECONDS``: the endpoint
raises it and, ``warning`` seconds later, the worker gets SIGTERM, as on a reclaimed sheep.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105 (a header name)
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
NOTICE_SECONDS = 120  # EC2's warning before it takes a Spot instance back
DEFAULT_WARNING_SECONDS = 2.0  # locally: the notice, then SIGTERM this much later

# job id -> whether its worker was signalled: ``(job_id, warning_seconds)`` -> an error or None
Interrupt = Callable[[str, float], str | None]


class LocalMetadata:
    """One HTTP server on 127.0.0.1 for every job of the local flock."""

    def __init__(self, interrupt: Interrupt, *, file: Path | None = None) -> None:
        self._interrupt = interrupt
        self._file = file  # where the CLI finds the endpoint (``metadata.json``)
        self._notices: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._token = secrets.token_urlsafe(24)
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the metadata endpoint is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def job_url(self, job_id: str) -> str:
        """The IMDS base URL a job's worker is given."""
        return f"{self.url}/jobs/{job_id}"

    def start(self) -> LocalMetadata:
        if self._server is not None:
            return self
        owner = self

        class Handler(_Handler):
            metadata = owner

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, args=(0.2,), name="local-imds", daemon=True
        ).start()
        if self._file is not None:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            self._file.write_text(json.dumps({"url": self.url}))
        log.info("instance metadata for local jobs at %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._file is not None:
            self._file.unlink(missing_ok=True)

    def raise_notice(self, job_id: str) -> dict[str, str]:
        """Give a job's host EC2's interruption notice (kept until the job runs again)."""
        when = datetime.now(UTC) + timedelta(seconds=NOTICE_SECONDS)
        notice = {"action": "terminate", "time": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
        with self._lock:
            self._notices[job_id] = notice
        return notice

    def clear_notice(self, job_id: str) -> None:
        """A new attempt runs on a new "host": no notice there."""
        with self._lock:
            self._notices.pop(job_id, None)

    def notice(self, job_id: str) -> dict[str, str] | None:
        with self._lock:
            return self._notices.get(job_id)

    def interrupt(self, job_id: str, warning: float) -> tuple[int, dict[str, Any]]:
        """``POST /control/interrupt/<job id>``: the notice now, SIGTERM ``warning`` s later."""
        notice = self.raise_notice(job_id)
        error = self._interrupt(job_id, warning)
        if error is not None:
            self.clear_notice(job_id)
            return 409, {"error": error}
        return 200, {"job": job_id, "notice": notice, "sigterm_in_seconds": warning}


class _Handler(BaseHTTPRequestHandler):
    metadata: LocalMetadata

    def do_PUT(self) -> None:
        path = urlsplit(self.path).path
        if not path.endswith("/latest/api/token") or not self.headers.get(TTL_HEADER):
            self._send(400, "a token needs PUT /latest/api/token with the TTL header")
            return
        self._send(200, self.metadata._token)

    def do_GET(self) -> None:
        parts = urlsplit(self.path).path.split("/")
        # /jobs/<job id>/latest/meta-data/<path...>
        if len(parts) < 6 or parts[1] != "jobs" or parts[3:5] != ["latest", "meta-data"]:
            self._send(404, "")
            return
        if self.headers.get(TOKEN_HEADER) != self.metadata._token:
            self._send(401, "")
            return
        job_id, what = parts[2], "/".join(parts[5:])
        if what == "spot/instance-action":
            notice = self.metadata.notice(job_id)
            if notice is None:
                self._send(404, "")
            else:
                self._send(200, json.dumps(notice))
            return
        answers = {
            "instance-type": "local",
            "instance-life-cycle": "local",
            "local-hostname": socket.gethostname(),
            "instance-id": f"local-{job_id[:12]}",
        }
        if what in answers:
            self._send(200, answers[what])
        else:
            self._send(404, "")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.split("/")
        if len(parts) != 4 or parts[1:3] != ["control", "interrupt"]:
            self._send(404, json.dumps({"error": f"no such control path: {url.path}"}))
            return
        try:
            warning = float(parse_qs(url.query).get("warning", [DEFAULT_WARNING_SECONDS])[0])
        except ValueError:
            self._send(400, json.dumps({"error": "warning is not a number of seconds"}))
            return
        status, answer = self.metadata.interrupt(parts[3], max(warning, 0.0))
        self._send(status, json.dumps(answer))

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass

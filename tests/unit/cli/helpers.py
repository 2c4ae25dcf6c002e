"""Run the CLI in-process, as a user would, and read what it printed."""

from __future__ import annotations

import http.client
import io
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from shepard.cli import main
from shepard.joblayer.settings import FlockSettings
from shepard.profiles import ProfileStore


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(argv: list[str], env: Mapping[str, str], stdin: str = "") -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return Run(code, out.getvalue(), err.getvalue())


def cli_env(config_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for main(): this process's (pointed at the emulator by ``aws``), a private
    config folder, plain output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEPARD_")}
    env.update({"SHEPARD_CONFIG_DIR": str(config_dir), "NO_COLOR": "1"})
    env.update(extra)
    return env


def write_flock_profile(env: Mapping[str, str], settings: FlockSettings, **extra: str) -> str:
    """A current profile naming the test flock's resources (as auto_configure would write)."""
    store = ProfileStore.from_env(env)
    name = settings.flock
    store.save(
        name,
        {
            "shepard_cloudformation_stack_name": settings.flock,
            "shepard_s3_bucket_to_upload_to": settings.inputs_bucket,
            "shepard_s3_bucket_for_results": settings.outputs_bucket,
            "shepard_errors_bucket": settings.errors_bucket,
            "shepard_quick_deploy_bucket": settings.quick_deploy_bucket,
            "shepard_dynamo_db_to_query": settings.table_name,
            "shepard_secret_store": f"{settings.flock}-secrets",
            "shepard_region": "us-east-1",
            **extra,
        },
    )
    store.set_current(name)
    return name


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]

    @property
    def operation(self) -> str:
        """The JSON protocol's operation (``DynamoDB_20120810.Query`` -> ``Query``), or ""."""
        return self.headers.get("x-amz-target", "").rpartition(".")[2]

    @property
    def access_key(self) -> str:
        """The access key id the request was signed with (from its SigV4 Authorization)."""
        credential = self.headers.get("authorization", "").partition("Credential=")[2]
        return credential.partition("/")[0]


@dataclass
class RecordingProxy:
    """An endpoint that forwards every request to ``target`` and records what the CLI sent."""

    target: str
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)


@contextmanager
def recording_proxy(target: str) -> Iterator[RecordingProxy]:
    """``AWS_ENDPOINT_URL=proxy.url``: what goes over the wire, seen as AWS would see it."""
    proxy = RecordingProxy(target)
    upstream = urlsplit(target)

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            proxy.requests.append(Recorded(self.command, self.path, headers))
            connection = http.client.HTTPConnection(upstream.netloc, timeout=60)
            try:
                connection.request(self.command, self.path, body, dict(self.headers.items()))
                answer = connection.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            finally:
                connection.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

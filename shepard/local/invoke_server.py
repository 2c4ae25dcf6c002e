"""A local Lambda endpoint: the Lambda Invoke REST API, answered by calling handlers in process.

moto's Lambda never runs a handler without Docker (shared/emulator-notes.md), so the local flock
serves ``POST /2015-03-31/functions/<name>/invocations`` itself. ``boto3.client("lambda",
endpoint_url=url).invoke(...)`` works against it exactly as against AWS: the response body is the
handler's JSON result; a handler that raises answers ``X-Amz-Function-Error: Unhandled`` with the
error document Lambda's Python runtime writes; an unknown function is a 404
``ResourceNotFoundException``. A body that is not JSON the job layer can read (not UTF-8, not
JSON, duplicate names, nested too deeply) is a 400 ``InvalidRequestContentException`` with the
job layer's reason, the same refusal ``batch_via_api`` and the API's function URL give.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from shepard.joblayer.variables import JobRejected, parse_json

Handler = Callable[[dict[str, Any], object], object]

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_SUFFIX = "/invocations"
REGION_DEFAULT = "us-east-1"
ACCOUNT_DEFAULT = "123456789012"

log = logging.getLogger(__name__)


@dataclass
class LambdaContext:
    """The attributes of the context object that Lambda's Python runtime passes to a handler."""

    function_name: str
    timeout_seconds: float = 60.0
    memory_limit_in_mb: int = 256
    region: str = REGION_DEFAULT
    account_id: str = ACCOUNT_DEFAULT
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def function_name_from_path(raw: str) -> str:
    """The function's name from the path segment: a name, ``name:qualifier`` or a full ARN."""
    name = unquote(raw)
    if name.startswith("arn:"):
        # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
        parts = name.split(":")
        return parts[6] if len(parts) > 6 else name
    return name.split(":", 1)[0]


def _error_document(exc: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


class _Environment:
    """Applies the Lambdas' environment to this process while the server runs.

    Handlers read ``os.environ`` (contracts section 3). The keys are set when the server starts
    and the previous values restored when it stops; the server is the only thing in its process
    that uses those names (the local flock service, or one test).
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        self._saved: dict[str, str | None] = {}

    def apply(self) -> None:
        for key, value in self._env.items():
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value

    def restore(self) -> None:
        for key, old in self._saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        self._saved.clear()


class InvokeServer:
    """A threaded HTTP server on 127.0.0.1 that runs Lambda handlers for ``Invoke`` calls."""

    def __init__(
        self,
        functions: Mapping[str, Handler],
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        timeout_seconds: float = 60.0,
        on_unknown_function: Callable[[], None] | None = None,
    ) -> None:
        self.functions: dict[str, Handler] = dict(functions)
        # Called once before answering "function not found", to load functions just deployed.
        self.on_unknown_function = on_unknown_function
        self.host = host
        self.port = port
        self.timeout_seconds = timeout_seconds
        self._environment = _Environment(env or {})
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._background: set[threading.Thread] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Start serving in a daemon thread and return the endpoint URL."""
        if self._httpd is not None:
            return self.url
        server = self

        class _RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                try:
                    server._handle_post(self)
                except ConnectionError:  # the caller went away: nobody to answer
                    log.debug("invoke server: the caller closed the connection")
                except Exception as exc:  # the caller gets an answer, the log one line
                    log.error("invoke server: %s: %s", type(exc).__name__, exc)
                    log.debug("invoke server: traceback", exc_info=True)
                    _send_json(
                        self,
                        HTTPStatus.INTERNAL_SERVER_ERROR,
                        {"Type": "Service", "message": f"{type(exc).__name__}: {exc}"},
                        {"x-amzn-ErrorType": "ServiceException"},
                    )

            def do_GET(self) -> None:
                self._not_found()

            def _not_found(self) -> None:
                _send_json(
                    self,
                    HTTPStatus.NOT_FOUND,
                    {"Type": "User", "message": f"Unknown operation {self.path}"},
                    {"x-amzn-ErrorType": "UnknownOperationException"},
                )

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("invoke server: " + format, *args)

        self._httpd = ThreadingHTTPServer((self.host, self.port), _RequestHandler)
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]  # type: ignore[assignment]
        self._environment.apply()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="shepard-invoke-server",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving, close the port, wait for asynchronous invocations, restore the env."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            pending = list(self._background)
        for thread in pending:
            thread.join(timeout=self.timeout_seconds)
        self._environment.restore()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> InvokeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling -------------------------------------------------------------------

    def invoke(self, name: str, event: dict[str, Any]) -> tuple[object, dict[str, Any] | None]:
        """Call a handler: ``(result, None)`` or ``(None, error document)``."""
        handler = self.functions[name]
        context = LambdaContext(function_name=name, timeout_seconds=self.timeout_seconds)
        try:
            return handler(event, context), None
        except Exception as exc:  # a handler's failure is the caller's answer, not ours
            log.warning("function %s raised %s: %s", name, type(exc).__name__, exc)
            return None, _error_document(exc)

    def _handle_post(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        if not (path.startswith(INVOKE_PREFIX) and path.endswith(INVOKE_SUFFIX)):
            _send_json(
                request,
                HTTPStatus.NOT_FOUND,
                {"Type": "User", "message": f"Unknown operation {path}"},
                {"x-amzn-ErrorType": "UnknownOperationException"},
            )
            return
        name = function_name_from_path(path[len(INVOKE_PREFIX) : -len(INVOKE_SUFFIX)])
        if name not in self.functions and self.on_unknown_function is not None:
            self.on_unknown_function()
        if name not in self.functions:
            _send_json(
                request,
                HTTPStatus.NOT_FOUND,
                {
                    "Type": "User",
                    "message": f"Function not found: {name} (this local flock serves "
                    f"{', '.join(sorted(self.functions)) or 'no functions'})",
                },
                {"x-amzn-ErrorType": "ResourceNotFoundException"},
            )
            return
        try:
            event: Any = parse_json(body, source="the request body") if body.strip() else {}
        except JobRejected as exc:
            _send_json(
                request,
                HTTPStatus.BAD_REQUEST,
                {
                    "Type": "User",
                    "message": f"Could not parse request body into json: {exc.reason}",
                },
                {"x-amzn-ErrorType": "InvalidRequestContentException"},
            )
            return
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            _send_bytes(request, HTTPStatus.NO_CONTENT, b"", {})
            return
        if invocation_type == "Event":
            self._invoke_in_background(name, event)
            _send_bytes(request, HTTPStatus.ACCEPTED, b"", {})
            return
        result, error = self.invoke(name, event)
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if error is None:
            try:
                payload = json.dumps(result).encode()
            except (TypeError, ValueError) as exc:
                error = {
                    "errorMessage": f"Unable to marshal response: {exc}",
                    "errorType": "Runtime.MarshalError",
                    "requestId": "",
                    "stackTrace": [],
                }
        if error is not None:
            headers["X-Amz-Function-Error"] = "Unhandled"
            payload = json.dumps(error).encode()
        _send_bytes(request, HTTPStatus.OK, payload, headers)

    def _invoke_in_background(self, name: str, event: dict[str, Any]) -> None:
        def run() -> None:
            try:
                self.invoke(name, event)
            finally:
                with self._lock:
                    self._background.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"invoke-{name}", daemon=True)
        with self._lock:
            self._background.add(thread)
        thread.start()


def _send_bytes(
    request: BaseHTTPRequestHandler, status: HTTPStatus, body: bytes, headers: Mapping[str, str]
) -> None:
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(body)))
    request.send_header("x-amzn-RequestId", str(uuid.uuid4()))
    for key, value in headers.items():
        request.send_header(key, value)
    request.end_headers()
    if body:
        request.wfile.write(body)


def _send_json(
    request: BaseHTTPRequestHandler,
    status: HTTPStatus,
    document: Mapping[str, Any],
    headers: Mapping[str, str],
) -> None:
    _send_bytes(request, status, json.dumps(document).encode(), headers)


@contextmanager
def serving(
    functions: Mapping[str, Handler], env: Mapping[str, str] | None = None
) -> Iterator[InvokeServer]:
    """``with serving({...}) as server: boto3.client("lambda", endpoint_url=server.url)``."""
    server = InvokeServer(functions, env)
    server.start()
    try:
        yield server
    finally:
        server.stop()

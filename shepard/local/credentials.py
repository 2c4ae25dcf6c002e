"""The local flock's container-credentials endpoint: the job role, as ECS serves it on a sheep.

On Batch the ECS agent serves the job role's credentials at 169.254.170.2 and the worker hands
that endpoint to the payload (worker/README.md, "The payload's AWS credentials"). The local flock
has no agent, so :class:`CredentialsServer` stands in for it: an HTTP server in a thread that
answers the container-credentials API the AWS SDKs read
(``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + ``AWS_CONTAINER_AUTHORIZATION_TOKEN``) with the job
role's credentials, obtained by ``sts:AssumeRole`` on the emulator and renewed before they
expire::

    with CredentialsServer(role_arn=job_role, endpoint_url=emulator) as server:
        worker_env.update(server.environment())

A request is answered only on the server's path (a random one) and, when it carries an
``Authorization`` header or the server requires a token (the default), only with the token.
The SDKs accept an http endpoint only on a loopback address (or ECS's own), so the server
listens on 127.0.0.1 by default, and the worker runs a payload whose endpoint is on the
loopback on the host's network (worker/shepard_worker/runners.py, ``payload_network``).
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shepard.errors import BackendError
from shepard.joblayer.clients import client as make_client

FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
AUTHORIZATION_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"  # noqa: S105 (a variable's name)
# Renew the assumed role's credentials when fewer than this many seconds are left (the SDKs
# refresh theirs a few minutes before Expiration, so they must get fresh ones by then).
RENEW_BEFORE_SECONDS = 15 * 60


@dataclass(frozen=True)
class RoleCredentials:
    access_key_id: str
    secret_access_key: str
    token: str
    expiration: datetime
    role_arn: str

    def document(self) -> dict[str, str]:
        """The JSON the container-credentials API returns (what ECS's agent answers)."""
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.token,
            "Expiration": self.expiration.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "RoleArn": self.role_arn,
        }


class CredentialsServer:
    """Serves one role's credentials (``sts:AssumeRole``) over the container-credentials API."""

    def __init__(
        self,
        *,
        role_arn: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        session: Any = None,
        host: str = "127.0.0.1",
        port: int = 0,
        session_name: str = "shepard-job",
        duration_seconds: int = 3600,
        require_token: bool = True,
    ) -> None:
        self.role_arn = role_arn
        self.host = host
        self.path = f"/v2/credentials/{secrets.token_hex(16)}"
        self.token = secrets.token_urlsafe(32)
        self.require_token = require_token
        self._sts = make_client("sts", session=session, region=region, endpoint_url=endpoint_url)
        self._session_name = session_name
        self._duration = duration_seconds
        self._cached: RoleCredentials | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.requests = 0  # answered with credentials (for tests and the executor's log)

    # -- life -----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def full_uri(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def environment(self) -> dict[str, str]:
        """What the executor puts in the worker's environment (the worker passes it on)."""
        return {FULL_URI: self.full_uri, AUTHORIZATION_TOKEN: self.token}

    def start(self) -> CredentialsServer:
        self.credentials()  # fail now, with a clear error, if the role cannot be assumed
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="shepard-credentials", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> CredentialsServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- credentials ----------------------------------------------------------------------------

    def credentials(self) -> RoleCredentials:
        """The role's credentials, assumed again when they are about to expire."""
        with self._lock:
            now = datetime.now(UTC)
            cached = self._cached
            if cached is not None and cached.expiration - now > timedelta(
                seconds=RENEW_BEFORE_SECONDS
            ):
                return cached
            try:
                answer = self._sts.assume_role(
                    RoleArn=self.role_arn,
                    RoleSessionName=self._session_name,
                    DurationSeconds=self._duration,
                )
            except Exception as error:  # botocore's errors: said once, clearly
                raise BackendError(
                    f"while assuming the job role {self.role_arn} for the payload's "
                    f"credentials endpoint: {error}. Check that the flock is applied and that "
                    "the emulator answers."
                ) from None
            got = answer["Credentials"]
            expiration = got["Expiration"]
            if isinstance(expiration, str):
                expiration = datetime.fromisoformat(expiration.replace("Z", "+00:00"))
            self._cached = RoleCredentials(
                access_key_id=got["AccessKeyId"],
                secret_access_key=got["SecretAccessKey"],
                token=got["SessionToken"],
                expiration=expiration,
                role_arn=self.role_arn,
            )
            return self._cached

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, str]]:
        """``(HTTP status, JSON body)`` for a GET of ``path`` (pure but for AssumeRole)."""
        if path.split("?", 1)[0] != self.path:
            return 404, {"code": "NotFound", "message": "no credentials at this path"}
        checked = authorization is not None or self.require_token
        if checked and not secrets.compare_digest(authorization or "", self.token):
            return 401, {
                "code": "Unauthorized",
                "message": f"the Authorization header must be ${AUTHORIZATION_TOKEN}",
            }
        try:
            document = self.credentials().document()
        except BackendError as error:
            return 502, {"code": "AssumeRoleFailed", "message": error.message}
        self.requests += 1
        return 200, document


def _handler(server: CredentialsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = server.answer(self.path, self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # the executor's log, not stderr, says what the flock does

    return Handler

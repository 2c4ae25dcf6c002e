"""The AWS emulator (moto's server) on 127.0.0.1, shared by the local flock and the tests.

One server per test session (reset between tests, which takes under a second) and one per local
flock. The settings here are the ones measured in shared/emulator-notes.md: Batch and Lambda never
start Docker, AWS-managed IAM policies are loaded so that roles can attach them.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MOTO_ACCOUNT_ID = "123456789012"
EMULATOR_CONFIG = {"batch": {"use_docker": False}, "lambda": {"use_docker": False}}


# The emulator takes any key; these are moto's customary ones.
EMULATOR_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def emulator_environment(endpoint_url: str, region: str = "us-east-1") -> dict[str, str]:
    """The environment that points boto3 and Terraform's AWS provider at the emulator."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        **EMULATOR_CREDENTIALS,
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


def is_loopback_url(url: str | None) -> bool:
    """True when ``url`` names this machine (127.0.0.0/8, ::1, localhost): an emulator."""
    if not url:
        return False
    host = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _post(url: str, body: dict[str, Any] | None = None) -> bytes:
    if not url.startswith("http://"):
        raise ValueError(f"the emulator is reached over http on loopback, not {url!r}")
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(url, data=data, method="POST")  # noqa: S310 (checked above)
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (checked above)
        result: bytes = response.read()
        return result


def configure(endpoint_url: str) -> None:
    """Tell a running emulator not to use Docker for Batch and Lambda."""
    _post(f"{endpoint_url}/moto-api/config", EMULATOR_CONFIG)


def reset(endpoint_url: str) -> None:
    """Forget every resource in a running emulator (its configuration stays)."""
    _post(f"{endpoint_url}/moto-api/reset")


@dataclass
class InProcessEmulator:
    """moto's server in a thread of this process."""

    port: int = 0
    host: str = "127.0.0.1"
    _server: Any = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> InProcessEmulator:
        os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        self.host, self.port = self._server.get_host_and_port()
        configure(self.endpoint_url)
        return self

    def reset(self) -> None:
        reset(self.endpoint_url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@dataclass
class SubprocessEmulator:
    """moto's server in a process of its own.

    moto keeps its resources in module globals, so every server thread of one Python process
    shares them: a reset of one in-process server wipes the others. A flock that must outlive
    the resets of other tests runs its emulator here instead.
    """

    host: str = "127.0.0.1"
    port: int = 0
    log_path: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> SubprocessEmulator:
        if self.port == 0:
            self.port = free_port(self.host)
        env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true")
        command = [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
        if self.log_path is None:
            self._process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env
            )
        else:
            with open(self.log_path, "ab") as log:
                self._process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env
                )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto's server exited at start ({self._process.returncode})")
            try:
                configure(self.endpoint_url)
                return self
            except OSError as error:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"moto's server did not answer on {self.endpoint_url}"
                    ) from error
                time.sleep(0.1)

    def reset(self) -> None:
        reset(self.endpoint_url)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port

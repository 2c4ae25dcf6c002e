"""Telling a reclaim from a failure: the instance's Spot interruption notice, read through IMDSv2.

EC2 gives a Spot instance two minutes' warning before it takes it back: the instance metadata
path ``spot/instance-action`` answers 404 until then, and ``{"action": "terminate", "time":
...}`` from then on. The worker polls it in a thread of its own (short timeouts, never in the
job's way: without a metadata service the poller just finds nothing), so that when SIGTERM
comes it knows whether the host was reclaimed or the job was terminated, and can save the
payload's checkpoint as soon as the warning comes.

The metadata service's address: ``SHEPARD_IMDS_ENDPOINT`` (the local flock points a job's worker
at its own metadata endpoint, :mod:`shepard.local.metadata`), else botocore's
``AWS_EC2_METADATA_SERVICE_ENDPOINT`` / ``AWS_EC2_METADATA_DISABLED``, else 169.254.169.254.

On a sheep the worker's container cannot reach the metadata service itself: the launch
template's hop limit of 1 keeps every container on Docker's bridge network away from the
instance role. The sheep's ``shepard-spot-notice`` service (terraform/modules/batch's user
data) reads it on the host and leaves what it finds in ``<work root>/.shepard/``
(``HOST_FOLDER``): ``spot-instance-action`` once a notice came, ``instance-type`` and
``instance-life-cycle``. The worker reads those files first, then the metadata service.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from shepard.joblayer import contract

from . import instance

IMDS_ENDPOINT = "SHEPARD_IMDS_ENDPOINT"
POLL_SECONDS = "SHEPARD_SPOT_POLL_SECONDS"
RETRY_ATTEMPTS = contract.RETRY_ATTEMPTS
RETRY_ON_HOST_RECLAIM = contract.RETRY_ON_HOST_RECLAIM
HOST_FOLDER = ".shepard"  # under the work root: what the sheep's host read from its metadata
DEFAULT_POLL_SECONDS = 5.0
TOKEN_TTL_SECONDS = 300
TIMEOUT_SECONDS = 1.0

# The causes of an interruption (ATTEMPTS' "cause", the record's REASON).
SPOT_RECLAIM = "spot reclaim"
HOST_TERMINATED = "host terminated"
JOB_TERMINATED = "job terminated"
# Causes that are the host's doing, not the job's: Batch retries them (status reason
# "Host EC2*"), and they count as reclaims (RECLAIMS), not against the application.
RECLAIM_CAUSES = (SPOT_RECLAIM, HOST_TERMINATED)


def endpoint(env: Mapping[str, str]) -> str | None:
    """The metadata service's base URL, or None when it is turned off."""
    given = env.get(IMDS_ENDPOINT, "").strip()
    if given:
        return given.rstrip("/")
    return instance._endpoint(env)


class Imds:
    """An IMDSv2 client: a session token (PUT, with its TTL header), then GETs carrying it.

    Every answer other than a value is None: 404 (no such path, e.g. no notice yet), a timeout,
    a refused connection. A token is kept until shortly before it expires.
    """

    def __init__(self, base: str | None, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.base = base
        self.timeout = timeout
        self._token: str | None = None
        self._token_until = 0.0
        self.reachable = base is not None  # False after a call found no service at all

    def _open(self, path: str, *, method: str, headers: dict[str, str]) -> str:
        assert self.base is not None
        request = urllib.request.Request(  # noqa: S310 (the metadata service's http URL)
            f"{self.base}{path}", method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            return str(response.read().decode("utf-8").strip())

    def _session_token(self) -> str | None:
        now = time.monotonic()
        if self._token is None or now >= self._token_until:
            self._token = self._open(
                "/latest/api/token",
                method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
            )
            self._token_until = now + TOKEN_TTL_SECONDS - 30
        return self._token

    def get(self, path: str) -> str | None:
        """``/latest/meta-data/<path>``, or None (no service, no such path, no answer in time)."""
        if self.base is None:
            return None
        try:
            token = self._session_token()
            if token is None:
                return None
            return self._open(
                f"/latest/meta-data/{path}",
                method="GET",
                headers={"X-aws-ec2-metadata-token": token},
            )
        except urllib.error.HTTPError as error:
            if error.code == 401:  # the token expired early: ask again next time
                self._token = None
            return None
        except (OSError, urllib.error.URLError, ValueError):
            self.reachable = False
            return None


@dataclass(frozen=True)
class Notice:
    """A Spot interruption notice: what EC2 will do to the instance, and when."""

    action: str  # "terminate" | "stop" | "hibernate"
    time: str  # ISO-8601 UTC


def _host_file(folder: Path | None, name: str) -> str | None:
    """What the sheep's host left in ``folder`` (None: no such file, or no folder)."""
    if folder is None:
        return None
    try:
        return (folder / name).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def instance_action(imds: Imds, host_folder: Path | None = None) -> Notice | None:
    """The interruption notice, or None (404 until EC2 decides to take the instance back)."""
    text = _host_file(host_folder, "spot-instance-action") or imds.get("spot/instance-action")
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not data.get("action"):
        return None
    return Notice(str(data["action"]), str(data.get("time", "")))


@dataclass(frozen=True)
class InstanceFacts:
    """What an attempt records about where it ran (None when there is no metadata service)."""

    instance_type: str | None
    lifecycle: str | None  # "spot" | "on_demand" | "local"
    host: str | None


def instance_facts(imds: Imds, host_folder: Path | None = None) -> InstanceFacts:
    host_type = _host_file(host_folder, "instance-type")
    host_lifecycle = _host_file(host_folder, "instance-life-cycle")
    instance_type = host_type or imds.get("instance-type")
    if not imds.reachable:  # no metadata service here: do not wait on each question
        lifecycle = "on_demand" if host_lifecycle == "on-demand" else host_lifecycle
        return InstanceFacts(instance_type, lifecycle, None)
    lifecycle = host_lifecycle or imds.get("instance-life-cycle")
    if lifecycle == "on-demand":
        lifecycle = "on_demand"
    return InstanceFacts(
        instance_type=instance_type,
        lifecycle=lifecycle,
        host=imds.get("local-hostname"),
    )


class NoticeWatcher:
    """Polls ``spot/instance-action`` every ``interval`` seconds in a daemon thread; calls
    ``on_notice`` once, from that thread, when the notice appears."""

    def __init__(
        self,
        imds: Imds,
        on_notice: Callable[[Notice], None],
        *,
        interval: float,
        host_folder: Path | None = None,
    ) -> None:
        self.imds = imds
        self.host_folder = host_folder
        self.on_notice = on_notice
        self.interval = max(interval, 0.05)
        self.notice: Notice | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> NoticeWatcher:
        if self.imds.base is not None or self.host_folder is not None:
            self._thread = threading.Thread(target=self._run, name="spot-notice", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            found = instance_action(self.imds, self.host_folder)
            if found is not None:
                self.notice = found
                self.on_notice(found)
                return
            self._stop.wait(self.interval)

    def check_now(self) -> Notice | None:
        """The notice, polled once more if not seen yet (SIGTERM may beat the next poll)."""
        if self.notice is None:
            self.notice = instance_action(self.imds, self.host_folder)
        return self.notice

    def stop(self) -> None:
        self._stop.set()


def poll_seconds(env: Mapping[str, str]) -> float:
    text = env.get(POLL_SECONDS, "").strip()
    try:
        return float(text) if text else DEFAULT_POLL_SECONDS
    except ValueError:
        return DEFAULT_POLL_SECONDS


@dataclass(frozen=True)
class RetryStrategy:
    """The job definition's retry strategy, as the flock passes it to the worker.

    Batch retries a job whose status reason is ``Host EC2*`` (when ``on_host_reclaim``) until it
    has run ``attempts`` times; nothing else (a TerminateJob, a timeout, an exit code).
    """

    attempts: int = 1
    on_host_reclaim: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryStrategy:
        text = env.get(RETRY_ATTEMPTS, "").strip()
        attempts = int(text) if text.isdigit() and int(text) > 0 else 1
        flag = env.get(RETRY_ON_HOST_RECLAIM, "").strip().lower() in ("true", "1", "yes")
        return cls(attempts, flag)

    def retried(self, cause: str, attempt: int) -> tuple[bool, str]:
        """Whether Batch runs the job again after an interruption of ``cause`` in ``attempt``
        (1-based), and why (worded for the record's REASON)."""
        if cause not in RECLAIM_CAUSES:
            return False, "a terminated job is not retried"
        if not self.on_host_reclaim:
            return False, "the flock does not retry jobs whose host was reclaimed"
        if attempt >= self.attempts:
            return False, f"it has had all {self.attempts} attempt(s) of its retry strategy"
        return True, f"it will be retried (attempt {attempt + 1} of {self.attempts})"


def cause_of(notice: Notice | None) -> str:
    """An interruption's cause as the worker sees it: a notice came first, or it did not (the
    events handler may still learn from Batch's ``Host EC2*`` reason that the host went)."""
    return SPOT_RECLAIM if notice is not None else JOB_TERMINATED

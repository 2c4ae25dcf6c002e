"""The EC2 instance the job runs on, through IMDSv2 (skipped quietly anywhere else)."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_ENDPOINT = "http://169.254.169.254"
TIMEOUT_SECONDS = 1.0


def _endpoint(env: Mapping[str, str]) -> str | None:
    # The same switches as botocore's: a test or a laptop can point it elsewhere or turn it off.
    if env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return None
    return env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def _request(url: str, *, method: str, headers: dict[str, str]) -> str:
    request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
        return str(response.read().decode("utf-8").strip())


def metadata_hostname(env: Mapping[str, str] | None = None) -> str | None:
    """This instance's ``local-hostname``, or None when there is no instance metadata service.

    The worker only reads the metadata: the flock's tags reach the instance through the launch
    template's tag specifications, so the job role has no ``ec2:CreateTags``.
    """
    endpoint = _endpoint(os.environ if env is None else env)
    if endpoint is None:
        return None
    try:
        token = _request(
            f"{endpoint}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        found = _request(
            f"{endpoint}/latest/meta-data/local-hostname",
            method="GET",
            headers={"X-aws-ec2-metadata-token": token},
        )
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return found or None


def hostname(found: str | None) -> str:
    return found if found else socket.gethostname()


@dataclass(frozen=True)
class Limits:
    """What Batch reserved for the worker's container: the payload gets the same."""

    cpus: float | None
    memory_mib: int | None
    gpu_ids: tuple[str, ...]


def job_limits(env: Mapping[str, str]) -> Limits:
    """The job's vCPUs and memory (ECS container metadata v4) and GPUs (NVIDIA_VISIBLE_DEVICES).

    The payload is a sibling container that Batch does not know about: without these it could
    take the whole instance from the other jobs Batch placed there.
    """
    cpus: float | None = None
    memory: int | None = None
    uri = env.get("ECS_CONTAINER_METADATA_URI_V4", "")
    if uri.startswith(("http://", "https://")):
        try:
            request = urllib.request.Request(uri, method="GET")  # noqa: S310 (ECS agent)
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                limits = json.loads(response.read()).get("Limits") or {}
            cpu_units = float(limits.get("CPU") or 0)  # container level: 1024 units per vCPU
            cpus = cpu_units / 1024 if cpu_units > 0 else None
            memory = int(limits.get("Memory") or 0) or None
        except (OSError, urllib.error.URLError, ValueError, AttributeError):
            pass
    visible = env.get("NVIDIA_VISIBLE_DEVICES", "").strip()
    gpus: tuple[str, ...] = ()
    if visible and visible.lower() not in ("all", "none", "void"):
        gpus = tuple(g.strip() for g in visible.split(",") if g.strip())
    return Limits(cpus, memory, gpus)

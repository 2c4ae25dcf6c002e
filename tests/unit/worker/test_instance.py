"""What the worker learns about where it runs: the job's limits from the ECS agent, and GPUs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from shepard_worker.instance import Limits, job_limits, metadata_hostname


class _EcsAgent(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"DockerId": "abc", "Limits": {"CPU": 2048, "Memory": 7000}}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ecs_agent() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EcsAgent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v4/abc"
    finally:
        server.shutdown()


def test_limits_come_from_the_ecs_agent_and_nvidia_visible_devices(ecs_agent: str) -> None:
    env = {"ECS_CONTAINER_METADATA_URI_V4": ecs_agent, "NVIDIA_VISIBLE_DEVICES": "GPU-a,GPU-b"}
    assert job_limits(env) == Limits(cpus=2.0, memory_mib=7000, gpu_ids=("GPU-a", "GPU-b"))


def test_no_agent_means_no_limits() -> None:
    assert job_limits({}) == Limits(None, None, ())
    assert job_limits({"NVIDIA_VISIBLE_DEVICES": "all"}) == Limits(None, None, ())
    # An agent that does not answer: no limits, no error.
    unreachable = {"ECS_CONTAINER_METADATA_URI_V4": "http://127.0.0.1:9/v4/x"}
    assert job_limits(unreachable) == Limits(None, None, ())


def test_no_instance_metadata_service_is_skipped_quietly() -> None:
    assert metadata_hostname({"AWS_EC2_METADATA_DISABLED": "true"}) is None
    assert metadata_hostname({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"}) is None

"""The Spot notice poller against a real tiny metadata endpoint: IMDSv2 tokens, 404 before a
notice, timeouts, an absent service; and the retry rule an interruption is ended by."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from shepard_worker import spot


class _Metadata(BaseHTTPRequestHandler):
    """IMDSv2 as EC2 answers it: a token for a PUT with the TTL header, 401 for a GET without
    that token, 404 for ``spot/instance-action`` until a notice is set."""

    notice: dict[str, str] | None = None
    delay = 0.0
    puts: list[str] = []
    gets: list[str] = []

    def do_PUT(self) -> None:
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        if self.path != "/latest/api/token" or not ttl:
            self._answer(None, 400)
            return
        self.puts.append(ttl)
        self._answer("token-1")

    def do_GET(self) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.headers.get("X-aws-ec2-metadata-token") != "token-1":
            self._answer(None, 401)
            return
        self.gets.append(self.path)
        answers = {
            "/latest/meta-data/instance-type": "c5.large",
            "/latest/meta-data/instance-life-cycle": "on-demand",
            "/latest/meta-data/local-hostname": "ip-10-0-1-5.ec2.internal",
        }
        if self.path == "/latest/meta-data/spot/instance-action" and self.notice is not None:
            self._answer(json.dumps(self.notice))
        else:
            self._answer(answers.get(self.path))

    def _answer(self, body: str | None, code: int = 404) -> None:
        self.send_response(200 if body is not None else code)
        self.end_headers()
        if body is not None:
            self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def metadata() -> Iterator[str]:
    _Metadata.notice = None
    _Metadata.delay = 0.0
    _Metadata.puts = []
    _Metadata.gets = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_no_notice_is_a_404_and_the_token_is_asked_once_with_its_ttl(metadata: str) -> None:
    imds = spot.Imds(metadata)

    assert spot.instance_action(imds) is None
    assert spot.instance_action(imds) is None

    assert _Metadata.puts == [str(spot.TOKEN_TTL_SECONDS)]  # one token, kept
    assert _Metadata.gets == ["/latest/meta-data/spot/instance-action"] * 2
    assert imds.reachable


def test_a_notice_is_read_with_the_token(metadata: str) -> None:
    _Metadata.notice = {"action": "terminate", "time": "2026-11-29T07:00:00Z"}

    notice = spot.instance_action(spot.Imds(metadata))

    assert notice == spot.Notice("terminate", "2026-11-29T07:00:00Z")


def test_a_get_without_the_token_is_refused_by_the_fake(metadata: str) -> None:
    # The fake holds EC2's rule, so the tests above prove the token was sent.
    imds = spot.Imds(metadata)
    imds._token, imds._token_until = "stale", time.monotonic() + 60

    assert imds.get("instance-type") is None
    assert imds._token is None  # a 401 drops the token: the next call asks for a new one
    assert imds.get("instance-type") == "c5.large"


def test_a_slow_service_times_out_quickly(metadata: str) -> None:
    _Metadata.delay = 2.0
    imds = spot.Imds(metadata, timeout=0.2)

    started = time.monotonic()
    assert spot.instance_action(imds) is None

    assert time.monotonic() - started < 1.5


def test_no_service_answers_nothing_at_once_and_never_blocks_the_job() -> None:
    imds = spot.Imds("http://127.0.0.1:9")  # discard port: connection refused

    started = time.monotonic()
    facts = spot.instance_facts(imds)

    assert facts == spot.InstanceFacts(None, None, None)
    assert not imds.reachable
    assert time.monotonic() - started < 1.5
    watcher = spot.NoticeWatcher(spot.Imds(None), lambda n: None, interval=0.05).start()
    assert watcher._thread is None  # turned off: no thread polls anything


def test_the_watcher_calls_back_once_when_the_notice_comes(metadata: str) -> None:
    seen: list[spot.Notice] = []
    came = threading.Event()

    def on_notice(notice: spot.Notice) -> None:
        seen.append(notice)
        came.set()

    watcher = spot.NoticeWatcher(spot.Imds(metadata), on_notice, interval=0.05).start()
    try:
        time.sleep(0.2)
        assert seen == []
        _Metadata.notice = {"action": "terminate", "time": "2026-11-29T07:02:00Z"}
        assert came.wait(5)
        time.sleep(0.2)
    finally:
        watcher.stop()
    assert seen == [spot.Notice("terminate", "2026-11-29T07:02:00Z")]
    assert spot.cause_of(watcher.check_now()) == spot.SPOT_RECLAIM


def test_instance_facts_name_type_lifecycle_and_host(metadata: str) -> None:
    facts = spot.instance_facts(spot.Imds(metadata))

    assert facts == spot.InstanceFacts("c5.large", "on_demand", "ip-10-0-1-5.ec2.internal")


def test_the_endpoint_variable_wins_over_botocores_switches() -> None:
    env = {"AWS_EC2_METADATA_DISABLED": "true", spot.IMDS_ENDPOINT: "http://127.0.0.1:5/"}
    assert spot.endpoint(env) == "http://127.0.0.1:5"
    assert spot.endpoint({"AWS_EC2_METADATA_DISABLED": "true"}) is None
    assert spot.endpoint({}) == "http://169.254.169.254"


@pytest.mark.parametrize(
    ("cause", "attempt", "retried"),
    [
        (spot.SPOT_RECLAIM, 1, True),
        (spot.SPOT_RECLAIM, 2, True),
        (spot.SPOT_RECLAIM, 3, False),  # out of attempts: it ends
        (spot.HOST_TERMINATED, 1, True),
        (spot.JOB_TERMINATED, 1, False),  # a TerminateJob or a timeout: Batch does not retry
    ],
)
def test_an_interruption_is_retried_only_as_the_retry_strategy_says(
    cause: str, attempt: int, retried: bool
) -> None:
    strategy = spot.RetryStrategy.from_env(
        {spot.RETRY_ATTEMPTS: "3", spot.RETRY_ON_HOST_RECLAIM: "True"}
    )

    assert strategy.retried(cause, attempt)[0] is retried


def test_without_a_retry_strategy_nothing_is_retried() -> None:
    retried, why = spot.RetryStrategy.from_env({}).retried(spot.SPOT_RECLAIM, 1)
    assert not retried and "does not retry" in why


def test_on_a_sheep_the_hosts_files_stand_in_for_the_metadata_service(tmp_path: Path) -> None:
    # The hop limit of 1 keeps the worker's container from IMDS: the host's service writes here.
    folder = tmp_path / spot.HOST_FOLDER
    folder.mkdir()
    (folder / "instance-type").write_text("c5.large\n")
    (folder / "instance-life-cycle").write_text("spot\n")
    unreachable = spot.Imds("http://127.0.0.1:9")
    seen: list[spot.Notice] = []

    assert spot.instance_facts(unreachable, folder) == spot.InstanceFacts("c5.large", "spot", None)
    watcher = spot.NoticeWatcher(spot.Imds(None), seen.append, interval=0.05, host_folder=folder)
    watcher.start()
    try:
        assert spot.instance_action(spot.Imds(None), folder) is None
        notice = {"action": "terminate", "time": "2026-11-29T07:02:00Z"}
        (folder / "spot-instance-action").write_text(json.dumps(notice) + "\n")
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watcher.stop()
    assert seen == [spot.Notice("terminate", "2026-11-29T07:02:00Z")]

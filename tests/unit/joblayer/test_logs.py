"""A job's log: its stream, GetLogEvents page after page (the emulator's CloudWatch Logs), one
poller for --follow that backs off when throttled, and a local job's log file."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer import clients
from shepard.joblayer.logs import (
    NoStream,
    Page,
    Throttled,
    follow_file,
    follow_stream,
    log_group,
    stream_of,
)
from shepard.joblayer.store import JobRecord

GROUP = log_group("logsflock")


@pytest.fixture(scope="module")
def logs(emulator: InProcessEmulator) -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        client = clients.client("logs")
        client.create_log_group(logGroupName=GROUP)
        yield client


def _put(logs: Any, stream: str, lines: list[str], start: int = 0) -> None:
    events = [
        {"timestamp": int(time.time() * 1000) + start + i, "message": line}
        for i, line in enumerate(lines)
    ]
    logs.put_log_events(logGroupName=GROUP, logStreamName=stream, logEvents=events)


def _pages(logs: Any, stream: str, calls: list[str | None], limit: int = 10) -> Any:
    """GetLogEvents as the CLI calls it, in pages of ``limit`` so paging is exercised."""

    def fetch(token: str | None) -> Page:
        calls.append(token)
        kwargs: dict[str, Any] = {
            "logGroupName": GROUP,
            "logStreamName": stream,
            "startFromHead": True,
            "limit": limit,
        }
        if token:
            kwargs["nextToken"] = token
        answer = logs.get_log_events(**kwargs)
        return answer["events"], answer.get("nextForwardToken")

    return fetch


def test_the_stream_of_the_record_or_of_an_attempt() -> None:
    record = JobRecord(
        job_id="a" * 32,
        log_stream="shepard/default/three",
        attempts=({"number": 1, "log_stream": "shepard/default/one"}, {"number": 2}),
    )
    assert stream_of(record) == "shepard/default/three"
    assert stream_of(record, 1) == "shepard/default/one"
    with pytest.raises(NoStream, match="no log stream for attempt 2 \\(its attempts: 1, 2\\)"):
        stream_of(record, 2)
    with pytest.raises(NoStream, match="has not started"):
        stream_of(JobRecord(job_id="b" * 32))
    assert stream_of(JobRecord(job_id="c" * 32, attempts=({"log_stream": "s1"},))) == "s1"


def test_every_page_is_read_to_the_end_of_the_stream(logs: Any) -> None:
    logs.create_log_stream(logGroupName=GROUP, logStreamName="paged")
    _put(logs, "paged", [f"line {i}" for i in range(25)])
    lines: list[str] = []
    calls: list[str | None] = []
    count = follow_stream(
        _pages(logs, "paged", calls),
        lines.append,
        follow=False,
        finished=lambda: True,
        sleep=lambda _: None,
    )
    assert count == 25 and lines == [f"line {i}" for i in range(25)]
    assert calls[0] is None and len(calls) >= 3  # 10 + 10 + 5, then the end


def test_follow_prints_lines_as_they_come_and_stops_when_the_job_finished(logs: Any) -> None:
    logs.create_log_stream(logGroupName=GROUP, logStreamName="followed")
    _put(logs, "followed", ["first"])
    lines: list[str] = []
    polls: list[float] = []
    state = {"finished": False}

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:  # the payload writes more while we wait
            _put(logs, "followed", ["second", "third"], start=10)
        elif len(polls) == 2:
            _put(logs, "followed", ["last"], start=20)
            state["finished"] = True

    follow_stream(
        _pages(logs, "followed", []),
        lines.append,
        follow=True,
        finished=lambda: state["finished"],
        sleep=sleep,
        poll=2.0,
    )
    assert lines == ["first", "second", "third", "last"]
    assert polls == [2.0, 2.0]


def test_throttling_backs_off_doubling_and_the_one_poller_goes_on() -> None:
    answers: list[Any] = [Throttled("x"), Throttled("x"), ([{"message": "a\n"}], "t1"), ([], "t1")]
    sleeps: list[float] = []

    def fetch(token: str | None) -> Page:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    lines: list[str] = []
    follow_stream(
        fetch,
        lines.append,
        follow=False,
        finished=lambda: True,
        sleep=sleeps.append,
        poll=2.0,
        max_backoff=5.0,
    )
    assert lines == ["a"] and sleeps == [4.0, 5.0]


def test_a_local_log_file_is_followed_until_the_job_finished(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_bytes(b"one\ntw")
    lines: list[str] = []
    state = {"finished": False, "sleeps": 0}

    def read_from(offset: int) -> bytes:
        with log.open("rb") as handle:
            handle.seek(offset)
            return handle.read()

    def sleep(_: float) -> None:
        state["sleeps"] += 1
        with log.open("ab") as handle:
            handle.write(b"o\nthree" if state["sleeps"] == 1 else b"\n")
        state["finished"] = state["sleeps"] == 2

    done = threading.Event()
    follow_file(
        read_from, lines.append, follow=True, finished=lambda: bool(state["finished"]), sleep=sleep
    )
    done.set()
    assert lines == ["one", "two", "three"]

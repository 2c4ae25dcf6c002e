"""The apply display: plain lines when piped or NO_COLOR, a rich live panel on a terminal."""

from __future__ import annotations

import io
from collections.abc import Iterator

from shepard.tf.events import ApplyComplete, ApplyErrored, ApplyProgress, ApplyStart, Diagnostic
from shepard.tf.progress import ApplyDisplay, wants_rich


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def ticking(start: float = 100.0, step: float = 1.0) -> Iterator[float]:
    now = start
    while True:
        yield now
        now += step


def test_rich_only_on_a_terminal_without_no_color() -> None:
    assert wants_rich(FakeTerminal(), {})
    assert not wants_rich(FakeTerminal(), {"NO_COLOR": ""})
    assert not wants_rich(FakeTerminal(), {"TERM": "dumb"})
    assert not wants_rich(io.StringIO(), {})


def test_plain_display_prints_each_resource_and_a_final_count() -> None:
    out = io.StringIO()
    clock = ticking()
    with ApplyDisplay(
        out, title="Applying flock demo", total=2, env={}, clock=lambda: next(clock)
    ) as d:
        d.handle(ApplyStart("aws_sqs_queue.jobs", "create"))
        d.handle(ApplyProgress("aws_sqs_queue.jobs", "create", 10))
        d.handle(ApplyComplete("aws_sqs_queue.jobs", "create", 25))
        d.handle(ApplyStart("aws_batch_job_queue.q", "create"))
        d.handle(ApplyErrored("aws_batch_job_queue.q", "create", 1))
        d.handle(
            Diagnostic("error", "creating Batch Job Queue: boom", address="aws_batch_job_queue.q")
        )
    lines = out.getvalue().splitlines()
    assert lines[0] == "Applying flock demo: 2 to do"
    assert "  still creating aws_sqs_queue.jobs (10s)" in lines
    assert "[1/2] aws_sqs_queue.jobs: created (25s)" in lines
    assert "[2/2] aws_batch_job_queue.q: FAILED" in lines
    assert "Error: creating Batch Job Queue: boom (with aws_batch_job_queue.q)" in lines
    assert lines[-1].startswith("Applying flock demo: 2/2 done, 1 failed in ")
    assert "\x1b[" not in out.getvalue()


def test_rich_display_logs_completions_and_ends_with_the_count() -> None:
    out = FakeTerminal()
    with ApplyDisplay(out, title="Destroying flock demo", total=1, env={}) as d:
        d.handle(ApplyStart("aws_s3_bucket.inputs", "delete"))
        assert "destroying aws_s3_bucket.inputs" in str(_render_text(d))
        d.handle(ApplyComplete("aws_s3_bucket.inputs", "delete", 2))
    text = out.getvalue()
    assert "[1/1] aws_s3_bucket.inputs: destroyed (2s)" in text
    assert "Destroying flock demo: 1/1 done in" in text


def _render_text(display: ApplyDisplay) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200)
    console.print(display._render())
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]

"""Terraform's -json lines (recorded from Terraform 1.11.4 against the emulator) into events."""

from __future__ import annotations

import json
from pathlib import Path

from shepard.tf.events import (
    ApplyComplete,
    ApplyErrored,
    ApplyProgress,
    ApplyStart,
    ChangeSummary,
    Diagnostic,
    Message,
    PlannedChange,
    parse_line,
)
from shepard.tf.flock import summarize
from shepard.tf.progress import ApplyState

DATA = Path(__file__).parent / "data"


def events(name: str) -> list[object]:
    lines = (DATA / name).read_text().splitlines()
    return [e for e in (parse_line(line) for line in lines) if e is not None]


def test_plan_stream_gives_planned_changes_andsummarize() -> None:
    parsed = events("plan.jsonl")
    assert [e for e in parsed if isinstance(e, PlannedChange)] == [
        PlannedChange("aws_dynamodb_table.jobs", "create"),
        PlannedChange("aws_s3_bucket.inputs", "create"),
    ]
    assert ChangeSummary(add=2, change=0, remove=0, operation="plan") in parsed
    summary = summarize(parsed)  # type: ignore[arg-type]
    assert (summary.add, summary.change, summary.destroy, summary.total) == (2, 0, 0, 2)
    assert summary.describe() == "Plan: 2 to add, 0 to change, 0 to destroy."


def test_apply_stream_gives_start_and_complete_per_resource() -> None:
    parsed = events("apply.jsonl")
    starts = [e.address for e in parsed if isinstance(e, ApplyStart)]
    completes = [e for e in parsed if isinstance(e, ApplyComplete)]
    assert sorted(starts) == ["aws_dynamodb_table.jobs", "aws_s3_bucket.inputs"]
    assert {c.address for c in completes} == set(starts)
    assert all(c.action == "create" and c.elapsed_seconds == 3 for c in completes)
    assert ChangeSummary(add=2, change=0, remove=0, operation="apply") in parsed


def test_apply_error_is_a_diagnostic_with_address_file_and_line() -> None:
    parsed = events("apply_error.jsonl")
    errored = [e for e in parsed if isinstance(e, ApplyErrored)]
    assert [e.address for e in errored] == ["aws_dynamodb_table.dup"]
    (diagnostic,) = [e for e in parsed if isinstance(e, Diagnostic)]
    assert diagnostic.severity == "error"
    assert "Table already exists: tiny-jobs" in diagnostic.summary
    assert diagnostic.address == "aws_dynamodb_table.dup"
    assert (diagnostic.filename, diagnostic.line) == ("dup.tf", 1)
    text = diagnostic.describe()
    assert text.startswith("Error: creating AWS DynamoDB Table (tiny-jobs)")
    assert "with aws_dynamodb_table.dup, on dup.tf line 1" in text


def test_syntax_error_keeps_summary_and_detail() -> None:
    (diagnostic,) = [e for e in events("plan_syntax.jsonl") if isinstance(e, Diagnostic)]
    assert diagnostic.summary == "Invalid expression"
    assert diagnostic.detail.startswith("Expected the start of an expression")
    assert diagnostic.describe().splitlines() == [
        "Error: Invalid expression (on dup.tf line 2)",
        "  Expected the start of an expression, but found an invalid expression token.",
    ]


def test_progress_line_and_unknown_lines() -> None:
    start = json.loads((DATA / "apply.jsonl").read_text().splitlines()[3])
    assert start["type"] == "apply_start"
    start["type"] = "apply_progress"
    start["hook"]["elapsed_seconds"] = 20
    assert parse_line(json.dumps(start)) == ApplyProgress("aws_s3_bucket.inputs", "create", 20.0)
    assert parse_line("   ") is None
    assert parse_line("panic: runtime error") == Message("info", "panic: runtime error")
    assert parse_line('{"@level":"warn","@message":"careful","type":"log"}') == Message(
        "warn", "careful"
    )
    assert parse_line("[1, 2]") == Message("info", "[1, 2]")


def test_summary_without_change_summary_counts_planned_changes() -> None:
    summary = summarize(
        [
            PlannedChange("a.b", "create"),
            PlannedChange("a.c", "replace"),
            PlannedChange("a.d", "update"),
            PlannedChange("a.e", "noop"),
        ]
    )
    assert (summary.add, summary.change, summary.destroy) == (2, 1, 1)
    assert [c.address for c in summary.changes] == ["a.b", "a.c", "a.d"]


def test_apply_state_counts_done_of_total_and_in_progress() -> None:
    state = ApplyState(total=3)
    for event in events("apply_error.jsonl"):
        state.update(event, now=0.0)  # type: ignore[arg-type]
    # apply_error.jsonl: the table and bucket already existed, only the duplicate was attempted.
    assert (state.done, state.failed) == (1, 1)
    assert state.in_progress == {}
    state.update(ApplyStart("aws_sqs_queue.q", "create"), now=5.0)
    assert state.in_progress == {"aws_sqs_queue.q": ("create", 5.0)}
    line = state.update(ApplyComplete("aws_sqs_queue.q", "create", 25.0), now=30.0)
    assert line == "[2/3] aws_sqs_queue.q: created (25s)"
    assert state.in_progress == {}

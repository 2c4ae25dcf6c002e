"""No churn: right after an apply, a second plan changes nothing.

Batch is where churn hurts on AWS (a compute environment or job queue that Terraform wants to
update on every apply blocks or replaces the flock's capacity; a job definition that changes on
every apply leaves a trail of revisions), so for job definitions, job queues and compute
environments nothing is tolerated but settings the emulator does not model at all (it answers
none of them, whatever was applied). Elsewhere, only the emulator's known answers that differ
from what was applied are tolerated, each by resource type and attribute, with its reason; any
other change fails the test, naming the resource and the attributes.

The flock is the session's ``applied_flock`` (tests/integration/conftest.py); the plan is the
CLI's ``shepard-tf plan FLOCK --json`` (``terraform show -json`` of the plan).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest

from shepard.cli import main
from tests.integration.conftest import AppliedFlock

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NEVER_CHURN = ("aws_batch_job_definition", "aws_batch_job_queue", "aws_batch_compute_environment")

Change = dict[str, Any]


def _changed(change: Change) -> set[str]:
    """The attributes a planned update changes (or only knows after the apply)."""
    before = change["change"].get("before") or {}
    after = change["change"].get("after") or {}
    unknown = change["change"].get("after_unknown") or {}
    keys = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    return keys | {k for k, v in unknown.items() if v is True}


def _json_equal(change: Change, key: str) -> bool:
    before = change["change"].get("before") or {}
    after = change["change"].get("after") or {}
    return bool(json.loads(before.get(key) or "null") == json.loads(after.get(key) or "null"))


def _own_tags_echoed(change: Change) -> bool:
    before = change["change"].get("before") or {}
    after = change["change"].get("after") or {}
    kept = [
        t for t in before.get("tag_specifications", []) if t["resource_type"] != "launch-template"
    ]
    return bool(kept == after.get("tag_specifications"))


def _lambda_package_changed_since_apply(change: Change, flock: AppliedFlock) -> bool:
    """The package this plan would deploy differs from the one applied: its code was edited in
    this tree after the session's apply (the packages are deterministic, so equal code gives an
    equal zip)."""
    name = change["address"].split(".")[1]  # module.<scheduler|api>.module.function...
    applied = flock.lambda_zips.get(name)
    built = flock.state_dir / "lambda" / f"{name}.zip"
    return bool(applied) and built.is_file() and sha256(built.read_bytes()).hexdigest() != applied


# resource type -> (attributes it may change, extra condition, reason)
Tolerance = tuple[frozenset[str], Callable[[Change, AppliedFlock], bool], str]
TOLERATED: dict[str, Tolerance] = {
    "aws_sqs_queue": (
        frozenset({"redrive_policy"}),
        lambda change, _: _json_equal(change, "redrive_policy"),
        "moto returns the redrive policy with other JSON whitespace (the same policy)",
    ),
    "aws_sqs_queue_policy": (
        frozenset({"policy"}),
        lambda change, _: (change["change"].get("after_unknown") or {}).get("policy") is True,
        "its document is a data source over the queue, re-read at apply time when the queue"
        " shows moto's whitespace diff, so the policy shows as known after apply",
    ),
    "aws_launch_template": (
        frozenset({"tag_specifications", "default_version", "latest_version"}),
        lambda change, _: _own_tags_echoed(change),
        "moto echoes the template's own tags back as a launch-template tag specification",
    ),
    "aws_lambda_function": (
        frozenset(
            {
                "source_code_hash",
                "code_sha256",
                "last_modified",
                "version",
                "qualified_arn",
                "qualified_invoke_arn",
            }
        ),
        _lambda_package_changed_since_apply,
        "the Lambda code was edited in this tree after the session's apply (its package differs)",
    ),
}


# Batch settings moto does not model: it stores none and describes none, so the provider sees
# them removed after every apply. Tolerated only while moto's Batch source never names the API
# field (checked at run time: a moto that models it makes any diff there fail again), and only
# as "moto answered nothing" (before empty).
MOTO_UNMODELLED_BATCH = {
    ("aws_batch_compute_environment", "update_policy"): "updatePolicy",
    ("aws_batch_job_queue", "job_state_time_limit_action"): "jobStateTimeLimitActions",
}


def _moto_models(api_field: str) -> bool:
    import moto.batch

    folder = Path(moto.batch.__file__).parent
    return any(api_field in p.read_text(encoding="utf-8") for p in folder.glob("*.py"))


def _batch_unmodelled(change: Change) -> str | None:
    before = change["change"].get("before") or {}
    fields = []
    for key in sorted(_changed(change)):
        api_field = MOTO_UNMODELLED_BATCH.get((change["type"], key))
        if api_field is None or before.get(key) or _moto_models(api_field):
            return None
        fields.append(api_field)
    return f"moto's Batch does not model {', '.join(fields)}: it describes none after the apply"


def _why_tolerated(change: Change, flock: AppliedFlock) -> str | None:
    if change["change"]["actions"] != ["update"]:
        return None
    if change["type"] in NEVER_CHURN:
        return _batch_unmodelled(change)
    tolerance = TOLERATED.get(change["type"])
    if tolerance is None:
        return None
    attributes, condition, reason = tolerance
    if _changed(change) <= attributes and condition(change, flock):
        return reason
    return None


def _describe(change: Change) -> str:
    before = change["change"].get("before") or {}
    after = change["change"].get("after") or {}
    unknown = change["change"].get("after_unknown") or {}
    parts = []
    for key in sorted(_changed(change)):
        new = "(known after apply)" if unknown.get(key) is True else repr(after.get(key))
        parts.append(f"{key}: {before.get(key)!r:.200} -> {new:.200}")
    return f"{change['address']} {change['change']['actions']}: " + "; ".join(parts)


def test_a_second_plan_changes_nothing(applied_flock: AppliedFlock, tmp_path: Path) -> None:
    env = dict(applied_flock.env, SHEPARD_CONFIG_DIR=str(tmp_path / "profiles"))
    out, err = io.StringIO(), io.StringIO()
    code = main(["plan", str(applied_flock.flock_file), "--json"], env, stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    plan = json.loads(out.getvalue())
    # Not vacuous: the plan holds the Batch resources (as no-ops).
    planned = {c["type"] for c in plan.get("resource_changes", [])}
    assert set(NEVER_CHURN) <= planned, planned
    changes = [
        c
        for c in plan.get("resource_changes", [])
        if c["change"]["actions"] not in (["no-op"], ["read"])
    ]
    tolerated = {c["address"]: _why_tolerated(c, applied_flock) for c in changes}
    unexpected = [_describe(c) for c in changes if tolerated[c["address"]] is None]
    assert not unexpected, "a second plan changes more than the emulator's known noise:\n" + (
        "\n".join(unexpected)
    )
    for address, reason in tolerated.items():
        print(f"no-churn: tolerated {address}: {reason}")

"""Operating jobs against the emulator, through the CLI as a user runs it: batch ids, `query
--batch`, `wait`, `cancel` and `logs`."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambdas.api.handler import handler as api_handler
from lambdas.scheduler.handler import Runtime, handle
from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.ids import is_batch_id, new_batch_id, new_job_id
from shepard.joblayer.records import Phase, Result
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import FlockFixture, make_test_flock
from shepard.local.invoke_server import serving
from tests.integration.test_check import LocalFlock, local_flock  # noqa: F401 (the fixture)
from tests.unit.cli.helpers import cli_env, run, write_flock_profile

pytestmark = pytest.mark.integration
API = "cliops-api"
BATCH_NOTE = re.compile(r"batch (b-\d{8}T\d{6}-[0-9a-f]{6}): (\d+) job")


@pytest.fixture(scope="module")
def base_flock(emulator: InProcessEmulator) -> Iterator[FlockFixture]:
    """One flock for the module (its Batch queue is the slow part to make)."""
    with pytest.MonkeyPatch.context() as patch:
        emulator.reset()
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        yield make_test_flock("cliops")


@pytest.fixture(scope="module")
def flock(base_flock: FlockFixture) -> FlockFixture:
    """The module's flock; tests tell their jobs apart by their own batch and job ids."""
    return base_flock


@pytest.fixture(scope="module")
def env(flock: FlockFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A CLI profile on the flock, its API Lambda's real handler behind the invoke server."""
    with serving({API: api_handler}, env=flock.env) as server:
        env = cli_env(tmp_path_factory.mktemp("config"))
        write_flock_profile(
            env,
            flock.settings,
            shepard_lambda_to_invoke=API,
            shepard_lambda_endpoint_url=server.url,
        )
        yield env


def _until(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _store(flock: FlockFixture) -> JobStore:
    return JobStore(flock.settings.table_name)


def _batch_note(err: str) -> tuple[str, int]:
    found = BATCH_NOTE.search(err)
    assert found, err
    return found.group(1), int(found.group(2))


def _jobs(flock: FlockFixture, count: int, *, array: bool = True) -> tuple[str, str]:
    """``count`` queued records of a new batch (children of one array job); (batch, parent)."""
    batch_id, parent = new_batch_id(), new_job_id()
    _store(flock).put_many(
        JobRecord(
            job_id=f"{parent}-{index}" if array else new_job_id(),
            batch_id=batch_id,
            array_parent=parent if array else None,
            array_index=index if array else None,
        )
        for index in range(count)
    )
    return batch_id, parent


def _array(tmp_path: Path, count: int) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    for index in range(count):
        (folder / f"job{index}.json").write_text(json.dumps({"INDEX_VALUE": str(index)}))
    return folder


# -- batches ----------------------------------------------------------------------------------


def test_every_job_of_one_submission_has_its_batch_id(
    env: dict[str, str], flock: FlockFixture, tmp_path: Path
) -> None:
    array = run(["batch", "--array", str(_array(tmp_path, 3))], env)
    assert array.code == 0, array.err
    array_batch, count = _batch_note(array.err)
    assert count == 3
    one = run(["batch_via_api", "--json_payload", '{"test1": "x"}'], env)
    assert one.code == 0, one.err
    one_batch, _ = _batch_note(one.err)
    assert is_batch_id(array_batch) and is_batch_id(one_batch) and array_batch != one_batch
    store = _store(flock)
    children = store.query_batch(array_batch)
    parent = array.out.strip()
    assert sorted(r.job_id for r in children) == [f"{parent}-{i}" for i in range(3)]
    [single] = store.query_batch(one_batch)
    assert single.job_id == one.out.strip() and single.batch_id == one_batch
    as_json = run(["batch_via_api", "--json_payload", '{"test1": "y"}', "--json"], env)
    assert is_batch_id(json.loads(as_json.out)["batch_id"])


def test_zips_of_one_batch_command_share_a_batch_id(
    env: dict[str, str], flock: FlockFixture, tmp_path: Path
) -> None:
    folders = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "inputs.json").write_text(json.dumps({"test1": name}))
        folders.append(str(folder))
    result = run(["batch", *folders], env)
    assert result.code == 0, result.err
    batch_id, count = _batch_note(result.err)
    assert count == 2
    # What S3 notifies the scheduler of (through SQS), for each uploaded zip.
    runtime = Runtime.from_settings(flock.settings, sleep=lambda _: None)
    s3 = boto3.client("s3")
    messages = []
    for key in result.out.split():
        head = s3.head_object(Bucket=flock.settings.inputs_bucket, Key=key)
        record = {
            "eventName": "ObjectCreated:Put",
            "eventTime": "2026-11-29T06:00:00.000Z",
            "s3": {
                "bucket": {"name": flock.settings.inputs_bucket},
                "object": {"key": key, "eTag": head["ETag"].strip('"'), "size": 200},
            },
        }
        messages.append({"messageId": key, "body": json.dumps({"Records": [record]})})
    assert handle(runtime, {"Records": messages}) == {"batchItemFailures": []}
    assert len(_store(flock).query_batch(batch_id)) == 2


def test_query_batch_counts_by_result_with_the_cost(
    env: dict[str, str], flock: FlockFixture, tmp_path: Path
) -> None:
    batch_id, parent = _jobs(flock, 4)
    store = _store(flock)
    store.finish(f"{parent}-0", Result.SUCCEEDED, exit_code=0)
    store.finish(f"{parent}-1", Result.FAILED, exit_code=3, reason="exit 3")
    store.claim(f"{parent}-2")
    table = flock.settings.table_name
    boto3.client("dynamodb").update_item(
        TableName=table,
        Key={"UUID": {"S": f"{parent}-0"}},
        UpdateExpression="SET #u = :u",
        ExpressionAttributeNames={"#u": "USAGE"},
        ExpressionAttributeValues={":u": {"M": {"cost_usd": {"N": "0.0125"}}}},
    )
    result = run(["query", "--batch", batch_id], env)
    assert result.code == 0, result.err
    rows = dict(line.split() for line in result.out.splitlines()[2:] if not line.startswith("c"))
    assert rows == {"queued": "1", "running": "1", "succeeded": "1", "failed": "1", "total": "4"}
    assert "cost: $0.0125 (USAGE.cost_usd of 1 job(s))" in result.out
    as_json = json.loads(run(["query", "--batch", batch_id, "--json"], env).out)
    assert as_json["counts"] == {"queued": 1, "running": 1, "succeeded": 1, "failed": 1}
    assert len(as_json["records"]) == 4
    unknown = run(["query", "--batch", "b-20260101T000000-abcdef"], env)
    assert unknown.code == 1 and "no job has batch id" in unknown.err


def test_query_batch_reads_every_page_of_the_index(flock: FlockFixture) -> None:
    store = _store(flock)
    batch_id, _ = _jobs(flock, 7, array=False)
    calls: list[dict[str, Any]] = []
    real = store.client.query

    def small_pages(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs, Limit=2)

    store.client.query = small_pages
    assert len(store.query_batch(batch_id)) == 7
    assert len(calls) == 4 and {c["IndexName"] for c in calls} == {"batch-index"}


def test_wait_exits_1_when_one_job_failed_and_0_when_all_succeeded(
    env: dict[str, str], flock: FlockFixture, tmp_path: Path
) -> None:
    batch_id, parent = _jobs(flock, 3)
    store = _store(flock)
    timed_out = run(["wait", "--batch", batch_id, "--timeout", "0.2", "--interval", "0.05"], env)
    assert timed_out.code == 1
    assert re.search(
        r"timed out after 0:\d\d with 3 of 3 job\(s\) not finished \(3 queued\)", timed_out.out
    )
    for index in range(3):
        store.finish(f"{parent}-{index}", Result.SUCCEEDED, exit_code=0)
    done = run(["wait", "--batch", batch_id], env)
    assert done.code == 0, done.err
    assert re.search(rf"batch {batch_id}: 3 job\(s\) finished in 0:\d\d: 3 succeeded$", done.out)
    # The array parent's id stands for its children; one failure makes it exit 1.
    store.client.update_item(
        TableName=store.table_name,
        Key={"UUID": {"S": f"{parent}-1"}},
        UpdateExpression="SET #r = :f, REASON = :why",
        ExpressionAttributeNames={"#r": "RESULT"},
        ExpressionAttributeValues={":f": {"S": "failed"}, ":why": {"S": "exit code 3"}},
    )
    failed = run(["wait", parent, "0" * 32], env)
    assert failed.code == 1
    assert re.search(r"3 job\(s\) finished in 0:\d\d: 2 succeeded, 1 failed$", failed.out)
    assert f"{parent}-1 failed: exit code 3" in failed.err
    assert f"job {'0' * 32} has no record" in failed.err


def test_wait_waits_for_the_expected_jobs_of_a_batch(
    env: dict[str, str], flock: FlockFixture
) -> None:
    batch_id, parent = _jobs(flock, 1)
    _store(flock).finish(f"{parent}-0", Result.SUCCEEDED)
    short = run(
        ["wait", "--batch", batch_id, "--expect", "2", "--timeout", "0.1", "--interval", "0.05"],
        env,
    )
    assert short.code == 1 and "1 of 2 job(s) not finished" in short.out


# -- the TAG rule -----------------------------------------------------------------------------


def test_retrieve_finds_the_results_of_the_tags_the_issue_names(
    env: dict[str, str], flock: FlockFixture, tmp_path: Path
) -> None:
    """`retrieve --tag "my run ü"` (and a TAG of 101 to 128 characters) finds what the worker
    uploaded for it, and nothing of another TAG."""
    from shepard_worker.results import safe_tag

    from shepard.joblayer.records import result_zip_name

    s3 = boto3.client("s3")
    long_tag = "r" * 60 + "-" + "u" * 59
    names = {}
    for tag in ("my run ü", long_tag, "my run"):
        names[tag] = result_zip_name(new_job_id(), "20261129T061500Z", "root", safe_tag(tag))
        s3.put_object(Bucket=flock.settings.outputs_bucket, Key=names[tag], Body=b"zip")
    assert names["my run ü"].startswith("my_run__result@")
    for tag in ("my run ü", long_tag):
        into = tmp_path / f"results-{len(tag)}"
        result = run(["retrieve", "--tag", tag, "--directory_to_sync_s3_bucket_to", str(into)], env)
        assert result.code == 0, result.err
        assert [p.name for p in into.iterdir()] == [names[tag]]
    refused = run(["retrieve", "--tag", "t" * 129, "--directory_to_sync_s3_bucket_to", "x"], env)
    assert refused.code == 2 and "no job can have that TAG" in refused.err


def test_a_tag_no_name_can_hold_is_a_rejected_job_with_its_reason(flock: FlockFixture) -> None:
    from lambdas.api.handler import handle
    from shepard.joblayer.service import JobService

    answer = handle(JobService.from_settings(flock.settings), {"TAG": "t" * 129})
    assert answer["statusCode"] == 400 and "129 characters long" in answer["error"]
    record = _store(flock).get(answer["rejected_job_id"])
    assert record is not None and record.result is Result.REJECTED
    assert record.reason == answer["error"]


# -- cancel -----------------------------------------------------------------------------------

# A quick-deploy run.sh: writes an output at once, then runs (a sleep no other job uses) until
# stopped. A worker that uploaded after a cancel would leave its result in the outputs bucket.
CANCEL_RUN_SH = """\
#!/bin/bash
set -eu
echo "started $INDEX_VALUE"
echo "partial" > "$ROOT_OUTPUT_NAME/partial.txt"
exec sleep 87.125
"""


def _payload_processes() -> int:
    """Processes running the test's payload on this machine (its sleep)."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"87.125" in cmdline.read_bytes():
                count += 1
        except OSError:
            continue
    return count


def test_cancelling_50_queued_and_running_jobs_on_the_local_flock(
    local_flock: LocalFlock,  # noqa: F811
    tmp_path: Path,
) -> None:
    """None runs within 30 s, all are recorded cancelled with who and why, no output is
    uploaded for them, and a second cancel says they are finished."""
    outputs = local_flock.outputs
    s3 = local_flock.client("s3")
    folder = f"cancel-{time.monotonic_ns()}"
    s3.put_object(Bucket=outputs["quick_deploy_bucket"], Key=f"{folder}/run.sh", Body=CANCEL_RUN_SH)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for index in range(50):
        variables = {"QUICK_DEPLOY_DIRECTORY": folder, "INDEX_VALUE": str(index)}
        (inputs / f"job{index}.json").write_text(json.dumps(variables))
    submitted = run(["batch", "--array", str(inputs)], local_flock.env)
    assert submitted.code == 0, submitted.err
    parent = submitted.out.strip().splitlines()[-1]
    store = JobStore(outputs["table_name"], local_flock.client("dynamodb"))
    children = [f"{parent}-{index}" for index in range(50)]
    _until("a running job", lambda: _payload_processes() > 0, 60)
    running = next(
        job_id for job_id in children if (r := store.get(job_id)) and r.phase is Phase.RUNNING
    )
    followed: list[Any] = []
    follower = threading.Thread(
        target=lambda: followed.append(run(["logs", running, "--follow"], local_flock.env))
    )
    follower.start()

    started = time.monotonic()
    cancelled = run(["cancel", parent, "--reason", "wrong inputs"], local_flock.env)
    assert cancelled.code == 0, cancelled.err
    assert "50 cancelled, 0 already finished" in cancelled.err
    assert re.search(r"-\d+ terminated: was running", cancelled.out), cancelled.out
    _until("no payload running", lambda: _payload_processes() == 0, 30)
    stopped_after = time.monotonic() - started
    print(f"\ncancel: no payload running {stopped_after:.1f} s after `cancel` started")
    assert stopped_after < 30
    records = [store.get(job_id) for job_id in children]
    assert all(r is not None and r.result is Result.CANCELLED for r in records)
    assert all(r is not None and "wrong inputs" in (r.reason or "") for r in records)
    time.sleep(2)  # a worker that would upload on SIGTERM has done so by now
    listed = s3.list_objects_v2(Bucket=outputs["outputs_bucket"]).get("Contents", [])
    assert not [o["Key"] for o in listed if parent in o["Key"]]
    after = [store.get(job_id) for job_id in children]
    assert all(r is not None and r.result is Result.CANCELLED for r in after)

    # `logs --follow` printed the payload's lines as they came, and ended with the job.
    follower.join(30)
    assert not follower.is_alive() and followed[0].code == 0, followed
    assert "started" in followed[0].out, followed[0].out

    # `wait --batch` on the local flock: all finished, none succeeded, so exit 1.
    batch_id, _ = _batch_note(submitted.err)
    waited = run(["wait", "--batch", batch_id, "--timeout", "10"], local_flock.env)
    assert waited.code == 1 and "50 job(s) finished" in waited.out and "50 cancelled" in waited.out

    again = run(["cancel", f"{parent}-3", "--reason", "again"], local_flock.env)
    assert again.code == 1 and f"{parent}-3 finished: already cancelled" in again.out
    unknown = run(["cancel", "f" * 32], local_flock.env)
    assert unknown.code == 1 and "no such job" in unknown.err


# -- IAM: what the commands call is what docs/iam.md allows them ------------------------------


def test_the_commands_calls_are_allowed_by_their_documented_policies(
    env: dict[str, str], flock: FlockFixture
) -> None:
    """Each AWS call `wait`, `query --batch`, `cancel` and `logs` made (as the session's
    recorder saw it) is evaluated against docs/iam.md's policy for that command."""
    from tests.support.iam_actions import authorizations, known_action
    from tests.support.iam_check import DOC, doc_resource, documented_policies
    from tests.support.iam_policy import Request, evaluate
    from tests.support.iam_record import RECORDER

    batch_id, parent = _jobs(flock, 2)
    store = _store(flock)
    logs = boto3.client("logs")
    group = f"/aws/batch/{flock.settings.flock}"
    if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        logs.create_log_group(logGroupName=group)
    stream = f"shepard/default/{new_job_id()}"
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": now, "message": "hello from the payload"}],
    )
    store.client.update_item(
        TableName=store.table_name,
        Key={"UUID": {"S": f"{parent}-0"}},
        UpdateExpression="SET #s = :s, #b = :b",
        ExpressionAttributeNames={"#s": "LOG_STREAM", "#b": "BATCH_JOB_ID"},
        ExpressionAttributeValues={":s": {"S": stream}, ":b": {"S": "f00d:0"}},
    )
    before = len(RECORDER.all_calls())
    shown = run(["logs", f"{parent}-0"], env)
    assert shown.code == 0 and shown.out == "hello from the payload\n", shown.err
    assert run(["wait", "--batch", batch_id, "--timeout", "0"], env).code == 1
    assert run(["query", "--batch", batch_id], env).code == 0
    assert run(["cancel", "--batch", batch_id, "--reason", "iam"], env).code == 0
    calls = [c for c in RECORDER.all_calls()[before:] if c.part.startswith("cli:")]
    commands = {c.part for c in calls}
    assert {"cli:logs", "cli:wait", "cli:query", "cli:cancel"} <= commands, commands
    policies = documented_policies(DOC.read_text())
    outputs = {"table_name": flock.settings.table_name, "flock_name": flock.settings.flock}
    checked = set()
    for call in calls:
        command = call.part.removeprefix("cli:")
        if command not in ("logs", "wait", "query", "cancel"):
            continue
        for action, resource in authorizations(
            call.service, call.operation, call.params, "us-east-1", "123456789012"
        ):
            if call.service == "sts":
                continue
            generic = doc_resource(resource, outputs).replace("us-east-1", "REGION")
            generic = generic.replace("123456789012", "ACCOUNT")
            assert known_action(action), action
            request = Request(action, generic, "arn:aws:iam::123456789012:user/cli")
            outcome = evaluate(request, [policies[command]])
            assert outcome.allowed, f"{command}: {action} on {generic}: {outcome.decision.value}"
            checked.add((command, action))
    assert {
        ("logs", "logs:GetLogEvents"),
        ("wait", "dynamodb:Query"),
        ("query", "dynamodb:Query"),
        ("cancel", "dynamodb:UpdateItem"),
        ("cancel", "batch:CancelJob"),
    } <= checked

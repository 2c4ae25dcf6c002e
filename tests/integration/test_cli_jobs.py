"""batch, query and retrieve against the emulator, run in-process as a user would."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import make_test_flock
from tests.unit.cli.helpers import cli_env, recording_proxy, run, write_flock_profile

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def module_flock(emulator: InProcessEmulator) -> Iterator[FlockSettings]:
    """One set of buckets and table for the module: making them is the slow part."""
    with pytest.MonkeyPatch.context() as patch:
        emulator.reset()
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        yield make_test_flock("clitest", batch=False).settings


@pytest.fixture
def flock(module_flock: FlockSettings) -> FlockSettings:
    """The module's flock, emptied: no objects, no job records."""
    s3 = boto3.resource("s3")
    for bucket in (module_flock.inputs_bucket, module_flock.outputs_bucket):
        s3.Bucket(bucket).objects.all().delete()
    table = boto3.resource("dynamodb").Table(module_flock.table_name)
    for item in table.scan(ProjectionExpression="#u", ExpressionAttributeNames={"#u": "UUID"})[
        "Items"
    ]:
        table.delete_item(Key={"UUID": item["UUID"]})
    return module_flock


@pytest.fixture
def env(flock: FlockSettings, tmp_path: Path) -> dict[str, str]:
    env = cli_env(tmp_path / "config")
    write_flock_profile(env, flock)
    return env


def _job_folder(root: Path, name: str, inputs: object, **files: bytes) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "inputs.json").write_text(json.dumps(inputs))
    for file_name, data in files.items():
        (folder / file_name).write_bytes(data)
    return folder


def _zip_names(body: bytes) -> set[str]:
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        return set(zf.namelist())


# -- batch ------------------------------------------------------------------------------------


def test_batch_uploads_one_zip_per_folder_and_prints_its_name(
    env: dict[str, str], flock: FlockSettings, tmp_path: Path
) -> None:
    one = _job_folder(tmp_path, "one", {"test1": "a"}, **{"data.txt": b"hello"})
    two = _job_folder(tmp_path, "two", {"test1": "b"})
    result = run(["batch", "--path_to_local_folder_to_batch", str(one), str(two)], env)
    assert result.code == 0, result.err
    names = result.out.split()
    assert len(names) == 2 and all(n.endswith(".zip") and len(n) == 36 for n in names)
    s3 = boto3.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=flock.inputs_bucket)["Contents"]}
    assert keys == set(names)
    first = s3.get_object(Bucket=flock.inputs_bucket, Key=names[0])["Body"].read()
    assert _zip_names(first) == {"inputs.json", "data.txt"}
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        assert json.loads(zf.read("inputs.json")) == {"test1": "a"}


def test_batch_override_name_and_multipart_upload(
    env: dict[str, str], flock: FlockSettings, tmp_path: Path
) -> None:
    big = os.urandom(9 * 1024 * 1024)  # over the 8 MiB multipart threshold, incompressible
    folder = _job_folder(tmp_path, "big", {"TAG": "run1"}, **{"blob.bin": big})
    result = run(
        ["batch", "--path-to-local-folder-to-batch", str(folder), "--zip_name_override", "mine"],
        env,
    )
    assert result.code == 0, result.err
    assert result.out.strip() == "mine.zip"
    head = boto3.client("s3").head_object(Bucket=flock.inputs_bucket, Key="mine.zip")
    assert head["ContentLength"] > len(big)
    assert "-" in head["ETag"]  # a multipart upload's ETag


def test_batch_refuses_bad_inputs_before_uploading(
    env: dict[str, str], flock: FlockSettings, tmp_path: Path
) -> None:
    good = _job_folder(tmp_path, "good", {"test1": "a"})
    bad = _job_folder(tmp_path, "bad", {"uuid": "reserved"})
    result = run(["batch", "--path_to_local_folder_to_batch", str(good), str(bad)], env)
    assert result.code == 2
    assert f"while checking {bad / 'inputs.json'}" in result.err and "reserved" in result.err
    assert "nothing was uploaded" in result.err
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(["batch", "--path_to_local_folder_to_batch", str(empty)], env)
    assert result.code == 2 and "has no inputs.json" in result.err
    listing = boto3.client("s3").list_objects_v2(Bucket=flock.inputs_bucket)
    assert listing.get("KeyCount", 0) == 0


def test_batch_missing_bucket_is_an_aws_error_with_exit_3(
    env: dict[str, str], tmp_path: Path
) -> None:
    folder = _job_folder(tmp_path, "one", {"a": "1"})
    result = run(
        [
            "batch",
            "--path_to_local_folder_to_batch",
            str(folder),
            "--s3_bucket_to_upload_to",
            "nope",
        ],
        env,
    )
    assert result.code == 3 and "NoSuchBucket" in result.err and "Traceback" not in result.err


# -- query ------------------------------------------------------------------------------------


def _records(flock: FlockSettings) -> None:
    store = JobStore(flock.table_name)
    store.put_many(
        [
            JobRecord(job_id="a" * 32, created_at="2026-11-25T08:00:00.000001Z"),
            JobRecord(
                job_id="b" * 32,
                created_at="2026-11-25T08:00:01.000000Z",
                phase=Phase.RUNNING,
                status=Status.CALLING_PAYLOAD_CODE,
                tag="t1",
                start_time="20261125T080005Z",
            ),
            JobRecord(
                job_id="c" * 32,
                created_at="2026-11-25T08:00:02.000000Z",
                phase=Phase.FINISHED,
                status=Status.DONE,
                result=Result.SUCCEEDED,
                start_time="20261125T080005Z",
                end_time="20261125T081005Z",
            ),
            JobRecord(
                job_id="d" * 32,
                created_at="2026-11-25T08:00:03.000000Z",
                phase=Phase.FINISHED,
                status=Status.DONE,
                result=Result.FAILED,
                reason="exit 1",
            ),
        ]
    )


def test_query_all_by_phase_and_by_result(env: dict[str, str], flock: FlockSettings) -> None:
    _records(flock)
    result = run(["query"], env)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[1].split() == ["job", "status", "result", "tag", "start", "duration", "cost"]
    assert [line.split()[0] for line in lines[2:]] == ["a" * 32, "b" * 32, "c" * 32, "d" * 32]
    finished = next(line for line in lines if line.startswith("c" * 32))
    assert "succeeded" in finished and "10:00" in finished  # 10 minutes
    running = json.loads(run(["query", "--status", "running", "--json"], env).out)
    assert [r["UUID"] for r in running] == ["b" * 32]
    assert running[0]["JOB_STATUS"] == "calling_payload_code" and running[0]["TAG"] == "t1"
    failed = json.loads(run(["query", "--status", "failed", "--json"], env).out)
    assert [(r["UUID"], r["REASON"]) for r in failed] == [("d" * 32, "exit 1")]
    assert (
        json.loads(run(["query", "--status", "queued", "--json"], env).out)[0]["UUID"] == "a" * 32
    )


def test_query_uses_the_gsi_and_never_scans(env: dict[str, str], flock: FlockSettings) -> None:
    _records(flock)
    with recording_proxy(env["AWS_ENDPOINT_URL"]) as proxy:
        env = {**env, "AWS_ENDPOINT_URL": proxy.url}
        everything = run(["query", "--json"], env)
        assert everything.code == 0, everything.err
        assert len(json.loads(everything.out)) == 4
        succeeded = run(["query", "--status", "succeeded", "--json"], env)
        assert len(json.loads(succeeded.out)) == 1
    # one Query per phase (queued, running, finished), then one of finished with a filter
    assert [r.operation for r in proxy.requests] == ["Query"] * 4


def test_query_watch_refreshes_until_interrupted(env: dict[str, str], flock: FlockSettings) -> None:
    import argparse

    from shepard.cli import build_parser
    from shepard.commands import Context
    from shepard.commands.jobs import query

    _records(flock)
    out = io.StringIO()
    args = build_parser().parse_args(["query", "--watch", "0.5", "--status", "running"])
    ctx = Context.create(args, env=env, parser=argparse.ArgumentParser(), stdout=out)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    ctx.sleep = sleep
    assert query(ctx) == 0
    assert sleeps == [0.5, 0.5] and out.getvalue().count("b" * 32) == 2


# -- retrieve ---------------------------------------------------------------------------------


def _result_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_retrieve_twice_downloads_only_what_is_new(
    env: dict[str, str], flock: FlockSettings, tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    bucket = flock.outputs_bucket
    plain = f"result@{'c' * 32}_20261125T080005Z_root.zip"
    tagged = f"run1_result@{'d' * 32}_20261125T080005Z_root.zip"
    s3.put_object(Bucket=bucket, Key=plain, Body=_result_zip({"out.txt": b"one"}))
    s3.put_object(Bucket=bucket, Key=tagged, Body=_result_zip({"out.txt": b"two"}))
    target = tmp_path / "results"
    args = ["retrieve", "--directory_to_sync_s3_bucket_to", str(target)]
    first = run(args, env)
    assert first.code == 0, first.err
    assert sorted(Path(p).name for p in first.out.split()) == sorted([plain, tagged])
    assert "downloaded 2 result(s)" in first.err
    second = run(args, env)
    assert second.out == "" and "downloaded 0 result(s)" in second.err
    assert "2 already present" in second.err
    # A changed result (same name, new content) is fetched again; nothing else is.
    s3.put_object(Bucket=bucket, Key=plain, Body=_result_zip({"out.txt": b"changed!"}))
    third = run(args, env)
    assert [Path(p).name for p in third.out.split()] == [plain]
    # --tag and --unzip
    tag_dir = tmp_path / "tagged"
    tagged_run = run(
        ["retrieve", "--directory-to-sync-s3-bucket-to", str(tag_dir), "--tag", "run1", "--unzip"],
        env,
    )
    assert [Path(p).name for p in tagged_run.out.split()] == [tagged]
    assert (tag_dir / tagged.removesuffix(".zip") / "out.txt").read_bytes() == b"two"
    assert not list(tag_dir.glob(".*.part"))


def test_console_script_against_the_emulator(
    env: dict[str, str], flock: FlockSettings, tmp_path: Path
) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).with_name("shepard-tf")
    _records(flock)
    listed = subprocess.run(
        [str(script), "query", "--status", "succeeded", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert [r["UUID"] for r in json.loads(listed.stdout)] == ["c" * 32]
    bad = _job_folder(tmp_path, "bad", ["not", "an", "object"])
    refused = subprocess.run(
        [str(script), "batch", "--path_to_local_folder_to_batch", str(bad)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "JSON object" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_local_flock_profile_needs_no_aws_credentials(
    flock: FlockSettings,
    emulator: InProcessEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A newcomer running the local flock has no AWS account: the profile's loopback endpoint is
    # enough, whatever (or nothing) the AWS credential chain holds.
    env = {
        k: v
        for k, v in cli_env(tmp_path / "config").items()
        if not k.startswith("AWS_") or k in ("AWS_REGION", "AWS_DEFAULT_REGION")
    }
    empty = tmp_path / "no-aws"
    empty.mkdir()
    env.update(
        {
            "HOME": str(empty),
            "AWS_CONFIG_FILE": str(empty / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    write_flock_profile(env, flock, shepard_endpoint_url=emulator.endpoint_url)
    store = JobStore(flock.table_name)
    store.create(JobRecord(job_id="a" * 32, variables={"x": "1"}))
    # boto3 also reads this process's environment: leave no key there either.
    for key in [k for k in os.environ if k.startswith("AWS_") and k not in env]:
        monkeypatch.delenv(key)
    for key in ("HOME", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run(["query", "--json"], env)
    assert result.code == 0, result.err
    assert [job["UUID"] for job in json.loads(result.out)] == ["a" * 32]

"""Benchmark: the CLI at scale, `batch` of many folders and `query` of a large job table.

Against moto's server in a process of its own (so the server does not share the CLI's GIL), with
the CLI run in this process (``shepard.cli.main``) as a user runs it:

- **batch**: 200 small folders (an ``inputs.json`` and a 4 KiB file each). Ours: one
  ``shepard-tf batch`` of the 200 folders (zips and uploads 8 at a time under one progress bar);
  baseline: the same command one folder at a time (``--parallel 1``); a second baseline (at the
  first latency only): one ``shepard-tf batch`` run per folder, as the original CLI took them.
  Measured once per ``--latency-ms`` value (default 0, 25 and 100), a wait added on the client
  side before each request is sent, in every run alike: the emulator answers from this machine
  with no network between, S3 from tens of milliseconds away in its region (more from a laptop
  on another continent), and that wait is what moving folders in parallel hides; 0 measures the
  emulator as it is.
- **query**: a job table of 100,000 records (``--records``; written with BatchWriteItem), 99% of
  them finished. Ours: ``shepard-tf query --json`` (the newest 100, from one Query per phase on
  the phase index, a page at a time); baseline: a Scan of the whole table, sorted by CREATED_AT
  for the same newest 100 (what a CLI without the index does). Both return the same 100 jobs.

Prints ours, the baseline and the ratio (baseline / ours) for each. Run:
``.venv/bin/python bench/bench_cli_scale.py [--quick]`` (``--quick``: 40 folders, 10,000
records).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3
import botocore.httpsession

from shepard.cli import main
from shepard.emulator import SubprocessEmulator, emulator_environment
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import create_job_table
from shepard.profiles import ProfileStore

FLOCK = "benchscale"


@contextmanager
def request_latency(seconds: float) -> Iterator[None]:
    """Every HTTP request this process sends waits ``seconds`` first (a round trip to AWS)."""
    original = botocore.httpsession.URLLib3Session.send

    def send(self: Any, request: Any) -> Any:
        time.sleep(seconds)
        return original(self, request)

    botocore.httpsession.URLLib3Session.send = send  # type: ignore[method-assign]
    try:
        yield
    finally:
        botocore.httpsession.URLLib3Session.send = original  # type: ignore[method-assign]


def cli(argv: list[str], env: dict[str, str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env, stdout=out, stderr=err)
    if code != 0:
        raise SystemExit(f"shepard-tf {argv[0]} failed ({code}): {err.getvalue()}")
    return out.getvalue()


def cli_env(config: Path, table: str, bucket: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEPARD_")}
    env.update({"SHEPARD_CONFIG_DIR": str(config), "NO_COLOR": "1"})
    store = ProfileStore.from_env(env)
    store.save(
        FLOCK,
        {
            "shepard_s3_bucket_to_upload_to": bucket,
            "shepard_dynamo_db_to_query": table,
            "shepard_region": "us-east-1",
        },
    )
    store.set_current(FLOCK)
    return env


def make_folders(root: Path, count: int) -> list[str]:
    folders = []
    for n in range(count):
        folder = root / f"job{n:04d}"
        folder.mkdir(parents=True)
        (folder / "inputs.json").write_text(json.dumps({"N": str(n), "TAG": f"bench{n}"}))
        (folder / "data.bin").write_bytes(os.urandom(4096))
        folders.append(str(folder))
    return folders


def bench_batch(
    env: dict[str, str], bucket: str, count: int, latency: float, *, per_folder_runs: bool
) -> None:
    s3 = boto3.client("s3")
    with tempfile.TemporaryDirectory() as tmp:
        folders = make_folders(Path(tmp), count)
        cli(["batch", folders[0]], env)  # warm up: botocore's models, the first connection

        def objects() -> int:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            return sum(len(page.get("Contents", [])) for page in pages)

        def timed(runs: list[list[str]]) -> float:
            before = objects()
            with request_latency(latency):
                start = time.perf_counter()
                for argv in runs:
                    cli(argv, env)
                seconds = time.perf_counter() - start
            assert objects() - before == count, "every folder uploaded once"
            return seconds

        ours = timed([["batch", *folders]])
        one_at_a_time = timed([["batch", *folders, "--parallel", "1"]])
        one_run_each = timed([["batch", f] for f in folders]) if per_folder_runs else None
    label = f"batch of {count} folders (+{latency * 1000:.0f} ms a request)"
    print(f"{label} ours (8 at a time): {ours:.2f} s")
    print(f"{label} baseline (--parallel 1): {one_at_a_time:.2f} s")
    ratios = f"{one_at_a_time / ours:.1f}x (one at a time)"
    if one_run_each is not None:
        print(f"{label} baseline (one CLI run per folder): {one_run_each:.2f} s")
        ratios += f", {one_run_each / ours:.1f}x (one run per folder)"
    print(f"{label} ratio: {ratios}")


def seed(table: str, count: int) -> None:
    """``count`` records, 1% of them queued or running, CREATED_AT one second apart."""
    store = JobStore(table, boto3.client("dynamodb"))

    def record(n: int) -> JobRecord:
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_790_000_000 + n))
        phase = (Phase.QUEUED, Phase.RUNNING)[n % 2] if n % 100 == 0 else Phase.FINISHED
        finished = phase is Phase.FINISHED
        return JobRecord(
            job_id=f"{n:08d}-bench",
            status=Status.DONE if finished else Status.IN_PROGRESS,
            phase=phase,
            created_at=f"{created}.000000Z",
            result=Result.SUCCEEDED if finished else None,
            variables={"N": str(n)},
            tag=f"bench{n}",
        )

    chunk = 5000
    with ThreadPoolExecutor(max_workers=4) as pool:  # setup, not measured: 4 writers
        list(
            pool.map(
                lambda start: store.put_many(
                    record(n) for n in range(start, min(count, start + chunk))
                ),
                range(0, count, chunk),
            )
        )


def scan_newest(table: str, limit: int) -> list[str]:
    client = boto3.client("dynamodb")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        answer = client.scan(**kwargs)
        items += answer.get("Items", [])
        if not answer.get("LastEvaluatedKey"):
            break
        kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
    items.sort(key=lambda item: (item["CREATED_AT"]["S"], item["UUID"]["S"]))
    return [item["UUID"]["S"] for item in items[-limit:]]


@contextmanager
def items_read() -> Iterator[list[int]]:
    """[requests, items read] of every Query and Scan this process makes (DynamoDB's
    ScannedCount: what it reads, and bills, before any filter), counted from the answers."""
    from botocore.client import BaseClient

    counts = [0, 0]
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def counted(self: Any, name: str, params: dict[str, Any]) -> Any:
        answer = original(self, name, params)
        if name in ("Query", "Scan"):
            counts[0] += 1
            counts[1] += int(answer.get("ScannedCount", 0))
        return answer

    BaseClient._make_api_call = counted  # type: ignore[attr-defined]
    try:
        yield counts
    finally:
        BaseClient._make_api_call = original  # type: ignore[attr-defined]


def bench_query(env: dict[str, str], table: str, count: int, repeats: int) -> None:
    start = time.perf_counter()
    seed(table, count)
    print(f"query: seeded {count} records in {time.perf_counter() - start:.1f} s")
    ours_times, base_times = [], []
    for _ in range(repeats):
        with items_read() as ours_read:
            start = time.perf_counter()
            shown = [r["UUID"] for r in json.loads(cli(["query", "--json"], env))]
            ours_times.append(time.perf_counter() - start)
        with items_read() as base_read:
            start = time.perf_counter()
            scanned = scan_newest(table, len(shown))
            base_times.append(time.perf_counter() - start)
        assert shown == scanned, "the same newest jobs either way"
    ours, base = min(ours_times), min(base_times)
    label = f"query of {count} records (newest {len(shown)})"
    print(
        f"{label} ours (phase index, paged): {ours:.3f} s, "
        f"{ours_read[0]} requests, {ours_read[1]} items read"
    )
    print(
        f"{label} baseline (Scan, sorted): {base:.3f} s, "
        f"{base_read[0]} requests, {base_read[1]} items read"
    )
    print(
        f"{label} ratio: {base / ours:.1f}x time, "
        f"{base_read[1] / max(ours_read[1], 1):.0f}x items read"
    )


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 folders, 10,000 records")
    parser.add_argument("--folders", type=int, default=200)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument(
        "--latency-ms",
        type=float,
        nargs="+",
        default=[0.0, 25.0, 100.0],
        help="added to each request, one measure per value (default 0 25 100)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("batch", "query"))
    args = parser.parse_args(argv)
    if args.quick:
        args.folders, args.records, args.repeats = 40, 10_000, 1
    # A `timeout` or Ctrl-C still stops moto's server (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    emulator = SubprocessEmulator().start()
    try:
        os.environ.update(emulator_environment(emulator.endpoint_url, "us-east-1"))
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            os.environ.pop(key, None)
        bucket, table = f"{FLOCK}-inputs", f"{FLOCK}-jobs"
        boto3.client("s3").create_bucket(Bucket=bucket)
        create_job_table(boto3.client("dynamodb"), table)
        with tempfile.TemporaryDirectory() as config:
            env = cli_env(Path(config), table, bucket)
            if args.only in (None, "batch"):
                for n, latency in enumerate(args.latency_ms):
                    bench_batch(env, bucket, args.folders, latency / 1000, per_folder_runs=n == 0)
            if args.only in (None, "query"):
                bench_query(env, table, args.records, args.repeats)
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main_())

"""Benchmark: 10,000 zip drops fan in to array jobs, against one SubmitJob per drop.

Against moto's server (its own process), uploads N small zips to a test flock's inputs bucket,
then drives the scheduler Lambda's handler (``lambdas/scheduler/handler.py``, the real code) with
the S3 events in SQS batches of ``--batch-size`` messages, as the event source mapping delivers
them. SubmitJob calls are counted with a botocore hook. One batch in twenty is delivered a second
time (SQS is at-least-once), and must add nothing. Then the table is read: every drop must have
exactly one record.

The baseline, in the same run, is the same handler given batches of one message (what a batch
size of 1 gives: one plain job, one SubmitJob, per drop) over ``--baseline`` drops.

Prints ``fanin ours: ...``, ``fanin baseline: ...`` and ``fanin ratio: ...`` lines and exits 1
when a target is missed (at most 1 SubmitJob per 100 jobs; all records present, none twice).

Run: ``.venv/bin/python bench/bench_fanin.py [--drops 10000] [--quick]``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3
from botocore.config import Config

from lambdas.scheduler.handler import Runtime, handle
from shepard.emulator import SubprocessEmulator, emulator_environment
from shepard.joblayer.store import JobStore
from shepard.joblayer.testing import FlockFixture, make_test_flock


def small_zip(index: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("inputs.json", json.dumps({"I": str(index), "TAG": "fanin"}))
        archive.writestr("data.txt", f"drop {index}\n" * 20)
    return buffer.getvalue()


def upload(flock: FlockFixture, prefix: str, count: int) -> list[dict[str, Any]]:
    """Upload ``count`` zips (16 threads); return the S3 event record of each, as S3 sends it."""
    s3 = boto3.client("s3", config=Config(max_pool_connections=32))
    bucket = flock.settings.inputs_bucket

    def one(index: int) -> dict[str, Any]:
        key = f"{prefix}/{index:05d}.zip"
        data = small_zip(index)
        answer = s3.put_object(Bucket=bucket, Key=key, Body=data)
        return {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "eventTime": "2026-11-29T07:00:00.000Z",
            "s3": {
                "bucket": {"name": bucket},
                "object": {
                    "key": key,
                    "size": len(data),
                    "eTag": answer["ETag"].strip('"'),
                    "sequencer": f"{index:016X}",
                },
            },
        }

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(count)))


def sqs_batches(records: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """The Lambda events: one SQS message per S3 event, ``size`` messages an invocation."""
    messages = [
        {"messageId": f"m-{i}", "body": json.dumps({"Records": [record]})}
        for i, record in enumerate(records)
    ]
    return [{"Records": messages[i : i + size]} for i in range(0, len(messages), size)]


class SubmitCounter:
    def __init__(self, client: Any) -> None:
        self.calls = 0
        client.meta.events.register("after-call.batch.SubmitJob", self._after)

    def _after(self, **_: Any) -> None:
        self.calls += 1


def run(flock: FlockFixture, events: list[dict[str, Any]], redeliver_every: int) -> dict[str, Any]:
    rt = Runtime.from_settings(flock.settings)
    counter = SubmitCounter(rt.service.submitter.client)
    failures = 0
    started = time.monotonic()
    for number, event in enumerate(events):
        failures += len(handle(rt, event)["batchItemFailures"])
        if redeliver_every and number % redeliver_every == 0:
            failures += len(handle(rt, event)["batchItemFailures"])  # SQS delivered it again
    seconds = time.monotonic() - started
    records = JobStore(flock.settings.table_name).scan_all()
    keys = Counter(record.input_zip_name for record in records)
    return {
        "submits": counter.calls,
        "records": len(records),
        "twice": sum(1 for n in keys.values() if n > 1),
        "failures": failures,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--baseline", type=int, default=500, help="drops of the baseline run")
    parser.add_argument("--quick", action="store_true", help="1,000 drops, 100 for the baseline")
    args = parser.parse_args(argv)
    drops, base_drops = (1000, 100) if args.quick else (args.drops, args.baseline)
    logging.getLogger("shepard.scheduler").setLevel(logging.WARNING)
    server = SubprocessEmulator().start()
    os.environ.update(emulator_environment(server.endpoint_url))
    try:
        flock = make_test_flock("fanin")
        started = time.monotonic()
        records = upload(flock, "ours", drops)
        print(f"fanin: uploaded {drops} zips in {time.monotonic() - started:.1f} s")
        ours = run(flock, sqs_batches(records, args.batch_size), redeliver_every=20)
        base_flock = flock.fresh("base")
        base_records = upload(base_flock, "base", base_drops)
        base = run(base_flock, sqs_batches(base_records, 1), redeliver_every=0)
    finally:
        server.stop()
    per_100_ours = 100 * ours["submits"] / drops
    per_100_base = 100 * base["submits"] / base_drops
    print(
        f"fanin ours: drops={drops} batch_size={args.batch_size} submits={ours['submits']} "
        f"per_100_jobs={per_100_ours:.2f} records={ours['records']} twice={ours['twice']} "
        f"failures={ours['failures']} seconds={ours['seconds']:.1f} "
        f"jobs_per_s={drops / ours['seconds']:.0f}"
    )
    print(
        f"fanin baseline: drops={base_drops} batch_size=1 submits={base['submits']} "
        f"per_100_jobs={per_100_base:.2f} records={base['records']} "
        f"seconds={base['seconds']:.1f} jobs_per_s={base_drops / base['seconds']:.0f}"
    )
    print(
        f"fanin ratio: submits_per_job={per_100_base / max(per_100_ours, 1e-9):.0f}x fewer "
        f"jobs_per_s={(drops / ours['seconds']) / (base_drops / base['seconds']):.1f}x"
    )
    ok = (
        per_100_ours <= 1.0
        and ours["records"] == drops
        and ours["twice"] == 0
        and ours["failures"] == 0
    )
    print("fanin: " + ("targets met" if ok else "TARGET MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

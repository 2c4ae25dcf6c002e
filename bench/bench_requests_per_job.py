"""Benchmark: the AWS requests each job costs, outside the payload's own I/O, beside the original's.

Drives the real code against moto's server (its own process): the scheduler Lambda's handler
(``lambdas/scheduler/handler.py``) for zip drops, the API Lambda's handler (``lambdas/api``) for
API jobs and arrays, and the worker (``shepard_worker.run.main``, the process runner, a payload
that writes one output file and calls no AWS). Every HTTP request any botocore client sends
(retries included) is counted with a ``before-send`` hook registered on each client made, and
split into the submitting side (Lambda) and the worker side, per job:

- a lone zip drop (a batch of one message: a plain job);
- a zip drop in a batch of 100 (one array job; the Lambda's requests divided by 100);
- an API job;
- an array child of an API array of 10,000 (the Lambda's requests divided by 10,000).

The original Shepard's counts come from its code (github.com/Jmevorach/New-Shepard:
infrastructure/arbitrary_scheduler_code, arbitrary_job_batching_endpoint_code and
code/arbitrary_worker_code.py), counted by hand in ``ORIGINAL`` below; its worker copies files
with the AWS CLI (``aws s3 cp``: HeadObject then GetObject to download, one PutObject to upload a
small file). The user's own upload of the zip and the CLI's Lambda Invoke are left out on both
sides (one each per job for the original; for ours one Invoke per API array).

Prints one line per kind of job, the worker's requests by the function that made them, and two
verdicts on the targets (a zip drop in a batch of 100 at most half the original's requests, an
array child under 2): for the submitting side alone, and with the worker's requests added. Exits
1 when either is missed.

Run: ``.venv/bin/python bench/bench_requests_per_job.py [--array 10000]``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "worker"))

import boto3
import botocore.session

from lambdas.api.handler import handle as api_handle
from lambdas.scheduler.handler import Runtime
from lambdas.scheduler.handler import handle as scheduler_handle
from shepard.emulator import SubprocessEmulator, emulator_environment
from shepard.joblayer.service import JobService
from shepard.joblayer.store import JobStore
from shepard.joblayer.testing import FlockFixture, make_test_flock

# The original's requests per job, from its code (see the module docstring), for a job with one
# non-empty output folder, no EFS/Lustre, no quick deploy, no INSTANCE_TAGS:
ORIGINAL = {
    # scheduler Lambda: GetQueueUrl, HeadObject (content_length), 4 ranged GETs (end record,
    # central directory, local header, inputs.json), SubmitJob, BatchWriteItem (the record)
    "zip drop": {"submit": 8, "worker": 10, "worker_data": 3},
    # endpoint Lambda: SubmitJob, BatchWriteItem
    "api job": {"submit": 2, "worker": 8, "worker_data": 1},
    # no arrays: each child is an API job of its own
    "array child": {"submit": 2, "worker": 8, "worker_data": 1},
}
# worker: GetItem + BatchWriteItem (claim, in_progress), GetSecretValue, BatchWriteItem
# (calling_payload_code), [HeadObject + GetObject: aws s3 cp of the input zip, zip drops only],
# BatchWriteItem (job_complete_pushing_to_s3), PutObject (aws s3 cp of result.zip),
# BatchWriteItem (job_complete_cleaning_up_workspace), BatchWriteItem (<done>).
# worker_data: the input zip download and the result upload among them.
DATA_OPERATIONS = {
    ("s3", "GetObject"),
    ("s3", "HeadObject"),
    ("s3", "PutObject"),
    ("s3", "CreateMultipartUpload"),
    ("s3", "UploadPart"),
    ("s3", "CompleteMultipartUpload"),
}
PAYLOAD = (
    "import os, pathlib; "
    "pathlib.Path(os.environ['ROOT_OUTPUT_NAME'], 'out.txt').write_text('result\\n')"
)


def caller() -> str:
    """The shepard function that made the request: the innermost frame of shepard_worker (or,
    if none, of shepard.joblayer) outside the AWS wrappers."""
    frame: Any = sys._getframe(2)
    found = "?"
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module.startswith("shepard_worker") and module != "shepard_worker.aws":
            return f"{module.rsplit('.', 1)[-1]}.{frame.f_code.co_name}"
        if (
            found == "?"
            and module.startswith("shepard.joblayer")
            and module
            not in (
                "shepard.joblayer.clients",
                "shepard.joblayer.calls",
            )
        ):
            found = f"{module.rsplit('.', 1)[-1]}.{frame.f_code.co_name}"
        frame = frame.f_back
    return found


class Requests:
    """Every request of every botocore client made from now on, by phase and operation."""

    def __init__(self) -> None:
        self.phase = "setup"
        self.counts: dict[str, Counter[tuple[str, str]]] = {}
        self.callers: dict[str, Counter[str]] = {}
        original = botocore.session.Session.create_client
        requests = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            client.meta.events.register("before-send", requests._sent)
            return client

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign,assignment]

    def _sent(self, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        self.counts.setdefault(self.phase, Counter())[(service, operation)] += 1
        self.callers.setdefault(self.phase, Counter())[f"{operation} <- {caller()}"] += 1

    @contextmanager
    def counting(self, phase: str) -> Iterator[Counter[tuple[str, str]]]:
        self.phase = phase
        self.counts[phase] = Counter()
        try:
            yield self.counts[phase]
        finally:
            self.phase = "setup"


def zip_bytes(variables: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("inputs.json", json.dumps(variables))
        archive.writestr("data.txt", "input data\n" * 100)
    return buffer.getvalue()


def drop_events(flock: FlockFixture, prefix: str, count: int) -> dict[str, Any]:
    s3 = boto3.client("s3")
    messages = []
    for index in range(count):
        key = f"{prefix}/{index:05d}.zip"
        data = zip_bytes({"I": str(index)})
        answer = s3.put_object(Bucket=flock.settings.inputs_bucket, Key=key, Body=data)
        record = {
            "eventName": "ObjectCreated:Put",
            "eventTime": "2026-11-29T07:00:00.000Z",
            "s3": {
                "bucket": {"name": flock.settings.inputs_bucket},
                "object": {
                    "key": key,
                    "size": len(data),
                    "eTag": answer["ETag"].strip('"'),
                    "sequencer": f"{index:016X}",
                },
            },
        }
        messages.append(
            {"messageId": f"{prefix}-{index}", "body": json.dumps({"Records": [record]})}
        )
    return {"Records": messages}


def run_worker(flock: FlockFixture, work: Path, job_id: str, index: int | None) -> int:
    from shepard_worker.run import main

    s = flock.settings
    root = work / f"w-{job_id[:8]}-{index}"
    root.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
        "AWS_EC2_METADATA_DISABLED": "true",
        "INPUTS_BUCKET": s.inputs_bucket,
        "OUTPUTS_BUCKET": s.outputs_bucket,
        "ERROR_BUCKET": s.errors_bucket,
        "USES_EFS": "False",
        "USES_LUSTRE": "False",
        "ULIMIT_FILENO": "4096",
        "SHEPARD_FLOCK": s.flock,
        "SHEPARD_TABLE_NAME": s.table_name,
        "SHEPARD_SECRET_NAME": f"{s.flock}-secrets",
        "SHEPARD_QUICK_DEPLOY_BUCKET": s.quick_deploy_bucket,
        "SHEPARD_ALLOW_DOCKER_DAEMON": "False",
        "SHEPARD_WORK_ROOT": str(root),
        "SHEPARD_RUNNER": "process",
        "SHEPARD_PAYLOAD_COMMAND": json.dumps([sys.executable, "-c", PAYLOAD]),
        "SHEPARD_JOB_ID": job_id,
        "AWS_BATCH_JOB_ATTEMPT": "1",  # Batch sets it for every attempt
    }
    if index is not None:
        env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
    code: int = main([], env)
    return code


def split(counts: Counter[tuple[str, str]]) -> tuple[int, int]:
    data = sum(n for op, n in counts.items() if op in DATA_OPERATIONS)
    return sum(counts.values()), data


def describe(counts: Counter[tuple[str, str]]) -> str:
    return ",".join(f"{op}={n}" for (_, op), n in sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--array", type=int, default=10_000, help="children of the API array")
    args = parser.parse_args(argv)
    logging.getLogger("shepard.scheduler").setLevel(logging.WARNING)
    logging.getLogger("shepard.api").setLevel(logging.WARNING)
    requests = Requests()
    server = SubprocessEmulator().start()
    os.environ.update(emulator_environment(server.endpoint_url))
    rows: list[tuple[str, float, float, int, str]] = []
    try:
        flock = make_test_flock("rq")
        store = JobStore(flock.settings.table_name)
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)

            # A lone zip drop: a plain job.
            event = drop_events(flock, "lone", 1)
            rt = Runtime.from_settings(flock.settings)
            with requests.counting("lone submit") as submit:
                assert scheduler_handle(rt, event) == {"batchItemFailures": []}
            [job] = store.scan_all()
            with requests.counting("lone worker") as worker:
                assert run_worker(flock, work, job.job_id, None) == 0
            rows.append(
                ("zip drop (alone)", sum(submit.values()), *split(worker), describe(worker))
            )

            # A zip drop in a batch of 100: one array job.
            fresh = flock.fresh("b100")
            event = drop_events(fresh, "b100", 100)
            rt = Runtime.from_settings(fresh.settings)
            with requests.counting("batch submit") as submit:
                assert scheduler_handle(rt, event) == {"batchItemFailures": []}
            child = next(r for r in JobStore(fresh.settings.table_name).scan_all())
            with requests.counting("batch worker") as worker:
                assert run_worker(fresh, work, str(child.array_parent), child.array_index) == 0
            rows.append(
                ("zip drop (batch of 100)", sum(submit.values()) / 100, *split(worker),
                 describe(worker))
            )  # fmt: skip

            # An API job.
            jobs = JobService.from_settings(flock.settings)
            with requests.counting("api submit") as submit:
                answer = api_handle(jobs, {"A": "1"})
            with requests.counting("api worker") as worker:
                assert run_worker(flock, work, answer["job_id"], None) == 0
            rows.append(("api job", sum(submit.values()), *split(worker), describe(worker)))

            # A child of an API array.
            payload = [{"I": str(i)} for i in range(args.array)]
            with requests.counting("array submit") as submit:
                answer = api_handle(jobs, payload)
            with requests.counting("array worker") as worker:
                assert run_worker(flock, work, answer["job_id"], 7) == 0
            rows.append(
                (f"array child (of {args.array})", sum(submit.values()) / args.array,
                 *split(worker), describe(worker))
            )  # fmt: skip
    finally:
        server.stop()

    submit_ok = total_ok = True
    print("requests per job: submitting side + worker side (worker's data transfers in brackets)")
    for (name, ours_submit, ours_worker, ours_data, detail), kind in zip(
        rows, ("zip drop", "zip drop", "api job", "array child"), strict=True
    ):
        original = ORIGINAL[kind]
        ours_total = ours_submit + ours_worker
        original_total = original["submit"] + original["worker"]
        print(
            f"requests_per_job {name}: ours: submit={ours_submit:.2f} worker={ours_worker} "
            f"[data {ours_data}] total={ours_total:.2f} | original: submit={original['submit']} "
            f"worker={original['worker']} [data {original['worker_data']}] "
            f"total={original_total} | ratio submit={ours_submit / original['submit']:.2f} "
            f"total={ours_total / original_total:.2f}"
        )
        print(f"    worker requests: {detail}")
        if name == "zip drop (batch of 100)":
            submit_ok &= ours_submit <= original["submit"] / 2
            total_ok &= ours_total <= original_total / 2
        if name.startswith("array child"):
            submit_ok &= ours_submit < 2
            total_ok &= ours_total < 2
    print("worker requests of the lone zip drop, by caller:")
    for name, count in sorted(requests.callers["lone worker"].items()):
        print(f"    {name}: {count}")
    print(
        "requests_per_job: submitting side (scheduler, API): "
        + ("targets met" if submit_ok else "TARGET MISSED")
    )
    print(
        "requests_per_job: with the worker's requests: "
        + ("targets met" if total_ok else "TARGET MISSED")
    )
    return 0 if submit_ok and total_ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Load on a local flock: N jobs dropped at once as zips, all done, one record and one result each.

    python bench/bench_local_load.py            # 200 jobs
    python bench/bench_local_load.py --quick    # 20 jobs (the test suite's smoke run)
    python bench/bench_local_load.py --state-dir <running flock's state folder>
    python bench/bench_local_load.py --burst 200 --jobs 1000   # drop->record of a burst

Without --state-dir it deploys examples/testing-setup to a temporary state folder, and destroys
it at the end. It first drops one job alone (the baseline: the time from drop to running with an
idle flock), then N at once, and prints jobs per minute and the median time from drop to running
(target: <= 1 s for the baseline) with the ratio to the baseline. It fails (exit 1) when a job is
lost, has two records, has no result or two, or was claimed twice.

``--burst N`` first measures how fast N zips dropped at once get their job records (drop ->
record p50 and p95; targets 2 s and 5 s), twice on the same flock: with the dispatcher as it
was (one scheduler invocation at a time, 10 messages each: the baseline) and as it is (the
flock's ``scheduler.batch_size`` and window, several invocations at once), and prints the ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FLOCK = REPO / "examples" / "testing-setup" / "flock.yaml"
PAYLOAD = {"test1": "test1", "test2": "test2", "test3": "test3", "test4": "0"}
POLL_SECONDS = 0.1


@dataclass
class LoadResult:
    jobs: int
    seconds: float  # first drop -> last job finished
    drop_to_running: list[float]
    baseline_drop_to_running: float
    baseline_drop_to_finished: float = float("nan")
    drop_to_recorded: list[float] = field(default_factory=list)  # scheduler latency
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # zip key -> record
    result_keys: dict[str, list[str]] = field(default_factory=dict)  # job id -> output keys
    problems: list[str] = field(default_factory=list)
    workers_started: int | None = None

    @property
    def jobs_per_minute(self) -> float:
        return self.jobs / self.seconds * 60 if self.seconds else 0.0

    @property
    def baseline_jobs_per_minute(self) -> float:
        """One job at a time, back to back: the rate with no parallelism."""
        return 60 / self.baseline_drop_to_finished if self.baseline_drop_to_finished else 0.0

    @property
    def median_drop_to_recorded(self) -> float:
        return statistics.median(self.drop_to_recorded) if self.drop_to_recorded else float("nan")

    @property
    def median_drop_to_running(self) -> float:
        return statistics.median(self.drop_to_running) if self.drop_to_running else float("nan")


def _zip_bytes(variables: Mapping[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("inputs.json", json.dumps(dict(variables)))
    return buffer.getvalue()


class _Flock:
    """boto3 clients on a running local flock, and its outputs."""

    def __init__(self, state_dir: Path) -> None:
        import boto3

        import shepard.local

        running = shepard.local.require_running(state_dir, doing="running the load benchmark")
        raw = json.loads((state_dir / "outputs.json").read_text(encoding="utf-8"))
        self.outputs = {
            k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in raw.items()
        }
        session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=running.env["AWS_REGION"],
        )
        self.s3 = session.client("s3", endpoint_url=running.endpoint_url)
        self.dynamodb = session.client("dynamodb", endpoint_url=running.endpoint_url)
        self.state_dir = state_dir

    def records_by_zip(self) -> dict[str, list[dict[str, Any]]]:
        """The records by their zip (only the attributes the benchmark reads: its polling
        should load the flock's emulator as little as it can)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for phase in ("queued", "running", "finished"):
            kwargs: dict[str, Any] = {
                "TableName": self.outputs["table_name"],
                "IndexName": self.outputs.get("table_status_index") or "phase-index",
                "KeyConditionExpression": "PHASE = :p",
                "ExpressionAttributeValues": {":p": {"S": phase}},
                "ProjectionExpression": "#u, #z, #p, #r, #a, #why",
                "ExpressionAttributeNames": {
                    "#u": "UUID",
                    "#z": "INPUT_ZIP_NAME",
                    "#p": "PHASE",
                    "#r": "RESULT",
                    "#a": "ATTEMPT",
                    "#why": "REASON",
                },
            }
            while True:
                page = self.dynamodb.query(**kwargs)
                for item in page.get("Items", []):
                    key = item.get("INPUT_ZIP_NAME", {}).get("S")
                    if key:
                        found.setdefault(key, []).append(item)
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found

    def drop(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.outputs["inputs_bucket"], Key=key, Body=body)

    def output_keys(self) -> list[str]:
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.outputs["outputs_bucket"]):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def workers_started(self) -> int | None:
        try:
            stats = json.loads((self.state_dir / "local" / "stats.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None
        value = stats.get("jobs_started")
        return int(value) if value is not None else None


Times = dict[str, float]


def _drop_and_watch(
    flock: _Flock, keys: list[str], timeout: float
) -> tuple[Times, Times, Times, Times, dict[str, list[dict[str, Any]]]]:
    """Drop the zips at once; when each was dropped, recorded, seen running, seen finished."""
    body = _zip_bytes(PAYLOAD)
    dropped: dict[str, float] = {}

    def put(key: str) -> None:
        flock.drop(key, body)
        dropped[key] = time.monotonic()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, keys))
    recorded: dict[str, float] = {}
    running: dict[str, float] = {}
    finished: dict[str, float] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = flock.records_by_zip()
        now = time.monotonic()
        for key in keys:
            items = records.get(key, [])
            phases = {item.get("PHASE", {}).get("S") for item in items}
            if key not in recorded and items:
                recorded[key] = now
            if key not in running and phases & {"running", "finished"}:
                running[key] = now
            if key not in finished and phases and phases <= {"finished"}:
                finished[key] = now
        if len(finished) == len(keys):
            break
        time.sleep(POLL_SECONDS)
    return dropped, recorded, running, finished, records


def run_load(state_dir: Path, jobs: int, *, timeout: float = 900.0) -> LoadResult:
    """The benchmark on the running local flock of ``state_dir``."""
    flock = _Flock(state_dir)
    run = f"bench-{int(time.time())}"
    started_before = flock.workers_started() or 0

    base_keys = [f"{run}/baseline.zip"]
    b_dropped, _, b_running, b_finished, _ = _drop_and_watch(flock, base_keys, timeout)
    baseline = b_running.get(base_keys[0], float("inf")) - b_dropped[base_keys[0]]
    baseline_total = b_finished.get(base_keys[0], float("inf")) - b_dropped[base_keys[0]]

    keys = [f"{run}/job-{i:04d}.zip" for i in range(jobs)]
    first = time.monotonic()
    dropped, recorded, running, finished, records = _drop_and_watch(flock, keys, timeout)
    last = max(finished.values()) if finished else time.monotonic()
    result = LoadResult(
        jobs=jobs,
        seconds=last - first,
        drop_to_running=[running[k] - dropped[k] for k in keys if k in running],
        baseline_drop_to_running=baseline,
        baseline_drop_to_finished=baseline_total,
        drop_to_recorded=[recorded[k] - dropped[k] for k in keys if k in recorded],
    )

    outputs = flock.output_keys()
    for key in keys:
        items = records.get(key, [])
        if len(items) != 1:
            result.problems.append(f"{key}: {len(items)} job records (expected 1)")
            continue
        item = items[0]
        job_id = item["UUID"]["S"]
        result.records[key] = item
        if item.get("RESULT", {}).get("S") != "succeeded":
            result.problems.append(
                f"{key}: job {job_id} ended {item.get('RESULT', {}).get('S')}: "
                f"{item.get('REASON', {}).get('S', '')}"
            )
        attempts = int(item.get("ATTEMPT", {}).get("N", "1"))
        if attempts != 1:
            result.problems.append(f"{key}: job {job_id} was claimed {attempts} times")
        # "@<id>_": an array child's id <parent>-1 is a prefix of <parent>-10's.
        mine = [o for o in outputs if f"@{job_id}_" in o]
        result.result_keys[job_id] = mine
        if len(mine) != 1:
            result.problems.append(f"{key}: job {job_id} has {len(mine)} result zips")
    started_after = flock.workers_started()
    if started_after is not None:
        result.workers_started = started_after - started_before
        if result.workers_started != jobs + 1:
            result.problems.append(
                f"{result.workers_started} workers started for {jobs + 1} jobs (one run each)"
            )
    return result


def report(result: LoadResult, out: Any = sys.stdout) -> None:
    base_rate = result.baseline_jobs_per_minute
    ratio = result.jobs_per_minute / base_rate if base_rate else 0.0
    print(f"local flock load: {result.jobs} jobs dropped at once", file=out)
    print(
        f"  ours:     {result.jobs_per_minute:.1f} jobs/min; median drop->recorded "
        f"{result.median_drop_to_recorded:.2f} s; median drop->running "
        f"{result.median_drop_to_running:.1f} s (mostly waiting for a free slot)",
        file=out,
    )
    print(
        f"  baseline: one job alone: drop->running {result.baseline_drop_to_running:.2f} s "
        f"(target <= 1 s), drop->finished {result.baseline_drop_to_finished:.2f} s "
        f"= {base_rate:.1f} jobs/min one at a time",
        file=out,
    )
    print(f"  ratio:    {ratio:.2f}x the one-at-a-time rate", file=out)
    print(
        f"  {len(result.records)}/{result.jobs} jobs with one record and one result; "
        f"{result.workers_started} workers started",
        file=out,
    )
    for problem in result.problems[:20]:
        print(f"  PROBLEM {problem}", file=out)


# The service as it was before its dispatcher gathered batches and ran invocations side by side,
# and before its emulator's transactions stopped copying whole tables.
BASELINE_DISPATCH = {
    "tuned_emulator": False,
    "dispatch_concurrency": 1,
    "scheduler_batch_size": 10,
    "scheduler_batching_window_seconds": 0.0,
}


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _set_settings(state_dir: Path, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Change the running service's settings.json (it re-reads it within a second); the old
    values of the changed keys."""
    path = state_dir / "local" / "settings.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    old = {key: data.get(key) for key in changes}
    data.update(changes)
    tmp = path.with_suffix(".bench")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)
    time.sleep(1.5)  # the service's watcher looks every 0.5 s
    return old


@dataclass
class BurstResult:
    label: str
    jobs: int
    drop_to_recorded: list[float]
    missing: int

    @property
    def p50(self) -> float:
        return _percentile(self.drop_to_recorded, 0.5)

    @property
    def p95(self) -> float:
        return _percentile(self.drop_to_recorded, 0.95)


def run_burst(state_dir: Path, jobs: int, label: str, *, timeout: float = 300.0) -> BurstResult:
    """Drop ``jobs`` zips at once; the seconds from each drop to its job record."""
    flock = _Flock(state_dir)
    keys = [f"burst-{label}-{int(time.time())}/job-{i:04d}.zip" for i in range(jobs)]
    body = _zip_bytes(PAYLOAD)
    dropped: dict[str, float] = {}

    def put(key: str) -> None:
        flock.drop(key, body)
        dropped[key] = time.monotonic()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, keys))
    recorded: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(recorded) < len(keys) and time.monotonic() < deadline:
        records = flock.records_by_zip()
        now = time.monotonic()
        for key in keys:
            if key not in recorded and records.get(key):
                recorded[key] = now
        time.sleep(POLL_SECONDS)
    return BurstResult(
        label,
        jobs,
        [recorded[k] - dropped[k] for k in keys if k in recorded],
        len(keys) - len(recorded),
    )


def compare_bursts(state_dir: Path, jobs: int, *, timeout: float = 300.0) -> list[BurstResult]:
    """The burst with the baseline dispatcher, then with the flock's own settings."""
    old = _set_settings(state_dir, BASELINE_DISPATCH)
    try:
        baseline = run_burst(state_dir, jobs, "baseline", timeout=timeout)
    finally:
        _set_settings(state_dir, old)
    ours = run_burst(state_dir, jobs, "ours", timeout=timeout)
    return [baseline, ours]


def report_bursts(results: list[BurstResult], out: Any = sys.stdout) -> None:
    baseline, ours = results
    print(f"local flock burst: {ours.jobs} zips dropped at once, drop -> job record", file=out)
    for result in results:
        print(
            f"  {result.label + ':':9} p50 {result.p50:.2f} s, p95 {result.p95:.2f} s, "
            f"max {max(result.drop_to_recorded, default=float('nan')):.2f} s"
            + (f"; {result.missing} never recorded" if result.missing else ""),
            file=out,
        )
    ratio = baseline.p50 / ours.p50 if ours.p50 else float("nan")
    print(
        f"  ratio:    p50 {ratio:.1f}x faster than the baseline "
        f"(targets: p50 <= 2 s {'met' if ours.p50 <= 2 else 'MISSED'}, "
        f"p95 <= 5 s {'met' if ours.p95 <= 5 else 'MISSED'})",
        file=out,
    )


def _cli(argv: list[str], env: Mapping[str, str]) -> None:
    from shepard.cli import main

    status = main(argv, env)
    if status != 0:
        raise SystemExit(f"`shepard-tf {' '.join(argv)}` exited {status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 jobs instead of 200")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--state-dir", type=Path, help="a running local flock's state folder")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--burst", type=int, default=0, help="first drop this many zips at once, baseline and ours"
    )
    args = parser.parse_args(argv)
    jobs = args.jobs or (20 if args.quick else 200)
    if args.state_dir:
        if args.burst:
            report_bursts(compare_bursts(args.state_dir, args.burst, timeout=args.timeout))
            sys.stdout.flush()
            if args.jobs is None:
                return 0  # the burst alone
        result = run_load(args.state_dir, jobs, timeout=args.timeout)
        report(result)
        return 1 if result.problems else 0

    from shepard import deploy

    with tempfile.TemporaryDirectory(prefix="shepard-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env |= {
            "SHEPARD_STATE_DIR": f"{tmp}/state",
            "SHEPARD_CONFIG_DIR": f"{tmp}/profiles",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }
        state_dir = deploy.load_flock(FLOCK, env).state_dir
        print(f"deploying {FLOCK} to a local flock in {tmp} ...", flush=True)
        try:
            _cli(["apply", str(FLOCK), "--auto-approve"], env)
            if args.burst:
                report_bursts(compare_bursts(state_dir, args.burst, timeout=args.timeout))
                sys.stdout.flush()
            result = run_load(state_dir, jobs, timeout=args.timeout)
        finally:
            import shepard.local

            try:
                _cli(["destroy", str(FLOCK), "--auto-approve"], env)
            finally:
                shepard.local.stop(state_dir)
    report(result)
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())

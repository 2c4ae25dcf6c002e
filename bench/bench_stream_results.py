"""Benchmark: a 2 GiB output folder zipped straight into a multipart upload, against a zip file.

Generates an output folder under /tmp (``--size-mib``, 2 GiB by default: files of 64 MiB, half
random and half text, so deflate works on both kinds; deleted at the end) and starts moto's
server in its own process. Each way runs in a child process of its own, which reports its wall
time, its peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and the most bytes of files that
appeared in its scratch and temporary folders while it ran (polled every 50 ms):

- ours: ``shepard_worker.results.upload_results`` (the worker's code: zipfile into
  ``stream.MultipartWriter``, parts uploaded while the next fills);
- baseline: the previous code path, ``write_zip`` to a file in the scratch folder, then
  ``shepard.joblayer.calls.upload`` (boto3's managed multipart upload) of that file.

Both objects are read back and compared entry by entry (names, sizes, CRC-32). Prints
``stream_results ours: ...``, ``baseline: ...`` and ``ratio: ...`` lines; exits 1 when ours is
slower than the baseline, peaks at 200 MiB of RSS or more, or leaves a temporary file.

Run: ``.venv/bin/python bench/bench_stream_results.py [--size-mib 2048]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "worker"))

MIB = 1024 * 1024
FILE_MIB = 64
JOB = "0123456789abcdef0123456789abcdef"
START = "20261129T070000Z"


def make_folder(folder: Path, size_mib: int) -> None:
    text = b"".join(f"line {i}: some output of the payload\n".encode() for i in range(MIB // 32))
    for number in range(max(1, size_mib // FILE_MIB)):
        path = folder / f"part-{number:03d}.bin"
        with path.open("wb") as out:
            for _ in range(FILE_MIB):
                out.write(os.urandom(MIB) if number % 2 == 0 else text[:MIB])


class DiskWatch:
    """The most bytes of files seen at once under some folders (a temporary copy shows here)."""

    def __init__(self, *folders: Path) -> None:
        self.folders = folders
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def total(self) -> int:
        total = 0
        for folder in self.folders:
            for current, _, files in os.walk(folder):
                for name in files:
                    with contextlib.suppress(OSError):  # gone meanwhile
                        total += os.lstat(os.path.join(current, name)).st_size
        return total

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            self.most = max(self.most, self.total() - self.before)

    def __enter__(self) -> DiskWatch:
        self.before = self.total()
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


def child(mode: str, output: Path, work: Path, bucket: str) -> dict[str, Any]:
    """One way, in this (child) process: its time, peak RSS and temporary bytes."""
    import boto3
    from shepard_worker.results import upload_results, write_zip
    from shepard_worker.workspace import Workspace

    from shepard.joblayer import calls
    from shepard.joblayer.records import result_zip_name

    ws = Workspace.plan(JOB, work, None, None)
    ws.create()
    ws.root.output.rmdir()
    ws.root.output.symlink_to(output, target_is_directory=True)
    tmp = work / "tmp"
    tmp.mkdir()
    tempfile.tempdir = str(tmp)
    s3 = boto3.client("s3")

    class Worker:
        def client(self, service: str) -> Any:
            return s3

    key = result_zip_name(JOB, START, "root", None)
    started = time.monotonic()
    with DiskWatch(ws.scratch, tmp) as watch:
        if mode == "ours":
            upload_results(
                Worker(), ws, bucket=bucket, job_id=JOB, start_time=START, tag=None, log=print
            )
        else:
            archive = ws.scratch / "result.zip"
            entries = ((p, p.name) for p in sorted(output.iterdir()))
            write_zip(archive, entries)
            calls.upload(s3, archive, bucket, key)
            archive.unlink()
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"seconds": seconds, "peak_rss_mib": peak, "temporary_bytes": watch.most, "key": key}


def entries_of(s3: Any, bucket: str, key: str, work: Path) -> list[tuple[str, int, int]]:
    path = work / "check.zip"
    s3.download_file(bucket, key, str(path))
    with zipfile.ZipFile(path) as zf:
        found = [(i.filename, i.file_size, i.CRC) for i in zf.infolist()]
    path.unlink()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--child", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.output, args.work, args.bucket)))
        return 0

    import boto3

    from shepard.emulator import SubprocessEmulator, emulator_environment

    base = Path(tempfile.mkdtemp(prefix="bench-stream-", dir="/tmp"))
    server = SubprocessEmulator().start()
    env = {**os.environ, **emulator_environment(server.endpoint_url)}
    os.environ.update(env)
    results: dict[str, dict[str, Any]] = {}
    try:
        output = base / "output"
        output.mkdir()
        started = time.monotonic()
        make_folder(output, args.size_mib)
        size = sum(p.stat().st_size for p in output.iterdir())
        print(f"stream_results: {size / MIB:.0f} MiB in {time.monotonic() - started:.0f} s")
        s3 = boto3.client("s3")
        for mode in ("baseline", "ours"):
            bucket = f"bench-{mode}"
            s3.create_bucket(Bucket=bucket)
            work = base / f"work-{mode}"
            work.mkdir()
            command = [sys.executable, __file__, "--child", mode, "--output", str(output)]
            command += ["--work", str(work), "--bucket", bucket]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                print(done.stdout[-2000:], done.stderr[-4000:])
                return 1
            results[mode] = json.loads(lines[-1].removeprefix("RESULT "))
            results[mode]["entries"] = entries_of(s3, bucket, results[mode]["key"], base)
            s3.delete_object(Bucket=bucket, Key=results[mode]["key"])
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    ours, baseline = results["ours"], results["baseline"]
    for name, r in (("ours", ours), ("baseline", baseline)):
        print(
            f"stream_results {name}: size_mib={size / MIB:.0f} seconds={r['seconds']:.1f} "
            f"mib_per_s={size / MIB / r['seconds']:.0f} peak_rss_mib={r['peak_rss_mib']:.0f} "
            f"temporary_mib={r['temporary_bytes'] / MIB:.0f}"
        )
    print(
        f"stream_results ratio: speed={baseline['seconds'] / ours['seconds']:.2f}x "
        f"peak_rss={baseline['peak_rss_mib'] / ours['peak_rss_mib']:.2f}x less "
        f"same_entries={ours['entries'] == baseline['entries']}"
    )
    ok = (
        ours["seconds"] <= baseline["seconds"]
        and ours["peak_rss_mib"] < 200
        and ours["temporary_bytes"] == 0
        and ours["entries"] == baseline["entries"]
    )
    print("stream_results: " + ("targets met" if ok else "TARGET MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the scheduler's ranged read of inputs.json against downloading the whole zip.

Against an in-process moto server, for a 10 MiB and a 1 GiB zip (``--quick``: 256 KiB and 4 MiB),
prints one line per measure: ours (GET count, bytes fetched, seconds), the baseline (download the
whole zip and open it with zipfile, in the same run), and the ratio. ``inputs.json`` is the FIRST
entry of each zip, so it is not in the tail the first GET reads: two GETs (tail, then entry).

Run: ``make bench`` or ``.venv/bin/python bench/bench_scheduler_read.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import struct
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3
from boto3.s3.transfer import TransferConfig

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.zipread import read_inputs_json

MIB = 1024 * 1024
INPUTS = json.dumps({"greeting": "hello", "TAG": "bench"}).encode()


def write_sparse_zip(path: Path, data_size: int) -> None:
    """A stored zip: inputs.json, then ``data_size`` zero bytes left as a hole in the file."""
    entries = []
    with path.open("wb") as out:
        for name, size, payload in (
            ("inputs.json", len(INPUTS), INPUTS),
            ("data.bin", data_size, None),
        ):
            offset = out.tell()
            if payload is not None:
                crc = zlib.crc32(payload)
            else:
                crc, zeros = 0, bytes(MIB)
                for start in range(0, size, MIB):
                    crc = zlib.crc32(zeros[: min(MIB, size - start)], crc)
            raw = name.encode()
            out.write(
                struct.pack(
                    "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0x21, crc, size, size, len(raw), 0
                )
            )
            out.write(raw)
            if payload is not None:
                out.write(payload)
            else:
                out.seek(size, os.SEEK_CUR)  # a hole: zeros on read, no disk written
            entries.append((raw, crc, size, offset))
        cd_offset = out.tell()
        for raw, crc, size, offset in entries:
            out.write(
                struct.pack(
                    "<4sHHHHHHIIIHHHHHII",
                    b"PK\x01\x02",
                    20,
                    20,
                    0,
                    0,
                    0,
                    0x21,
                    crc,
                    size,
                    size,
                    len(raw),
                    0,
                    0,
                    0,
                    0,
                    0,
                    offset,
                )
            )
            out.write(raw)
        cd_size = out.tell() - cd_offset
        out.write(
            struct.pack(
                "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), cd_size, cd_offset, 0
            )
        )


class Counter:
    def __init__(self, client: Any) -> None:
        self.gets = 0
        self.bytes = 0
        client.meta.events.register("after-call.s3.GetObject", self._count)

    def _count(self, parsed: dict[str, Any], **_: Any) -> None:
        self.gets += 1
        self.bytes += int(parsed.get("ContentLength", 0))

    def reset(self) -> None:
        self.gets = self.bytes = 0


def ours(s3: Any, counter: Counter, bucket: str, key: str) -> tuple[int, int, float]:
    counter.reset()
    start = time.perf_counter()
    found = read_inputs_json(s3, bucket, key)
    seconds = time.perf_counter() - start
    assert found.data == INPUTS
    return counter.gets, counter.bytes, seconds


def baseline(s3: Any, counter: Counter, bucket: str, key: str) -> tuple[int, int, float]:
    counter.reset()
    start = time.perf_counter()
    with tempfile.TemporaryFile() as spool:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(8 * MIB), b""):
            spool.write(chunk)
        spool.seek(0)
        with zipfile.ZipFile(spool) as archive:
            data = archive.read("inputs.json")
    seconds = time.perf_counter() - start
    assert data == INPUTS
    return counter.gets, counter.bytes, seconds


def human(size: int) -> str:
    return (
        f"{size // (1024 * MIB)}GiB"
        if size >= 1024 * MIB
        else f"{size // 1024}KiB"
        if size < MIB
        else f"{size // MIB}MiB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small zips, one repeat: a smoke run")
    args = parser.parse_args(argv)
    sizes = [256 * 1024, 4 * MIB] if args.quick else [10 * MIB, 1024 * MIB]
    repeats = 1 if args.quick else 5
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines
    server = InProcessEmulator().start()
    os.environ.update(emulator_environment(server.endpoint_url))
    try:
        s3 = boto3.client("s3")
        counter = Counter(s3)
        bucket = "bench-inputs"
        s3.create_bucket(Bucket=bucket)
        transfer = TransferConfig(multipart_threshold=64 * MIB, multipart_chunksize=64 * MIB)
        with tempfile.TemporaryDirectory() as folder:
            for size in sizes:
                path = Path(folder) / f"job-{size}.zip"
                write_sparse_zip(path, size)
                assert zipfile.ZipFile(path).namelist() == ["inputs.json", "data.bin"]
                key = path.name
                s3.upload_file(str(path), bucket, key, Config=transfer)
                total = path.stat().st_size
                path.unlink()
                runs = [ours(s3, counter, bucket, key) for _ in range(repeats)]
                gets, fetched = runs[0][0], runs[0][1]
                ours_s = statistics.median(r[2] for r in runs)
                base_runs = [
                    baseline(s3, counter, bucket, key) for _ in range(max(1, repeats // 2))
                ]
                base_gets, base_bytes = base_runs[0][0], base_runs[0][1]
                base_s = statistics.median(r[2] for r in base_runs)
                label = f"scheduler_read zip={human(size)} ({total} bytes)"
                print(f"{label} ours: gets={gets} bytes={fetched} seconds={ours_s:.4f}")
                print(f"{label} baseline: gets={base_gets} bytes={base_bytes} seconds={base_s:.4f}")
                print(
                    f"{label} ratio: bytes={base_bytes / fetched:.1f}x "
                    f"seconds={base_s / ours_s:.1f}x (baseline / ours)"
                )
                s3.delete_object(Bucket=bucket, Key=key)
                sys.stdout.flush()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How long a job's payload takes to say its first line in docker mode, against `docker run`.

Ours: from the worker's ``DockerRunner.run`` call (the image already on this machine, as after
the first job of an instance: the image lock, the cache check, create with the job's mounts and
``nofile`` limit, start, log streaming) to the payload's first line reaching the job's log.
Baseline: ``docker run --rm <the same image>`` to its first line on stdout. Both run a tiny
image built from the offline base (``shepard-base:bookworm``) whose command is
``python3 -c "print('first line')"``; interleaved, median of several runs each, so that the
machine's load hits both alike. Needs a Docker engine (``scripts/engine.sh up``) and the base
image (``scripts/engine.sh base-image``); exits 2 without them.

    .venv/bin/python bench/bench_docker_start.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "worker")]

from shepard_worker.runners import DockerRunner, Mount, RunSpec  # noqa: E402

BASE_IMAGE = "shepard-base:bookworm"
RUNS = 7
FIRST_LINE = "first line"


def _build(client: object, tag: str, folder: Path) -> None:
    (folder / "Dockerfile").write_text(
        f'FROM {BASE_IMAGE}\nCMD ["python3", "-c", "print(\'{FIRST_LINE}\', flush=True)"]\n'
    )
    client.images.build(path=str(folder), tag=tag, pull=False, rm=True)  # type: ignore[attr-defined]


def _ours(runner: DockerRunner, image: str, work: Path) -> float:
    first: list[float] = []

    def log(line: str) -> None:
        if not first and line == FIRST_LINE:
            first.append(time.perf_counter())

    job = work / uuid.uuid4().hex[:8]
    (job / "input").mkdir(parents=True)
    (job / "output").mkdir()
    spec = RunSpec(
        env={"UUID": job.name, "ROOT_INPUT_NAME": str(job / "input")},
        mounts=(Mount(job / "input"), Mount(job / "output")),
        ulimit_nofile=4096,
        log=log,
        image=image,
        name=f"shepard-bench-{job.name}",
        labels={"shepard.bench": "docker-start"},
    )
    started = time.perf_counter()
    result = runner.run(spec)
    if result.exit_code != 0 or not first:
        raise SystemExit(f"bench: the payload failed ({result.exit_code}, {result.reason})")
    shutil.rmtree(job)
    return first[0] - started


def _baseline(image: str) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(["docker", "run", "--rm", image], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    elapsed = time.perf_counter() - started
    process.wait()
    if line != FIRST_LINE or process.returncode != 0:
        raise SystemExit(f"bench: docker run printed {line!r}, exit {process.returncode}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    runs = parser.parse_args().runs
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        print(f"bench: the base image {BASE_IMAGE} is missing: `scripts/engine.sh base-image`")
        return 2
    except docker.errors.DockerException as error:
        print(f"bench: no Docker engine answers ({error}): `scripts/engine.sh up`")
        return 2
    if shutil.which("docker") is None:
        print("bench: the docker client is not on PATH (the baseline runs `docker run`)")
        return 2
    tag = f"shepard-bench/first-line:{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="shepard-bench-") as tmp:
        work = Path(tmp)
        _build(client, tag, work)
        try:
            runner = DockerRunner(client, lock_path=work / ".shepard-image-pull.lock", gpus=False)
            _ours(runner, tag, work)  # warm: the engine's caches, the client's connection
            _baseline(tag)
            ours, base = [], []
            for _ in range(runs):
                ours.append(_ours(runner, tag, work))
                base.append(_baseline(tag))
        finally:
            client.images.remove(tag, force=True)
    ours_s, base_s = statistics.median(ours), statistics.median(base)
    print(
        f"docker start to first line (median of {runs}): ours (DockerRunner.run) "
        f"{ours_s * 1000:.0f} ms, baseline (docker run --rm) {base_s * 1000:.0f} ms, "
        f"ratio {ours_s / base_s:.2f}x (ours / baseline)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

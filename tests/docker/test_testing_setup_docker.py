"""The seed's testing-setup end to end in docker mode, driven through the CLI as a user runs it.

The session's local flock (tests/docker/conftest.py ``docker_flock``: examples/testing-setup,
``local.runner: docker``, its payload writing the seed's 2 GiB ``outputFile``) runs the demo's
Hello World (examples/demo.py ``run_hello_world``: ``secretify`` of test_secrets, the failing and
the succeeding ``batch_via_api`` jobs, the ``tag_no_error`` zip dropped with ``batch``, ``query``,
``retrieve``). What is checked comes from the results brought home, the job table and the
engine's own events (filtered by the labels the executor and the worker put on their
containers), never from the project's log.

tests/e2e/test_demo.py runs the same jobs with the process runner: the two together are the
end-to-end suite in both runner modes.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from examples.demo import DemoJob, DemoResult, Tour, hello_world_jobs, run_hello_world

from .conftest import OUTPUT_FILE_BYTES, DockerFlock

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.slow]

# Two jobs write 2 GiB each (two run at once), then zip it; the result zips come home.
FREE_BYTES_NEEDED = 5 * 1024**3
BLOCK = 1024 * 1024


@dataclass
class Run:
    result: DemoResult
    said: str
    started: float  # epoch seconds, before the first job was submitted
    flock: DockerFlock

    def job(self, how: str, index: int = 0) -> DemoJob:
        return [job for job in self.result.jobs if job.how == how][index]


@pytest.fixture(scope="module")
def run(docker_flock: DockerFlock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The Hello World's three jobs on the session's docker flock, their results retrieved."""
    free = shutil.disk_usage(docker_flock.state_dir).free
    if free < FREE_BYTES_NEEDED:
        pytest.skip(
            f"the testing-setup payload writes two 2 GiB files under {docker_flock.state_dir}, "
            f"whose disk has {free / 1024**3:.1f} GiB free (about 5 GiB needed)"
        )
    results = tmp_path_factory.mktemp("testing-setup-results")
    result = DemoResult(
        docker_flock.flock_file,
        docker_flock.state_dir,
        results,
        jobs=hello_world_jobs(),
        env=docker_flock.env,
    )
    out = io.StringIO()
    started = time.time()
    mark = time.monotonic()
    try:
        run_hello_world(Tour(docker_flock.env, out), result, docker_flock.folder, timeout=420)
    except BaseException:
        print(out.getvalue()[-8000:])
        print(docker_flock.logs([job.job_id for job in result.jobs if job.job_id]))
        raise
    print(f"\ntesting-setup jobs: {time.monotonic() - mark:.1f} s (submit to retrieved)")
    yield Run(result, out.getvalue(), started, docker_flock)


def _zeros_sha256(size: int) -> str:
    digest = hashlib.sha256()
    block = bytes(BLOCK)
    for _ in range(size // BLOCK):
        digest.update(block)
    digest.update(bytes(size % BLOCK))
    return digest.hexdigest()


def _member(archive: zipfile.ZipFile, suffix: str) -> zipfile.ZipInfo:
    found = [info for info in archive.infolist() if info.filename.endswith(suffix)]
    assert len(found) == 1, f"{suffix} in {archive.namelist()}"
    return found[0]


def test_the_failing_job_failed_with_its_exit_code_and_an_error_zip(run: Run) -> None:
    failing = run.job("batch_via_api", 0)
    assert failing.record["RESULT"] == "failed"
    assert int(failing.record["EXIT_CODE"]) == 1
    assert failing.result_zips == []
    assert failing.error_zip is not None and failing.error_zip.is_file()
    with zipfile.ZipFile(failing.error_zip) as archive:
        logs = "\n".join(archive.read(name).decode(errors="replace") for name in archive.namelist())
    assert "expected test1=test1" in logs  # the payload's own message, from its container


def test_the_succeeding_job_brought_home_its_2_gib_output_file_intact(run: Run) -> None:
    job = run.job("batch_via_api", 1)
    assert job.record["RESULT"] == "succeeded", job.record
    assert int(job.record["EXIT_CODE"]) == 0
    start = job.record["START_TIME"]
    assert [z.name for z in job.result_zips] == [f"result@{job.job_id}_{start}_root.zip"]
    digest = hashlib.sha256()
    with zipfile.ZipFile(job.result_zips[0]) as archive:
        info = _member(archive, "outputFile")
        assert info.file_size == OUTPUT_FILE_BYTES
        with archive.open(info) as stream:  # streamed; the zip checks its CRC at the end
            while block := stream.read(BLOCK):
                digest.update(block)
        report = archive.read(_member(archive, "hello_world.json"))
    assert digest.hexdigest() == _zeros_sha256(OUTPUT_FILE_BYTES)
    assert b'"test4": "0"' in report and str(job.job_id).encode() in report


def test_the_flock_secrets_reached_the_jobs_and_came_back_in_their_outputs(run: Run) -> None:
    secrets = run.flock.folder / "test_secrets"
    for job in (run.job("batch_via_api", 1), run.job("batch")):
        with zipfile.ZipFile(job.result_zips[0]) as archive:
            for secret in sorted(secrets.iterdir()):
                got = archive.read(_member(archive, f"secrets/{secret.name}"))
                assert got == secret.read_bytes(), (job.label, secret.name)


def test_the_tag_job_zip_starts_with_its_tag(run: Run) -> None:
    job = run.job("batch")
    assert job.record["RESULT"] == "succeeded", job.record
    assert job.record["IS_INVOKED"] in ("False", False)
    assert len(job.result_zips) == 1
    assert re.fullmatch(
        rf"test_file_result@{job.job_id}_\d{{8}}T\d{{6}}Z_root\.zip", job.result_zips[0].name
    )
    with zipfile.ZipFile(job.result_zips[0]) as archive:
        assert _member(archive, "outputFile").file_size == OUTPUT_FILE_BYTES
        assert b'"tag": "test_file"' in archive.read(_member(archive, "hello_world.json"))


def _container_events(client: Any, since: float) -> list[dict[str, Any]]:
    """The engine's start, die and destroy events of the containers labelled with a job."""
    found: list[dict[str, Any]] = list(
        client.events(
            since=int(since) - 1,
            until=int(time.time()) + 1,
            decode=True,
            filters={
                "type": "container",
                "event": ["start", "die", "destroy"],
                "label": "shepard.job",
            },
        )
    )
    return found


def test_each_worker_and_each_payload_ran_in_a_container_of_its_own(
    run: Run, docker_client: Any
) -> None:
    """From the engine's events: per job one worker container (the job definition's image) and
    one payload container (the payload image built from code/), both removed afterwards."""
    events = _container_events(docker_client, run.started)
    seen: set[str] = set()
    for job in run.result.jobs:
        ours = [e for e in events if e["Actor"]["Attributes"].get("shepard.job") == job.job_id]
        starts = [e for e in ours if e["Action"] == "start"]
        kinds = sorted(
            (e["Actor"]["Attributes"]["shepard"], e["Actor"]["Attributes"]["image"]) for e in starts
        )
        assert kinds == [
            ("payload", run.flock.payload_image),
            ("worker", run.flock.worker_image),
        ], (job.label, kinds)
        ids = {e["id"] for e in starts}
        assert len(ids) == 2 and not ids & seen  # two containers, no other job's
        seen |= ids
        destroyed = {e["id"] for e in ours if e["Action"] == "destroy"}
        assert ids <= destroyed, job.label  # both removed
        codes = {
            e["Actor"]["Attributes"]["shepard"]: e["Actor"]["Attributes"]["exitCode"]
            for e in ours
            if e["Action"] == "die"
        }
        assert codes["payload"] == str(job.record["EXIT_CODE"]), (job.label, codes)

"""The demo path end to end: a local flock deployed, the Hello World run, results home, destroyed.

One flock for the whole module (an apply takes over a minute against the emulator); the
destroy at the end is part of what is tested.
"""

from __future__ import annotations

import io
import os
import re
import socket
import zipfile
from pathlib import Path

import pytest

from shepard.demo import DemoJob, DemoResult, run_demo

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "examples" / "testing-setup"
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] not in "ZX"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, str]:
    base = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["SHEPARD_STATE_DIR"] = str(base / "state")
    env["SHEPARD_CONFIG_DIR"] = str(base / "profiles")
    out = io.StringIO()
    result = run_demo(
        flock_file=SETUP / "flock.yaml",
        results_dir=base / "results",
        env=env,
        timeout=240,
        out=out,
    )
    return result, out.getvalue()


def _job(result: DemoResult, how: str, index: int = 0) -> DemoJob:
    return [job for job in result.jobs if job.how == how][index]


def test_the_failing_job_failed_with_its_exit_code_and_an_error_zip(
    demo: tuple[DemoResult, str],
) -> None:
    result, _ = demo
    failing = _job(result, "batch_via_api", 0)
    assert failing.record["RESULT"] == "failed"
    assert int(failing.record["EXIT_CODE"]) == 1
    assert failing.record["JOB_STATUS"] == "<done>"
    assert failing.result_zips == []
    assert failing.error_zip is not None and failing.error_zip.is_file()
    with zipfile.ZipFile(failing.error_zip) as archive:
        logs = "\n".join(archive.read(name).decode(errors="replace") for name in archive.namelist())
    # the payload's own message is in the logs that came back
    assert "expected test1=test1" in logs


def test_the_succeeding_job_has_its_output_in_the_seed_named_zip(
    demo: tuple[DemoResult, str],
) -> None:
    result, _ = demo
    job = _job(result, "batch_via_api", 1)
    assert job.record["RESULT"] == "succeeded"
    assert int(job.record["EXIT_CODE"]) == 0
    start = job.record["START_TIME"]
    assert [z.name for z in job.result_zips] == [f"result@{job.job_id}_{start}_root.zip"]
    with zipfile.ZipFile(job.result_zips[0]) as archive:
        names = archive.namelist()
        report = archive.read(next(n for n in names if n.endswith("hello_world.json")))
        # the flock's secrets reached the job and came back among its outputs
        secret = next(n for n in names if n.endswith("secrets/api_key.txt"))
        assert b"0123456789abcdef" in archive.read(secret)
    assert b'"test4": "0"' in report
    assert job.job_id is not None and job.job_id.encode() in report


def test_the_tag_job_zip_starts_with_its_tag(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    job = _job(result, "batch")
    assert job.record["RESULT"] == "succeeded"
    assert job.record["IS_INVOKED"] in ("False", False)
    assert len(job.result_zips) == 1
    assert re.fullmatch(
        rf"test_file_result@{job.job_id}_\d{{8}}T\d{{6}}Z_root\.zip", job.result_zips[0].name
    )


def test_retrieve_brought_every_result_home(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    home = sorted(p.name for p in result.results_dir.rglob("*result@*.zip"))
    expected = sorted(z.name for job in result.jobs for z in job.result_zips)
    assert home == expected and len(home) == 2


def test_destroy_left_no_process_and_no_port(demo: tuple[DemoResult, str]) -> None:
    result, output = demo
    assert result.destroyed
    assert result.service_pid is not None and not _alive(result.service_pid)
    assert result.service_ports and all(_port_free(p) for p in result.service_ports)
    assert not (result.state_dir / "local" / "service.json").exists()
    # it reads as a tutorial: a numbered sentence before each command
    assert re.search(r"^1\. Deploy the testing-setup flock", output, re.M)
    assert "$ shepard-tf destroy" in output

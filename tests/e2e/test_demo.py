"""The demo path end to end: a local flock deployed, the Hello World run, results home, destroyed.

One flock for the whole module (an apply takes over a minute against the emulator); the
destroy at the end is part of what is tested. Its jobs run as PROCESSES even where a Docker
engine answers (``SHEPARD_DEMO_RUNNER=process``): this is the process-mode end-to-end run, and
tests/docker/test_testing_setup_docker.py the docker-mode one.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pickle
import re
import socket
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.demo import RUNNER_VARIABLE, DemoJob, DemoResult, Tour, destroy_flock, run_demo
from tests.support import background

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "examples" / "testing-setup"
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _port_free(port: int) -> bool:
    # Nothing listens: a bind with SO_REUSEADDR fails only while a listener holds the port
    # (connections left in TIME_WAIT by the closed server do not count).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


DEMO = "e2e_demo"
OUTPUT = "demo-output.txt"  # what the demo said
RESULT = "demo-result.pickle"  # (DemoResult, LoadResult), written once the run is over


def run_in_background(folder: str) -> None:
    """The fixture's run, in a process of its own (tests/support/background.py starts it when
    collection ends): the demo with the flock kept, a quick-deploy job and the load benchmark's
    quick run on it, then the destroy. What the demo says goes to ``<folder>/demo-output.txt``;
    raises (a traceback in the run's log) when anything fails."""
    base = Path(folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["SHEPARD_STATE_DIR"] = str(base / "state")
    env["SHEPARD_CONFIG_DIR"] = str(base / "profiles")
    env[RUNNER_VARIABLE] = "process"
    result: DemoResult | None = None
    with (base / OUTPUT).open("w", buffering=1) as out:
        try:
            result = run_demo(
                flock_file=SETUP / "flock.yaml",
                results_dir=base / "results",
                env=env,
                keep=True,
                timeout=240,
                out=out,
            )
            quick = _quick_deploy_job(result, out)
            load = _bench().run_load(result.state_dir, 20, timeout=240)
        finally:
            if result is not None:
                destroy_flock(Tour(result.env, out), result)
            else:  # the demo failed before it could say where its flock is: stop it anyway
                import shepard.local
                from shepard import deploy

                shepard.local.stop(deploy.load_flock(SETUP / "flock.yaml", env).state_dir)
    result.extra["quick"] = quick
    partial = base / (RESULT + ".partial")
    partial.write_bytes(pickle.dumps((result, load)))
    partial.rename(base / RESULT)


def _prepare_demo(folder: Path, env: dict[str, str]) -> tuple[list[str], list[str]]:
    return background.call("tests.e2e.test_demo:run_in_background", str(folder)), []


# The demo deploys a local flock (over a minute and a half): it runs from the end of
# collection, while the tests that need no flock run; a killed run's service is stopped.
background.register(
    DEMO, "demo", _prepare_demo, emulator=False, cleanup=background.stop_local_services
)


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[DemoResult, str, Any]]:
    """The demo with the flock kept, the load benchmark's quick run on it, then the destroy:
    run in the background (``run_in_background``); its output and what it returned."""
    job = background.get(DEMO)
    output = job.folder / OUTPUT
    try:
        try:
            job.applied()
        except background.RunFailed as error:
            said = output.read_text(errors="replace") if output.is_file() else "(nothing)"
            pytest.fail(f"{error}\n\nthe demo said:\n{said}", pytrace=False)
        _bench()  # the benchmark's module, which the pickled LoadResult names
        result, load = pickle.loads((job.folder / RESULT).read_bytes())
        yield result, output.read_text(), load
    finally:
        job.stop()


QUICK_RUN_SH = """#!/bin/bash
set -euo pipefail
echo "quick deploy ran in $(pwd) for $UUID" > "$ROOT_OUTPUT_NAME/quick.txt"
"""


def _quick_deploy_job(result: DemoResult, out: Any) -> dict[str, Any]:
    """A job whose QUICK_DEPLOY_DIRECTORY names a folder with run.sh in the quick-deploy bucket."""
    import boto3

    import shepard.local

    flock = shepard.local.require_running(result.state_dir)
    outputs = json.loads((result.state_dir / "outputs.json").read_text())
    s3 = boto3.client(
        "s3",
        endpoint_url=flock.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.put_object(
        Bucket=outputs["quick_deploy_bucket"], Key="hello/run.sh", Body=QUICK_RUN_SH.encode()
    )
    tour = Tour(result.env, out)
    answer = tour.run_json(
        "batch_via_api", "--json_payload", json.dumps({"QUICK_DEPLOY_DIRECTORY": "hello"}), "--json"
    )
    job_id = str(answer["job_id"])
    deadline = time.monotonic() + 120
    record: dict[str, Any] = {}
    while time.monotonic() < deadline and record.get("PHASE") != "finished":
        records = tour.run_json("query", "--json")
        record = next((r for r in records if r.get("UUID") == job_id), {})
        time.sleep(0.5)
    keys = [
        obj["Key"]
        for obj in s3.list_objects_v2(Bucket=outputs["outputs_bucket"]).get("Contents", [])
        if job_id in obj["Key"]
    ]
    body = b""
    if keys:
        data = s3.get_object(Bucket=outputs["outputs_bucket"], Key=keys[0])["Body"].read()
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            body = archive.read("quick.txt")
    return {"job_id": job_id, "record": record, "keys": keys, "quick_txt": body}


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_local_load", ROOT / "bench" / "bench_local_load.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_local_load"] = module
    spec.loader.exec_module(module)
    return module


def _job(result: DemoResult, how: str, index: int = 0) -> DemoJob:
    return [job for job in result.jobs if job.how == how][index]


def test_the_failing_job_failed_with_its_exit_code_and_an_error_zip(
    demo: tuple[DemoResult, str, Any],
) -> None:
    result, _, _ = demo
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
    demo: tuple[DemoResult, str, Any],
) -> None:
    result, _, _ = demo
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


def test_the_tag_job_zip_starts_with_its_tag(demo: tuple[DemoResult, str, Any]) -> None:
    result, _, _ = demo
    job = _job(result, "batch")
    assert job.record["RESULT"] == "succeeded"
    assert job.record["IS_INVOKED"] in ("False", False)
    assert len(job.result_zips) == 1
    assert re.fullmatch(
        rf"test_file_result@{job.job_id}_\d{{8}}T\d{{6}}Z_root\.zip", job.result_zips[0].name
    )


def test_retrieve_brought_every_result_home(demo: tuple[DemoResult, str, Any]) -> None:
    result, _, _ = demo
    home = sorted(p.name for p in result.results_dir.rglob("*result@*.zip"))
    expected = sorted(z.name for job in result.jobs for z in job.result_zips)
    assert home == expected and len(home) == 2


def test_destroy_left_no_process_and_no_port(demo: tuple[DemoResult, str, Any]) -> None:
    result, output, _ = demo
    assert result.destroyed
    assert result.service_pid is not None and not _alive(result.service_pid)
    assert result.service_ports and all(_port_free(p) for p in result.service_ports)
    assert not (result.state_dir / "local" / "service.json").exists()
    # it reads as a tutorial: a numbered sentence before each command
    assert re.search(r"^1\. Deploy the testing-setup flock", output, re.M)
    assert "$ shepard-tf destroy" in output


def test_twenty_jobs_dropped_at_once_each_ran_once_with_one_result(
    demo: tuple[DemoResult, str, Any],
) -> None:
    _, _, load = demo
    assert load.problems == []
    assert len(load.records) == 20
    assert all(len(keys) == 1 for keys in load.result_keys.values())
    assert load.workers_started == 21  # 20 + the baseline job: nobody ran twice
    assert load.baseline_drop_to_running < 3.0  # target 1 s; slack for a loaded test machine


def test_a_quick_deploy_job_runs_run_sh_from_the_bucket(
    demo: tuple[DemoResult, str, Any],
) -> None:
    result, _, _ = demo
    quick = result.extra["quick"]
    assert quick["record"].get("RESULT") == "succeeded", quick["record"]
    assert len(quick["keys"]) == 1
    assert f"for {quick['job_id']}".encode() in quick["quick_txt"]


def test_the_jobs_ran_as_processes_and_the_demo_said_so_first(
    demo: tuple[DemoResult, str, Any],
) -> None:
    result, output, _ = demo
    said = "Jobs run as processes: SHEPARD_DEMO_RUNNER is process, so no Docker engine is used"
    lines = output.splitlines()
    assert said in lines
    assert lines.index(said) < next(i for i, line in enumerate(lines) if line.startswith("1. "))
    assert result.extra["runner"] == "process"
    # the flock it deployed pins the runner, and its service ran processes
    assert "runner: process" in result.flock_file.read_text()
    assert re.search(r"job\(s\) at once \(process runner\)", output)


def test_jobs_on_the_local_flock_record_their_usage_and_cost(
    demo: tuple[DemoResult, str, Any],
) -> None:
    """docs/cost.md: each run's USAGE, written before its result; the local flock bills nothing."""
    result, _, _ = demo
    for job in result.jobs:
        usage = job.record.get("USAGE")
        assert usage is not None, job.record
        assert (usage["lifecycle"], usage["instance_type"], usage["cost_usd"]) == (
            "local", "local", 0,
        )  # fmt: skip
        assert usage["seconds"] > 0
        vcpus = float(job.record.get("VCPUS") or 2)  # the record's, else the definition's
        assert usage["vcpu_seconds"] == pytest.approx(usage["seconds"] * vcpus, rel=0.01)

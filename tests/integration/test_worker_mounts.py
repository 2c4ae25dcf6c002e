"""The worker refuses a job whose EFS or Lustre file system is not mounted (issue 8.5).

The worker runs in process (``main(env=...)``) against the emulator's S3 and DynamoDB, with the
payload as a process. The EFS/Lustre roots are folders of the test's disk: with the real
``mounts.filesystem_type`` they are whatever the test's disk is (never ``nfs4``), which is
exactly a sheep whose user data failed to mount; a stand-in ``filesystem_type`` plays the sheep
whose mount worked.
"""

from __future__ import annotations

import io
import json
import os
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from shepard_worker import mounts
from shepard_worker.run import main

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.ids import new_job_id
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import make_test_flock

pytestmark = pytest.mark.integration

# Writes a file into each output folder it is given, so a run is visible in the outputs bucket.
PAYLOAD = (
    "import os, pathlib\n"
    "for name in ('ROOT_OUTPUT_NAME', 'EFS_OUTPUT_NAME', 'LUSTRE_OUTPUT_NAME'):\n"
    "    if name in os.environ:\n"
    "        pathlib.Path(os.environ[name], 'ran.txt').write_text('ran\\n')\n"
)


@dataclass
class Sheep:
    env: dict[str, str]
    store: JobStore
    s3: Any
    work_root: Path
    efs_root: Path
    lustre_root: Path

    def submit(self) -> str:
        job_id = new_job_id()
        assert self.store.create(JobRecord(job_id=job_id, variables={"test1": "x"}))
        return job_id

    def run(self, job_id: str, filesystem_type: Callable[[Path], str | None]) -> int:
        code: int = main(
            [], {**self.env, "SHEPARD_JOB_ID": job_id}, filesystem_type=filesystem_type
        )
        return code

    def record(self, job_id: str) -> JobRecord:
        found = self.store.get(job_id)
        assert found is not None
        return found

    def keys(self, bucket: str, job_id: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.env[bucket])
        return sorted(o["Key"] for o in listed.get("Contents", []) if job_id in o["Key"])

    def zip(self, bucket: str, key: str) -> zipfile.ZipFile:
        body = self.s3.get_object(Bucket=self.env[bucket], Key=key)["Body"].read()
        return zipfile.ZipFile(io.BytesIO(body))


@pytest.fixture(scope="module")
def resources(emulator: InProcessEmulator) -> Iterator[FlockSettings]:
    with pytest.MonkeyPatch.context() as patch:
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        emulator.reset()
        yield make_test_flock("mnt", batch=False).settings


@pytest.fixture
def sheep(resources: FlockSettings, tmp_path: Path) -> Sheep:
    s = resources
    roots = {name: tmp_path / name for name in ("root", "efs", "fsx")}
    for path in roots.values():
        path.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
        "AWS_EC2_METADATA_DISABLED": "true",
        "INPUTS_BUCKET": s.inputs_bucket,
        "OUTPUTS_BUCKET": s.outputs_bucket,
        "ERROR_BUCKET": s.errors_bucket,
        "USES_EFS": "True",
        "SHEPARD_EFS_ROOT": str(roots["efs"]),
        "USES_LUSTRE": "True",
        "SHEPARD_LUSTRE_ROOT": str(roots["fsx"]),
        "ULIMIT_FILENO": "4096",
        "SHEPARD_FLOCK": s.flock,
        "SHEPARD_TABLE_NAME": s.table_name,
        "SHEPARD_SECRET_NAME": f"mnt-secrets-{uuid.uuid4().hex[:8]}",
        "SHEPARD_QUICK_DEPLOY_BUCKET": s.quick_deploy_bucket,
        "SHEPARD_WORK_ROOT": str(roots["root"]),
        "SHEPARD_RUNNER": "process",
        "SHEPARD_PAYLOAD_COMMAND": json.dumps([sys.executable, "-c", PAYLOAD]),
    }
    store = JobStore(s.table_name, boto3.client("dynamodb"))
    return Sheep(env, store, boto3.client("s3"), roots["root"], roots["efs"], roots["fsx"])


def test_an_efs_root_on_the_instances_own_disk_fails_the_job_without_running_it(
    sheep: Sheep,
) -> None:
    disk = mounts.filesystem_type(sheep.efs_root)
    assert disk is not None and disk not in mounts.EXPECTED["efs"].types  # the test's premise
    job_id = sheep.submit()

    # The real check: the folders are on the test's own disk, as after a failed mount.
    assert sheep.run(job_id, mounts.filesystem_type) == 1

    record = sheep.record(job_id)
    assert (record.result, record.phase, record.status) == (
        Result.FAILED,
        Phase.FINISHED,
        Status.DONE,
    )
    assert record.exit_code is None  # the payload never ran
    assert record.reason is not None
    assert record.reason.startswith(
        f"EFS is not mounted at {sheep.efs_root} on this instance (it is a {disk} folder"
    )
    assert f"FSx for Lustre is not mounted at {sheep.lustre_root} on this instance" in (
        record.reason
    )
    assert "cloud-init-output.log" in record.reason
    assert sheep.keys("OUTPUTS_BUCKET", job_id) == []
    error_key = f"error@{job_id}_{record.start_time}.zip"
    assert record.error_zip == error_key
    with sheep.zip("ERROR_BUCKET", error_key) as zf:
        assert zf.read("reason.txt").decode() == record.reason + "\n"
        assert f"job {job_id} failed: EFS is not mounted" in zf.read("worker.log").decode()
        assert not any(name.startswith("output_") for name in zf.namelist())
    # Nothing was written where the file systems should be, and the workspace is gone.
    assert list(sheep.efs_root.iterdir()) == [] and list(sheep.lustre_root.iterdir()) == []
    assert list(sheep.work_root.iterdir()) == []

    # Finished: another attempt (Batch's retry) cannot claim it, so it is not run again.
    assert sheep.run(job_id, lambda path: "nfs4") == 0
    assert sheep.record(job_id).reason == record.reason


def test_only_the_missing_file_system_is_named(sheep: Sheep) -> None:
    types = {sheep.efs_root: "nfs4", sheep.lustre_root: "xfs"}
    job_id = sheep.submit()

    assert sheep.run(job_id, types.get) == 1

    reason = sheep.record(job_id).reason
    assert reason is not None
    assert reason.startswith(
        f"FSx for Lustre is not mounted at {sheep.lustre_root} on this instance (it is a xfs "
    )
    assert "EFS" not in reason


def test_a_job_runs_when_both_file_systems_are_mounted(sheep: Sheep) -> None:
    types = {sheep.efs_root: "nfs4", sheep.lustre_root: "lustre"}
    job_id = sheep.submit()

    assert sheep.run(job_id, types.get) == 0

    record = sheep.record(job_id)
    assert record.result is Result.SUCCEEDED and record.reason in (None, "")
    assert [k.rsplit("_", 1)[1] for k in sheep.keys("OUTPUTS_BUCKET", job_id)] == [
        "efs.zip",
        "lustre.zip",
        "root.zip",
    ]

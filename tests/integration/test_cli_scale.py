"""The CLI at scale: `batch` of many folders in parallel, `query` a page of the index at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.settings import FlockSettings
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import create_job_table
from tests.unit.cli.helpers import cli_env, run, write_flock_profile

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scale_flock(emulator: InProcessEmulator) -> Iterator[FlockSettings]:
    with pytest.MonkeyPatch.context() as patch:
        emulator.reset()
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        for key, value in emulator_environment(emulator.endpoint_url, "us-east-1").items():
            patch.setenv(key, value)
        settings = FlockSettings(
            "scaleflock", "scaleflock-jobs", "q", "d", "scaleflock-inputs", "o", "e", "qd"
        )
        boto3.client("s3").create_bucket(Bucket=settings.inputs_bucket)
        create_job_table(boto3.client("dynamodb"), settings.table_name)
        store = JobStore(settings.table_name)
        store.put_many(
            JobRecord(f"job-{n:02d}", created_at=f"2026-11-29T06:00:{n:02d}.000000Z")
            for n in range(30)
        )
        yield settings


def test_batch_of_many_folders_uploads_each_once(
    scale_flock: FlockSettings, tmp_path: Path
) -> None:
    env = cli_env(tmp_path / "config")
    write_flock_profile(env, scale_flock)
    folders = []
    for n in range(6):
        folder = tmp_path / f"job{n}"
        folder.mkdir()
        (folder / "inputs.json").write_text(json.dumps({"N": str(n)}))
        (folder / "data.bin").write_bytes(bytes([n]) * 5000)
        folders.append(str(folder))

    result = run(["batch", *folders, "--parallel", "3"], env)

    assert result.code == 0, result.err
    names = result.out.split()
    assert len(names) == len(set(names)) == 6
    listed = boto3.client("s3").list_objects_v2(Bucket=scale_flock.inputs_bucket)
    assert {o["Key"] for o in listed["Contents"]} == set(names)
    bad = run(["batch", folders[0], "--parallel", "0"], env)
    assert bad.code == 2 and "--parallel" in bad.err


def test_query_shows_the_newest_page_through_the_index_never_a_scan(
    scale_flock: FlockSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = cli_env(tmp_path / "config")
    write_flock_profile(env, scale_flock)
    operations: list[str] = []
    from botocore.client import BaseClient

    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def counted(self: BaseClient, name: str, params: dict[str, object]) -> object:
        operations.append(name)
        return original(self, name, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counted)

    page = run(["query", "--limit", "5"], env)
    every = run(["query", "--all", "--json"], env)

    shown = [line.split()[0] for line in page.out.splitlines() if line.startswith("job-")]
    assert shown == [f"job-{n:02d}" for n in range(25, 30)]
    assert "5 job(s), the newest 5: --limit N or --all for more" in page.err
    assert len(json.loads(every.out)) == 30
    assert "Scan" not in operations and "Query" in operations

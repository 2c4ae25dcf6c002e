from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shepard.joblayer.ids import child_job_id, is_job_id, job_id_for, new_job_id
from shepard.joblayer.records import Phase, Result, Status
from shepard.joblayer.settings import FlockSettings, SettingsError
from shepard.joblayer.store import JobRecord, created_at_text, seed_time_text


def test_ids() -> None:
    a, b = new_job_id(), new_job_id()
    assert a != b and is_job_id(a) and len(a) == 32
    key = "s3://in/job.zip#etag@seq"
    assert job_id_for(key) == job_id_for(key)
    assert job_id_for(key) != job_id_for(key + "x")
    assert is_job_id(job_id_for(key))
    assert child_job_id(a, 7) == f"{a}-7" and is_job_id(child_job_id(a, 9999))
    with pytest.raises(ValueError):
        child_job_id(a, -1)


ENV = {
    "SHEPARD_FLOCK": "f",
    "SHEPARD_TABLE_NAME": "t",
    "SHEPARD_JOB_QUEUE": "q",
    "SHEPARD_JOB_DEFINITION": "d",
    "SHEPARD_INPUTS_BUCKET": "i",
    "SHEPARD_OUTPUTS_BUCKET": "o",
    "SHEPARD_ERRORS_BUCKET": "e",
    "SHEPARD_QUICK_DEPLOY_BUCKET": "qd",
    "SHEPARD_DAYS_TO_KEEP_FAILED_LAUNCH_INDEXES": "3",
    "SHEPARD_DAYS_TO_KEEP_FINISHED_JOBS": "40",
    "SHEPARD_JOB_TIMEOUT_SECONDS": "600",
}


def test_settings_round_trip() -> None:
    settings = FlockSettings.from_env(ENV)
    assert settings.days_to_keep_finished_jobs == 40
    assert settings.job_timeout_seconds == 600
    assert FlockSettings.from_env(settings.to_env()) == settings


def test_settings_name_the_missing_or_bad_variable() -> None:
    with pytest.raises(SettingsError, match="SHEPARD_TABLE_NAME is not set"):
        FlockSettings.from_env({k: v for k, v in ENV.items() if k != "SHEPARD_TABLE_NAME"})
    with pytest.raises(SettingsError, match="SHEPARD_JOB_TIMEOUT_SECONDS='ten'"):
        FlockSettings.from_env({**ENV, "SHEPARD_JOB_TIMEOUT_SECONDS": "ten"})
    defaults = FlockSettings.from_env(
        {k: v for k, v in ENV.items() if not k.startswith("SHEPARD_DAYS")}
    )
    assert (defaults.days_to_keep_failed_launch_indexes, defaults.days_to_keep_finished_jobs) == (
        2,
        30,
    )


def test_record_item_round_trip_keeps_every_field() -> None:
    record = JobRecord(
        job_id="a" * 32 + "-3",
        status=Status.FAILED_PUSHING_LOGS,
        phase=Phase.FINISHED,
        created_at="2026-11-25T08:00:00.000001Z",
        result=Result.FAILED,
        exit_code=2,
        reason="payload exited 2",
        variables={"A": "1", "TAG": "t"},
        tag="t",
        is_invoked=True,
        input_zip_name="dir/x.zip",
        idempotency_key="s3://b/k#e@s",
        batch_job_id="batch-1:3",
        array_parent="a" * 32,
        array_index=3,
        start_time="20261125T080000Z",
        end_time="20261125T080100Z",
        attempt=2,
        outputs=("t_result@x_root.zip",),
        error_zip="err.zip",
        expires_at=1_800_000_000,
        batch_id="b-20261129-0001",
        batch_status="FAILED",
        batch_reason="Host EC2 (instance i-0abc) terminated.",
        log_stream="demo-job/default/0123",
        job_queue="demo-queue",
        vcpus=2,
        memory_mib=4096,
        gpus=1,
        timeout_seconds=3600,
        reclaims=1,
        attempts=(
            {"number": 1, "exit_code": None, "cause": "spot reclaim", "lifecycle": "spot"},
            {"number": 2, "exit_code": 0, "lifecycle": "on_demand", "preempted": False},
        ),
        usage={"vcpu_seconds": 120, "memory_gib_seconds": 240.5, "cost_usd": 0.00125},
    )
    item = record.to_item()
    assert item["USAGE"]["M"]["cost_usd"] == {"N": "0.00125"}
    assert item["ATTEMPTS"]["L"][0]["M"]["exit_code"] == {"NULL": True}
    assert item["IS_INVOKED"] == {"S": "True"}
    assert item["EXIT_CODE"] == {"N": "2"}
    assert item["VARIABLES"] == {"M": {"A": {"S": "1"}, "TAG": {"S": "t"}}}
    assert JobRecord.from_item(item) == record


def test_minimal_record_leaves_absent_attributes_out() -> None:
    item = JobRecord(job_id="b" * 32, created_at="x").to_item()
    assert set(item) == {
        "UUID",
        "JOB_STATUS",
        "PHASE",
        "CREATED_AT",
        "VARIABLES",
        "IS_INVOKED",
        "ATTEMPT",
    }
    assert item["JOB_STATUS"] == {"S": "not_yet_initiated"}


def test_time_formats() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert created_at_text(moment) == "2026-01-02T03:04:05.000006Z"
    assert seed_time_text(moment) == "20260102T030405Z"

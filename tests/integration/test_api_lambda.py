"""The API Lambda against the emulator: invoke payloads and function URL requests."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas.api import handler as api
from lambdas.api.handler import handle
from shepard.emulator import InProcessEmulator, emulator_environment
from shepard.joblayer.batch import BatchSubmitter
from shepard.joblayer.ids import new_job_id
from shepard.joblayer.records import Phase, Result
from shepard.joblayer.service import JobService
from shepard.joblayer.store import JobRecord, JobStore
from shepard.joblayer.testing import FlockFixture, make_test_flock

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base_flock(emulator: InProcessEmulator) -> Iterator[FlockFixture]:
    emulator.reset()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in emulator_environment(emulator.endpoint_url).items():
            patch.setenv(key, value)
        yield make_test_flock("api")


@pytest.fixture
def flock(
    base_flock: FlockFixture, emulator: InProcessEmulator, monkeypatch: pytest.MonkeyPatch
) -> FlockFixture:
    for key, value in emulator_environment(emulator.endpoint_url).items():
        monkeypatch.setenv(key, value)
    return base_flock.fresh(new_job_id()[:8])


def jobs_for(flock: FlockFixture, client: Any = None) -> JobService:
    settings = flock.settings
    return JobService(
        settings,
        JobStore(settings.table_name),
        BatchSubmitter(settings.job_queue, settings.job_definition, client, sleep=lambda _: None),
    )


def records(flock: FlockFixture) -> list[JobRecord]:
    return JobStore(flock.settings.table_name).scan_all()


def batch_jobs(flock: FlockFixture) -> list[dict[str, Any]]:
    batch = boto3.client("batch")
    found = []
    for status in ("SUBMITTED", "PENDING", "RUNNABLE", "RUNNING", "SUCCEEDED", "FAILED"):
        found += batch.list_jobs(jobQueue=flock.settings.job_queue, jobStatus=status)[
            "jobSummaryList"
        ]
    return [dict(j) for j in found if ":" not in j["jobId"]]


def url_event(
    body: str, *, method: str = "POST", b64: bool = False, headers: dict[str, str] | None = None
) -> Any:
    """A function URL request (payload format 2.0), as AWS delivers it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            "domainName": "abc.lambda-url.us-east-1.on.aws",
            "http": {"method": method, "path": "/", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4"},
            "requestId": "r1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:09:00:00 +0000",
            "timeEpoch": 1795770000000,
        },
        "body": base64.b64encode(body.encode()).decode() if b64 else body,
        "isBase64Encoded": b64,
    }


def test_invoke_with_variables_makes_a_job(flock: FlockFixture) -> None:
    answer = handle(jobs_for(flock), {"test": "this will become a variable", "n": 2})
    assert set(answer) >= {"job_id", "UUID"} and answer["job_id"] == answer["UUID"]
    (record,) = records(flock)
    assert record.job_id == answer["job_id"] and record.is_invoked
    assert record.variables == {"test": "this will become a variable", "n": "2"}
    assert record.phase is Phase.QUEUED and record.batch_job_id == answer["batch_job_id"]
    (job,) = batch_jobs(flock)
    assert job["jobId"] == record.batch_job_id


def test_invoke_with_a_json_string_payload(flock: FlockFixture) -> None:
    answer = handle(jobs_for(flock), json.dumps({"A": "1"}))
    assert "job_id" in answer and records(flock)[0].variables == {"A": "1"}


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"HOSTNAME": "x"}, '"HOSTNAME" is reserved'),
        ({"bad-name": "x"}, "'bad-name' is not a valid"),
        (42, "not a int"),
        ("{not json", "not valid JSON: Expecting property name"),
        ([], "2 or more variable objects, not 0"),
        ([{"A": 1}, {"is_invoked": "x"}], "array item 1:"),
    ],
)
def test_invoke_with_a_bad_payload_makes_no_job(
    flock: FlockFixture, payload: object, words: str
) -> None:
    answer = handle(jobs_for(flock), payload)
    assert answer["statusCode"] == 400 and words in answer["error"]
    assert "job_id" not in answer
    assert batch_jobs(flock) == []
    assert all(r.result is Result.REJECTED for r in records(flock))


def test_invoke_with_a_list_makes_an_array_job(flock: FlockFixture) -> None:
    answer = handle(jobs_for(flock), [{"I": i} for i in range(4)])
    assert answer["array_size"] == 4
    children = {r.job_id: r for r in records(flock)}
    assert set(children) == {f"{answer['job_id']}-{i}" for i in range(4)}
    assert children[f"{answer['job_id']}-2"].variables == {"I": "2"}
    (job,) = batch_jobs(flock)
    described = boto3.client("batch").describe_jobs(jobs=[job["jobId"]])["jobs"][0]
    assert described["arrayProperties"]["size"] == 4


def test_function_url_post_makes_a_job(flock: FlockFixture) -> None:
    response = handle(jobs_for(flock), url_event(json.dumps({"TAG": "web", "x": True})))
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/json"
    body = json.loads(response["body"])
    (record,) = records(flock)
    assert body["job_id"] == record.job_id and record.variables == {"TAG": "web", "x": "true"}
    assert batch_jobs(flock)[0]["jobName"] == "web"


def test_function_url_base64_body(flock: FlockFixture) -> None:
    response = handle(jobs_for(flock), url_event(json.dumps({"é": 1}), b64=True))
    assert response["statusCode"] == 400  # é is not a valid variable name
    assert "'é' is not a valid environment variable name" in json.loads(response["body"])["error"]
    response = handle(jobs_for(flock), url_event(json.dumps({"text": "héllo"}), b64=True))
    assert response["statusCode"] == 200
    accepted = [r for r in records(flock) if r.result is None]
    assert [r.variables for r in accepted] == [{"text": "héllo"}]


def test_function_url_errors(flock: FlockFixture) -> None:
    jobs = jobs_for(flock)
    bad_json = handle(jobs, url_event('{"a": 1,}'))
    assert bad_json["statusCode"] == 400
    assert "the request body is not valid JSON" in json.loads(bad_json["body"])["error"]
    assert "line 1 column 9" in json.loads(bad_json["body"])["error"]
    wrong_method = handle(jobs, url_event("", method="GET"))
    assert wrong_method["statusCode"] == 405
    bad_b64 = url_event("{}")
    bad_b64.update(isBase64Encoded=True, body="%%%")
    assert handle(jobs, bad_b64)["statusCode"] == 400
    assert batch_jobs(flock) == []


def test_function_url_idempotency_key(flock: FlockFixture) -> None:
    jobs = jobs_for(flock)
    first = handle(jobs, url_event('{"A": "1"}', headers={"Idempotency-Key": "order-17"}))
    second = handle(jobs, url_event('{"A": "1"}', headers={"Idempotency-Key": "order-17"}))
    assert json.loads(first["body"])["job_id"] == json.loads(second["body"])["job_id"]
    assert json.loads(second["body"])["status"] == "duplicate"
    assert len(batch_jobs(flock)) == 1 and len(records(flock)) == 1


def test_batch_refusal_is_a_502_with_a_failed_record(flock: FlockFixture) -> None:
    settings = flock.settings
    jobs = JobService(
        settings,
        JobStore(settings.table_name),
        BatchSubmitter(
            settings.job_queue, "arn:aws:batch:us-east-1:123456789012:job-definition/x:1"
        ),
    )
    answer = handle(jobs, {"A": "1"})
    assert (
        answer["statusCode"] == 502 and "while submitting the job to AWS Batch" in answer["error"]
    )
    (record,) = records(flock)
    assert record.job_id == answer["job_id"] and record.result is Result.FAILED


class Throttled:
    def submit_job(self, **_: Any) -> Any:
        answer: Any = {
            "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        raise ClientError(answer, "SubmitJob")


def test_throttling_that_outlasts_the_retries_is_a_503(flock: FlockFixture) -> None:
    response = handle(jobs_for(flock, Throttled()), url_event('{"A": "1"}'))
    assert response["statusCode"] == 503
    assert "try again" in json.loads(response["body"])["error"]
    assert records(flock) == []


def test_lambda_entry_point_reads_its_environment(
    flock: FlockFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in flock.env.items():
        monkeypatch.setenv(name, value)
    answer = api.handler({"A": "1"}, None)
    assert records(flock)[0].job_id == answer["job_id"]
    assert api.service() is api.service()


def test_an_array_past_batchs_limit_is_cut_into_few_arrays(
    flock: FlockFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batch's limit is 10,000 children; a limit of 3 shows the same cut on 7 children.
    from functools import partial

    from shepard.joblayer import batch, service

    monkeypatch.setattr(service, "array_parts", partial(batch.array_parts, most=3))
    jobs = jobs_for(flock)
    answer = handle(jobs, [{"I": i} for i in range(7)])
    assert [p["array_size"] for p in answer["array_parts"]] == [3, 2, 2]
    assert answer["array_size"] == 7 and answer["job_id"] == answer["array_parts"][0]["job_id"]
    assert jobs.submitter.calls == 3 and len(batch_jobs(flock)) == 3
    found = records(flock)
    assert sorted(r.variables["I"] for r in found) == [str(i) for i in range(7)]
    by_parent: dict[str, list[int]] = {}
    for r in found:
        by_parent.setdefault(str(r.array_parent), []).append(r.array_index or 0)
    assert sorted(sorted(v) for v in by_parent.values()) == [[0, 1], [0, 1], [0, 1, 2]]

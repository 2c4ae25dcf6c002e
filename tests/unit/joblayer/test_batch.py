from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from shepard.joblayer.batch import BatchSubmitter, TransientFailure, is_transient, job_name

JOB_ID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("tag", "name"),
    [
        (None, JOB_ID),
        ("run-7_a", "run-7_a"),
        ("my run: 7/é", "my_run_7_"),
        ("__x", "x"),
        ("!!!", JOB_ID),
        ("t" * 200, "t" * 128),
    ],
)
def test_job_names_follow_batch_rules(tag: str | None, name: str) -> None:
    assert job_name(JOB_ID, tag) == name


def error(code: str, status: int) -> ClientError:
    answer: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(answer, "SubmitJob")


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (error("TooManyRequestsException", 429), True),
        (error("ThrottlingException", 400), True),
        (error("ServerException", 500), True),
        (error("InternalError", 503), True),
        (error("ClientException", 400), False),
        (error("AccessDeniedException", 403), False),
        (TransientFailure("x"), True),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (ValueError("x"), False),
    ],
)
def test_only_throttling_5xx_and_connection_errors_are_transient(
    exc: BaseException, transient: bool
) -> None:
    assert is_transient(exc) is transient


def test_request_carries_only_the_job_id_and_checks_array_size() -> None:
    submitter = BatchSubmitter("queue-arn", "definition-arn", client=object())
    params = submitter.request(JOB_ID, tag="t", array_size=3)
    assert params == {
        "jobName": "t",
        "jobQueue": "queue-arn",
        "jobDefinition": "definition-arn",
        "containerOverrides": {"environment": [{"name": "SHEPARD_JOB_ID", "value": JOB_ID}]},
        "arrayProperties": {"size": 3},
    }
    assert "arrayProperties" not in submitter.request(JOB_ID)
    for size in (1, 10_001):
        with pytest.raises(ValueError, match="2 to 10000"):
            submitter.request(JOB_ID, array_size=size)


@pytest.mark.parametrize(
    ("total", "sizes"),
    [(2, [2]), (10_000, [10_000]), (10_001, [5_001, 5_000]), (20_001, [6_667, 6_667, 6_667])],
)
def test_array_parts_are_few_even_and_never_a_lone_child(total: int, sizes: list[int]) -> None:
    from shepard.joblayer.batch import array_parts

    parts = array_parts(total)
    assert [len(p) for p in parts] == sizes
    assert [i for p in parts for i in p] == list(range(total))

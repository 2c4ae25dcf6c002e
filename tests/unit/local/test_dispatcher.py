"""The dispatcher delivers SQS batches to the scheduler as Lambda's event source mapping does."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest

from shepard.emulator import InProcessEmulator
from shepard.local.dispatcher import Dispatcher, failed_message_ids, sqs_event
from shepard.local.outputs import FlockOutputs

ARN = "arn:aws:sqs:us-east-1:123456789012:flock-jobs"


def _message(n: int, receives: int = 1) -> dict[str, Any]:
    return {
        "MessageId": f"id-{n}",
        "ReceiptHandle": f"rh-{n}",
        "Body": json.dumps({"Records": [{"s3": {"object": {"key": f"job{n}.zip"}}}]}),
        "MD5OfBody": "abc",
        "Attributes": {"ApproximateReceiveCount": str(receives), "SentTimestamp": "1700000000000"},
        "MessageAttributes": {"kind": {"StringValue": "s3", "DataType": "String"}},
    }


def test_the_event_has_the_shape_lambda_delivers() -> None:
    event = sqs_event([_message(1, receives=3), _message(2)], ARN, "us-east-1")
    assert [r["messageId"] for r in event["Records"]] == ["id-1", "id-2"]
    record = event["Records"][0]
    assert record["receiptHandle"] == "rh-1"
    assert json.loads(record["body"])["Records"][0]["s3"]["object"]["key"] == "job1.zip"
    assert record["attributes"]["ApproximateReceiveCount"] == "3"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == ARN
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"] == "abc"
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "s3",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }


@pytest.mark.parametrize(
    ("result", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "id-2"}]}, {"id-2"}),
        ({"batchItemFailures": [{"itemIdentifier": "unknown"}]}, {"id-1", "id-2"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"id-1", "id-2"}),
        ({"batchItemFailures": "oops"}, {"id-1", "id-2"}),
    ],
)
def test_batch_item_failures_as_lambda_reads_them(result: object, failed: set[str]) -> None:
    assert failed_message_ids(result, [_message(1), _message(2)]) == failed


@pytest.mark.integration
def test_failed_messages_come_back_and_reach_the_dead_letter_queue(
    aws: InProcessEmulator,
) -> None:
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="flock-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue = sqs.create_queue(
        QueueName="flock-jobs",
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
        },
    )["QueueUrl"]
    outputs = FlockOutputs.from_mapping(
        {"sqs_queue_url": queue, "table_name": "t", "region": "us-east-1"}
    )
    for body in ("good-1", "bad", "good-2"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)

    seen: list[tuple[str, str]] = []

    def scheduler(event: dict[str, Any], context: object) -> object:
        failures = []
        for record in event["Records"]:
            seen.append((record["body"], record["attributes"]["ApproximateReceiveCount"]))
            if record["body"] == "bad":
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    woken = threading.Event()
    dispatcher = Dispatcher(
        sqs,
        scheduler=lambda: scheduler,
        outputs=lambda: outputs,
        stop=threading.Event(),
        on_dispatched=woken.set,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        dispatcher.poll_once()
        if dlq_messages := sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages"):
            break
    assert woken.is_set()
    assert sorted(body for body, _ in seen if body != "bad") == ["good-1", "good-2"]
    # the failed one was delivered again with a higher receive count, then dead-lettered
    assert [count for body, count in seen if body == "bad"] == ["1", "2"]
    assert [m["Body"] for m in dlq_messages] == ["bad"]
    left = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert left["ApproximateNumberOfMessages"] == "0"
    assert left["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert dispatcher.messages == 4 and dispatcher.failures == 2


@pytest.mark.integration
def test_a_raising_scheduler_fails_the_whole_batch(aws: InProcessEmulator) -> None:
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    outputs = FlockOutputs.from_mapping({"sqs_queue_url": queue, "table_name": "t"})
    sqs.send_message(QueueUrl=queue, MessageBody="x")

    def scheduler(event: dict[str, Any], context: object) -> object:
        raise RuntimeError("boom")

    dispatcher = Dispatcher(
        sqs, scheduler=lambda: scheduler, outputs=lambda: outputs, stop=threading.Event()
    )
    assert dispatcher.poll_once() == 1
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # not deleted
    assert dispatcher.failures == 1

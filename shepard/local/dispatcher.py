"""The local stand-in for Lambda's SQS event source mapping.

It long-polls the flock's queue and calls the scheduler handler with the event AWS would deliver
(``Records`` with ``messageId``, ``receiptHandle``, ``body``, ``attributes``
including ``ApproximateReceiveCount``, ``eventSourceARN``, ...). It deletes the messages the
handler did not list in ``batchItemFailures`` (ReportBatchItemFailures); failed ones become
visible again after the queue's visibility timeout and reach the dead-letter queue after
``max_receive_count`` receives, as on AWS. A handler that raises fails the whole batch.

Like the event source mapping, one invocation gathers up to the flock's ``scheduler.batch_size``
messages (ReceiveMessage returns at most 10) for at most ``scheduler.batching_window_seconds``;
it stops gathering as soon as the queue has nothing more to give, so a lone drop starts at once.
Several invocations run at once (``concurrency`` pollers, as Lambda scales its pollers out), so a
burst of drops is not handled one batch after another.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from shepard.local.invoke_server import Handler, LambdaContext
from shepard.local.outputs import FlockOutputs

log = logging.getLogger(__name__)

BATCH_SIZE = 10  # the most one ReceiveMessage returns
WAIT_SECONDS = 1
CONCURRENCY = 3  # pollers at once: the handler waits on the emulator, not on this CPU
MAX_CONCURRENCY = 8


def sqs_event(
    messages: Sequence[Mapping[str, Any]], queue_arn: str, region: str
) -> dict[str, list[dict[str, Any]]]:
    """The event Lambda's SQS event source mapping delivers for ``ReceiveMessage`` results."""
    records = []
    for message in messages:
        body = str(message.get("Body", ""))
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": body,
                "attributes": {str(k): str(v) for k, v in message.get("Attributes", {}).items()},
                "messageAttributes": {
                    name: _lambda_message_attribute(value)
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    # SQS API shape (StringValue, DataType) -> Lambda event shape (stringValue, dataType).
    converted: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": list(value.get("BinaryListValues", [])),
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = value["BinaryValue"]
    return converted


def failed_message_ids(result: object, messages: Sequence[Mapping[str, Any]]) -> set[str]:
    """The ids the handler reported as failed (``batchItemFailures``); all on a bad answer."""
    if result is None:
        return set()
    if not isinstance(result, dict):
        return set()
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    all_ids = {str(m["MessageId"]) for m in messages}
    if not isinstance(failures, list):
        return all_ids
    ids: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or str(identifier) not in all_ids:
            # Lambda treats an unknown or empty identifier as a failure of the whole batch.
            return all_ids
        ids.add(str(identifier))
    return ids


class Dispatcher:
    """Polls the flock's queue and runs the scheduler handler for each batch."""

    def __init__(
        self,
        sqs: Any,
        scheduler: Callable[[], Handler | None],
        outputs: Callable[[], FlockOutputs | None],
        *,
        stop: threading.Event,
        on_dispatched: Callable[[], None] = lambda: None,
        wait_seconds: int = WAIT_SECONDS,
        batch_size: Callable[[], int] = lambda: BATCH_SIZE,
        batching_window: Callable[[], float] = lambda: 0.0,
        concurrency: Callable[[], int] = lambda: CONCURRENCY,
    ) -> None:
        self._sqs = sqs
        self._scheduler = scheduler
        self._outputs = outputs
        self._stop = stop
        self._on_dispatched = on_dispatched
        self._wait_seconds = wait_seconds
        self._batch_size = batch_size
        self._batching_window = batching_window
        self._concurrency = concurrency
        self._count_lock = threading.Lock()
        self.batches = 0
        self.messages = 0
        self.failures = 0

    def poll_once(self) -> int:
        """Receive one batch and hand it to the scheduler; the number of messages received."""
        outputs = self._outputs()
        handler = self._scheduler()
        if outputs is None or handler is None:
            self._stop.wait(0.5)
            return 0
        messages = self._gather(outputs.sqs_queue_url)
        if not messages:
            return 0
        event = sqs_event(messages, outputs.sqs_queue_arn, outputs.region)
        name = outputs.scheduler_function_name or "scheduler"
        started = time.monotonic()
        try:
            result = handler(event, LambdaContext(function_name=name, region=outputs.region))
            failed = failed_message_ids(result, messages)
        except Exception:
            log.exception("scheduler handler raised; the batch of %d comes back", len(messages))
            failed = {str(m["MessageId"]) for m in messages}
        done = [m for m in messages if str(m["MessageId"]) not in failed]
        for start in range(0, len(done), BATCH_SIZE):
            chunk = done[start : start + BATCH_SIZE]
            self._sqs.delete_message_batch(
                QueueUrl=outputs.sqs_queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
        with self._count_lock:
            self.batches += 1
            self.messages += len(messages)
            self.failures += len(failed)
        log.info(
            "scheduler: %d message(s), %d failed, %.0f ms",
            len(messages),
            len(failed),
            (time.monotonic() - started) * 1000,
        )
        self._on_dispatched()
        return len(messages)

    def _receive(self, queue_url: str, most: int, wait: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max(1, min(BATCH_SIZE, most)),
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _gather(self, queue_url: str) -> list[dict[str, Any]]:
        """One invocation's messages: a long poll for the first, then more without waiting
        until the batch is full, the window is over or the queue has none left."""
        wanted = max(1, int(self._batch_size()))
        messages = self._receive(queue_url, wanted, self._wait_seconds)
        if not messages:
            return []
        deadline = time.monotonic() + max(0.0, float(self._batching_window()))
        while len(messages) < wanted and time.monotonic() < deadline:
            more = self._receive(queue_url, wanted - len(messages), 0)
            if not more:
                break
            messages.extend(more)
        return messages

    def run(self) -> None:
        """``concurrency()`` pollers until stopped (each one invocation at a time); the setting
        is read again as they go (the pollers above it idle)."""
        threads = [
            threading.Thread(target=self._poll_forever, args=(i,), name=f"dispatcher-{i}")
            for i in range(1, MAX_CONCURRENCY)
        ]
        for thread in threads:
            thread.daemon = True
            thread.start()
        self._poll_forever(0)
        for thread in threads:
            thread.join(timeout=10)

    def _poll_forever(self, number: int) -> None:
        while not self._stop.is_set():
            if number >= max(1, min(MAX_CONCURRENCY, int(self._concurrency()))):
                self._stop.wait(0.5)
                continue
            try:
                self.poll_once()
            except ClientError as exc:
                # A queue not there (yet, or any more: destroy runs while we poll).
                log.warning("dispatcher: %s; retrying in 2 s", exc)
                self._stop.wait(2)
            except Exception:
                # The emulator restarting or a queue not there yet: say so, wait, try again.
                log.exception("dispatcher: polling the queue failed; retrying in 2 s")
                self._stop.wait(2)

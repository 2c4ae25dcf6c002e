"""The local Lambda endpoint answers boto3's ``invoke`` as AWS Lambda does."""

from __future__ import annotations

import json
import os
import socket
import threading
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from shepard.local.invoke_server import InvokeServer, function_name_from_path


def _client(url: str) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


def _echo(event: dict[str, Any], context: object) -> object:
    return {
        "event": event,
        "function": getattr(context, "function_name", None),
        "remaining_ms": context.get_remaining_time_in_millis(),  # type: ignore[attr-defined]
        "table": os.environ.get("SHEPARD_TABLE_NAME"),
    }


def _boom(event: dict[str, Any], context: object) -> object:
    raise ValueError(f"bad payload: {event.get('x')}")


def _not_json(event: dict[str, Any], context: object) -> object:
    return {1, 2}


@pytest.fixture
def server() -> Any:
    srv = InvokeServer(
        {"flock-api": _echo, "flock-boom": _boom, "flock-set": _not_json},
        env={"SHEPARD_TABLE_NAME": "jobs-table"},
    )
    srv.start()
    yield srv
    srv.stop()


def test_invoke_returns_the_handlers_json_with_env_and_context(server: InvokeServer) -> None:
    response = _client(server.url).invoke(
        FunctionName="flock-api", Payload=json.dumps({"a": "b"}).encode()
    )
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    body = json.loads(response["Payload"].read())
    assert body["event"] == {"a": "b"}
    assert body["function"] == "flock-api"
    assert body["table"] == "jobs-table"
    assert 0 < body["remaining_ms"] <= 60_000


def test_invoke_by_arn_and_qualifier_reaches_the_same_function(server: InvokeServer) -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:flock-api:$LATEST"
    body = json.loads(_client(server.url).invoke(FunctionName=arn, Payload=b"{}")["Payload"].read())
    assert body["function"] == "flock-api"
    assert function_name_from_path("flock-api%3Aprod") == "flock-api"


def test_a_raising_handler_is_an_unhandled_function_error(server: InvokeServer) -> None:
    response = _client(server.url).invoke(FunctionName="flock-boom", Payload=b'{"x": "7"}')
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "bad payload: 7"
    assert error["stackTrace"]


def test_an_unserialisable_result_is_a_marshal_error(server: InvokeServer) -> None:
    response = _client(server.url).invoke(FunctionName="flock-set", Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "Runtime.MarshalError"


def test_an_unknown_function_is_resource_not_found(server: InvokeServer) -> None:
    with pytest.raises(ClientError) as caught:
        _client(server.url).invoke(FunctionName="nope", Payload=b"{}")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "nope" in str(caught.value)


def test_a_body_that_is_not_json_is_rejected(server: InvokeServer) -> None:
    with pytest.raises(ClientError) as caught:
        _client(server.url).invoke(FunctionName="flock-api", Payload=b"{not json")
    assert caught.value.response["Error"]["Code"] == "InvalidRequestContentException"


def test_event_invocations_run_in_the_background() -> None:
    seen = threading.Event()

    def handler(event: dict[str, Any], context: object) -> object:
        seen.set()
        return None

    with InvokeServer({"f": handler}) as srv:
        response = _client(srv.url).invoke(FunctionName="f", InvocationType="Event", Payload=b"{}")
        assert response["StatusCode"] == 202
        assert seen.wait(5)
        dry = _client(srv.url).invoke(FunctionName="f", InvocationType="DryRun", Payload=b"{}")
        assert dry["StatusCode"] == 204


def test_concurrent_invocations_are_served_in_parallel() -> None:
    barrier = threading.Barrier(4, timeout=5)

    def handler(event: dict[str, Any], context: object) -> object:
        barrier.wait()  # only passes if 4 invocations are inside the handler at once
        return event["n"]

    results: list[int] = []
    with InvokeServer({"f": handler}) as srv:
        client = _client(srv.url)

        def call(n: int) -> None:
            payload = client.invoke(FunctionName="f", Payload=json.dumps({"n": n}).encode())
            results.append(json.loads(payload["Payload"].read()))

        threads = [threading.Thread(target=call, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert sorted(results) == [0, 1, 2, 3]


def test_stop_frees_the_port_and_restores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHEPARD_TABLE_NAME", raising=False)
    srv = InvokeServer({"f": _echo}, env={"SHEPARD_TABLE_NAME": "t"})
    srv.start()
    assert os.environ["SHEPARD_TABLE_NAME"] == "t"
    port = srv.port
    srv.stop()
    assert "SHEPARD_TABLE_NAME" not in os.environ
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # raises while a listener still holds the port


def test_an_unknown_function_is_looked_up_once_more_before_not_found() -> None:
    # Right after an apply the service may not have loaded the new function names yet: the
    # server asks it to look again before it answers ResourceNotFound.
    looked: list[int] = []
    srv = InvokeServer({})

    def deployed_meanwhile() -> None:
        looked.append(1)
        srv.functions["flock-api"] = _echo

    srv.on_unknown_function = deployed_meanwhile
    srv.start()
    try:
        answer = _client(srv.url).invoke(FunctionName="flock-api", Payload=b'{"x": 1}')
        assert json.loads(answer["Payload"].read())["event"] == {"x": 1}
        assert looked == [1]
        with pytest.raises(ClientError, match="Function not found: nope"):
            _client(srv.url).invoke(FunctionName="nope", Payload=b"{}")
        assert looked == [1, 1]
    finally:
        srv.stop()

"""The local flock's emulator: a transaction costs the items it touches and stays all-or-nothing."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from shepard.emulator import InProcessEmulator
from shepard.local import emulator_tuning


@pytest.fixture
def tuned(aws: InProcessEmulator, monkeypatch: pytest.MonkeyPatch) -> Any:
    """install() for this test only: the session's emulator keeps moto as it is afterwards."""
    from moto.dynamodb import models

    monkeypatch.setattr(models, "copy", models.copy)
    monkeypatch.setattr(
        models.DynamoDBBackend,
        "transact_write_items",
        models.DynamoDBBackend.transact_write_items,
    )
    monkeypatch.setattr(emulator_tuning, "_INSTALLED", [])
    emulator_tuning.install()
    assert models.copy is not __import__("copy")
    return boto3.client("dynamodb")


def _table(ddb: Any, name: str, *, range_key: bool) -> None:
    keys = [{"AttributeName": "k", "KeyType": "HASH"}]
    attributes = [{"AttributeName": "k", "AttributeType": "S"}]
    if range_key:
        keys.append({"AttributeName": "r", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "r", "AttributeType": "S"})
    ddb.create_table(
        TableName=name,
        KeySchema=keys,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
    )


def _items(ddb: Any, name: str) -> list[dict[str, Any]]:
    return sorted(ddb.scan(TableName=name)["Items"], key=lambda i: (i["k"]["S"], str(i.get("r"))))


@pytest.mark.integration
def test_a_cancelled_transaction_puts_back_every_item_it_touched(tuned: Any) -> None:
    for range_key in (False, True):
        _check_all_or_nothing(tuned, f"jobs-{range_key}", range_key=range_key)


def _check_all_or_nothing(ddb: Any, table: str, *, range_key: bool) -> None:
    _table(ddb, table, range_key=range_key)
    extra = {"r": {"S": "1"}} if range_key else {}
    ddb.put_item(TableName=table, Item={"k": {"S": "a"}, "v": {"N": "1"}, **extra})
    before = _items(ddb, table)
    with pytest.raises(ClientError) as raised:
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"k": {"S": "b"}, **extra}}},
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"k": {"S": "a"}, **extra},
                        "UpdateExpression": "SET v = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": {"k": {"S": "missing"}, **extra},
                        "ConditionExpression": "attribute_exists(k)",
                    }
                },
            ]
        )
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert _items(ddb, table) == before  # b not there, a still v=1

    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": table, "Item": {"k": {"S": "b"}, **extra}}},
            {"Delete": {"TableName": table, "Key": {"k": {"S": "a"}, **extra}}},
        ]
    )
    assert [i["k"]["S"] for i in _items(ddb, table)] == ["b"]

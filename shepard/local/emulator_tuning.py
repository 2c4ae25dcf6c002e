"""What the local flock's in-process emulator does faster than moto does by itself.

moto's DynamoDB ``TransactWriteItems`` deep-copies every table a transaction names, once per
item of the transaction, so that it can put the table back when one condition fails. Its cost
grows with the table: measured on the local flock with 200 zips dropped at once (py-spy), 40 % of
the service's time went to those copies, and each scheduler invocation took longer the more
records the table held. :func:`install` keeps the all-or-nothing rule and makes it cost what the
transaction touches: the items it names are copied before it runs, and put back (or removed)
when it is cancelled. Nothing else of moto changes, and only in the process that calls it (the
local flock's service; the tests' emulators keep moto as it is).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_INSTALLED: list[bool] = []
_ENABLED = [True]  # off: moto's own whole-table copies (a benchmark's baseline)

Saved = list[tuple[Any, Any, Any, Any]]  # (table, hash value, range value or None, item or None)


class _KeepTables:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend: tables are not copied
    (the transaction's own items are, by :func:`install`'s wrapper), anything else is."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if _ENABLED[0] and isinstance(value, self._table_type):
            return value
        return copy.deepcopy(value, memo)


def _key_of(table: Any, op_type: str, op: Mapping[str, Any]) -> tuple[Any, Any] | None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    key = op.get("Item") if op_type == "Put" else op.get("Key")
    if not isinstance(key, Mapping) or table.hash_key_attr not in key:
        return None
    range_value = None
    if table.range_key_attr is not None:
        if table.range_key_attr not in key:
            return None
        range_value = DynamoType(key[table.range_key_attr])
    return DynamoType(key[table.hash_key_attr]), range_value


def touched_items(tables: Mapping[str, Any], transact_items: Iterable[Mapping[str, Any]]) -> Saved:
    """A copy of each item the transaction names, as it is before the transaction (None: none)."""
    saved: Saved = []
    for entry in transact_items:
        if len(entry) != 1:
            continue
        op_type, op = next(iter(entry.items()))
        table = tables.get(str(op.get("TableName"))) if isinstance(op, Mapping) else None
        if table is None:
            continue
        key = _key_of(table, op_type, op)
        if key is None:
            continue
        hash_value, range_value = key
        current = table.get_item(hash_value, range_value)
        saved.append((table, hash_value, range_value, copy.deepcopy(current)))
    return saved


def put_back(saved: Saved) -> None:
    """Each saved item back as it was; an item that did not exist removed again."""
    for table, hash_value, range_value, item in reversed(saved):
        if range_value is None:
            if item is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = item
        elif item is None:
            table.items.get(hash_value, {}).pop(range_value, None)
        else:
            table.items[hash_value][range_value] = item


def set_enabled(enabled: bool) -> None:
    """Turn the cheaper copies on or off in a process where :func:`install` ran."""
    _ENABLED[0] = enabled


def install() -> None:
    """Make moto's TransactWriteItems copy only the items it touches (once per process)."""
    if _INSTALLED:
        return
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    original: Callable[..., None] = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = touched_items(self.tables, transact_items) if len(transact_items) <= 100 else []
        try:
            original(self, transact_items)
        except BaseException:
            put_back(saved)
            raise

    models.copy = _KeepTables(Table)  # type: ignore[assignment,attr-defined]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _INSTALLED.append(True)

"""DynamoDB's attribute-value form, error codes and the backoff every table adapter shares."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from pipeline import aws

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# BatchGetItem takes at most 100 keys.
BATCH_GET_KEYS = 100
_BACKOFF_BASE_S = 0.005
_BACKOFF_CAP_S = 0.4


# Integers of up to 38 digits are exact in DynamoDB's decimal context: their text is str(n).
_EXACT_INT = 10**38


def _attribute(value: Any) -> dict[str, Any]:
    # The common shapes of an order (exact str, int, dict, list) written directly; anything
    # else (None, bool, Decimal, sets, bytes, tuples, subclasses) goes to boto3's serializer,
    # whose answer this matches for the shapes it handles (tests/unit/test_codec.py).
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int and -_EXACT_INT < value < _EXACT_INT:
        return {"N": str(value)}
    if kind is dict:
        return {"M": {k: _attribute(v) for k, v in value.items()}}
    if kind is list:
        return {"L": [_attribute(v) for v in value]}
    return _serializer.serialize(value)


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict in DynamoDB's attribute-value form (as boto3's TypeSerializer writes it)."""
    return {k: _attribute(v) for k, v in item.items()}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """An attribute-value dict as plain Python (numbers as Decimal)."""
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def error_code(exc: ClientError) -> str:
    """The service's error code of a failed call."""
    return exc.response.get("Error", {}).get("Code", "")


def sleep_backoff(attempt: int) -> None:
    """Wait before retry `attempt` (0-based): exponential with full jitter, capped."""
    # Full jitter spreads the retries of transactions that collided on the same item.
    time.sleep(random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)))


def put_unless_present(
    client: Any, table: str, item: Mapping[str, Any], key: str
) -> dict[str, Any] | None:
    """Write `item` unless a row with its `key` exists: None when written, else the stored row
    in attribute-value form. The row comes back with the refusal (ReturnValuesOnConditionCheck
    Failure; DynamoDB, DynamoDB Local and moto all send it), so no second call reads it."""
    try:
        client.put_item(
            TableName=table,
            Item=serialize(item),
            ConditionExpression=f"attribute_not_exists({key})",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        return exc.response.get("Item") or {}
    return None


class TableAdapter:
    """What every table adapter holds: the table names and the client to reach them."""

    def __init__(self, orders_table: str, inventory_table: str, client: Any | None = None):
        self.orders_table = orders_table
        self.inventory_table = inventory_table
        self._client = client

    @property
    def client(self) -> Any:
        """The DynamoDB client given, or the shared one."""
        return self._client or aws.client("dynamodb")

    def put_if_absent(self, table: str, item: Mapping[str, Any], key: str) -> bool:
        """Write `item` unless a row with its `key` exists; say whether it was written."""
        return put_unless_present(self.client, table, item, key) is None

    def batch_get(
        self, table: str, key: str, values: Sequence[str], *, consistent: bool = True
    ) -> list[dict[str, Any]]:
        """The items whose string `key` is one of `values` (absent ones left out), as plain
        Python: BatchGetItem, 100 keys a call, keys it leaves unprocessed (throttling) asked
        again after a backoff."""
        items: list[dict[str, Any]] = []
        wanted = list(dict.fromkeys(values))
        for start in range(0, len(wanted), BATCH_GET_KEYS):
            keys = [{key: {"S": v}} for v in wanted[start : start + BATCH_GET_KEYS]]
            request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": consistent}}
            attempt = 0
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                items += [deserialize(i) for i in response.get("Responses", {}).get(table, [])]
                request = response.get("UnprocessedKeys") or {}
                if request:
                    sleep_backoff(attempt)
                    attempt += 1
        return items

    def table_item_count(self, table: str, *, exact: bool = False) -> dict[str, Any]:
        """{table, items, exact}: DescribeTable's estimate (AWS refreshes it about every six
        hours), or with `exact` a COUNT scan, which reads the whole table."""
        if not exact:
            described = self.client.describe_table(TableName=table)["Table"]
            return {"table": table, "items": described.get("ItemCount", 0), "exact": False}
        total = 0
        kwargs: dict[str, Any] = {"TableName": table, "Select": "COUNT"}
        while True:
            page = self.client.scan(**kwargs)
            total += page["Count"]
            if "LastEvaluatedKey" not in page:
                return {"table": table, "items": total, "exact": True}
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

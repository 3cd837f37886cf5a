"""The DynamoDB adapter: the Orders and Inventory tables and the transactions that span them."""

from __future__ import annotations

from pipeline.adapters.dynamodb.codec import deserialize, serialize
from pipeline.adapters.dynamodb.store import TRANSACTION_ATTEMPTS, DynamoStore

__all__ = ["TRANSACTION_ATTEMPTS", "DynamoStore", "deserialize", "serialize"]

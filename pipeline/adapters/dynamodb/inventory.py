"""The Inventory table: batched reads and the staff's guarded, atomic writes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from pipeline.adapters.dynamodb.codec import (
    TableAdapter,
    deserialize,
    error_code,
    serialize,
)
from pipeline.domain import InventoryItem
from pipeline.errors import (
    InsufficientStock,
    InventoryChangedMeanwhile,
    InventoryItemNotFound,
    Shortage,
)


class InventoryTable(TableAdapter):
    """The Inventory table's reads and writes; stock moves only by atomic, conditional updates."""

    def inventory_get_many(
        self, names: Iterable[str], *, consistent: bool = True
    ) -> dict[str, InventoryItem]:
        """The inventory rows that exist among `names` (missing names are simply absent)."""
        items = self.batch_get(self.inventory_table, "ItemName", list(names), consistent=consistent)
        return {row.item_name: row for row in map(InventoryItem.from_item, items)}

    def inventory_get(self, name: str) -> InventoryItem | None:
        """One inventory row, or None."""
        response = self.client.get_item(
            TableName=self.inventory_table, Key={"ItemName": {"S": name}}, ConsistentRead=True
        )
        item = response.get("Item")
        return InventoryItem.from_item(deserialize(item)) if item else None

    def inventory_put(self, item: InventoryItem) -> None:
        """Create or replace an inventory row."""
        self.client.put_item(TableName=self.inventory_table, Item=serialize(item.as_item()))

    def inventory_put_if_absent(self, item: InventoryItem) -> bool:
        """Create the row unless it exists; say whether it was created."""
        return self.put_if_absent(self.inventory_table, item.as_item(), "ItemName")

    def inventory_adjust(self, name: str, delta: int) -> InventoryItem:
        """Add `delta` to an item's stock atomically; never below zero (InsufficientStock)."""
        try:
            response = self.client.update_item(
                TableName=self.inventory_table,
                Key={"ItemName": {"S": name}},
                UpdateExpression="ADD Stock :d",
                ConditionExpression="attribute_exists(ItemName) AND Stock >= :floor",
                ExpressionAttributeValues={
                    ":d": {"N": str(delta)},
                    ":floor": {"N": str(max(0, -delta))},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item")
            available = int(deserialize(old)["Stock"]) if old else None
            raise InsufficientStock([Shortage(name, -delta, available)]) from exc
        return InventoryItem.from_item(deserialize(response["Attributes"]))

    def inventory_delete(self, name: str) -> None:
        """Remove an inventory row."""
        self.client.delete_item(TableName=self.inventory_table, Key={"ItemName": {"S": name}})

    def inventory_scan(self) -> Iterator[InventoryItem]:
        """Every inventory row."""
        kwargs: dict[str, Any] = {"TableName": self.inventory_table}
        while True:
            response = self.client.scan(**kwargs)
            for raw in response.get("Items", []):
                yield InventoryItem.from_item(deserialize(raw))
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def inventory_update_details(
        self, name: str, *, price: Decimal, description: str
    ) -> InventoryItem:
        """Set an item's price and description; Stock is not part of the write, so concurrent
        reservations and adjustments are never overwritten. InventoryItemNotFound if absent.
        """
        try:
            response = self.client.update_item(
                TableName=self.inventory_table,
                Key={"ItemName": {"S": name}},
                UpdateExpression="SET Price = :p, Description = :d",
                ConditionExpression="attribute_exists(ItemName)",
                ExpressionAttributeValues=serialize({":p": price, ":d": description}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise InventoryItemNotFound(name) from exc
            raise
        return InventoryItem.from_item(deserialize(response["Attributes"]))

    def inventory_delete_existing(self, name: str) -> InventoryItem:
        """Remove an inventory row and return it as it was; InventoryItemNotFound if absent."""
        try:
            response = self.client.delete_item(
                TableName=self.inventory_table,
                Key={"ItemName": {"S": name}},
                ConditionExpression="attribute_exists(ItemName)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise InventoryItemNotFound(name) from exc
            raise
        return InventoryItem.from_item(deserialize(response["Attributes"]))

    def inventory_update_details_if(
        self,
        seen: InventoryItem,
        *,
        price: Decimal,
        description: str,
        low_stock_threshold: int | None,
    ) -> InventoryItem:
        """Set price, description and threshold only if all three are still as in `seen` (the
        row the editor looked at); stock is not part of the write. InventoryChangedMeanwhile
        (with the row as it is) when another edit came first, InventoryItemNotFound if absent.
        """
        values: dict[str, Any] = {":p": price, ":d": description, ":op": seen.price}
        # Rows written before these fields existed may lack them: absent reads as "" / 0 / unset.
        guards = ["attribute_exists(ItemName)", "Price = :op"]
        if seen.price == 0:
            guards[-1] = "(attribute_not_exists(Price) OR Price = :op)"
        if seen.description:
            guards.append("Description = :od")
        else:
            guards.append("(attribute_not_exists(Description) OR Description = :od)")
        values[":od"] = seen.description
        if seen.low_stock_threshold is None:
            guards.append("attribute_not_exists(LowStockThreshold)")
        else:
            guards.append("LowStockThreshold = :ot")
            values[":ot"] = seen.low_stock_threshold
        update = "SET Price = :p, Description = :d"
        if low_stock_threshold is None:
            update += " REMOVE LowStockThreshold"
        else:
            update += ", LowStockThreshold = :t"
            values[":t"] = low_stock_threshold
        return self._inventory_guarded_update(seen.item_name, update, " AND ".join(guards), values)

    def inventory_set_stock_if(self, name: str, *, seen_stock: int, stock: int) -> InventoryItem:
        """Set an absolute stock only if the stock is still `seen_stock`: a reservation or a
        restock in between makes it fail (InventoryChangedMeanwhile) instead of being undone."""
        return self._inventory_guarded_update(
            name,
            "SET Stock = :n",
            "attribute_exists(ItemName) AND Stock = :seen",
            {":n": stock, ":seen": seen_stock},
        )

    def _inventory_guarded_update(
        self, name: str, update: str, condition: str, values: dict[str, Any]
    ) -> InventoryItem:
        try:
            response = self.client.update_item(
                TableName=self.inventory_table,
                Key={"ItemName": {"S": name}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=serialize(values),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item")
            if not old:
                raise InventoryItemNotFound(name) from exc
            current = InventoryItem.from_item(deserialize(old))
            raise InventoryChangedMeanwhile(name, current) from exc
        return InventoryItem.from_item(deserialize(response["Attributes"]))

"""Inventory: the staff's changes to items, validated, each one guarded write."""

from __future__ import annotations

from pipeline.domain import (
    InventoryItem,
    checked_description,
    checked_price,
    checked_stock,
    checked_threshold,
    validate_item_name,
    validated_fields,
)
from pipeline.errors import (
    InsufficientStock,
    InvalidInventoryItem,
    InventoryChangedMeanwhile,
    InventoryItemExists,
    InventoryItemNotFound,
)
from pipeline.ports import InventoryStore


def inventory_create(
    *,
    store: InventoryStore,
    item_name: object,
    stock: object,
    price: object,
    description: object = "",
    low_stock_threshold: object = None,
) -> InventoryItem:
    """Add an item to the Inventory table; never overwrite one (InventoryItemExists).

    Raises InvalidInventoryItem naming every bad field: the name as orders may use it,
    stock a whole number >= 0, price a decimal >= 0 with at most 2 places, the threshold
    empty (the default applies) or a whole number >= 0.
    """
    item = checked_item(item_name, stock, price, description, low_stock_threshold)
    if not store.inventory_put_if_absent(item):
        raise InventoryItemExists(item.item_name)
    return item


def inventory_reset(
    *,
    store: InventoryStore,
    item_name: object,
    stock: object,
    price: object,
    description: object = "",
) -> InventoryItem:
    """Make an item hold exactly this stock, price and description, creating it if absent;
    return the row as written. Raises InvalidInventoryItem as inventory_create does.

    An existing row is never overwritten whole: price and description are set, then the stock
    is moved to `stock` by one atomic adjustment, so units reserved in between stay reserved.
    Only a row removed or drained meanwhile makes that step fail (InventoryItemNotFound,
    InsufficientStock), with price and description already set.
    """
    item = checked_item(item_name, stock, price, description)
    if store.inventory_put_if_absent(item):
        return item
    current = store.inventory_update_details(
        item.item_name, price=item.price, description=item.description
    )
    delta = item.stock - current.stock
    return store.inventory_adjust(item.item_name, delta) if delta else current


def checked_item(
    item_name: object,
    stock: object,
    price: object,
    description: object = "",
    low_stock_threshold: object = None,
) -> InventoryItem:
    """An item built from raw field values; InvalidInventoryItem naming every bad field."""
    values = validated_fields(
        {
            "ItemName": (validate_item_name, item_name),
            "Stock": (checked_stock, stock),
            "Price": (checked_price, price),
            "Description": (checked_description, description),
            "LowStockThreshold": (checked_threshold, low_stock_threshold),
        }
    )
    return InventoryItem(
        values["ItemName"],
        values["Stock"],
        values["Price"],
        values["Description"],
        values["LowStockThreshold"],
    )


def inventory_adjust_stock(
    *, store: InventoryStore, item_name: str, delta: object
) -> InventoryItem:
    """Add `delta` (may be negative) to an item's stock in one atomic update, so reservations
    running at the same time are never overwritten; return the row as written.

    Raises InvalidInventoryItem (delta not a non-zero whole number), InventoryItemNotFound, or
    InsufficientStock when the stock would go below zero (nothing changes then).
    """
    value = validated_fields(
        {"Delta": (lambda raw: checked_stock(raw, allow_negative=True), delta)}
    )["Delta"]
    if value == 0:
        raise InvalidInventoryItem({"Delta": "must not be 0"})
    try:
        return store.inventory_adjust(item_name, value)
    except InsufficientStock as exc:
        if exc.shortages and exc.shortages[0].unknown:
            raise InventoryItemNotFound(item_name) from exc
        raise


def inventory_update_details(
    *, store: InventoryStore, item_name: str, price: object, description: object
) -> InventoryItem:
    """Change an item's price and description without touching its stock."""
    values = validated_fields(
        {"Price": (checked_price, price), "Description": (checked_description, description)}
    )
    return store.inventory_update_details(
        item_name, price=values["Price"], description=values["Description"]
    )


def inventory_edit(
    *,
    store: InventoryStore,
    seen: InventoryItem,
    price: object,
    description: object,
    low_stock_threshold: object = None,
) -> InventoryItem:
    """Change price, description and low-stock threshold, guarded by what the editor saw:
    if any of the three changed since `seen` was read, nothing is written and
    InventoryChangedMeanwhile carries the row as it is now. Stock is never part of the write.
    Returns the row as written (`seen` itself when nothing would change).
    """
    values = validated_fields(
        {
            "Price": (checked_price, price),
            "Description": (checked_description, description),
            "LowStockThreshold": (checked_threshold, low_stock_threshold),
        }
    )
    new = (values["Price"], values["Description"], values["LowStockThreshold"])
    if new == (seen.price, seen.description, seen.low_stock_threshold):
        return seen
    return store.inventory_update_details_if(
        seen, price=new[0], description=new[1], low_stock_threshold=new[2]
    )


def inventory_set_stock(
    *, store: InventoryStore, item_name: str, seen_stock: object, stock: object
) -> InventoryItem:
    """Set an absolute stock level, only if the stock is still `seen_stock` (what the editor
    saw): a reservation or restock in between raises InventoryChangedMeanwhile and nothing is
    written, so it is never silently undone. Setting the stock it already has writes nothing.
    """
    values = validated_fields(
        {"Stock": (checked_stock, stock), "Seen": (checked_stock, seen_stock)}
    )
    if values["Stock"] == values["Seen"]:
        row = store.inventory_get(item_name)
        if row is None:
            raise InventoryItemNotFound(item_name)
        if row.stock != values["Seen"]:
            raise InventoryChangedMeanwhile(item_name, row)
        return row
    return store.inventory_set_stock_if(item_name, seen_stock=values["Seen"], stock=values["Stock"])


def inventory_remove(*, store: InventoryStore, item_name: str) -> InventoryItem:
    """Delete an item; return it as it was. Orders that reserved it keep their reservation;
    stock they give back later is not returned to it (the row is never re-created: see
    DynamoStore.release) and is recorded on the order as StockNotReturned.
    """
    return store.inventory_delete_existing(item_name)

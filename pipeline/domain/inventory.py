"""Inventory items: the entity the Inventory table stores and the limits on its fields."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipeline.domain.orders import checked_text
from pipeline.errors import InvalidInventoryItem

MAX_STOCK = 1_000_000_000
MAX_PRICE = Decimal("1000000000")
MAX_DESCRIPTION = 500
# An item is "low" when its stock is at or below its threshold; items without their own
# threshold use the default (the portal's INVENTORY_LOW_STOCK_DEFAULT setting passes it in).
DEFAULT_LOW_STOCK_THRESHOLD = 10


@dataclass(frozen=True)
class InventoryItem:
    """A row of the Inventory table."""

    item_name: str
    stock: int
    price: Decimal
    description: str = ""
    low_stock_threshold: int | None = None  # None: the default threshold applies

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> InventoryItem:
        """Read a stored row."""
        threshold = item.get("LowStockThreshold")
        return cls(
            item_name=item["ItemName"],
            stock=int(item.get("Stock", 0)),
            price=Decimal(str(item.get("Price", "0"))),
            description=item.get("Description", ""),
            low_stock_threshold=None if threshold is None else int(threshold),
        )

    def as_item(self) -> dict[str, Any]:
        """The stored shape (seed attribute names; LowStockThreshold only when set)."""
        item: dict[str, Any] = {
            "ItemName": self.item_name,
            "Stock": self.stock,
            "Price": self.price,
            "Description": self.description,
        }
        if self.low_stock_threshold is not None:
            item["LowStockThreshold"] = self.low_stock_threshold
        return item

    def threshold(self, default: int = DEFAULT_LOW_STOCK_THRESHOLD) -> int:
        """The stock level at or below which this item counts as low."""
        return default if self.low_stock_threshold is None else self.low_stock_threshold

    def is_low(self, default: int = DEFAULT_LOW_STOCK_THRESHOLD) -> bool:
        """Stock at or below the item's threshold (or the default one)."""
        return self.stock <= self.threshold(default)


def checked_stock(raw: object, *, allow_negative: bool = False) -> int:
    """A stock level (or, with `allow_negative`, a change to one); ValueError saying why not."""
    # bool is an int in Python; a form's True must not mean one unit.
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError("must be a whole number")
    if not allow_negative and raw < 0:
        raise ValueError("must be 0 or more")
    if abs(raw) > MAX_STOCK:
        raise ValueError(f"must be at most {MAX_STOCK:,} in size")
    return raw


def checked_threshold(raw: object) -> int | None:
    """A low-stock threshold: empty (use the default) or a stock level; ValueError if not."""
    if raw is None or raw == "":
        return None
    return checked_stock(raw)


def checked_price(raw: object) -> Decimal:
    """A price with at most two decimal places, as a Decimal; ValueError saying why not."""
    # Floats are refused: 0.1 + 0.2 is not 0.3, and DynamoDB refuses them too.
    if isinstance(raw, bool) or not isinstance(raw, Decimal | int | str):
        raise ValueError("must be a decimal number such as 19.99")
    try:
        value = Decimal(str(raw).strip())
    except ArithmeticError:
        raise ValueError("must be a decimal number such as 19.99") from None
    if not value.is_finite():
        raise ValueError("must be a decimal number such as 19.99")
    if value < 0:
        raise ValueError("must be 0 or more")
    if value > MAX_PRICE:
        raise ValueError(f"must be at most {MAX_PRICE:,}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and value != value.quantize(Decimal("0.01")):
        raise ValueError("must have at most 2 decimal places")
    return value.quantize(Decimal("0.01"))


def checked_description(raw: object) -> str:
    """A description, trimmed and NFC-normalised; ValueError saying why not.

    The names' text rule (pipeline.domain.orders.checked_text) with line breaks and tabs
    allowed: lone surrogates and control, format (bidi, zero-width, ...) and line-separator
    characters are refused; at most MAX_DESCRIPTION characters once trimmed.
    """
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ValueError("must be text")
    cleaned = raw.strip()
    if len(cleaned) > MAX_DESCRIPTION:
        raise ValueError(f"must be at most {MAX_DESCRIPTION} characters")
    return checked_text(cleaned, line_breaks=True)


def validated_fields(checks: Mapping[str, tuple[Callable[[Any], Any], object]]) -> dict[str, Any]:
    """Run each field's check; InvalidInventoryItem naming every field that fails."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, (check, raw) in checks.items():
        try:
            values[name] = check(raw)
        except ValueError as exc:
            errors[name] = str(exc)
    if errors:
        raise InvalidInventoryItem(errors)
    return values

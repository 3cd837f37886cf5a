"""Domain exceptions; their class names double as the ErrorEquals names of the state machine."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""


class InvalidOrder(PipelineError, ValueError):
    """An order request that breaks the rules; `errors` maps field names to messages."""

    def __init__(self, errors: Mapping[str, object]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in self.errors.items()))


class OrderNotFound(PipelineError, LookupError):
    """No order with this id."""

    def __init__(self, order_id: str):
        self.order_id = order_id
        super().__init__(f"order {order_id} does not exist")


class OrderAlreadyExists(PipelineError):
    """A write that must create an order found one with the same id."""

    def __init__(self, order_id: str):
        self.order_id = order_id
        super().__init__(f"order {order_id} already exists")


class InvalidTransition(PipelineError):
    """The order is not in a status from which the requested change is allowed."""

    def __init__(self, order_id: str, current: str | None, target: str):
        self.order_id = order_id
        self.current = current
        self.target = target
        super().__init__(f"order {order_id} cannot move from {current} to {target}")


@dataclass(frozen=True)
class Shortage:
    """One order line that cannot be reserved: unknown item or not enough stock."""

    item_name: str
    requested: int
    available: int | None  # None: the item is not in the inventory at all

    @property
    def unknown(self) -> bool:
        """The item does not exist in the inventory."""
        return self.available is None

    def describe(self) -> str:
        """A sentence naming the line, for StatusReason."""
        if self.unknown:
            return f"unknown item '{self.item_name}'"
        return (
            f"insufficient stock for '{self.item_name}' "
            f"(requested {self.requested}, available {self.available})"
        )

    def as_item(self) -> dict[str, object]:
        """The DynamoDB / JSON shape of this shortage."""
        return {
            "ItemName": self.item_name,
            "Requested": self.requested,
            "Available": self.available,
            "Problem": "UNKNOWN_ITEM" if self.unknown else "INSUFFICIENT_STOCK",
        }


def find_shortages(
    lines: Iterable[tuple[str, int]], available: Mapping[str, int]
) -> list[Shortage]:
    """Every (item, quantity) line the stock in `available` cannot cover; an item missing from
    it is unknown. The one rule both the pre-check and the post-transaction re-read use."""
    result = []
    for item_name, quantity in lines:
        stock = available.get(item_name)
        if stock is None or stock < quantity:
            result.append(Shortage(item_name, quantity, stock))
    return result


class InsufficientStock(PipelineError):
    """One or more lines of an order cannot be reserved; nothing was reserved."""

    def __init__(self, shortages: Sequence[Shortage]):
        self.shortages = tuple(shortages)
        super().__init__(describe_shortages(self.shortages))


def describe_shortages(shortages: Sequence[Shortage]) -> str:
    """The rejection reason naming every short or unknown line."""
    return "Rejected: " + "; ".join(s.describe() for s in shortages)


class ReservationContention(PipelineError):
    """Reservation kept colliding with concurrent transactions; safe to retry later."""


class SupersededAttempt(PipelineError):
    """A workflow step belongs to an earlier attempt of the order (it was resubmitted and
    reserved again since): the step must not touch the new attempt's stock, money or status."""

    def __init__(self, order_id: str, attempt: int, current: int):
        self.order_id = order_id
        self.attempt = attempt
        self.current = current
        super().__init__(f"order {order_id} is on attempt {current}; this step is for {attempt}")


# -- Payment ------------------------------------------------------------------------------------


class PaymentDeclined(PipelineError):
    """The payment provider refused the charge; retrying will not help."""


class PaymentGatewayUnavailable(PipelineError):
    """The payment provider could not be reached or failed transiently; retry with backoff."""


# -- Shipping -----------------------------------------------------------------------------------


class CarrierUnavailable(PipelineError):
    """The carrier could not create a shipment right now; retry."""


class AddressRejected(PipelineError):
    """The carrier cannot deliver to the address; a person must fix it."""


# -- Staff operations (the portal's inventory and DLQ pages) ------------------------------------


class InvalidInventoryItem(PipelineError, ValueError):
    """An inventory row that breaks the rules; `errors` maps field names to messages."""

    def __init__(self, errors: Mapping[str, object]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in self.errors.items()))


class InventoryItemExists(PipelineError):
    """A create found an item with the same name; nothing was overwritten."""

    def __init__(self, item_name: str):
        self.item_name = item_name
        super().__init__(f"inventory item '{item_name}' already exists")


class InventoryItemNotFound(PipelineError, LookupError):
    """No inventory item with this name."""

    def __init__(self, item_name: str):
        self.item_name = item_name
        super().__init__(f"inventory item '{item_name}' does not exist")


class InventoryChangedMeanwhile(PipelineError):
    """A guarded edit found the item no longer as the editor saw it; nothing was written."""

    def __init__(self, item_name: str, current: object = None):
        self.item_name = item_name
        self.current = current  # the row as it is now (an InventoryItem), for the editor
        super().__init__(
            f"inventory item '{item_name}' was changed meanwhile; nothing was written, "
            "look at it again and redo the change"
        )


class MessageNotFound(PipelineError, LookupError):
    """No message with this id is visible in the queue (gone, or being handled elsewhere)."""

    def __init__(self, message_id: str):
        self.message_id = message_id
        super().__init__(f"message {message_id} is not in the queue (or is in flight)")

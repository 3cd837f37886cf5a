"""Orders and order lines: parsing the seed's request shapes, the stored form, step outcomes."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipeline.errors import InvalidOrder
from pipeline.statuses import OrderStatus

MAX_LINES = 100  # entries in the request's Items list
# One DynamoDB transaction reserves a whole order: 100 actions at most, one of them the order.
MAX_DISTINCT_ITEMS = 99
MAX_QUANTITY = 1000
MAX_CUSTOMER_NAME = 200
MAX_ITEM_NAME = 100
ITEM_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._\-]*$")
CURRENCY = "USD"


def utc_now() -> str:
    """The current time as the ISO 8601 UTC string every timestamp of an order uses."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_order_id() -> str:
    """A fresh order id."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class OrderLine:
    """One item of an order and how many of it."""

    item_name: str
    quantity: int

    def as_item(self) -> dict[str, Any]:
        """The stored shape: {"ItemName": ..., "Quantity": ...}."""
        return {"ItemName": self.item_name, "Quantity": self.quantity}


def validate_item_name(name: object) -> str:
    """Return the cleaned item name or raise ValueError saying what is wrong with it."""
    if not isinstance(name, str):
        raise ValueError("item name must be a string")
    cleaned = name.strip()
    if not cleaned:
        raise ValueError("item name must not be empty")
    if len(cleaned) > MAX_ITEM_NAME:
        raise ValueError(f"item name must be at most {MAX_ITEM_NAME} characters")
    if not ITEM_NAME_RE.match(cleaned):
        raise ValueError(
            "item name may hold letters, digits, spaces, '.', '_' and '-', "
            "and must start with a letter or digit"
        )
    return cleaned


def _quantity(value: object) -> int:
    # bool is an int in Python; JSON true must not mean one laptop.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("Quantity must be a whole number")
    if not 1 <= value <= MAX_QUANTITY:
        raise ValueError(f"Quantity must be between 1 and {MAX_QUANTITY}")
    return value


def parse_items(raw: object) -> tuple[OrderLine, ...]:
    """Turn the request's Items into order lines, adding up duplicates in first-seen order.

    Accepts the seed's `["laptop", "mouse"]` and `[{"ItemName": "laptop", "Quantity": 2}]`,
    mixed freely. Raises InvalidOrder with one message per bad entry.
    """
    if not isinstance(raw, list):
        raise InvalidOrder({"Items": "must be a list of item names or {ItemName, Quantity}"})
    if not 1 <= len(raw) <= MAX_LINES:
        raise InvalidOrder({"Items": f"must hold between 1 and {MAX_LINES} entries"})
    errors: dict[str, str] = {}
    totals: dict[str, int] = {}
    for index, entry in enumerate(raw):
        try:
            if isinstance(entry, str):
                name, quantity = validate_item_name(entry), 1
            elif isinstance(entry, dict):
                unexpected = set(entry) - {"ItemName", "Quantity"}
                if unexpected:
                    raise ValueError(f"unexpected field(s): {', '.join(sorted(unexpected))}")
                if "ItemName" not in entry:
                    raise ValueError("ItemName is required")
                name = validate_item_name(entry["ItemName"])
                quantity = _quantity(entry.get("Quantity", 1))
            else:
                raise ValueError("must be an item name or an object {ItemName, Quantity}")
        except ValueError as exc:
            errors[f"Items[{index}]"] = str(exc)
            continue
        totals[name] = totals.get(name, 0) + quantity
    if errors:
        raise InvalidOrder(errors)
    if len(totals) > MAX_DISTINCT_ITEMS:
        raise InvalidOrder(
            {"Items": f"at most {MAX_DISTINCT_ITEMS} different items per order (one transaction)"}
        )
    over = [name for name, qty in totals.items() if qty > MAX_QUANTITY]
    if over:
        raise InvalidOrder({"Items": f"total quantity of {', '.join(over)} exceeds {MAX_QUANTITY}"})
    return tuple(OrderLine(name, qty) for name, qty in totals.items())


def validate_customer_name(raw: object) -> str:
    """Return the cleaned customer name or raise InvalidOrder."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidOrder({"CustomerName": "is required and must be a non-empty string"})
    cleaned = raw.strip()
    if len(cleaned) > MAX_CUSTOMER_NAME:
        raise InvalidOrder({"CustomerName": f"must be at most {MAX_CUSTOMER_NAME} characters"})
    if any(unicodedata.category(ch) == "Cc" for ch in cleaned):
        raise InvalidOrder({"CustomerName": "must not contain control characters"})
    return cleaned


PAYMENT_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
POSTAL_CODE_RE = re.compile(r"^[A-Za-z0-9 -]{1,20}$")
# Field -> (required, max length) of a shipping address.
ADDRESS_FIELDS: dict[str, tuple[bool, int]] = {
    "Name": (True, 200),
    "Line1": (True, 200),
    "Line2": (False, 200),
    "City": (True, 100),
    "PostalCode": (True, 20),
    "Country": (True, 56),
}


def validate_payment_token(raw: object) -> str | None:
    """The payment method's token (None when absent) or InvalidOrder."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not PAYMENT_TOKEN_RE.match(raw):
        raise InvalidOrder(
            {"PaymentToken": "must be 1-200 letters, digits, '_' or '-' (a payment token)"}
        )
    return raw


def validate_shipping_address(raw: object) -> dict[str, str] | None:
    """The cleaned shipping address (None when absent) or InvalidOrder naming every field."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidOrder({"ShippingAddress": "must be an object {Name, Line1, City, ...}"})
    errors: dict[str, str] = {}
    for name in sorted(set(raw) - set(ADDRESS_FIELDS)):
        errors[f"ShippingAddress.{name}"] = "unknown field"
    address: dict[str, str] = {}
    for name, (required, max_length) in ADDRESS_FIELDS.items():
        value = raw.get(name)
        key = f"ShippingAddress.{name}"
        if value is None or (isinstance(value, str) and not value.strip() and not required):
            if required:
                errors[key] = "is required"
            continue
        if not isinstance(value, str) or not value.strip():
            errors[key] = "must be a non-empty string"
        elif len(value.strip()) > max_length:
            errors[key] = f"must be at most {max_length} characters"
        elif any(unicodedata.category(ch) == "Cc" for ch in value):
            errors[key] = "must not contain control characters"
        else:
            address[name] = value.strip()
    postcode = address.get("PostalCode")
    if postcode is not None and not POSTAL_CODE_RE.match(postcode):
        errors["ShippingAddress.PostalCode"] = "may hold letters, digits, spaces and '-'"
    if len(address.get("Country", "xx")) < 2:
        errors["ShippingAddress.Country"] = "must be an ISO 3166 code or a country name"
    if errors:
        raise InvalidOrder(errors)
    return address


@dataclass(frozen=True)
class StatusChange:
    """One entry of an order's status history."""

    status: OrderStatus
    at: str
    reason: str

    def as_item(self) -> dict[str, Any]:
        """The stored shape."""
        return {"Status": str(self.status), "At": self.at, "Reason": self.reason}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> StatusChange:
        """Read a stored entry."""
        return cls(OrderStatus(item["Status"]), item["At"], item.get("Reason", ""))


@dataclass(frozen=True)
class Order:
    """An order as the Orders table holds it."""

    order_id: str
    customer_name: str
    lines: tuple[OrderLine, ...]
    status: OrderStatus
    order_date: str
    last_updated: str
    status_reason: str
    history: tuple[StatusChange, ...] = ()
    client_id: str | None = None
    attempt: int = 0
    payment_token: str | None = None
    shipping_address: Mapping[str, str] | None = None
    request_hash: str | None = None
    reservation: Mapping[str, Any] | None = None
    payment: Mapping[str, Any] | None = None
    shipment: Mapping[str, Any] | None = None
    rejection: tuple[Mapping[str, Any], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def new(
        cls,
        *,
        customer_name: str,
        lines: Iterable[OrderLine],
        order_id: str | None = None,
        client_id: str | None = None,
        payment_token: str | None = None,
        shipping_address: Mapping[str, str] | None = None,
        request_hash: str | None = None,
        now: str | None = None,
        reason: str = "Order received",
    ) -> Order:
        """A new PENDING order with its first history entry."""
        now = now or utc_now()
        return cls(
            order_id=order_id or new_order_id(),
            customer_name=customer_name,
            lines=tuple(lines),
            status=OrderStatus.PENDING,
            order_date=now,
            last_updated=now,
            status_reason=reason,
            history=(StatusChange(OrderStatus.PENDING, now, reason),),
            client_id=client_id,
            payment_token=payment_token,
            shipping_address=shipping_address,
            request_hash=request_hash,
        )

    @property
    def requeue_count(self) -> int:
        """How often the order was re-sent to the queue as stranded."""
        return int(self.extra.get("RequeueCount", 0))

    @property
    def payment_intent(self) -> Mapping[str, Any] | None:
        """The charge the payment step set out to make ({IdempotencyKey, At}), if any."""
        return self.extra.get("PaymentIntent")

    @property
    def refund_due(self) -> Mapping[str, Any] | None:
        """A possible charge of a failed payment that is still to be refunded, if any."""
        return self.extra.get("RefundDue")

    @property
    def refund(self) -> Mapping[str, Any] | None:
        """The refund of a failed payment's charge, once made."""
        return self.extra.get("Refund")

    @property
    def total(self) -> Decimal | None:
        """What the reserved lines cost, once the order is reserved."""
        if not self.reservation:
            return None
        return Decimal(str(self.reservation["Total"]))

    def with_status(self, status: OrderStatus, reason: str, at: str) -> Order:
        """A copy moved to `status` with the history entry appended (no rule check here)."""
        return replace(
            self,
            status=status,
            status_reason=reason,
            last_updated=at,
            history=(*self.history, StatusChange(status, at, reason)),
        )

    def as_item(self) -> dict[str, Any]:
        """The item the Orders table stores (seed attribute names kept)."""
        item: dict[str, Any] = {
            "OrderId": self.order_id,
            "CustomerName": self.customer_name,
            "Items": [line.as_item() for line in self.lines],
            "Status": str(self.status),
            "OrderDate": self.order_date,
            "LastUpdated": self.last_updated,
            "StatusReason": self.status_reason,
            "StatusHistory": [change.as_item() for change in self.history],
            "Attempt": self.attempt,
        }
        optional = {
            "ClientId": self.client_id,
            "PaymentToken": self.payment_token,
            "ShippingAddress": dict(self.shipping_address) if self.shipping_address else None,
            "RequestHash": self.request_hash,
            "Reservation": self.reservation,
            "Payment": self.payment,
            "Shipment": self.shipment,
            "Rejection": list(self.rejection) or None,
        }
        item.update({k: v for k, v in optional.items() if v is not None})
        item.update(self.extra)
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Order:
        """Read an Orders item, including the seed's plain `Items: ["laptop"]` shape."""
        known = {
            "OrderId", "CustomerName", "Items", "Status", "OrderDate", "LastUpdated",
            "StatusReason", "StatusHistory", "ClientId", "Attempt", "PaymentToken",
            "ShippingAddress", "RequestHash", "Reservation", "Payment", "Shipment", "Rejection",
        }  # fmt: skip
        # The seed repeats a name to order more than one; lines of the same item add up.
        totals: dict[str, int] = {}
        for entry in item.get("Items", []):
            if isinstance(entry, str):
                name, quantity = entry, 1
            else:
                name, quantity = entry["ItemName"], int(entry.get("Quantity", 1))
            totals[name] = totals.get(name, 0) + quantity
        lines = [OrderLine(name, quantity) for name, quantity in totals.items()]
        return cls(
            order_id=item["OrderId"],
            customer_name=item.get("CustomerName", ""),
            lines=tuple(lines),
            status=OrderStatus(item["Status"]),
            order_date=item.get("OrderDate", ""),
            last_updated=item.get("LastUpdated", item.get("OrderDate", "")),
            status_reason=item.get("StatusReason", ""),
            history=tuple(StatusChange.from_item(h) for h in item.get("StatusHistory", [])),
            client_id=item.get("ClientId"),
            attempt=int(item.get("Attempt", 0)),
            payment_token=item.get("PaymentToken"),
            shipping_address=item.get("ShippingAddress"),
            request_hash=item.get("RequestHash"),
            reservation=item.get("Reservation"),
            payment=item.get("Payment"),
            shipment=item.get("Shipment"),
            rejection=tuple(item.get("Rejection", ())),
            extra={k: v for k, v in item.items() if k not in known},
        )

    def as_json(self) -> dict[str, Any]:
        """The order as API responses and the portal show it (numbers made JSON-safe)."""
        return to_json(self.as_item())


def to_json(value: Any) -> Any:
    """Turn DynamoDB's Decimals into ints or strings-free floats so json.dumps can write them."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_json(v) for v in value]
    return value


def execution_name(order_id: str, attempt: int) -> str:
    """The workflow execution name for an order's n-th reservation: unique per attempt, so a
    redelivered message never starts a second workflow, while a staff resubmission can."""
    return order_id if attempt <= 1 else f"{order_id}-{attempt}"


@dataclass(frozen=True)
class StepOutcome:
    """An order after a step that may have happened before: `changed` says whether this call
    made the change (retried tasks and redelivered records must not count it twice)."""

    order: Order
    changed: bool

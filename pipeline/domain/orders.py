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

# Characters refused in names, addresses and other free text (everywhere but in the whitespace
# trimmed from either end). Each one is invisible or changes how the text around it is shown,
# so a name could pass for another one on a page, in a list or in a log line: the control
# characters (Unicode category Cc), the format characters (Cf: bidi embeddings, overrides and
# isolates, zero-width spaces and joiners, the byte order mark, the soft hyphen, tags, ...)
# and the line and paragraph separators (Zl, Zp). A table, not unicodedata lookups, because the
# OpenAPI schema is written from it (orders_api/serializers.py); tests/unit/test_text_rules.py
# checks it still covers those categories. Gaps inside a range are unassigned code points.
REFUSED_TEXT_RANGES: tuple[tuple[str, str], ...] = (
    ("\x00", "\x1f"),  # C0 controls
    ("\x7f", "\x9f"),  # DEL and the C1 controls
    ("\xad", "\xad"),  # soft hyphen
    ("\u0600", "\u0605"),  # Arabic number signs
    ("\u061c", "\u061c"),  # Arabic letter mark (bidi)
    ("\u06dd", "\u06dd"),  # Arabic end of ayah
    ("\u070f", "\u070f"),  # Syriac abbreviation mark
    ("\u0890", "\u0891"),  # Arabic pound and piastre marks above
    ("\u08e2", "\u08e2"),  # Arabic disputed end of ayah
    ("\u180e", "\u180e"),  # Mongolian vowel separator (zero width)
    ("\u200b", "\u200f"),  # zero-width space, non-joiner, joiner; LRM, RLM
    ("\u2028", "\u202e"),  # line and paragraph separators; bidi embeddings and overrides
    ("\u2060", "\u206f"),  # word joiner, invisible operators, bidi isolates
    ("\ufeff", "\ufeff"),  # zero-width no-break space (byte order mark)
    ("\ufff9", "\ufffb"),  # interlinear annotation
    ("\U000110bd", "\U000110bd"),  # Kaithi number sign
    ("\U000110cd", "\U000110cd"),  # Kaithi number sign above
    ("\U00013430", "\U0001343f"),  # Egyptian hieroglyph format controls
    ("\U0001bca0", "\U0001bca3"),  # shorthand format controls
    ("\U0001d173", "\U0001d17a"),  # musical symbol formatting
    ("\U000e0000", "\U000e007f"),  # tags (invisible copies of ASCII)
)
_REFUSED_TEXT_RE = re.compile(
    "[" + "".join(f"{re.escape(low)}-{re.escape(high)}" for low, high in REFUSED_TEXT_RANGES) + "]"
)
# Lone surrogates: JSON's \ud800 escapes decode to them, but they are not Unicode text, and
# nothing downstream (UTF-8, DynamoDB, the portal's pages) can carry them.
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
_LINE_BREAKS = "\t\n\r"


def checked_text(text: str, *, line_breaks: bool = False) -> str:
    """`text` (already trimmed) NFC-normalised, or ValueError naming a refused character.

    Refused: lone surrogates, and every character of REFUSED_TEXT_RANGES (tab, newline and
    carriage return too, unless `line_breaks`, for multi-line descriptions and notes). They are
    refused rather than removed: silently dropping characters would store a name other than
    the one sent, and a name holding them is more likely an attack than a typo. What is kept
    is normalised to NFC, so a letter typed with a combining accent and the same letter
    precomposed are one name (the staff's customer search then finds both).
    """
    surrogate = _SURROGATE_RE.search(text)
    if surrogate:
        raise ValueError(
            f"must be valid Unicode text (it holds a lone surrogate, U+{ord(surrogate[0]):04X})"
        )
    for match in _REFUSED_TEXT_RE.finditer(text):
        char = match[0]
        if line_breaks and char in _LINE_BREAKS:
            continue
        if unicodedata.category(char) == "Cc":
            raise ValueError("must not contain control characters")
        name = unicodedata.name(char, "unassigned")
        raise ValueError(
            f"must not contain invisible or text-direction characters (U+{ord(char):04X} {name})"
        )
    return unicodedata.normalize("NFC", text)


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
    if not ITEM_NAME_RE.fullmatch(cleaned):
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
    """Return the cleaned customer name or raise InvalidOrder.

    At most MAX_CUSTOMER_NAME characters as sent (so the schema's maxLength is the rule).
    Whitespace around the name is trimmed; what is left must be valid Unicode text without
    control, format (bidi, zero-width, ...) or line-separator characters, which are refused,
    not removed (see checked_text). The name comes back NFC-normalised.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidOrder({"CustomerName": "is required and must be a non-empty string"})
    cleaned = raw.strip()
    if len(raw) > MAX_CUSTOMER_NAME:
        raise InvalidOrder({"CustomerName": f"must be at most {MAX_CUSTOMER_NAME} characters"})
    try:
        return checked_text(cleaned)
    except ValueError as exc:
        raise InvalidOrder({"CustomerName": str(exc)}) from None


PAYMENT_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
# At least one character that is not a space, so the pattern in the OpenAPI schema (which sees
# the value before it is trimmed) refuses a postcode of spaces only, as the rule does.
POSTAL_CODE_RE = re.compile(r"^[A-Za-z0-9 -]*[A-Za-z0-9-][A-Za-z0-9 -]*$")
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
    # fullmatch: the pattern's `$` would also let a trailing newline through.
    if not isinstance(raw, str) or not PAYMENT_TOKEN_RE.fullmatch(raw):
        raise InvalidOrder(
            {"PaymentToken": "must be 1-200 letters, digits, '_' or '-' (a payment token)"}
        )
    return raw


def validate_shipping_address(raw: object) -> dict[str, str] | None:
    """The cleaned shipping address (None when absent) or InvalidOrder naming every field.

    Every field follows the customer name's text rule (at most its length as sent, trimmed,
    refused characters, NFC; see checked_text); Country needs at least 2 characters (an ISO
    3166 code or a name), PostalCode letters, digits, spaces and '-'. An empty, blank or null
    Line2 is left out.
    """
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
        elif len(value) > max_length:
            errors[key] = f"must be at most {max_length} characters"
        elif name == "Country" and len(value.strip()) < 2:  # counted before NFC, as sent
            errors[key] = "must be an ISO 3166 code or a country name"
        else:
            try:
                address[name] = checked_text(value.strip())
            except ValueError as exc:
                errors[key] = str(exc)
    postcode = address.get("PostalCode")
    if postcode is not None and not POSTAL_CODE_RE.fullmatch(postcode):
        errors["ShippingAddress.PostalCode"] = "may hold letters, digits, spaces and '-'"
    if errors:
        raise InvalidOrder(errors)
    return address


@dataclass(frozen=True)
class StatusChange:
    """One entry of an order's status history; `actor` names the staff member who made the
    change (None: the pipeline did)."""

    status: OrderStatus
    at: str
    reason: str
    actor: str | None = None

    def as_item(self) -> dict[str, Any]:
        """The stored shape (Actor only when a person made the change)."""
        item = {"Status": str(self.status), "At": self.at, "Reason": self.reason}
        if self.actor:
            item["Actor"] = self.actor
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> StatusChange:
        """Read a stored entry."""
        return cls(
            OrderStatus(item["Status"]), item["At"], item.get("Reason", ""), item.get("Actor")
        )


# The customer search index (CustomerPrefixIndex) is partitioned by the first few characters
# of the normalised name: a search needs at least that many, and each partition holds only the
# names that start alike (a one-letter partition would hold a twenty-sixth of all orders).
CUSTOMER_PREFIX_LENGTH = 3

# The mark one put of a new order leaves on its item, so the SDK's resend of that very put
# knows the order it finds as its own (pipeline/adapters/dynamodb/orders.py). Read back, it is
# dropped: it says nothing about the order.
WRITE_ID = "WriteId"


def customer_search_key(name: str) -> str:
    """The form names are compared in when staff search by prefix: NFKD without combining
    marks, case-folded, runs of whitespace as one space. "  José  Ñúñez" -> "jose nunez"."""
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def customer_prefix(name: str) -> str:
    """The CustomerPrefixIndex partition a name (or a typed prefix) belongs to."""
    return customer_search_key(name)[:CUSTOMER_PREFIX_LENGTH]


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
    def requeued_at(self) -> str | None:
        """When the order was last re-sent to the queue as stranded, if ever."""
        return self.extra.get("RequeuedAt")

    @property
    def workflow_run(self) -> int:
        """Which workflow run of the current attempt is the order's: 1 unless a sweeper started
        another after a run died. `WorkflowRun` ({Attempt, Run, At, Resends, Reason}) is the
        sweepers' record for one attempt, so a later reservation starts again at run 1. Runs
        share the attempt's payment key, so none charges twice."""
        run = self.extra.get("WorkflowRun")
        if isinstance(run, Mapping) and int(run.get("Attempt", -1)) == self.attempt:
            return max(1, int(run.get("Run", 1)))
        return 1

    @property
    def workflow_run_at(self) -> str | None:
        """When a sweeper last asked for the current run (started it, or re-sent its message)."""
        run = self.extra.get("WorkflowRun")
        if isinstance(run, Mapping) and int(run.get("Attempt", -1)) == self.attempt:
            return run.get("At")
        return None

    @property
    def workflow_run_resends(self) -> int:
        """How often a sweeper re-sent the current run's message because it never started."""
        run = self.extra.get("WorkflowRun")
        if isinstance(run, Mapping) and int(run.get("Attempt", -1)) == self.attempt:
            return int(run.get("Resends", 0))
        return 0

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
        search_key = customer_search_key(self.customer_name)
        if search_key:
            # Written with the order so the prefix index finds it; orders written before these
            # attributes existed are not in that index (see docs/operations.md).
            item["CustomerKey"] = search_key
            item["CustomerPrefix"] = search_key[:CUSTOMER_PREFIX_LENGTH]
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
            "CustomerKey", "CustomerPrefix", WRITE_ID,
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


def execution_name(order_id: str, attempt: int, run: int = 1) -> str:
    """The workflow execution name for an order's n-th reservation and its r-th workflow run:
    unique per attempt and run, so a redelivered message never starts a second workflow, while
    a staff resubmission (a new attempt) or a sweeper restarting a dead run (a new run) can.

    Run 1 keeps the names executions have always had ("<id>", "<id>-<attempt>"); later runs add
    "-r<run>". The run is not an attempt: the payment key stays the attempt's, so a new run of
    a paid or half-paid order never charges again.
    """
    name = order_id if attempt <= 1 else f"{order_id}-{attempt}"
    return name if run <= 1 else f"{name}-r{run}"


@dataclass(frozen=True)
class StepOutcome:
    """An order after a step that may have happened before: `changed` says whether this call
    made the change (retried tasks and redelivered records must not count it twice)."""

    order: Order
    changed: bool

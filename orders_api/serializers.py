"""The request and response shapes of the order API; the order rules stay in pipeline.domain.

CustomerName and Items pass through untouched: `order_submit` validates them and its
InvalidOrder names the field. Their schema is written from the domain's own limits, so the
documentation cannot drift from the rules. The optional PaymentToken and ShippingAddress go
the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pipeline.domain import (
    ADDRESS_FIELDS,
    ITEM_NAME_RE,
    MAX_CUSTOMER_NAME,
    MAX_DISTINCT_ITEMS,
    MAX_ITEM_NAME,
    MAX_LINES,
    MAX_QUANTITY,
    PAYMENT_TOKEN_RE,
    POSTAL_CODE_RE,
)
from pipeline.domain.orders import REFUSED_TEXT_RANGES
from pipeline.statuses import OrderStatus


def _escaped(char: str) -> str:
    # \uXXXX reads the same in ECMA, Python and Rust patterns; a character beyond the BMP is
    # written as itself, as \u{...} and \U are not common to them.
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else char


def _char_class(ranges: list[tuple[str, str]]) -> str:
    return "".join(
        _escaped(low) if low == high else f"{_escaped(low)}-{_escaped(high)}"
        for low, high in ranges
    )


def _runs(code_points: list[int]) -> list[tuple[str, str]]:
    runs: list[tuple[str, str]] = []
    for point in code_points:
        if runs and ord(runs[-1][1]) == point - 1:
            runs[-1] = (runs[-1][0], chr(point))
        else:
            runs.append((chr(point), chr(point)))
    return runs


# The whitespace str.strip() trims (all of it is below U+3001): the rules trim it from both
# ends of a value before checking it, so the schema lets it pad a value.
_TRIMMED = _char_class(_runs([point for point in range(0x3001) if chr(point).isspace()]))
# The refused characters beyond the BMP go in a `not` of their own: schemathesis folds a
# maxLength into the pattern beside it, writing such characters as Python's \U escapes, which
# its own ECMA regex check then refuses; a pattern with no length beside it is left as it is.
_BMP_RANGES = [(low, high) for low, high in REFUSED_TEXT_RANGES if ord(high) <= 0xFFFF]
_ASTRAL_RANGES = [(low, high) for low, high in REFUSED_TEXT_RANGES if ord(low) > 0xFFFF]
assert len(_BMP_RANGES) + len(_ASTRAL_RANGES) == len(REFUSED_TEXT_RANGES)
_REFUSED = _char_class(_BMP_RANGES)
NOT_REFUSED_BEYOND_BMP = {"pattern": f"[{_char_class(_ASTRAL_RANGES)}]"}
_PAD = f"[{_TRIMMED}]*"
_EDGE = f"[^{_TRIMMED}{_REFUSED}]"  # first and last character kept: neither trimmed nor refused
_INNER = f"[^{_REFUSED}]"
# pipeline.domain.orders.checked_text as a pattern on the value as sent (with
# NOT_REFUSED_BEYOND_BMP). Lone surrogates are refused too, but cannot be written in a pattern
# jsonschema-rs (schemathesis) compiles.
TEXT_PATTERN = f"^{_PAD}{_EDGE}(?:{_INNER}*{_EDGE})?{_PAD}$"
TEXT_PATTERN_OPTIONAL = f"^{_PAD}(?:{_EDGE}(?:{_INNER}*{_EDGE})?{_PAD})?$"
TEXT_PATTERN_TWO_OR_MORE = f"^{_PAD}{_EDGE}{_INNER}*{_EDGE}{_PAD}$"
TEXT_RULE = (
    "Unicode text, trimmed; control, format (bidi overrides, zero-width characters, ...) and "
    "line-separator characters are refused, and the text is stored NFC-normalised."
)

# validate_item_name trims the name and then counts its length, so the length is in the
# pattern (ITEM_NAME_RE's "*" bounded) rather than a maxLength on the untrimmed value.
assert ITEM_NAME_RE.pattern.startswith("^") and ITEM_NAME_RE.pattern.endswith("*$")
ITEM_NAME_PATTERN = f"^{_PAD}{ITEM_NAME_RE.pattern[1:-2]}{{0,{MAX_ITEM_NAME - 1}}}{_PAD}$"
ITEM_NAME_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "pattern": ITEM_NAME_PATTERN,
    "description": f"Letters, digits, spaces, '.', '_' and '-', starting with a letter or "
    f"digit; at most {MAX_ITEM_NAME} characters once the whitespace around it is trimmed.",
    "example": "laptop",
}
ORDER_LINE_SCHEMA = {
    "type": "object",
    "properties": {
        "ItemName": ITEM_NAME_SCHEMA,
        "Quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY, "default": 1},
    },
    "required": ["ItemName"],
    "additionalProperties": False,
}


class DomainCheckedField(serializers.Field):
    """A field passed to order_submit as sent: a pipeline.domain rule checks it there, so the
    API and every other caller refuse the same values with the same message."""

    def to_internal_value(self, data: Any) -> Any:
        """The value as sent."""
        return data

    def to_representation(self, value: Any) -> Any:
        """The value as stored."""
        return value


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_CUSTOMER_NAME,
        "pattern": TEXT_PATTERN,
        "not": NOT_REFUSED_BEYOND_BMP,
        "description": f"Who the order is for: {TEXT_RULE}",
        "example": "John Doe",
    }
)
class CustomerNameField(DomainCheckedField):
    """The customer's name; the domain says what is wrong with it."""


@extend_schema_field(
    {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_LINES,
        "description": (
            "Item names (one of each) or {ItemName, Quantity} objects, mixed freely; "
            f"repeated names are added up (at most {MAX_QUANTITY} of an item, and at most "
            f"{MAX_DISTINCT_ITEMS} different items: one transaction reserves the order)."
        ),
        "items": {"oneOf": [ITEM_NAME_SCHEMA, ORDER_LINE_SCHEMA]},
        "example": ["laptop", {"ItemName": "mouse", "Quantity": 2}],
    }
)
class ItemsField(DomainCheckedField):
    """The order's lines; the domain parses and checks every one."""


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a misspelt optional field is not silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        """The validated data, with an error for every unknown field."""
        value = super().to_internal_value(data)
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if unknown:
            raise serializers.ValidationError({name: "unknown field" for name in unknown})
        return value


def _address_field(name: str, required: bool, max_length: int) -> dict[str, Any]:
    if name == "PostalCode":  # POSTAL_CODE_RE once trimmed
        return {"type": "string", "minLength": 1, "maxLength": max_length,
                "pattern": f"^{_PAD}(?:{POSTAL_CODE_RE.pattern[1:-1]}){_PAD}$"}  # fmt: skip
    text = {"type": "string", "maxLength": max_length, "not": NOT_REFUSED_BEYOND_BMP}
    if not required:  # empty, blank or null: left out
        return text | {"nullable": True, "pattern": TEXT_PATTERN_OPTIONAL}
    if name == "Country":  # an ISO 3166 code or a name
        return text | {"minLength": 2, "pattern": TEXT_PATTERN_TWO_OR_MORE}
    return text | {"minLength": 1, "pattern": TEXT_PATTERN}


ADDRESS_SCHEMA = {
    "type": "object",
    "description": "Where the order ships; the mock carriers read PostalCode (00000 and 99999 "
    f"are their test addresses). Every field but PostalCode is {TEXT_RULE}",
    "properties": {
        name: _address_field(name, required, max_length)
        for name, (required, max_length) in ADDRESS_FIELDS.items()
    },
    "required": [name for name, (required, _) in ADDRESS_FIELDS.items() if required],
    "additionalProperties": False,
}


@extend_schema_field(
    {
        "type": "string",
        "pattern": PAYMENT_TOKEN_RE.pattern,
        "description": "The payment method's token. The mock gateway's test tokens: "
        "tok_approve, tok_decline, tok_unavailable, tok_flaky_<n>.",
        "example": "tok_approve",
    }
)
class PaymentTokenField(DomainCheckedField):
    """The optional payment token; the domain checks its form."""


@extend_schema_field(ADDRESS_SCHEMA)
class ShippingAddressField(DomainCheckedField):
    """The optional shipping address; the domain checks every field of it."""


class SubmitOrderRequestSerializer(StrictSerializer):
    """The body of POST /submitorder: the seed's {CustomerName, Items} plus optional extras."""

    CustomerName = CustomerNameField(required=True)
    Items = ItemsField(required=True)
    PaymentToken = PaymentTokenField(required=False)
    ShippingAddress = ShippingAddressField(required=False)


class SubmitOrderResponseSerializer(serializers.Serializer):
    """200 from POST /submitorder."""

    message = serializers.CharField(default="Order submitted successfully")
    OrderId = serializers.CharField(help_text="The new order's id (a UUID).")
    Status = serializers.ChoiceField(choices=[str(OrderStatus.PENDING)])


class ErrorSerializer(serializers.Serializer):
    """Every error response."""

    message = serializers.CharField()
    errors = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text='Field-level problems, e.g. {"Items[2]": "Quantity must be between 1 and 1000"}.',
    )


class OrderLineSerializer(serializers.Serializer):
    """One line of a stored order."""

    ItemName = serializers.CharField()
    Quantity = serializers.IntegerField()


class StatusChangeSerializer(serializers.Serializer):
    """One entry of an order's status history."""

    Status = serializers.ChoiceField(choices=[str(s) for s in OrderStatus])
    At = serializers.CharField(help_text="UTC, ISO 8601")
    Reason = serializers.CharField()


class ReservationLineSerializer(OrderLineSerializer):
    """A reserved line and its unit price."""

    UnitPrice = serializers.FloatField()


class ReservationSerializer(serializers.Serializer):
    """The stock an order holds and what it costs."""

    Lines = ReservationLineSerializer(many=True)
    Total = serializers.FloatField()
    Currency = serializers.CharField()
    ReservedAt = serializers.CharField()


class PaymentSerializer(serializers.Serializer):
    """The approved charge."""

    TransactionId = serializers.CharField()
    Amount = serializers.FloatField()
    Currency = serializers.CharField()
    ProcessedAt = serializers.CharField()


class ShipmentSerializer(serializers.Serializer):
    """The booked shipment."""

    Carrier = serializers.CharField()
    Service = serializers.CharField()
    TrackingNumber = serializers.CharField()
    EstimatedDelivery = serializers.DateField(
        required=False, help_text="Absent when staff shipped the order by hand"
    )
    ShippedAt = serializers.CharField()


class RejectionSerializer(serializers.Serializer):
    """An order line that could not be reserved."""

    ItemName = serializers.CharField()
    Requested = serializers.IntegerField()
    Available = serializers.IntegerField(allow_null=True)
    Problem = serializers.ChoiceField(choices=["UNKNOWN_ITEM", "INSUFFICIENT_STOCK"])


class OrderSerializer(serializers.Serializer):
    """GET /orders/{OrderId}: the order and its whole life."""

    OrderId = serializers.CharField()
    CustomerName = serializers.CharField()
    Items = OrderLineSerializer(many=True)
    Status = serializers.ChoiceField(choices=[str(s) for s in OrderStatus])
    StatusReason = serializers.CharField()
    OrderDate = serializers.CharField(help_text="UTC, ISO 8601")
    LastUpdated = serializers.CharField(help_text="UTC, ISO 8601")
    StatusHistory = StatusChangeSerializer(many=True)
    ShippingAddress = ShippingAddressField(required=False)
    Reservation = ReservationSerializer(required=False)
    Payment = PaymentSerializer(required=False)
    Shipment = ShipmentSerializer(required=False)
    Rejection = RejectionSerializer(many=True, required=False)


# What GET /orders/{id} shows of Order.as_json(): not the payment token, the request hash or
# the client id, which are the client's secrets or the portal's bookkeeping.
ORDER_FIELDS = tuple(OrderSerializer._declared_fields)


# GET /orders: how many orders a page holds at most, and by default.
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_CURSOR_LENGTH = 2048


def as_order_date(moment: datetime) -> str:
    """A moment written the way OrderDate is (UTC, milliseconds, Z), so the index's string
    order compares it rightly; moments beyond the years an offset can reach are clamped."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        moment = (
            datetime.min.replace(tzinfo=UTC)
            if moment.year < 2
            else datetime.max.replace(tzinfo=UTC)
        )
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class OrderListQuerySerializer(serializers.Serializer):
    """GET /orders's query: a status, a date range on OrderDate, a page size and a cursor."""

    status = serializers.ChoiceField(
        choices=[str(s) for s in OrderStatus],
        required=False,
        help_text="Only orders in this status now.",
    )
    since = serializers.DateTimeField(
        required=False,
        help_text="Only orders placed at or after this moment (ISO 8601; no offset means UTC).",
    )
    until = serializers.DateTimeField(
        required=False,
        help_text="Only orders placed at or before this moment (ISO 8601; no offset means UTC).",
    )
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_PAGE_SIZE,
        default=DEFAULT_PAGE_SIZE,
        help_text=f"Orders per page, 1 to {MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE}).",
    )
    cursor = serializers.CharField(
        required=False,
        max_length=MAX_CURSOR_LENGTH,
        help_text="NextCursor of the previous page, as it came; the same filters must be sent.",
    )


class OrderListSerializer(serializers.Serializer):
    """GET /orders: a page of the calling key's orders, newest first."""

    Orders = OrderSerializer(many=True)
    NextCursor = serializers.CharField(
        allow_null=True, help_text="Send it as `cursor` for the next page; null on the last."
    )

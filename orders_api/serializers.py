"""The request and response shapes of the order API; the order rules stay in pipeline.domain.

CustomerName and Items pass through untouched: `order_submit` validates them and its
InvalidOrder names the field. Their schema is written from the domain's own limits, so the
documentation cannot drift from the rules. What the domain does not check (the optional
PaymentToken and ShippingAddress the mock gateway and carriers read) is checked here.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pipeline.domain import (
    ITEM_NAME_RE,
    MAX_CUSTOMER_NAME,
    MAX_ITEM_NAME,
    MAX_LINES,
    MAX_QUANTITY,
)
from pipeline.statuses import OrderStatus

ITEM_NAME_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_ITEM_NAME,
    "pattern": ITEM_NAME_RE.pattern,
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


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_CUSTOMER_NAME,
        "description": "Who the order is for (control characters are refused).",
        "example": "John Doe",
    }
)
class CustomerNameField(serializers.Field):
    """Passed to order_submit as sent; the domain says what is wrong with it."""

    def to_internal_value(self, data: Any) -> Any:
        """The value as sent."""
        return data

    def to_representation(self, value: Any) -> Any:
        """The value as stored."""
        return value


@extend_schema_field(
    {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_LINES,
        "description": (
            "Item names (one of each) or {ItemName, Quantity} objects, mixed freely; "
            f"repeated names are added up (at most {MAX_QUANTITY} of an item)."
        ),
        "items": {"oneOf": [ITEM_NAME_SCHEMA, ORDER_LINE_SCHEMA]},
        "example": ["laptop", {"ItemName": "mouse", "Quantity": 2}],
    }
)
class ItemsField(CustomerNameField):
    """Passed to order_submit as sent; the domain parses and checks every line."""


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        """The stripped string, or a type error."""
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a misspelt optional field is not silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        """The validated data, with an error for every unknown field."""
        value = super().to_internal_value(data)
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if unknown:
            raise serializers.ValidationError({name: "unknown field" for name in unknown})
        return value


class ShippingAddressSerializer(StrictSerializer):
    """Where the order ships; the mock carriers read PostalCode (00000 and 99999 are special)."""

    Name = StrictCharField(max_length=200)
    Line1 = StrictCharField(max_length=200)
    Line2 = StrictCharField(max_length=200, required=False, allow_blank=True)
    City = StrictCharField(max_length=100)
    PostalCode = StrictCharField(max_length=20)
    Country = StrictCharField(
        min_length=2, max_length=56, help_text="ISO 3166 code or country name"
    )

    def validate_PostalCode(self, value: str) -> str:
        """Letters, digits, spaces and dashes."""
        if not all(ch.isalnum() or ch in " -" for ch in value):
            raise serializers.ValidationError("may hold letters, digits, spaces and '-'")
        return value


class SubmitOrderRequestSerializer(StrictSerializer):
    """The body of POST /submitorder: the seed's {CustomerName, Items} plus optional extras."""

    CustomerName = CustomerNameField(required=True)
    Items = ItemsField(required=True)
    PaymentToken = StrictCharField(
        required=False,
        min_length=1,
        max_length=200,
        help_text=(
            "The payment method's token. The mock gateway's test tokens: tok_approve, "
            "tok_decline, tok_unavailable, tok_flaky_<n>."
        ),
    )
    ShippingAddress = ShippingAddressSerializer(required=False)

    def validate_PaymentToken(self, value: str) -> str:
        """Letters, digits, '_' and '-', as payment tokens are."""
        if not all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in value):
            raise serializers.ValidationError("may hold letters, digits, '_' and '-'")
        return value


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
    EstimatedDelivery = serializers.DateField()
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
    ShippingAddress = ShippingAddressSerializer(required=False)
    Reservation = ReservationSerializer(required=False)
    Payment = PaymentSerializer(required=False)
    Shipment = ShipmentSerializer(required=False)
    Rejection = RejectionSerializer(many=True, required=False)


# What GET /orders/{id} shows of Order.as_json(): not the payment token, the request hash or
# the client id, which are the client's secrets or the portal's bookkeeping.
ORDER_FIELDS = tuple(OrderSerializer._declared_fields)

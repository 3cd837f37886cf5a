"""POST /submitorder's body envelope checked by a plain function: SubmitOrderRequestSerializer's
rules and messages (it stays, for the OpenAPI schema) without a serializer built per request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from orders_api.exceptions import InvalidRequest
from orders_api.serializers import SubmitOrderRequestSerializer

# (name, required) in the serializer's declared order: its errors come in that order.
_FIELDS = tuple(
    (name, field.required) for name, field in SubmitOrderRequestSerializer._declared_fields.items()
)
_NAMES = frozenset(name for name, _ in _FIELDS)
# DRF's own (translatable) messages, so the answers stay word for word the serializer's.
_REQUIRED = serializers.Field.default_error_messages["required"]
_NULL = serializers.Field.default_error_messages["null"]
_NOT_A_DICT = serializers.Serializer.default_error_messages["invalid"]


def envelope_fields(data: Any) -> dict[str, Any]:
    """The body's fields as sent (the domain checks their values), or InvalidRequest with the
    errors flatten_errors(SubmitOrderRequestSerializer(data=data).errors) would hold."""
    if data is None:
        raise InvalidRequest({"body": "No data provided"})
    if not isinstance(data, Mapping):
        raise InvalidRequest({"body": str(_NOT_A_DICT).format(datatype=type(data).__name__)})
    fields: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, required in _FIELDS:
        if name not in data:
            if required:
                errors[name] = str(_REQUIRED)
        elif data[name] is None:
            errors[name] = str(_NULL)
        else:
            fields[name] = data[name]
    if errors:
        raise InvalidRequest(errors)
    # Unknown fields are reported only once the known ones are right, as the serializer does.
    unknown = sorted(set(data) - _NAMES)
    if unknown:
        raise InvalidRequest({name: "unknown field" for name in unknown})
    return fields

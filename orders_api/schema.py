"""OpenAPI extensions: the x-api-key security scheme, and closed request bodies."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents ApiKeyAuthentication as an `apiKey` scheme in the `x-api-key` header."""

    target_class = "orders_api.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        """The security scheme object."""
        return {
            "type": "apiKey",
            "in": "header",
            "name": "x-api-key",
            "description": "The key `create_api_key` printed (shown once when it is created).",
        }


class StrictSerializerSchema(OpenApiSerializerExtension):
    """A StrictSerializer refuses unknown fields (400): its schema says so with
    `additionalProperties: false`, or a client following the schema could send one."""

    target_class = "orders_api.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        """drf-spectacular's own schema of the serializer, closed to other properties."""
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        return {**schema, "additionalProperties": False}

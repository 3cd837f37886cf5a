"""OpenAPI extensions: the x-api-key security scheme for ApiKeyAuthentication."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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

"""The request body parser: JSON only, size-bounded, strict about what JSON is."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from orders_api.exceptions import PayloadTooLarge


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON and no DynamoDB number.
    raise ValueError(f"{name} is not valid JSON")


class BoundedJSONParser(BaseParser):
    """Reads at most settings.ORDERS_API_MAX_BODY_BYTES (413 beyond) and parses strict JSON."""

    media_type = "application/json"

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        """The parsed body; ParseError (400) or PayloadTooLarge (413)."""
        limit = settings.ORDERS_API_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(limit)
        # Read one byte past the limit: a body without Content-Length (chunked) is caught too.
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise PayloadTooLarge(limit)
        try:
            text = body.decode("utf-8")
            return json.loads(text, parse_constant=_reject_constant)
        except UnicodeDecodeError:
            raise ParseError("Malformed JSON: the body is not UTF-8") from None
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None

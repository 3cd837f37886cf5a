"""The request body parser: JSON only, size-bounded, strict about what JSON is."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from orders_api.exceptions import PayloadTooLarge

# Arrays and objects inside one another. An order needs 3 (body, Items, a line); the bound
# keeps every recursive step after parsing (hashing, validation, error reports) far from
# Python's recursion limit, which a 64 KiB body could otherwise come near.
MAX_DEPTH = 32
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON and no DynamoDB number.
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python keeps the last of repeated keys, other parsers the first: a proxy or log reader in
    # front of us could see another order than the one we store. json.dumps escapes the key,
    # so a lone surrogate in it cannot reach the UTF-8 response.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {json.dumps(key)}")
        obj[key] = value
    return obj


def _check_structure(body: Any) -> None:
    """ParseError for nesting deeper than MAX_DEPTH or a lone surrogate in any key or string.

    JSON's \\ud800 escapes decode to lone surrogates, which are not Unicode text: the UTF-8
    encoders behind the idempotency hash, DynamoDB and the error responses fail on them, so
    they are refused here, once, before any of those runs. Iterative, so depth costs no stack.
    """
    stack: list[tuple[Any, int, str]] = [(body, 1, "")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            found = _SURROGATE.search(value)
            if found:
                where = path or "the body"
                raise ParseError(
                    f"Malformed JSON: {where} holds a lone surrogate "
                    f"(\\u{ord(found[0]):04x}), which is not Unicode text"
                )
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise ParseError(f"Malformed JSON: nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    where = f"a key of {path}" if path else "a key"
                    raise ParseError(
                        f"Malformed JSON: {where} holds a lone surrogate, which is not Unicode text"
                    )
                stack.append((item, depth + 1, f"{path}.{key}" if path else key))
        else:
            stack.extend((item, depth + 1, f"{path}[{i}]") for i, item in enumerate(value))


class BoundedJSONParser(BaseParser):
    """Reads at most settings.ORDERS_API_MAX_BODY_BYTES (413 beyond) and parses strict JSON:
    UTF-8, no NaN or Infinity, no repeated keys, no lone surrogates, at most MAX_DEPTH deep."""

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
            parsed = json.loads(
                text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys
            )
        except UnicodeDecodeError:
            raise ParseError("Malformed JSON: the body is not UTF-8") from None
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None
        _check_structure(parsed)
        return parsed

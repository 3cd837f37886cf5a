"""DynamoDB page cursors (LastEvaluatedKey) as opaque, URL-safe strings and back."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

# The keys a page of the Orders table or its indexes can end on; all strings.
CURSOR_KEYS = frozenset({"OrderId", "Status", "OrderDate", "CustomerName"})


class BadCursor(ValueError):
    """A cursor that this portal did not make (edited or truncated URL)."""


def encode_cursor(key: dict[str, Any] | None) -> str:
    """The cursor for a LastEvaluatedKey ('' when there is no next page)."""
    if not key:
        return ""
    raw = json.dumps(key, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None) -> dict[str, str] | None:
    """The LastEvaluatedKey a cursor stands for; None for none; BadCursor if it is not ours."""
    if not token:
        return None
    if len(token) > 2000:
        raise BadCursor("cursor too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadCursor("cursor is not valid") from exc
    # Only string values under known names reach DynamoDB as ExclusiveStartKey.
    if (
        not isinstance(key, dict)
        or not key
        or not set(key) <= CURSOR_KEYS
        or not all(isinstance(v, str) and v for v in key.values())
    ):
        raise BadCursor("cursor is not valid")
    return key

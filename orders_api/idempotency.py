"""Idempotency-Key support without a second store: the key decides the order id."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

HEADER = "Idempotency-Key"
MAX_LENGTH = 255

# Fixed forever: changing it would give retried requests new order ids.
NAMESPACE = uuid.UUID("6f1c2a4e-5b7d-4c1e-9a43-2d8f0b6e7c15")


def validate_key(raw: str) -> str | None:
    """What is wrong with an Idempotency-Key header value, or None if nothing."""
    if not 1 <= len(raw) <= MAX_LENGTH:
        return f"must be 1 to {MAX_LENGTH} characters"
    if not all("!" <= ch <= "~" for ch in raw):
        return "may hold visible ASCII characters only (no spaces)"
    return None


def order_id_for(client_id: str, key: str) -> str:
    """The order id a client's idempotency key stands for: the same key, the same order, so
    the Orders table's conditional put lets exactly one of any number of racing requests in."""
    return str(uuid.uuid5(NAMESPACE, f"{client_id}\n{key}"))


def request_hash(body: Any) -> str:
    """A hash of the body's meaning (key order and whitespace do not change it)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

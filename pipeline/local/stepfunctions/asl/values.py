"""JSON values as ASL sees them: booleans are not numbers, text is compact JSON."""

from __future__ import annotations

import json
from typing import Any


def is_int(value: Any) -> bool:
    """Whether `value` is a JSON integer (not a boolean)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether `value` is a JSON number (not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def dumps(value: Any) -> str:
    """`value` as compact JSON text, the way Step Functions writes data into events."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def same_json(a: Any, b: Any) -> bool:
    """Whether `a` and `b` are the same JSON value."""
    # JSON equality: true is not 1, although Python says so.
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

"""A read that may fail, kept with its error, so a page or report shows what else it could read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Part:
    """One part of a page or report: its value, or the error that kept it from being read."""

    value: Any = None
    error: str | None = None

    def as_json(self) -> Any:
        """The value, or {"error": ...} in its place."""
        return {"error": self.error} if self.error is not None else self.value


def attempt(read: Callable[[], Any]) -> Part:
    """Run `read`; a failure becomes the part's error instead of an error page."""
    try:
        return Part(value=read())
    except Exception as exc:  # a status page shows every failure instead of stopping
        return Part(error=f"{type(exc).__name__}: {exc}")

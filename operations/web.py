"""What every operations view shares: staff-only access, the admin's look, shown values."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from pipeline.domain import to_json

log = logging.getLogger("operations")

T = TypeVar("T")

# Staff only; anyone else is sent to the admin's login page (which comes back with ?next=).
staff_required = staff_member_required


def ops_render(
    request: HttpRequest,
    template: str,
    context: Mapping[str, Any],
    *,
    title: str,
    crumbs: Sequence[tuple[str, str | None]] = (),
    status: int = 200,
) -> HttpResponse:
    """Render an operations page inside the admin's frame (header, sidebar, user links)."""
    full = {
        **admin.site.each_context(request),
        "title": title,
        "ops_crumbs": list(crumbs),
        # The operations menu is the navigation here; the model sidebar would only tell a
        # staff member without model permissions that they may edit nothing.
        "is_nav_sidebar_enabled": False,
        **context,
    }
    return render(request, template, full, status=status)


def pretty(value: Any) -> str:
    """A stored value as readable text (nested maps and lists as indented JSON)."""
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(to_json(value), indent=2, sort_keys=True, default=str)
    return "" if value is None else str(value)


def money(value: Any) -> str:
    """An amount with two decimal places, as staff read prices."""
    return f"{Decimal(str(value)):.2f}"

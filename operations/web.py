"""What every operations view shares: staff-only access, the admin's look, shown values.

`carry_out` turns a use case's outcome into a message for the staff member and an audit row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from operations.audit import Outcome, record
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


def rows_of(mapping: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """A map as (key, text) rows for a two-column table."""
    return [(str(k), pretty(v)) for k, v in (mapping or {}).items()]


def carry_out(
    request: HttpRequest,
    *,
    action: str,
    run: Callable[[], T],
    success: Callable[[T], str],
    refusals: Mapping[type[Exception], Callable[[Any], str]],
    order_id: str = "",
    item_name: str = "",
    reason: str = "",
    detail: Callable[[T], Mapping[str, Any]] | None = None,
) -> T | None:
    """Call one use case for a staff action; record the outcome in the audit log and tell the
    staff member. Refusals (rules that said no: nothing changed) and failures (something broke)
    become messages and return None; success returns the use case's result.
    """
    try:
        result = run()
    except Exception as exc:
        refusal = next((msg for kind, msg in refusals.items() if isinstance(exc, kind)), None)
        if refusal is not None:
            text = f"Refused: {refusal(exc)} Nothing was changed."
            outcome = Outcome.REFUSED
            messages.error(request, text)
        else:
            log.exception("operations action %s failed", action)
            text = f"Failed: {type(exc).__name__}: {exc}"
            outcome = Outcome.FAILED
            messages.error(request, text)
        record(
            user=request.user,
            action=action,
            outcome=outcome,
            order_id=order_id,
            item_name=item_name,
            reason=reason,
            message=text,
            detail={"error": f"{type(exc).__name__}: {exc}"},
        )
        return None
    text = success(result)
    messages.success(request, text)
    record(
        user=request.user,
        action=action,
        outcome=Outcome.SUCCEEDED,
        order_id=order_id,
        item_name=item_name,
        reason=reason,
        message=text,
        detail=dict(detail(result)) if detail else {},
    )
    return result

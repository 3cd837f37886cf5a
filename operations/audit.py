"""Writing the audit log: one row per staff action, whatever its outcome."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser

from operations.models import AuditLogEntry

Action = AuditLogEntry.Action
Outcome = AuditLogEntry.Outcome


def actor_name(user: AbstractBaseUser | AnonymousUser | None) -> str:
    """The name written on orders and in the log for this user."""
    if user is None or not user.is_authenticated:
        return "anonymous"
    return user.get_username()


def record(
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    action: str,
    outcome: str,
    actor: str | None = None,
    order_id: str = "",
    item_name: str = "",
    reason: str = "",
    message: str = "",
    detail: Mapping[str, Any] | None = None,
) -> AuditLogEntry:
    """Add one entry; `actor` names who did it when there is no user (a command, celery beat)."""
    return AuditLogEntry.objects.create(
        user=user if user is not None and user.is_authenticated else None,
        actor=actor or actor_name(user),
        action=action,
        outcome=outcome,
        order_id=order_id or "",
        item_name=item_name or "",
        reason=reason or "",
        message=message,
        detail=dict(detail or {}),
    )

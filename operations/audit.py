"""Writing the audit log: an intent before each change, completed once it is known how it ended.

`audited` is the API the admin's actions use around a DynamoDB or SQS change:

    with audited(request.user, Action.INVENTORY_ADJUST, item, before=..., after=...) as entry:
        store.inventory_adjust(...)            # the change itself
        entry.message = "Stock 5 -> 7."        # optional: what staff are told

The entry is written first as PENDING and committed, so a crash during the change leaves a
pending intent behind, never a change with no entry (call it outside atomic blocks for that
reason). Leaving the block completes it as SUCCEEDED; an exception completes it as REFUSED
(one of `refusals`: the rules said no, nothing changed) or FAILED, and goes on up.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.utils import timezone

from operations.models import AuditLogEntry

Action = AuditLogEntry.Action
Outcome = AuditLogEntry.Outcome
User = AbstractBaseUser | AnonymousUser | None


def actor_name(user: User) -> str:
    """The name written on orders and in the log for this user."""
    if user is None or not user.is_authenticated:
        return "anonymous"
    return user.get_username()


def object_ref(obj: models.Model | tuple[str, str] | None) -> tuple[str, str]:
    """(object_type, object_id) of a model instance, or of ("app.model", key) as given."""
    if obj is None:
        return "", ""
    if isinstance(obj, tuple):
        return obj[0], str(obj[1])
    return obj._meta.label_lower, str(obj.pk)


def record(
    *,
    user: User,
    action: str,
    outcome: str,
    actor: str | None = None,
    order_id: str = "",
    item_name: str = "",
    reason: str = "",
    message: str = "",
    detail: Mapping[str, Any] | None = None,
    obj: models.Model | tuple[str, str] | None = None,
    before: Any = None,
    after: Any = None,
) -> AuditLogEntry:
    """Add one finished entry; `actor` names who did it when there is no user (a command, beat)."""
    object_type, object_id = object_ref(obj)
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
        object_type=object_type,
        object_id=object_id,
        before=before,
        after=after,
        completed_at=None if outcome == Outcome.PENDING else timezone.now(),
    )


class Intent:
    """The pending entry `audited` yields: set `message`, `detail` or `after` before it ends."""

    def __init__(self, entry: AuditLogEntry):
        self.entry = entry
        self.message = ""
        self.detail: dict[str, Any] = {}
        self.after: Any = entry.after

    @property
    def pk(self) -> int:
        """The entry's id."""
        return self.entry.pk


def complete(entry: AuditLogEntry, outcome: str, *, message: str = "", **more: Any) -> None:
    """Complete a pending entry once (the database refuses any other change to an entry)."""
    fields = {"outcome": outcome, "completed_at": timezone.now(), "message": message, **more}
    done = AuditLogEntry.objects.filter(pk=entry.pk, outcome=Outcome.PENDING).update(**fields)
    if not done:
        raise RuntimeError(f"audit entry {entry.pk} is not pending: it was completed already")
    for name, value in fields.items():
        setattr(entry, name, value)


@contextmanager
def audited(
    user: User,
    action: str,
    obj: models.Model | tuple[str, str] | None,
    *,
    before: Any = None,
    after: Any = None,
    reason: str = "",
    refusals: tuple[type[BaseException], ...] = (),
    actor: str | None = None,
    order_id: str = "",
    item_name: str = "",
    detail: Mapping[str, Any] | None = None,
) -> Iterator[Intent]:
    """Write a PENDING entry, run the block (the change), then complete the entry.

    Call it outside atomic blocks (the admin's data views are not atomic): the intent must be
    committed before the change, or a rolled-back request would leave a change with no entry.
    See the module docstring for the outcomes.
    """
    entry = record(
        user=user,
        action=action,
        outcome=Outcome.PENDING,
        actor=actor,
        order_id=order_id,
        item_name=item_name,
        reason=reason,
        obj=obj,
        before=before,
        after=after,
        detail=detail,
    )
    intent = Intent(entry)
    try:
        yield intent
    except refusals as exc:
        complete(entry, Outcome.REFUSED, message=intent.message or str(exc), **_extra(intent, exc))
        raise
    except BaseException as exc:
        text = intent.message or f"{type(exc).__name__}: {exc}"
        complete(entry, Outcome.FAILED, message=text, **_extra(intent, exc))
        raise
    complete(
        entry,
        Outcome.SUCCEEDED,
        message=intent.message,
        after=intent.after,
        detail={**entry.detail, **intent.detail},
    )


def _extra(intent: Intent, exc: BaseException) -> dict[str, Any]:
    error = f"{type(exc).__name__}: {exc}"
    return {"detail": {**intent.entry.detail, **intent.detail, "error": error}}

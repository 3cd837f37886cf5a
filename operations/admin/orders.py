"""The Orders table in the admin: search by customer prefix or id, status and date filters,
bulk cancel and resubmit, and one order's timeline with its actions.

Every action goes through a pipeline use case (pipeline/staff_actions.py), needs its own
permission (403 otherwise, and its button is not shown), is confirmed with a reason on a page
of its own (a CSRF POST does it), and is audited through operations.audit.audited: the intent
is written before the change. The reason also goes into the order's own history.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from operations import selectors
from operations.admin.data import (
    BadQuery,
    DataAction,
    DataAdmin,
    Query,
    Source,
    SourceFilter,
    SourcePage,
)
from operations.audit import Action, actor_name, audited
from operations.forms import CheckedTextField, ReasonForm
from operations.models import Order
from operations.parts import attempt
from operations.web import money, pretty
from pipeline import staff_actions, wiring
from pipeline.domain import CUSTOMER_PREFIX_LENGTH, MAX_CUSTOMER_NAME
from pipeline.domain import Order as DomainOrder
from pipeline.errors import InvalidOrder, InvalidTransition, OrderNotFound
from pipeline.statuses import OrderStatus

# The date filter's ranges, as Django's own date filter offers them: key -> (label, days).
DATE_RANGES: dict[str, tuple[str, int]] = {
    "today": ("Today", 0),
    "7d": ("Past 7 days", 7),
    "30d": ("Past 30 days", 30),
    "365d": ("Past year", 365),
}
# No index lists every order: without a status or a search the list shows these.
DEFAULT_STATUS = OrderStatus.MANUAL_INTERVENTION
REFUSALS = (InvalidTransition, OrderNotFound, InvalidOrder)


def iso_utc(moment: datetime) -> str:
    """A datetime as the Orders table writes times (UTC, milliseconds, Z), to compare as text."""
    utc = moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def local_time(iso: str | None) -> str:
    """A stored UTC time shown in the staff member's time zone (the active one: settings
    TIME_ZONE unless a middleware activated the user's), with the zone's name."""
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    local = timezone.localtime(moment)
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or "")


def date_range(key: str, now: datetime | None = None) -> tuple[str, str | None]:
    """The (placed_after, placed_before) of a date filter choice, in local days."""
    if key not in DATE_RANGES:
        raise BadQuery(f"No such date range: {key}.")
    local_now = timezone.localtime(now or timezone.now())
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    return iso_utc(midnight - timedelta(days=DATE_RANGES[key][1])), None


class OrderSource(Source):
    """Orders through DynamoDB's indexes, never a scan: a customer name prefix through the
    CustomerPrefixIndex (status and dates as conditions on it), else one status through the
    StatusIndex; an exact order id goes straight to that order."""

    filters = (
        SourceFilter("status", "status", [(str(s), str(s)) for s in OrderStatus]),
        SourceFilter("placed", "order date", [(k, v[0]) for k, v in DATE_RANGES.items()]),
    )
    # The "placed" column: newest first unless sorted ascending (o=placed).
    sortable = ("placed",)

    def page(self, query: Query) -> SourcePage:
        """One page of the orders the search and filters ask for."""
        raw_status = query.filters.get("status")
        if raw_status is not None and raw_status not in {str(s) for s in OrderStatus}:
            raise BadQuery(f"No such status: {raw_status}.")
        status = OrderStatus(raw_status) if raw_status else None
        after, before = (
            date_range(query.filters["placed"]) if "placed" in query.filters else (None, None)
        )
        search = query.search
        if len(search) > MAX_CUSTOMER_NAME:
            raise BadQuery(f"A search is at most {MAX_CUSTOMER_NAME} characters.")
        if search and query.cursor is None:
            found = selectors.order_by_id(search)
            if found is not None:
                return SourcePage([Order.from_domain(found)], note="The order with this id.")
        note = ""
        if not search and status is None:
            status = DEFAULT_STATUS
            note = (
                f"No status chosen: showing {DEFAULT_STATUS} (the orders waiting for staff). "
                "Pick a status, or search a customer name or an order id."
            )
        cursor = query.cursor if isinstance(query.cursor, dict) else None
        try:
            page = selectors.orders_search(
                customer_prefix=search,
                status=status,
                placed_after=after,
                placed_before=before,
                oldest_first=query.ordering == "placed",
                limit=query.per_page,
                cursor=cursor,
            )
        except ValueError as exc:
            raise BadQuery(
                f"{str(exc).capitalize()}, or paste a whole order id."
                if search and len(search) < CUSTOMER_PREFIX_LENGTH
                else str(exc).capitalize() + "."
            ) from exc
        if search and not page.items and cursor is None:
            note = (
                "No order of a customer whose name starts so. Orders placed before the search "
                "index existed are found by status, or by their id."
            )
        return SourcePage([Order.from_domain(o) for o in page.items], next=page.cursor, note=note)

    def get(self, pk: str) -> Order | None:
        """One order, or None."""
        order = selectors.order_by_id(pk)
        return Order.from_domain(order) if order else None


class MarkShippedForm(ReasonForm):
    """Marking a MANUAL_INTERVENTION order shipped by hand: carrier, tracking number, reason."""

    carrier = CheckedTextField(max_length=staff_actions.MAX_CARRIER)
    tracking_number = forms.RegexField(
        regex=staff_actions.TRACKING_RE,
        max_length=staff_actions.MAX_TRACKING,
        strip=True,
        error_messages={"invalid": "Letters, digits, spaces and . _ / - only."},
    )
    field_order = ("carrier", "tracking_number", "reason")


@dataclass(frozen=True)
class OrderAction:
    """A staff action on one order: its permission, the statuses it starts from, its form,
    and how it runs (through a pipeline use case)."""

    slug: str
    label: str
    permission: str
    audit: str
    allowed: tuple[OrderStatus, ...]
    explain: str
    form: type[forms.Form]
    run: Callable[[str, str, Mapping[str, Any]], DomainOrder]
    danger: bool = False


def _cancel(order_id: str, actor: str, data: Mapping[str, Any]) -> DomainOrder:
    return staff_actions.order_cancel(
        store=wiring.dynamo_store(), order_id=order_id, actor=actor, reason=data["reason"]
    )


def _resubmit(order_id: str, actor: str, data: Mapping[str, Any]) -> DomainOrder:
    return staff_actions.order_resubmit(
        store=wiring.dynamo_store(), order_id=order_id, actor=actor, reason=data["reason"]
    )


def _retry_shipping(order_id: str, actor: str, data: Mapping[str, Any]) -> DomainOrder:
    return staff_actions.order_retry_shipping(
        store=wiring.dynamo_store(),
        queue=wiring.orders_queue(),
        order_id=order_id,
        actor=actor,
        reason=data["reason"],
    )


def _refund(order_id: str, actor: str, data: Mapping[str, Any]) -> DomainOrder:
    return staff_actions.order_refund_release(
        store=wiring.dynamo_store(),
        gateway=wiring.payment_gateway(),
        order_id=order_id,
        actor=actor,
        reason=data["reason"],
    )


def _mark_shipped(order_id: str, actor: str, data: Mapping[str, Any]) -> DomainOrder:
    return staff_actions.order_mark_shipped(
        store=wiring.dynamo_store(),
        order_id=order_id,
        actor=actor,
        reason=data["reason"],
        carrier=data["carrier"],
        tracking_number=data["tracking_number"],
    )


MANUAL = (OrderStatus.MANUAL_INTERVENTION,)
ORDER_ACTIONS: dict[str, OrderAction] = {
    action.slug: action
    for action in (
        OrderAction(
            "cancel",
            "Cancel",
            "cancel_order",
            Action.ORDER_CANCEL,
            (OrderStatus.PENDING, OrderStatus.RESERVED),
            "The order becomes CANCELLED; stock it reserved goes back to the inventory in the "
            "same transaction. A paid order cannot be cancelled.",
            ReasonForm,
            _cancel,
            danger=True,
        ),
        OrderAction(
            "resubmit",
            "Resubmit",
            "resubmit_order",
            Action.ORDER_RESUBMIT,
            (OrderStatus.PAYMENT_FAILED, OrderStatus.REJECTED),
            "The order goes back to PENDING and through the whole pipeline again "
            "(reservation, payment, shipping) as a new attempt.",
            ReasonForm,
            _resubmit,
        ),
        OrderAction(
            "retry-shipping",
            "Retry shipping",
            "retry_shipping_order",
            Action.ORDER_RETRY_SHIPPING,
            MANUAL,
            "The order goes back to PAID and a new workflow run is sent to the Orders queue: "
            "its payment step finds the charge already made (nothing is charged again), then "
            "it books a shipment, or flags the order for staff again.",
            ReasonForm,
            _retry_shipping,
        ),
        OrderAction(
            "refund",
            "Refund and release stock",
            "refund_order",
            Action.ORDER_REFUND,
            MANUAL,
            "The order's stock goes back to the inventory and it becomes REFUNDED; then its "
            "charge is refunded through the payment gateway (once, however often this runs).",
            ReasonForm,
            _refund,
            danger=True,
        ),
        OrderAction(
            "mark-shipped",
            "Mark shipped",
            "mark_shipped_order",
            Action.ORDER_RESOLVE_SHIPPED,
            MANUAL,
            "You shipped this order by hand: it becomes SHIPPED, with the carrier and tracking "
            "number recorded as its shipment.",
            MarkShippedForm,
            _mark_shipped,
        ),
    )
}


def run_order_action(
    request: HttpRequest, action: OrderAction, order_id: str, data: Mapping[str, Any]
) -> DomainOrder:
    """Run one action on one order, audited (the intent first); refusals raise on."""
    before = attempt(lambda: selectors.order_by_id(order_id)).value
    with audited(
        request.user,
        action.audit,
        ("operations.order", order_id),
        order_id=order_id,
        reason=data.get("reason", ""),
        before={"status": str(before.status)} if before else None,
        refusals=REFUSALS,
        detail={k: v for k, v in data.items() if k != "reason"},
    ) as entry:
        order = action.run(order_id, actor_name(request.user), data)
        entry.after = {"status": str(order.status)}
        entry.message = f"{action.label}: order {order_id} is now {order.status}."
    return order


def _refusal(action: OrderAction, order_id: str, exc: Exception) -> str:
    if isinstance(exc, InvalidTransition):
        allowed = " or ".join(action.allowed)
        return f"order {order_id} is {exc.current}; {action.label.lower()} needs {allowed}."
    if isinstance(exc, OrderNotFound):
        return f"there is no order {order_id}."
    return str(exc)


@admin.register(Order)
class OrderAdmin(DataAdmin):
    """Orders, read from DynamoDB; changed only through the staff actions."""

    source = OrderSource()
    list_display = ("order_id", "customer_name", "status", "placed", "updated", "total")
    search_fields = ("order_id", "customer_name")
    search_help_text = (
        f"An order id, or the first {CUSTOMER_PREFIX_LENGTH}+ letters of a customer's name "
        "(case and accents ignored); combine with the status and date filters."
    )
    change_form_template = "admin/operations/order/change_form.html"

    def __init__(self, model: type[Any], admin_site: admin.AdminSite):
        self.data_actions = tuple(
            DataAction(
                f"bulk_{slug}",
                f"{ORDER_ACTIONS[slug].label} selected orders",
                ORDER_ACTIONS[slug].permission,
                self._bulk(ORDER_ACTIONS[slug]),
                form=ReasonForm,
                danger=ORDER_ACTIONS[slug].danger,
            )
            for slug in ("cancel", "resubmit")
        )
        super().__init__(model, admin_site)

    # -- columns ------------------------------------------------------------------------------

    @admin.display(description="placed")
    def placed(self, obj: Order) -> str:
        """When the order was placed, in the staff member's time zone."""
        return local_time(obj.order_date)

    @admin.display(description="last change")
    def updated(self, obj: Order) -> str:
        """When the order last changed, in the staff member's time zone."""
        return local_time(obj.last_updated)

    @admin.display(description="total")
    def total(self, obj: Order) -> str:
        """What the reserved lines cost (empty before the reservation)."""
        total = obj.domain.total
        return money(total) if total is not None else ""

    # -- bulk actions -------------------------------------------------------------------------

    def _bulk(self, action: OrderAction) -> Callable[[HttpRequest, list[str], dict[str, Any]], str]:
        def run(request: HttpRequest, pks: list[str], data: dict[str, Any]) -> str:
            done, refused = [], []
            for order_id in pks:
                try:
                    run_order_action(request, action, order_id, data)
                except REFUSALS as exc:
                    refused.append(_refusal(action, order_id, exc))
                else:
                    done.append(order_id)
            text = f"{action.label}: {len(done)} order(s) done."
            if refused:
                text += f" Refused {len(refused)}: " + " ".join(refused)
            return text

        return run

    # -- one order ----------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        """Each order's action pages next to its detail page."""
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "<path:object_id>/act/<slug:slug>/",
                self.admin_site.admin_view(self.order_action_view),
                name=f"{info}_act",
            ),
            *super().get_urls(),
        ]

    def offered_actions(self, request: HttpRequest, order: DomainOrder) -> list[OrderAction]:
        """The actions this user may run on this order now."""
        return [
            a
            for a in ORDER_ACTIONS.values()
            if order.status in a.allowed and self.has_perm(request, a.permission)
        ]

    def order_action_view(self, request: HttpRequest, object_id: str, slug: str) -> HttpResponse:
        """Confirm an action with a reason (GET), then run it (POST) and go back to the order."""
        action = ORDER_ACTIONS.get(slug)
        if action is None:
            raise Http404(f"No order action {slug}.")
        if not self.has_perm(request, action.permission):
            raise PermissionDenied(f"{action.label} needs {action.permission}.")
        if request.method not in ("GET", "HEAD", "POST"):
            return HttpResponse(status=405)
        change_url = reverse("admin:operations_order_change", args=[object_id])
        form = action.form(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                order = run_order_action(request, action, object_id, form.cleaned_data)
            except REFUSALS as exc:
                messages.error(request, f"Refused: {_refusal(action, object_id, exc)}")
            except Exception as exc:  # the audit entry says FAILED with the error
                messages.error(request, f"Failed: {type(exc).__name__}: {exc}")
            else:
                messages.success(
                    request, f"{action.label}: order {object_id} is now {order.status}."
                )
            return HttpResponseRedirect(change_url)
        current = attempt(lambda: selectors.order_by_id(object_id))
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            "admin/operations/order/action.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"{action.label} order {object_id}?",
                "subtitle": None,
                "action": action,
                "object_id": object_id,
                "form": form,
                "order": current.value,
                "error": current.error,
                "allowed": [str(s) for s in action.allowed],
                "change_url": change_url,
            },
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The order's fields, its one timeline, and the buttons of what this user may do."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        obj = self.get_object_or_404(object_id)
        order: DomainOrder = obj.domain
        extra = {
            "order": order,
            "timeline": order_timeline(order),
            "request_rows": request_rows(order),
            "lines": [(line.item_name, line.quantity) for line in order.lines],
            "money_rows": money_rows(order),
            "executions": attempt(lambda: execution_rows(order)),
            "order_actions": [
                (a, reverse("admin:operations_order_act", args=[order.order_id, a.slug]))
                for a in self.offered_actions(request, order)
            ],
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def detail_fields(self, obj: Order) -> list[tuple[str, str]]:
        """(label, value) of the order's main fields, times in the staff member's zone."""
        order: DomainOrder = obj.domain
        return [
            ("order id", order.order_id),
            ("customer", order.customer_name),
            ("status", str(order.status)),
            ("why", order.status_reason),
            ("placed", local_time(order.order_date)),
            ("last change", local_time(order.last_updated)),
            ("attempt", str(order.attempt)),
        ]

    def history_filter(self, object_id: str) -> Q:
        """Entries naming the order, including those written before entries named objects."""
        return super().history_filter(object_id) | Q(order_id=object_id, object_id="")


# -- the order page's parts -----------------------------------------------------------------


def order_timeline(order: DomainOrder) -> list[dict[str, Any]]:
    """Every status change (with its reason and who made it: a staff member, or the pipeline)
    and the payment, shipment and refund, in time order."""
    entries: list[dict[str, Any]] = [
        {
            "at": change.at,
            "when": local_time(change.at),
            "kind": "status",
            "status": str(change.status),
            "text": change.reason,
            "actor": change.actor or "pipeline",
            "staff": bool(change.actor),
        }
        for change in order.history
    ]
    for kind, record, stamp in (
        ("payment", order.payment, "ProcessedAt"),
        ("shipment", order.shipment, "ShippedAt"),
        ("refund", order.refund, "RefundedAt"),
    ):
        if record:
            entries.append(
                {
                    "at": str(record.get(stamp, "")),
                    "when": local_time(record.get(stamp)),
                    "kind": kind,
                    "status": "",
                    "text": _describe(kind, record),
                    "actor": record.get("ShippedBy") or record.get("By") or "pipeline",
                    "staff": bool(record.get("ShippedBy") or record.get("By")),
                }
            )
    # Stable: a record written with a status change stays after it.
    return sorted(entries, key=lambda e: e["at"])


def _describe(kind: str, record: Mapping[str, Any]) -> str:
    if kind == "payment":
        return (
            f"Charged {money(record.get('Amount'))} {record.get('Currency', '')}, "
            f"transaction {record.get('TransactionId', '?')}"
        )
    if kind == "shipment":
        return (
            f"{record.get('Carrier', '?')} {record.get('Service', '')}, tracking "
            f"{record.get('TrackingNumber', '?')}"
        )
    return (
        f"Refunded {money(record.get('Amount'))} {record.get('Currency') or ''} of "
        f"transaction {record.get('TransactionId', '?')} (refund {record.get('RefundId', '?')})"
    )


def request_rows(order: DomainOrder) -> list[tuple[str, str]]:
    """The API request that created the order: which key, whether an Idempotency-Key came."""
    if not order.client_id:
        return [("source", "not the API (seeded, or written by a script)")]
    key = attempt(lambda: selectors.api_key_for_client(order.client_id or ""))
    rows = [
        ("API key", key.value or f"(no key with prefix {order.client_id} any more)"),
        ("client id", order.client_id),
        (
            "Idempotency-Key",
            "sent (the order id was derived from it; the key itself is not stored)"
            if order.request_hash
            else "not sent",
        ),
    ]
    if order.request_hash:
        rows.append(("request body hash", order.request_hash))
    if order.shipping_address:
        rows.append(("ship to", ", ".join(str(v) for v in order.shipping_address.values())))
    return rows


def money_rows(order: DomainOrder) -> list[tuple[str, str]]:
    """Reservation, payment, shipment and refund details, as stored."""
    rows = []
    if order.total is not None:
        rows.append(
            ("total", f"{money(order.total)} {(order.reservation or {}).get('Currency', '')}")
        )
    for label, value in (
        ("payment", order.payment),
        ("shipment", order.shipment),
        ("refund owed", order.refund_due),
        ("refund", order.refund),
        ("rejection", list(order.rejection) or None),
    ):
        if value:
            rows.append((label, pretty(value)))
    return rows


def execution_rows(order: DomainOrder) -> list[dict[str, Any]]:
    """Each workflow execution of the order (every attempt and run) with its events."""
    rows = []
    for run in selectors.order_workflow_runs(order):
        described = run.described
        row: dict[str, Any] = {"attempt": run.attempt, "run": run.run, "name": run.name}
        if described is None:
            rows.append({**row, "status": "NOT STARTED", "events": []})
            continue
        arn = described.get("executionArn", "")
        events = attempt(lambda arn=arn: selectors.execution_events(arn))
        rows.append(
            {
                **row,
                "arn": arn,
                "status": described.get("status", ""),
                "start": _when(described.get("startDate")),
                "stop": _when(described.get("stopDate")),
                "error": described.get("error", ""),
                "cause": described.get("cause", ""),
                "events": [_event(e) for e in events.value or []],
                "events_error": events.error,
            }
        )
    return rows


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return local_time(value.isoformat())
    return local_time(value) if value else ""


def _event(event: Mapping[str, Any]) -> dict[str, str]:
    """One history event: when, its type, the state it concerns, and any error."""
    details = next((v for k, v in event.items() if k.endswith("EventDetails")), {}) or {}
    return {
        "when": _when(event.get("timestamp")),
        "type": str(event.get("type", "")),
        "state": str(details.get("name", "")),
        "error": " ".join(str(details.get(k, "")) for k in ("error", "cause") if details.get(k)),
    }

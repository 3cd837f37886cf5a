"""/ops/inventory/: the Inventory table (DynamoDB, not an ORM model) and staff changes to it."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from operations import selectors
from operations.audit import Action
from operations.forms import InventoryCreateForm, InventoryEditForm, ReasonForm, StockAdjustForm
from operations.parts import attempt
from operations.web import carry_out, money, ops_render, staff_required
from pipeline import wiring
from pipeline.domain import InventoryItem
from pipeline.errors import (
    InsufficientStock,
    InvalidInventoryItem,
    InventoryItemExists,
    InventoryItemNotFound,
)
from pipeline.inventory import (
    inventory_adjust_stock,
    inventory_create,
    inventory_remove,
    inventory_update_details,
)

PAGE_SIZE = 100
CRUMB = ("Inventory", "operations:inventory")


def _crumbs(*more: tuple[str, str | None]) -> list[tuple[str, str | None]]:
    return [(CRUMB[0], reverse(CRUMB[1])), *more]


def _item_detail(item: InventoryItem) -> dict[str, Any]:
    return {"stock": item.stock, "price": str(item.price), "description": item.description}


@staff_required
def inventory_view(request: HttpRequest) -> HttpResponse:
    """Every item with its stock and price, by name."""
    scanned = attempt(selectors.inventory_items)
    page = Paginator(scanned.value or [], PAGE_SIZE).get_page(request.GET.get("page"))
    return ops_render(
        request,
        "operations/inventory.html",
        {"page": page, "error": scanned.error, "total": len(scanned.value or [])},
        title="Inventory",
        crumbs=[("Inventory", None)],
    )


def _form_page(
    request: HttpRequest,
    form: Any,
    *,
    title: str,
    submit: str,
    item: InventoryItem | None = None,
    error: str | None = None,
    explain: str = "",
    danger: bool = False,
) -> HttpResponse:
    return ops_render(
        request,
        "operations/inventory_form.html",
        {
            "form": form,
            "item": item,
            "error": error,
            "submit_label": submit,
            "explain": explain,
            "danger": danger,
            "cancel_url": reverse("operations:inventory"),
        },
        title=title,
        crumbs=_crumbs((title, None)),
    )


@staff_required
@require_http_methods(["GET", "POST"])
def inventory_create_view(request: HttpRequest) -> HttpResponse:
    """A new item; never overwrites one of the same name."""
    form = InventoryCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        created = carry_out(
            request,
            action=Action.INVENTORY_CREATE,
            item_name=data["item_name"],
            reason=data["reason"],
            run=lambda: inventory_create(
                store=wiring.dynamo_store(),
                item_name=data["item_name"],
                stock=data["stock"],
                price=data["price"],
                description=data["description"],
            ),
            success=lambda item: (
                f"Created {item.item_name}: stock {item.stock}, price {item.price}."
            ),
            refusals={
                InventoryItemExists: lambda exc: f"an item named {exc.item_name} exists.",
                InvalidInventoryItem: lambda exc: f"{exc}.",
            },
            detail=_item_detail,
        )
        if created is not None:
            return redirect("operations:inventory")
    return _form_page(request, form, title="New inventory item", submit="Create")


def _item_or_error(name: str) -> tuple[InventoryItem | None, str | None]:
    # The item as it is now, or why the form cannot show it.
    found = attempt(lambda: selectors.inventory_item(name))
    if found.error is None and found.value is None:
        return None, f"There is no item named {name}."
    return found.value, found.error


@staff_required
@require_http_methods(["GET", "POST"])
def inventory_adjust_view(request: HttpRequest, name: str) -> HttpResponse:
    """Add or remove units in one atomic update: never a read-modify-write of Stock."""
    form = StockAdjustForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        delta = form.cleaned_data["delta"]
        done = carry_out(
            request,
            action=Action.INVENTORY_ADJUST,
            item_name=name,
            reason=form.cleaned_data["reason"],
            run=lambda: inventory_adjust_stock(
                store=wiring.dynamo_store(), item_name=name, delta=delta
            ),
            success=lambda item: f"Stock of {name} is now {item.stock} ({delta:+d}).",
            refusals={
                InsufficientStock: lambda exc: (
                    f"{name} has {exc.shortages[0].available} in stock; removing "
                    f"{-delta} would take it below zero."
                ),
                InventoryItemNotFound: lambda exc: f"there is no item named {name}.",
            },
            detail=lambda item: {"delta": delta, "stock_after": item.stock},
        )
        if done is not None:
            return redirect("operations:inventory")
    item, error = _item_or_error(name)
    return _form_page(
        request,
        form,
        title=f"Adjust stock of {name}",
        submit="Adjust stock",
        item=item,
        error=error,
        explain=(
            "The change is added to the stock as it is when you submit (one atomic update), "
            "so orders reserved meanwhile are kept."
        ),
    )


@staff_required
@require_http_methods(["GET", "POST"])
def inventory_edit_view(request: HttpRequest, name: str) -> HttpResponse:
    """Price and description; the stock is not written, so reservations are never undone."""
    if request.method == "POST":
        form = InventoryEditForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            done = carry_out(
                request,
                action=Action.INVENTORY_UPDATE,
                item_name=name,
                reason=data["reason"],
                run=lambda: inventory_update_details(
                    store=wiring.dynamo_store(),
                    item_name=name,
                    price=data["price"],
                    description=data["description"],
                ),
                success=lambda item: f"Saved {name}: price {item.price}.",
                refusals={
                    InventoryItemNotFound: lambda exc: f"there is no item named {name}.",
                    InvalidInventoryItem: lambda exc: f"{exc}.",
                },
                detail=_item_detail,
            )
            if done is not None:
                return redirect("operations:inventory")
        item, error = _item_or_error(name)
    else:
        item, error = _item_or_error(name)
        # Two places: DynamoDB hands 10.00 back as 10.
        initial = {"price": money(item.price), "description": item.description} if item else {}
        form = InventoryEditForm(initial=initial)
    return _form_page(
        request,
        form,
        title=f"Edit {name}",
        submit="Save",
        item=item,
        error=error,
        explain="Stock is changed with 'Adjust stock', never here.",
    )


@staff_required
@require_http_methods(["GET", "POST"])
def inventory_delete_view(request: HttpRequest, name: str) -> HttpResponse:
    """Remove an item after confirmation."""
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        carry_out(
            request,
            action=Action.INVENTORY_DELETE,
            item_name=name,
            reason=form.cleaned_data["reason"],
            run=lambda: inventory_remove(store=wiring.dynamo_store(), item_name=name),
            success=lambda item: f"Deleted {name} (it had {item.stock} in stock).",
            refusals={InventoryItemNotFound: lambda exc: f"there is no item named {name}."},
            detail=_item_detail,
        )
        return redirect("operations:inventory")
    item, error = _item_or_error(name)
    return _form_page(
        request,
        form,
        title=f"Delete {name}?",
        submit="Delete",
        item=item,
        error=error,
        danger=True,
        explain=(
            "New orders naming it will be rejected as unknown. Orders that reserved it keep "
            "their reservation; stock they give back later recreates the item."
        ),
    )

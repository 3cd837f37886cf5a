"""The Inventory table as a native admin entry: search, low-stock filter, sortable columns and
cursor pages from the catalogue (operations/catalogue.py); create, guarded edit, restock, guarded
set stock, delete, bulk actions, CSV export and CSV import (a background job), each change
through the pipeline's use cases and audited."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.text import Truncator

from operations import catalogue, inventory_csv
from operations.admin.data import (
    BadQuery,
    DataAction,
    DataAdmin,
    Query,
    Source,
    SourceFilter,
    SourcePage,
)
from operations.audit import Action, audited
from operations.background import JobRefused
from operations.catalogue import BadCatalogueCursor
from operations.forms import (
    InventoryCreateForm,
    InventoryEditForm,
    InventoryImportForm,
    ReasonForm,
    SetStockForm,
    StockAdjustForm,
    ThresholdForm,
)
from operations.inventory_import import details, start_import
from operations.models import BackgroundJob, InventoryItem
from pipeline import wiring
from pipeline.domain import InventoryItem as Item
from pipeline.errors import (
    InsufficientStock,
    InvalidInventoryItem,
    InventoryChangedMeanwhile,
    InventoryItemExists,
    InventoryItemNotFound,
)
from pipeline.inventory import (
    inventory_adjust_stock,
    inventory_create,
    inventory_edit,
    inventory_remove,
    inventory_set_stock,
)

OBJECT_TYPE = "operations.inventoryitem"
LOW_FILTER = "low_stock"
SORT_FIELDS = {"item_name": "name", "stock": "stock", "price": "price"}
REFUSALS = (
    InvalidInventoryItem,
    InventoryItemExists,
    InventoryItemNotFound,
    InventoryChangedMeanwhile,
    InsufficientStock,
)


def _row(item: Item) -> InventoryItem:
    """The admin's (unsaved) row for a domain item, with its threshold alongside."""
    row = InventoryItem.from_domain(item)
    row.low_stock_threshold = item.low_stock_threshold  # type: ignore[attr-defined]
    row.threshold = item.threshold(settings.INVENTORY_LOW_STOCK_DEFAULT)  # type: ignore[attr-defined]
    row.is_low = item.is_low(settings.INVENTORY_LOW_STOCK_DEFAULT)  # type: ignore[attr-defined]
    return row


def fingerprint(item: Item) -> str:
    """What the editor saw of the fields an edit changes (price, description, threshold)."""
    seen = [str(item.price), item.description, item.low_stock_threshold]
    return hashlib.sha256(json.dumps(seen).encode()).hexdigest()


class CatalogueSource(Source):
    """Pages of the catalogue: never a table scan per page view."""

    sortable = tuple(SORT_FIELDS)
    filters = (SourceFilter(LOW_FILTER, "stock level", (("yes", "Low stock"),)),)

    def page(self, query: Query) -> SourcePage:
        """One page for the search (`^text`: name prefix), the low-stock filter and the sort."""
        ordering = query.ordering or "item_name"
        try:
            found = catalogue.catalogue().query(
                search=query.search,
                low_only=query.filters.get(LOW_FILTER) == "yes",
                sort=SORT_FIELDS[ordering.lstrip("-")],
                descending=ordering.startswith("-"),
                cursor=query.cursor or None,
                limit=query.per_page,
            )
        except BadCatalogueCursor as exc:
            raise BadQuery(f"This page link is not valid ({exc}); showing page 1.") from exc
        note = ""
        if found.refreshed_at:
            from datetime import UTC, datetime

            at = datetime.fromtimestamp(found.refreshed_at, UTC).strftime("%H:%M:%S UTC")
            note = (
                f"{found.matching} of {found.total} items match. Search, filter and sort read "
                f"the inventory catalogue (rebuilt from the table at {at}, and updated by every "
                "change made here); the rows shown are read from the table now."
            )
        return SourcePage(
            [_row(i) for i in found.items],
            next=found.next_cursor or None,
            count=found.matching,
            note=note,
        )

    def get(self, pk: str) -> InventoryItem | None:
        """One item, read from the table."""
        item = wiring.dynamo_store().inventory_get(pk)
        return _row(item) if item else None


# -- bulk actions (through the admin's confirmation page) ------------------------------------


class BulkRestockForm(StockAdjustForm):
    """The same change for every selected item."""


def _each(request: HttpRequest, pks: list[str], change: Callable[[str], str], what: str) -> str:
    done, refused = [], []
    for name in pks:
        try:
            done.append(change(name))
        except REFUSALS as exc:
            refused.append(f"{name}: {exc}")
    text = f"{what}: {len(done)} done."
    if refused:
        messages.warning(request, "Refused: " + "; ".join(refused))
    return text


def _bulk_restock(request: HttpRequest, pks: list[str], data: dict[str, Any]) -> str:
    def one(name: str) -> str:
        with audited(
            request.user,
            Action.INVENTORY_ADJUST,
            (OBJECT_TYPE, name),
            after={"delta": data["delta"]},
            reason=data["reason"],
            refusals=REFUSALS,
            item_name=name,
        ) as entry:
            row = inventory_adjust_stock(
                store=wiring.dynamo_store(), item_name=name, delta=data["delta"]
            )
            entry.after = {"delta": data["delta"], "stock": row.stock}
            entry.message = f"Stock of {name} changed by {data['delta']} to {row.stock}."
        catalogue.note_written(row)
        return name

    return _each(request, pks, one, f"Stock changed by {data['delta']}")


def _bulk_delete(request: HttpRequest, pks: list[str], data: dict[str, Any]) -> str:
    def one(name: str) -> str:
        with audited(
            request.user,
            Action.INVENTORY_DELETE,
            (OBJECT_TYPE, name),
            reason=data["reason"],
            refusals=REFUSALS,
            item_name=name,
        ) as entry:
            gone = inventory_remove(store=wiring.dynamo_store(), item_name=name)
            entry.detail = {"before": details(gone)}
            entry.message = f"Deleted {name} (stock {gone.stock})."
        catalogue.note_deleted(name)
        return name

    return _each(request, pks, one, "Deleted")


def _bulk_threshold(request: HttpRequest, pks: list[str], data: dict[str, Any]) -> str:
    store = wiring.dynamo_store()

    def one(name: str) -> str:
        row = store.inventory_get(name)
        if row is None:
            raise InventoryItemNotFound(name)
        with audited(
            request.user,
            Action.INVENTORY_UPDATE,
            (OBJECT_TYPE, name),
            before=details(row),
            after={**details(row), "low_stock_threshold": data["low_stock_threshold"]},
            reason=data.get("reason", ""),
            refusals=REFUSALS,
            item_name=name,
        ):
            written = inventory_edit(
                store=store,
                seen=row,
                price=row.price,
                description=row.description,
                low_stock_threshold=data["low_stock_threshold"],
            )
        catalogue.note_written(written)
        return name

    return _each(request, pks, one, "Threshold set")


@admin.register(InventoryItem)
class InventoryItemAdmin(DataAdmin):
    """Stock, prices and thresholds, read from DynamoDB through the catalogue."""

    source = CatalogueSource()
    list_display = ("item_name", "stock", "price", "threshold", "low_stock", "short_description")
    readonly_fields = ("item_name", "stock", "price", "description", "threshold", "low_stock")
    search_fields = ("item_name", "description")
    search_help_text = (
        "Part of an item's name or description (any case); ^text: names starting with text."
    )
    list_per_page = 25  # as the other data pages: each row shown is read live (BatchGetItem)
    change_list_template = "admin/operations/inventoryitem/change_list.html"
    change_form_template = "admin/operations/inventoryitem/change_form.html"
    data_actions = (
        DataAction("restock", "Restock selected items", "change_inventoryitem", _bulk_restock,
                   form=BulkRestockForm),
        DataAction("set_threshold", "Set the low-stock threshold of selected items",
                   "change_inventoryitem", _bulk_threshold, form=ThresholdForm),
        DataAction("delete", "Delete selected items", "delete_inventoryitem", _bulk_delete,
                   form=ReasonForm, danger=True),
    )  # fmt: skip

    @admin.display(description="low-stock threshold")
    def threshold(self, obj: Any) -> str:
        """The item's own threshold, or the default (said so)."""
        if getattr(obj, "low_stock_threshold", None) is None:
            return f"{obj.threshold} (default)"
        return str(obj.threshold)

    @admin.display(description="low stock", boolean=True)
    def low_stock(self, obj: Any) -> bool:
        """Stock at or below the threshold."""
        return bool(obj.is_low)

    @admin.display(description="description")
    def short_description(self, obj: Any) -> str:
        """The first words of the description."""
        return Truncator(obj.description).chars(60)

    def history_filter(self, object_id: str) -> Q:
        """Entries naming the item, including those written before entries named objects."""
        return super().history_filter(object_id) | Q(item_name=object_id, object_id="")

    # -- pages of our own ---------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        """Create, export and import beside the list; edit, restock, set stock and delete
        beside each item (before the admin's own catch-all object URLs)."""
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("create/", wrap(self.create_view), name=f"{info}_create"),
            path("export/", wrap(self.export_view), name=f"{info}_export"),
            path("import/", wrap(self.import_view), name=f"{info}_import"),
            path("import/<uuid:job_id>/", wrap(self.import_job_view), name=f"{info}_import_job"),
            path("<path:object_id>/edit/", wrap(self.edit_view), name=f"{info}_edit"),
            path("<path:object_id>/restock/", wrap(self.restock_view), name=f"{info}_restock"),
            path("<path:object_id>/set-stock/", wrap(self.set_stock_view), name=f"{info}_setstock"),
            path("<path:object_id>/remove/", wrap(self.remove_view), name=f"{info}_remove"),
            *super().get_urls(),
        ]

    def _url(self, name: str, *args: Any) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=args)

    def _need(self, request: HttpRequest, codename: str) -> None:
        if not self.has_perm(request, codename):
            raise PermissionDenied(f"This needs the permission operations.{codename}.")

    def _form_page(
        self,
        request: HttpRequest,
        form: forms.Form,
        *,
        title: str,
        submit: str,
        item: Item | None = None,
        explain: str = "",
        danger: bool = False,
        multipart: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "subtitle": None,
            "form": form,
            "item": item,
            "submit_label": submit,
            "explain": explain,
            "danger": danger,
            "multipart": multipart,
            "cancel_url": self._url("change", item.item_name) if item else self._url("changelist"),
            **(extra or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/operations/inventoryitem/form.html", context)

    def _current(self, object_id: str) -> Item:
        item = wiring.dynamo_store().inventory_get(object_id)
        if item is None:
            raise Http404(f"No inventory item {object_id!r}.")
        return item

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The item, with the buttons of what this user may do to it."""
        may = {
            "may_change": self.has_perm(request, "change_inventoryitem"),
            "may_delete": self.has_perm(request, "delete_inventoryitem"),
        }
        links = {
            "edit_url": self._url("edit", object_id),
            "restock_url": self._url("restock", object_id),
            "set_stock_url": self._url("setstock", object_id),
            "remove_url": self._url("remove", object_id),
        }
        return super().change_view(
            request, object_id, form_url, {**may, **links, **(extra_context or {})}
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The list, with Add / Export / Import where allowed."""
        tools = {
            "may_add": self.has_perm(request, "add_inventoryitem"),
            "may_import": self.has_perm(request, "import_inventory"),
            "create_url": self._url("create"),
            "export_url": self._url("export"),
            "import_url": self._url("import"),
        }
        return super().changelist_view(request, {**tools, **(extra_context or {})})

    def create_view(self, request: HttpRequest) -> HttpResponse:
        """A new item; never overwrites one of the same name."""
        self._need(request, "add_inventoryitem")
        form = InventoryCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            name = data["item_name"]
            try:
                with audited(
                    request.user,
                    Action.INVENTORY_CREATE,
                    (OBJECT_TYPE, name),
                    after={
                        "stock": data["stock"],
                        "price": str(data["price"]),
                        "description": data["description"],
                        "low_stock_threshold": data["low_stock_threshold"],
                    },
                    reason=data["reason"],
                    refusals=REFUSALS,
                    item_name=name,
                ) as entry:
                    item = inventory_create(
                        store=wiring.dynamo_store(),
                        item_name=name,
                        stock=data["stock"],
                        price=data["price"],
                        description=data["description"],
                        low_stock_threshold=data["low_stock_threshold"],
                    )
                    entry.message = f"Created {name}."
            except REFUSALS as exc:
                form.add_error(None, str(exc))
            else:
                catalogue.note_written(item)
                messages.success(request, f"Created {name}: stock {item.stock}.")
                return HttpResponseRedirect(self._url("change", name))
        return self._form_page(request, form, title="Add inventory item", submit="Create")

    def edit_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Price, description and threshold, saved only if nobody changed them meanwhile."""
        self._need(request, "change_inventoryitem")
        current = self._current(object_id)
        initial = {
            "price": current.price,
            "description": current.description,
            "low_stock_threshold": current.low_stock_threshold,
            "seen": fingerprint(current),
        }
        if request.method != "POST":
            form = InventoryEditForm(initial=initial)
            return self._form_page(request, form, title=f"Edit {object_id}", submit="Save",
                                   item=current)  # fmt: skip
        form = InventoryEditForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                if data["seen"] != fingerprint(current):
                    raise InventoryChangedMeanwhile(object_id, current)
                with audited(
                    request.user,
                    Action.INVENTORY_UPDATE,
                    (OBJECT_TYPE, object_id),
                    before=details(current),
                    after={
                        **details(current),
                        "price": str(data["price"]),
                        "description": data["description"],
                        "low_stock_threshold": data["low_stock_threshold"],
                    },
                    reason=data["reason"],
                    refusals=REFUSALS,
                    item_name=object_id,
                ) as entry:
                    written = inventory_edit(
                        store=wiring.dynamo_store(),
                        seen=current,
                        price=data["price"],
                        description=data["description"],
                        low_stock_threshold=data["low_stock_threshold"],
                    )
                    entry.message = f"Edited {object_id}."
            except InventoryChangedMeanwhile as exc:
                latest = exc.current if isinstance(exc.current, Item) else current
                form = InventoryEditForm({**request.POST.dict(), "seen": fingerprint(latest)})
                form.is_valid()
                form.add_error(
                    None,
                    "This item was changed meanwhile (now: price "
                    f"{latest.price}, threshold {latest.low_stock_threshold}, description "
                    f"{latest.description!r}); nothing was saved. Check the values and save "
                    "again to overwrite them.",
                )
                catalogue.note_written(latest)
                return self._form_page(request, form, title=f"Edit {object_id}", submit="Save",
                                       item=latest)  # fmt: skip
            except REFUSALS as exc:
                form.add_error(None, str(exc))
            else:
                catalogue.note_written(written)
                messages.success(request, f"Saved {object_id}.")
                return HttpResponseRedirect(self._url("change", object_id))
        return self._form_page(request, form, title=f"Edit {object_id}", submit="Save",
                               item=current)  # fmt: skip

    def restock_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Add (or remove) units in one atomic update: reservations meanwhile are kept."""
        self._need(request, "change_inventoryitem")
        current = self._current(object_id)
        form = StockAdjustForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            delta = form.cleaned_data["delta"]
            try:
                with audited(
                    request.user,
                    Action.INVENTORY_ADJUST,
                    (OBJECT_TYPE, object_id),
                    before={"stock": current.stock},
                    after={"delta": delta},
                    reason=form.cleaned_data["reason"],
                    refusals=REFUSALS,
                    item_name=object_id,
                ) as entry:
                    row = inventory_adjust_stock(
                        store=wiring.dynamo_store(), item_name=object_id, delta=delta
                    )
                    entry.after = {"delta": delta, "stock": row.stock}
                    entry.message = f"Stock of {object_id} changed by {delta} to {row.stock}."
            except REFUSALS as exc:
                form.add_error(None, str(exc))
            else:
                catalogue.note_written(row)
                messages.success(request, f"Stock of {object_id} is now {row.stock}.")
                return HttpResponseRedirect(self._url("change", object_id))
        return self._form_page(
            request,
            form,
            title=f"Restock {object_id}",
            submit="Apply",
            item=current,
            explain=f"Stock now: {current.stock}. The change is added to whatever the stock is "
            "when it is saved (orders reserving meanwhile are not undone).",
        )

    def set_stock_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """An absolute stock, saved only if the stock is still what the editor saw."""
        self._need(request, "change_inventoryitem")
        current = self._current(object_id)
        form = SetStockForm(request.POST or None, initial={"seen_stock": current.stock,
                                                           "stock": current.stock})  # fmt: skip
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                with audited(
                    request.user,
                    Action.INVENTORY_ADJUST,
                    (OBJECT_TYPE, object_id),
                    before={"stock": data["seen_stock"]},
                    after={"stock": data["stock"]},
                    reason=data["reason"],
                    refusals=REFUSALS,
                    item_name=object_id,
                    detail={"set": True},
                ) as entry:
                    row = inventory_set_stock(
                        store=wiring.dynamo_store(),
                        item_name=object_id,
                        seen_stock=data["seen_stock"],
                        stock=data["stock"],
                    )
                    entry.message = f"Stock of {object_id} set to {row.stock}."
            except InventoryChangedMeanwhile as exc:
                now = exc.current.stock if isinstance(exc.current, Item) else current.stock
                form = SetStockForm(
                    {"stock": data["stock"], "seen_stock": now, "reason": data["reason"]}
                )
                form.is_valid()
                form.add_error(
                    None,
                    f"The stock changed meanwhile (you saw {data['seen_stock']}, it is now "
                    f"{now}); nothing was saved. Save again to set it from {now}.",
                )
            except REFUSALS as exc:
                form.add_error(None, str(exc))
            else:
                catalogue.note_written(row)
                messages.success(request, f"Stock of {object_id} set to {row.stock}.")
                return HttpResponseRedirect(self._url("change", object_id))
        return self._form_page(
            request,
            form,
            title=f"Set stock of {object_id}",
            submit="Set stock",
            item=current,
            explain=f"Stock now: {current.stock}. Saved only if it is still {current.stock} "
            "then; otherwise you are shown the new value and nothing changes.",
        )

    def remove_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Delete an item after a confirmation (orders holding it keep their reservation)."""
        self._need(request, "delete_inventoryitem")
        current = self._current(object_id)
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                with audited(
                    request.user,
                    Action.INVENTORY_DELETE,
                    (OBJECT_TYPE, object_id),
                    before=details(current),
                    reason=form.cleaned_data["reason"],
                    refusals=REFUSALS,
                    item_name=object_id,
                ) as entry:
                    gone = inventory_remove(store=wiring.dynamo_store(), item_name=object_id)
                    entry.message = f"Deleted {object_id} (stock {gone.stock})."
            except REFUSALS as exc:
                form.add_error(None, str(exc))
            else:
                catalogue.note_deleted(object_id)
                messages.success(request, f"Deleted {object_id}.")
                return HttpResponseRedirect(self._url("changelist"))
        return self._form_page(
            request,
            form,
            title=f"Delete {object_id}?",
            submit="Yes, delete it",
            item=current,
            danger=True,
            explain="Orders that reserved it keep their units; units they give back later are "
            "recorded on the order, and the item is not re-created.",
        )

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """The whole inventory as CSV, streamed from a Scan, in the columns the import reads."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied

        def lines() -> Iterator[str]:
            yield from inventory_csv.export_lines(wiring.dynamo_store().inventory_scan())

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="inventory.csv"'
        return response

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a CSV: it is validated and applied by a background job."""
        self._need(request, "import_inventory")
        form = InventoryImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            limit = settings.INVENTORY_IMPORT_MAX_BYTES
            if upload.size > limit:
                form.add_error("file", f"The file is {upload.size:,} bytes; at most {limit:,}.")
            else:
                try:
                    job = start_import(
                        upload.read(),
                        user=request.user,
                        reason=form.cleaned_data["reason"],
                        filename=upload.name or "upload.csv",
                    )
                except JobRefused as exc:
                    form.add_error(None, str(exc))
                else:
                    return HttpResponseRedirect(self._url("import_job", job.pk))
        recent = BackgroundJob.objects.filter(kind=BackgroundJob.Kind.INVENTORY_IMPORT)[:10]
        return self._form_page(
            request,
            form,
            title="Import inventory from CSV",
            submit="Upload and import",
            multipart=True,
            explain="Every row is checked first; a file with any bad row writes nothing, and "
            "each bad row is listed with its line. A clean file creates the new items and sets "
            "the others to its values (each change guarded and audited); importing the same "
            "file again changes nothing.",
            extra={"recent_imports": recent, "import_job_url": self._url("import")},
        )

    def import_job_view(self, request: HttpRequest, job_id: Any) -> HttpResponse:
        """An import's progress and outcome (refreshes itself while it runs)."""
        self._need(request, "import_inventory")
        job = get_object_or_404(BackgroundJob, pk=job_id, kind=BackgroundJob.Kind.INVENTORY_IMPORT)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Inventory import",
            "subtitle": job.params.get("filename", ""),
            "job": job,
            "result": job.result or {},
            "import_url": self._url("import"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/operations/inventoryitem/import_job.html", context)

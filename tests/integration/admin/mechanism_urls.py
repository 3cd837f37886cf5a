"""URLs for the mechanism's own tests: the real admin, and a second admin site whose only
entry is a DataAdmin over an in-memory source (so paging is tested apart from any store)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.urls import path

from operations.admin.data import BadQuery, DataAdmin, Query, Source, SourcePage
from operations.models import InventoryItem

ROWS = [
    InventoryItem(item_name=f"row-{n:02d}", stock=n % 4, price=n, description="") for n in range(7)
]


class ListSource(Source):
    """Seven rows in memory; the cursor is an offset."""

    sortable = ("item_name", "stock")

    def page(self, query: Query) -> SourcePage:
        rows = [r for r in ROWS if query.search in r.item_name]
        if query.ordering:
            name = query.ordering.lstrip("-")
            rows.sort(
                key=lambda r: (getattr(r, name), r.item_name), reverse=query.ordering[0] == "-"
            )
        start = query.cursor or 0
        if not isinstance(start, int):
            raise BadQuery("not an offset")
        end = start + query.per_page
        return SourcePage(rows[start:end], next=end if end < len(rows) else None, count=len(rows))

    def get(self, pk: str) -> Any:
        return next((r for r in ROWS if r.item_name == pk), None)


class ListAdmin(DataAdmin):
    source = ListSource()
    list_display = ("item_name", "stock")
    search_fields = ("item_name",)
    list_per_page = 3


site = admin.AdminSite(name="mechanism")
site.register(InventoryItem, ListAdmin)

urlpatterns = [path("mechanism/", site.urls), path("admin/", admin.site.urls)]

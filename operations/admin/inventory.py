"""The Inventory table as an admin entry: a read-only list and detail (the inventory helper
replaces this with the full page)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q

from operations import selectors
from operations.admin.data import BadQuery, DataAdmin, Query, Source, SourcePage
from operations.models import InventoryItem


class InventorySource(Source):
    """Every item (the table is small: one scan), searched and sorted in memory."""

    sortable = ("item_name", "stock", "price")

    def page(self, query: Query) -> SourcePage:
        """One page of the items whose name or description contains the search."""
        items = [InventoryItem.from_domain(i) for i in selectors.inventory_items()]
        if query.search:
            needle = query.search.lower()
            items = [
                i for i in items if needle in i.item_name.lower() or needle in i.description.lower()
            ]
        if query.ordering:
            name = query.ordering.lstrip("-")
            items.sort(key=lambda i: getattr(i, name), reverse=query.ordering.startswith("-"))
        start = query.cursor or 0
        if not isinstance(start, int) or start < 0:
            raise BadQuery("This page link is not valid.")
        end = start + query.per_page
        return SourcePage(
            items[start:end], next=end if end < len(items) else None, count=len(items)
        )

    def get(self, pk: str) -> InventoryItem | None:
        """One item, or None."""
        item = selectors.inventory_item(pk)
        return InventoryItem.from_domain(item) if item else None


@admin.register(InventoryItem)
class InventoryItemAdmin(DataAdmin):
    """Stock and prices, read from DynamoDB."""

    source = InventorySource()
    list_display = ("item_name", "stock", "price", "description")
    search_fields = ("item_name", "description")
    search_help_text = "Part of an item's name or description."

    def history_filter(self, object_id: str) -> Q:
        """Entries naming the item, including those written before entries named objects."""
        return super().history_filter(object_id) | Q(item_name=object_id, object_id="")

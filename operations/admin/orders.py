"""The Orders table as an admin entry: a read-only list by status or customer and a detail (the
orders helper replaces this with the full page and its actions)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q

from operations import selectors
from operations.admin.data import BadQuery, DataAdmin, Query, Source, SourceFilter, SourcePage
from operations.models import Order
from pipeline.statuses import OrderStatus


class OrderSource(Source):
    """Orders through DynamoDB's indexes: by status (StatusIndex) or customer (CustomerIndex),
    newest first, or one order by its id. No index lists every order, so a page without a
    status or a search lists nothing and says so."""

    filters = (SourceFilter("status", "status", [(str(s), str(s)) for s in OrderStatus]),)

    def page(self, query: Query) -> SourcePage:
        """One page of the orders with the status, or of the customer searched."""
        status = query.filters.get("status")
        if status is not None and status not in {str(s) for s in OrderStatus}:
            raise BadQuery(f"No such status: {status}.")
        if query.search:
            found = selectors.order_by_id(query.search)
            if found is not None and query.cursor is None:
                return SourcePage([Order.from_domain(found)], note="The order with this id.")
        # The mechanism signs cursors, so this is a LastEvaluatedKey an earlier page returned.
        cursor = query.cursor
        if query.search:
            page = selectors.orders_of_customer(query.search, limit=query.per_page, cursor=cursor)
            rows = [Order.from_domain(o) for o in page.items]
            if status:
                rows = [r for r in rows if r.status == status]
        elif status:
            page = selectors.orders_in_status(
                OrderStatus(status), limit=query.per_page, cursor=cursor
            )
            rows = [Order.from_domain(o) for o in page.items]
        else:
            return SourcePage([], note="Pick a status, or search an order id or a customer name.")
        return SourcePage(rows, next=page.cursor or None)

    def get(self, pk: str) -> Order | None:
        """One order, or None."""
        order = selectors.order_by_id(pk)
        return Order.from_domain(order) if order else None


@admin.register(Order)
class OrderAdmin(DataAdmin):
    """Orders, read from DynamoDB."""

    source = OrderSource()
    list_display = ("order_id", "customer_name", "status", "order_date", "last_updated")
    search_fields = ("order_id", "customer_name")
    search_help_text = "An order id (exact), or a customer's name (exact) for their orders."

    def history_filter(self, object_id: str) -> Q:
        """Entries naming the order, including those written before entries named objects."""
        return super().history_filter(object_id) | Q(order_id=object_id, object_id="")

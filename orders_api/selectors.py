"""What the order API reads: an API client's own orders, and nobody else's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.core import signing

from pipeline import wiring
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import Order
from pipeline.ports import OrderStore
from pipeline.statuses import OrderStatus

# Order ids are UUIDs; the seed's own may be any short key. Anything else is not worth a read.
ORDER_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def order_for_client(
    *, order_id: str, client_id: str, store: OrderStore | None = None
) -> Order | None:
    """The order if this client created it, else None: another client's order and no order
    look the same, so order ids cannot be probed. A consistent read (it follows a write)."""
    if not ORDER_ID_RE.match(order_id):
        return None
    order = (store or wiring.dynamo_store()).order_find(order_id)
    if order is None or order.client_id != client_id:
        return None
    return order


# The cursor is the index key a page ended on, signed with the portal's secret and bound to the
# key that asked: a client cannot forge one, and one key's cursor is refused for another.
_CURSOR_SALT = "orders_api.orders-list"


class BadCursor(ValueError):
    """A cursor this key was not given (forged, altered, or another key's)."""


def encode_cursor(key: dict[str, Any], client_id: str) -> str:
    """The opaque cursor a client sends back for the next page."""
    return signing.dumps({"c": client_id, "k": key}, salt=_CURSOR_SALT, compress=True)


def decode_cursor(cursor: str, client_id: str) -> dict[str, Any]:
    """The index key a cursor of this client stands for; BadCursor otherwise."""
    try:
        data = signing.loads(cursor, salt=_CURSOR_SALT)
    except signing.BadSignature:
        raise BadCursor("is not a cursor this API gave (use NextCursor as it came)") from None
    if (
        not isinstance(data, dict)
        or data.get("c") != client_id
        or not isinstance(data.get("k"), dict)
    ):
        raise BadCursor("belongs to another API key")
    return data["k"]


@dataclass(frozen=True)
class OrderListing:
    """One page of a client's orders and the cursor to the next (None: the last page)."""

    orders: list[Order]
    next_cursor: str | None


def orders_of_client(
    *,
    client_id: str,
    limit: int,
    cursor: str | None = None,
    status: OrderStatus | None = None,
    placed_from: str | None = None,
    placed_to: str | None = None,
    store: DynamoStore | None = None,
) -> OrderListing:
    """A page of this client's orders, newest first (the ClientIndex: no scan); BadCursor for
    a cursor it was not given. Only orders carrying its ClientId are in its partition."""
    start = decode_cursor(cursor, client_id) if cursor else None
    page = (store or wiring.dynamo_store()).orders_by_client(
        client_id,
        limit=limit,
        cursor=start,
        status=status,
        placed_from=placed_from,
        placed_to=placed_to,
    )
    # The index is the only source, but a wrong partition must never leak: checked again.
    orders = [order for order in page.items if order.client_id == client_id]
    return OrderListing(orders, encode_cursor(page.cursor, client_id) if page.cursor else None)

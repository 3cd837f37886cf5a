"""What the order API reads: an API client's own orders, and nobody else's."""

from __future__ import annotations

import re

from pipeline import wiring
from pipeline.domain import Order
from pipeline.ports import OrderStore

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

"""The order API's write: an API client's order, submitted at most once per Idempotency-Key."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orders_api import idempotency
from orders_api.exceptions import IdempotencyKeyReused, InvalidRequest, OrderIdConflict
from orders_api.selectors import order_for_client
from pipeline import wiring
from pipeline.errors import InvalidOrder, OrderAlreadyExists
from pipeline.orders import order_submit
from pipeline.ports import OrderStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """The order a submission stands for, and whether an earlier request wrote it."""

    order_id: str
    replayed: bool = False


def client_order_submit(
    *,
    client_id: str,
    fields: Mapping[str, Any],
    body: Any,
    idempotency_key: str | None = None,
    store: OrderStore | None = None,
) -> Submission:
    """Write a PENDING order for `client_id` through order_submit; `fields` are the envelope's
    validated fields, `body` the request body as sent (hashed to recognise a retry).

    Without an Idempotency-Key every call writes a new order. With one, the key decides the
    order id, so the Orders table's conditional put lets exactly one request in, however many
    race. There is no in-flight state to wait for: the order is written whole by that one put,
    so a request that loses always finds the winner's order, and then
    - the same body (a retry, or a racer): the first answer again, replayed;
    - another body: IdempotencyKeyReused (422), nothing written;
    - no order of this client under the id: OrderIdConflict (409).
    InvalidRequest (400) for a malformed key, a body that is not Unicode text or an invalid
    order.
    """
    order_id = request_hash = None
    if idempotency_key is not None:
        problem = idempotency.validate_key(idempotency_key)
        if problem:
            raise InvalidRequest({idempotency.HEADER: problem}, "Invalid Idempotency-Key")
        order_id = idempotency.order_id_for(client_id, idempotency_key)
        try:
            request_hash = idempotency.request_hash(body)
        except UnicodeEncodeError:
            # A lone surrogate (JSON's "\ud800") has no UTF-8 form to hash. BoundedJSONParser
            # refuses such bodies; this keeps any other caller at a 400, not a 500.
            problem = {"body": "must be valid Unicode text (no lone surrogates)"}
            raise InvalidRequest(problem) from None

    store = store or wiring.dynamo_store()
    try:
        order = order_submit(
            store=store,
            customer_name=fields.get("CustomerName"),
            items=fields.get("Items"),
            client_id=client_id,
            payment_token=fields.get("PaymentToken"),
            shipping_address=fields.get("ShippingAddress"),
            order_id=order_id,
            request_hash=request_hash,
        )
    except InvalidOrder as exc:
        raise InvalidRequest(exc.errors) from exc
    except OrderAlreadyExists as exc:
        if order_id is None:
            raise OrderIdConflict() from exc
        existing = order_for_client(order_id=order_id, client_id=client_id, store=store)
        if existing is None:
            raise OrderIdConflict() from exc
        if existing.request_hash != request_hash:
            raise IdempotencyKeyReused() from exc
        log.info("idempotent replay", extra={"order_id": existing.order_id})
        return Submission(existing.order_id, replayed=True)
    log.info("order submitted", extra={"order_id": order.order_id, "client_id": client_id})
    return Submission(order.order_id)

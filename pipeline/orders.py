"""Orders: submission and the staff's actions on one order (cancel, resubmit, resolve)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.domain import (
    Order,
    parse_items,
    utc_now,
    validate_customer_name,
    validate_payment_token,
    validate_shipping_address,
)
from pipeline.errors import InvalidOrder, InvalidTransition
from pipeline.ports import OrderStore, ReservationStore
from pipeline.reservation import inventory_release
from pipeline.statuses import OrderStatus


def order_submit(
    *,
    store: OrderStore,
    customer_name: object,
    items: object,
    client_id: str | None = None,
    payment_token: object = None,
    shipping_address: object = None,
    order_id: str | None = None,
    request_hash: str | None = None,
    now: str | None = None,
) -> Order:
    """Validate and write a new PENDING order (a conditional put: never an overwrite).

    Raises InvalidOrder with every field error, OrderAlreadyExists if the id is taken.
    """
    errors: dict[str, object] = {}

    def checked(validate: Callable[[Any], Any], raw: object) -> Any:
        try:
            return validate(raw)
        except InvalidOrder as exc:
            errors.update(exc.errors)
            return None

    name = checked(validate_customer_name, customer_name)
    lines = checked(parse_items, items)
    token = checked(validate_payment_token, payment_token)
    address = checked(validate_shipping_address, shipping_address)
    if errors or name is None or lines is None:
        raise InvalidOrder(errors)
    order = Order.new(
        customer_name=name,
        lines=lines,
        order_id=order_id,
        client_id=client_id,
        payment_token=token,
        shipping_address=address,
        request_hash=request_hash,
        now=now,
    )
    store.order_put_new(order)
    return order


def order_resubmit(
    *, store: OrderStore, order_id: str, actor: str, now: str | None = None
) -> Order:
    """Send a REJECTED or PAYMENT_FAILED order through the pipeline again (PENDING)."""
    return store.order_transition(
        order_id,
        OrderStatus.PENDING,
        f"Resubmitted by {actor}",
        now or utc_now(),
        expected=[OrderStatus.REJECTED, OrderStatus.PAYMENT_FAILED],
        remove_fields=["Payment"],
    )


def order_cancel(
    *, store: ReservationStore, order_id: str, actor: str, now: str | None = None
) -> Order:
    """Cancel an order that has not been paid; reserved stock is given back in the same step."""
    order = store.order_get(order_id)
    reason = f"Cancelled by {actor}"
    if order.status == OrderStatus.RESERVED:
        released = inventory_release(
            store=store, order_id=order_id, target=OrderStatus.CANCELLED, reason=reason, now=now
        )
        if not released.changed:
            raise InvalidTransition(order_id, released.order.status, str(OrderStatus.CANCELLED))
        return released.order
    return store.order_transition(
        order_id, OrderStatus.CANCELLED, reason, now or utc_now(), expected=[OrderStatus.PENDING]
    )


def order_resolve_shipped(
    *, store: OrderStore, order_id: str, actor: str, note: str, now: str | None = None
) -> Order:
    """Staff shipped a MANUAL_INTERVENTION order by hand."""
    return store.order_transition(
        order_id,
        OrderStatus.SHIPPED,
        f"Shipped manually by {actor}: {note}",
        now or utc_now(),
        expected=[OrderStatus.MANUAL_INTERVENTION],
    )

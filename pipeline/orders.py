"""Orders: submission (the staff's actions on an order are in pipeline/staff_actions.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.domain import (
    Order,
    parse_items,
    validate_customer_name,
    validate_payment_token,
    validate_shipping_address,
)
from pipeline.errors import InvalidOrder
from pipeline.ports import OrderStore


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

"""Order statuses and their allowed transitions: the single definition every part uses."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    """Where an order is in its life; the value is what DynamoDB stores in `Status`."""

    PENDING = "PENDING"
    RESERVED = "RESERVED"
    REJECTED = "REJECTED"
    PAID = "PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    SHIPPED = "SHIPPED"
    MANUAL_INTERVENTION = "MANUAL_INTERVENTION"
    CANCELLED = "CANCELLED"
    # Staff refunded a paid order that could not ship and gave its stock back.
    REFUNDED = "REFUNDED"


# Staff may resubmit a rejected or payment-failed order (PENDING again, after restocking or
# fixing the cause); the stream picks it up like a new one. A paid order is never cancelled: an
# order that could not ship (MANUAL_INTERVENTION) is shipped by hand (SHIPPED), handed back to
# the workflow for another shipping attempt (PAID again, under a new workflow run), or refunded
# with its stock given back (REFUNDED); pipeline/staff_actions.py holds those actions.
ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {OrderStatus.RESERVED, OrderStatus.REJECTED, OrderStatus.CANCELLED}
    ),
    OrderStatus.RESERVED: frozenset(
        {OrderStatus.PAID, OrderStatus.PAYMENT_FAILED, OrderStatus.CANCELLED}
    ),
    OrderStatus.PAID: frozenset({OrderStatus.SHIPPED, OrderStatus.MANUAL_INTERVENTION}),
    OrderStatus.MANUAL_INTERVENTION: frozenset(
        {OrderStatus.SHIPPED, OrderStatus.PAID, OrderStatus.REFUNDED}
    ),
    OrderStatus.REJECTED: frozenset({OrderStatus.PENDING}),
    OrderStatus.PAYMENT_FAILED: frozenset({OrderStatus.PENDING}),
    OrderStatus.SHIPPED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
}

# Statuses the automated pipeline never moves an order out of.
FINAL_STATUSES: frozenset[OrderStatus] = frozenset(
    {
        OrderStatus.REJECTED,
        OrderStatus.PAYMENT_FAILED,
        OrderStatus.SHIPPED,
        OrderStatus.MANUAL_INTERVENTION,
        OrderStatus.CANCELLED,
        OrderStatus.REFUNDED,
    }
)

# Statuses in which the order holds reserved stock that must be given back if it fails.
HOLDS_STOCK: frozenset[OrderStatus] = frozenset({OrderStatus.RESERVED})


def can_transition(current: OrderStatus | str, target: OrderStatus | str) -> bool:
    """Say whether an order in `current` may move to `target`."""
    return OrderStatus(target) in ALLOWED_TRANSITIONS[OrderStatus(current)]


def sources_of(target: OrderStatus | str) -> frozenset[OrderStatus]:
    """Every status from which an order may move to `target` (the condition of a write)."""
    target = OrderStatus(target)
    return frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if target in targets)

"""Stateful property tests: no interleaving of the pipeline's use cases loses or invents stock.

Hypothesis drives a `RuleBasedStateMachine` through the real use cases against DynamoDB Local
(the real `DynamoStore`, no fake): submissions of random lines over a handful of items (one of
them never created), reservations, payments (approved, or declined / gateway down and then the
compensation `inventory_release` -> PAYMENT_FAILED), shipments (or manual intervention and staff
shipping by hand), cancels, resubmits (then reserved again), restocks (positive and negative,
those that would go below zero refused), removals and re-creations of items, and releases on
their own. Use cases are delivered once, twice in a row or twice at once (a redelivered stream
record, queue message or task), the reservation may be handed a stale stream image, and staff
may cancel while the gateway is charging. After every step, for every item, read from the tables:

- Stock >= 0;
- what the item was given (initial stock + net restocks, minus the stock removed with its row,
  plus re-created stock) == its current stock + the units held by the orders that took stock and
  have not given it back (RESERVED, PAID, SHIPPED, MANUAL_INTERVENTION: each order's
  `Reservation` lines, read from the Orders table) + the units given back after the item was
  removed (a release never re-creates a removed row: it records them on the order as
  `StockNotReturned`, read from the Orders table too).

The model also predicts every outcome (statuses, stock, which delivery did the work) and checks
the tables agree. `test_racing_use_cases_conserve_stock` adds steps that run two different use
cases at the same moment (its outcome is read back, not predicted; a failure there may be
reported as Flaky, as races do not replay). Every step may also try a move the status rules
forbid; `test_order_transition_succeeds_exactly_when_allowed` checks every (current, target)
pair against `can_transition`.

Profiles: the default is sized for the normal test run (about 15 s of steps here). A deeper run
(`-s` prints how many sequences and steps ran, and what they did):

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -p no:cacheprovider -n 0 \\
        tests/integration/test_stock_properties.py -q -s

Any other value of HYPOTHESIS_PROFILE selects the default. Runs are random (not derandomized)
and keep no example database; a failure prints the shortest sequence of steps found (shrinking
against DynamoDB Local can take Hypothesis's full five minutes), with notes naming the orders and
items, a `@reproduce_failure(...)` line that replays it and, if shrinking stopped early, the seed.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from pipeline.adapters.dynamodb import DynamoStore, deserialize
from pipeline.adapters.mock_carriers import (
    CARRIER_DOWN_POSTCODE,
    UNDELIVERABLE_POSTCODE,
    MockCarriers,
)
from pipeline.adapters.mock_payments import (
    TOKEN_APPROVE,
    TOKEN_DECLINE,
    TOKEN_UNAVAILABLE,
    MockPaymentGateway,
)
from pipeline.domain import Order, OrderLine, utc_now
from pipeline.errors import (
    AddressRejected,
    CarrierUnavailable,
    InsufficientStock,
    InvalidInventoryItem,
    InvalidTransition,
    InventoryItemExists,
    InventoryItemNotFound,
    PaymentDeclined,
    PaymentGatewayUnavailable,
    PipelineError,
)
from pipeline.fulfilment import (
    failure_reason,
    order_flag_for_review,
    payment_charge,
    shipment_create,
)
from pipeline.inventory import inventory_adjust_stock, inventory_create, inventory_remove
from pipeline.orders import order_submit
from pipeline.reservation import inventory_release, inventory_reserve
from pipeline.staff_actions import order_cancel, order_mark_shipped, order_resubmit
from pipeline.statuses import ALLOWED_TRANSITIONS, OrderStatus, can_transition

pytestmark = pytest.mark.integration

# -- Profiles -------------------------------------------------------------------------------------

_COMMON: dict[str, Any] = {
    "deadline": None,  # every step is a few DynamoDB Local calls: timing is not the property
    "database": None,  # no example database in the repository
    "derandomize": False,
    "print_blob": True,  # a failure prints @reproduce_failure(...) to replay it
    "suppress_health_check": [HealthCheck.too_slow],
}
settings.register_profile("stock-default", max_examples=8, stateful_step_count=20, **_COMMON)
settings.register_profile("stock-long", max_examples=150, stateful_step_count=50, **_COMMON)
PROFILE = settings.get_profile(
    "stock-long" if os.environ.get("HYPOTHESIS_PROFILE") == "long" else "stock-default"
)

# -- The world of one run -------------------------------------------------------------------------

RUN = uuid.uuid4().hex[:8]  # item names are unique per test run: the DynamoDB Local is shared
KNOWN_ITEMS = 4
UNKNOWN_ITEMS = 1
PAID = frozenset({OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.MANUAL_INTERVENTION})
# An order that took stock and has not given it back: RESERVED holds it for payment (what a
# failure gives back, statuses.HOLDS_STOCK); paid orders consumed it.
TOOK_STOCK = PAID | {OrderStatus.RESERVED}
ADDRESSES: dict[str, dict[str, str] | None] = {
    "none": None,
    "deliverable": {"Name": "Ada", "Line1": "1 Main St", "City": "Springfield",
                    "PostalCode": "12345", "Country": "US"},
    "undeliverable": {"Name": "Bob", "Line1": "2 Nowhere", "City": "Atlantis",
                      "PostalCode": UNDELIVERABLE_POSTCODE, "Country": "US"},
    "carrier-down": {"Name": "Cy", "Line1": "3 Storm Rd", "City": "Gotham",
                     "PostalCode": CARRIER_DOWN_POSTCODE, "Country": "US"},
}  # fmt: skip
# Item slots an order line may name: known items three times as often as the unknown one.
SLOTS = list(range(KNOWN_ITEMS)) * 3 + list(range(KNOWN_ITEMS, KNOWN_ITEMS + UNKNOWN_ITEMS))

ONCE, TWICE, AT_ONCE = "once", "twice in a row", "twice at once"
STALE_IMAGE, STAFF_CANCELS = "with a stale stream image", "while staff cancel"
SEQUENTIAL = st.sampled_from([ONCE, TWICE])
ANY_DELIVERY = st.sampled_from([ONCE, TWICE, AT_ONCE])

# An order: lines (item slot, quantity, as a plain name when 1), payment token, address kind.
OrderSpec = tuple[list[tuple[int, int, bool]], str | None, str]
ORDER: st.SearchStrategy[OrderSpec] = st.tuples(
    st.lists(
        st.tuples(st.sampled_from(SLOTS), st.integers(1, 3), st.booleans()), min_size=1, max_size=3
    ),
    st.sampled_from([None, TOKEN_APPROVE, TOKEN_DECLINE, TOKEN_UNAVAILABLE]),
    st.sampled_from(list(ADDRESSES)),
)

# What the racing machine runs together, and the orders each is usually given.
RACERS: dict[str, set[OrderStatus]] = {
    "reserve": {OrderStatus.PENDING},
    "cancel": {OrderStatus.PENDING, OrderStatus.RESERVED},
    "release": {OrderStatus.RESERVED},
    "resubmit": {OrderStatus.REJECTED, OrderStatus.PAYMENT_FAILED},
    "restock": set(),
}

STATS: Counter[str] = Counter()
T = TypeVar("T")


@dataclass
class ModelItem:
    """What the model expects of one item."""

    name: str
    known: bool  # False: never created (orders naming it are rejected)
    exists: bool = False
    stock: int = 0
    supplied: int = 0  # initial + net restocks - removed with the row + re-created
    not_returned: int = 0  # given back while the row was removed: recorded on orders


@dataclass
class ModelOrder:
    """What the model expects of one order."""

    order_id: str
    lines: dict[str, int]
    token: str | None
    address: str
    status: OrderStatus = OrderStatus.PENDING
    held: dict[str, int] = field(default_factory=dict)  # units taken and not given back
    shipment: str | None = None  # tracking number once booked
    images: list[Order] = field(default_factory=list)  # its PENDING images, as stream records


def _deliver(how: str, call: Callable[[], T]) -> list[T | PipelineError]:
    """Run a use case once, twice in a row or twice at once; each outcome or PipelineError."""

    def attempt() -> T | PipelineError:
        try:
            return call()
        except PipelineError as exc:
            return exc

    if how == AT_ONCE:
        with ThreadPoolExecutor(2) as pool:
            return [f.result() for f in [pool.submit(attempt) for _ in range(2)]]
    return [attempt() for _ in range(2 if how == TWICE else 1)]


def _once_then_nothing(changed: list[bool]) -> bool:
    """The first delivery made the change and every later one found it made (or, at once:
    exactly one of them made it)."""
    return sorted(changed, reverse=True) == [True] + [False] * (len(changed) - 1)


def _pick(data: st.DataObject, n: int, label: str) -> int:
    """An index below `n`, drawn the same way whatever `n` is: the state a race leaves behind
    varies between runs, and Hypothesis needs the shape of its draws not to."""
    return data.draw(st.integers(0, 255), label=label) % n


def _refused(outcome: object, current: OrderStatus) -> bool:
    """The outcome is InvalidTransition naming `current` as the order's real status."""
    return isinstance(outcome, InvalidTransition) and OrderStatus(outcome.current) == current


def _within_two_moves(status: OrderStatus) -> set[OrderStatus]:
    one = {status} | ALLOWED_TRANSITIONS[status]
    return one.union(*(ALLOWED_TRANSITIONS[s] for s in one))


class CountingGateway:
    """The mock gateway, counting charges and refunds; `during_charge` runs while the charge is
    in flight (a staff action landing between the payment step's read and its write)."""

    def __init__(
        self, inner: MockPaymentGateway, during_charge: Callable[[], object] | None = None
    ) -> None:
        self.inner = inner
        self.during_charge = during_charge
        self.charges = 0
        self.refunds = 0

    def charge(self, **kwargs: Any) -> Any:
        """Count, run the interleaved action if any, then charge."""
        self.charges += 1
        if self.during_charge is not None:
            self.during_charge()
        return self.inner.charge(**kwargs)

    def refund(self, transaction_id: str) -> str:
        """Count, then refund."""
        self.refunds += 1
        return self.inner.refund(transaction_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class StockMachine(RuleBasedStateMachine):
    """Random sequences of the order pipeline's use cases on DynamoDB Local."""

    machines = 0

    def __init__(self, store: DynamoStore) -> None:
        super().__init__()
        self.store = store
        StockMachine.machines += 1
        STATS["sequences"] += 1
        prefix = f"prop-{RUN}-{StockMachine.machines}"
        self.items = [ModelItem(f"{prefix}-item{i}", known=True) for i in range(KNOWN_ITEMS)]
        self.items += [ModelItem(f"{prefix}-unknown{i}", known=False) for i in range(UNKNOWN_ITEMS)]
        self.by_name = {item.name: item for item in self.items}
        self.model: dict[str, ModelOrder] = {}

    # -- helpers ----------------------------------------------------------------------------------

    def _step(self, name: str) -> None:
        STATS["steps"] += 1
        STATS[f"rule {name}"] += 1

    def _saw(self, outcome: str) -> None:
        STATS[f"saw {outcome}"] += 1

    def _choose(self, data: st.DataObject, useful: set[OrderStatus]) -> str:
        """An order, usually one the rule can move on (`useful`), sometimes any order at all:
        out-of-order and repeated calls must change nothing."""
        ids = list(self.model)
        fitting = [i for i, oid in enumerate(ids) if self.model[oid].status in useful]
        prefer = data.draw(st.integers(0, 3), label="prefer a fitting order")
        pool = fitting if fitting and prefer else list(range(len(ids)))
        index = pool[_pick(data, len(pool), "order")]
        note(f"order #{index} is {self.model[ids[index]].status}")
        return ids[index]

    def _choose_item(
        self, data: st.DataObject, fitting: list[ModelItem], among: list[ModelItem]
    ) -> ModelItem:
        """An item, usually one of `fitting`, sometimes any of `among`."""
        prefer = data.draw(st.integers(0, 3), label="prefer a fitting item")
        pool = fitting if fitting and prefer else among
        item = pool[_pick(data, len(pool), "item")]
        note(f"item {item.name.rsplit('-', 1)[-1]}: exists {item.exists}, stock {item.stock}")
        return item

    def _table_stock(self) -> dict[str, int | None]:
        rows = self.store.inventory_get_many(item.name for item in self.items)
        return {item.name: (rows[item.name].stock if item.name in rows else None)
                for item in self.items}  # fmt: skip

    def _expect_stock(self, how: str, context: str) -> None:
        """After a use case ran twice, the stock moved once (the invariants check the rest)."""
        if how in (TWICE, AT_ONCE):
            expected = {item.name: (item.stock if item.exists else None) for item in self.items}
            assert self._table_stock() == expected, f"{context} {how}: stock moved twice"

    def _give_back(self, order: ModelOrder) -> None:
        for name, qty in order.held.items():
            item = self.by_name[name]
            if not item.exists:
                # Never re-created (it would have no price): the units are recorded instead.
                self._saw("a release to a removed row, recorded as not returned")
                item.not_returned += qty
                continue
            item.stock += qty
        order.held = {}

    def _payment_outcome(self, order: ModelOrder, approving_gateway: bool) -> str:
        if order.token == TOKEN_APPROVE or (order.token is None and approving_gateway):
            return "approved"
        return "unavailable" if order.token == TOKEN_UNAVAILABLE else "declined"

    def _submit(self, lines: list[tuple[int, int, bool]], token: str | None, address: str) -> str:
        items: list[object] = []
        merged: dict[str, int] = {}
        for slot, qty, plain in lines:
            name = self.items[slot].name
            items.append(name if plain and qty == 1 else {"ItemName": name, "Quantity": qty})
            merged[name] = merged.get(name, 0) + qty
        order = order_submit(
            store=self.store,
            customer_name=f"prop-{RUN}",
            items=items,
            payment_token=token,
            shipping_address=ADDRESSES[address],
        )
        stored = self.store.order_get(order.order_id)
        assert stored.status == OrderStatus.PENDING
        assert {line.item_name: line.quantity for line in stored.lines} == merged
        self.model[order.order_id] = ModelOrder(
            order.order_id, merged, token, address, images=[order]
        )
        return order.order_id

    def _reserve(self, order_id: str, how: str, image: Order | None = None) -> None:
        order = self.model[order_id]
        before = order.status
        short = set()
        if before == OrderStatus.PENDING:
            short = {
                name
                for name, qty in order.lines.items()
                if not self.by_name[name].exists or self.by_name[name].stock < qty
            }
        # When the reservation is delivered (maybe twice, maybe at once, maybe with an old image)
        outcomes = _deliver(
            how, lambda: inventory_reserve(store=self.store, order_id=order_id, order=image)
        )
        # Then it reserved (or rejected) exactly once, and only a PENDING order
        assert all(not isinstance(o, PipelineError) for o in outcomes), outcomes
        reserved_now = sum(o.reserved_now for o in outcomes)
        rejected_now = sum(o.rejected_now for o in outcomes)
        stored = self.store.order_get(order_id)
        if before != OrderStatus.PENDING:
            assert (reserved_now, rejected_now) == (0, 0)
        elif short:
            assert (reserved_now, rejected_now) == (0, 1)
            assert stored.status == OrderStatus.REJECTED
            assert {r["ItemName"] for r in stored.rejection} == short
            order.status = OrderStatus.REJECTED
            self._saw("rejections")
        else:
            assert (reserved_now, rejected_now) == (1, 0)
            assert stored.status == OrderStatus.RESERVED
            lines = {r["ItemName"]: int(r["Quantity"]) for r in stored.reservation["Lines"]}
            assert lines == order.lines
            for name, qty in order.lines.items():
                self.by_name[name].stock -= qty
            order.status, order.held = OrderStatus.RESERVED, dict(order.lines)
            self._saw("reservations")
        assert stored.status == order.status
        assert {o.order.status for o in outcomes} == {order.status}
        self._expect_stock(how, "reserve")

    # -- set-up -----------------------------------------------------------------------------------

    @initialize(
        stocks=st.lists(st.integers(0, 12), min_size=KNOWN_ITEMS, max_size=KNOWN_ITEMS),
        prices=st.lists(
            st.sampled_from(["0.50", "9.99", "120.00"]), min_size=KNOWN_ITEMS, max_size=KNOWN_ITEMS
        ),
        orders=st.lists(st.tuples(ORDER, st.booleans()), min_size=1, max_size=3),
    )
    def start(
        self, stocks: list[int], prices: list[str], orders: list[tuple[OrderSpec, bool]]
    ) -> None:
        """Given a handful of items, each with its own stock, and a few orders, some of them
        reserved already."""
        for item, stock, price in zip(self.items[:KNOWN_ITEMS], stocks, prices, strict=True):
            inventory_create(store=self.store, item_name=item.name, stock=stock, price=price)
            item.exists, item.stock, item.supplied = True, stock, stock
        for spec, reserved in orders:
            order_id = self._submit(*spec)
            if reserved:
                self._reserve(order_id, ONCE)

    # -- orders -----------------------------------------------------------------------------------

    @rule(spec=ORDER)
    def submit(self, spec: OrderSpec) -> None:
        """An order for random lines (a plain name is one unit; repeated names add up)."""
        self._step("submit")
        self._submit(*spec)

    @rule(data=st.data(), how=st.sampled_from([ONCE, TWICE, AT_ONCE, STALE_IMAGE]))
    def reserve(self, data: st.DataObject, how: str) -> None:
        """The stream delivers the order to the reservation (maybe again, maybe late, with an
        image from before the order was rejected, resubmitted and reserved again)."""
        order_id = self._choose(data, {OrderStatus.PENDING})
        self._step("reserve")
        image = None
        if how == STALE_IMAGE:
            images = self.model[order_id].images
            image = images[_pick(data, len(images), "image")]
        self._reserve(order_id, ONCE if how == STALE_IMAGE else how, image)

    @rule(
        data=st.data(), approving=st.booleans(), how=st.sampled_from([ONCE, TWICE, STAFF_CANCELS])
    )
    def pay(self, data: st.DataObject, approving: bool, how: str) -> None:
        """The payment step (retried, or with staff cancelling while the gateway charges),
        then the compensation if the charge failed."""
        order_id = self._choose(data, {OrderStatus.RESERVED})
        self._step("pay")
        order = self.model[order_id]
        paid_before = self.store.order_get(order_id).payment if order.status in PAID else None

        def staff_cancel() -> None:
            order_cancel(store=self.store, order_id=order_id, actor="staff", reason="test")

        gateway = CountingGateway(
            MockPaymentGateway(success_rate=1.0 if approving else 0.0),
            during_charge=staff_cancel if how == STAFF_CANCELS else None,
        )
        expected = self._payment_outcome(order, approving)
        error = PaymentGatewayUnavailable if expected == "unavailable" else PaymentDeclined
        # When the payment step runs
        outcomes = _deliver(
            how, lambda: payment_charge(store=self.store, gateway=gateway, order_id=order_id)
        )
        if order.status in PAID:
            # Then a paid order is returned as it is, never charged again
            assert gateway.charges == 0
            assert all(isinstance(o, Order) and o.payment == paid_before for o in outcomes)
        elif order.status != OrderStatus.RESERVED:
            # Then an order that holds no stock for payment is refused, never charged
            assert gateway.charges == 0
            assert all(_refused(o, order.status) for o in outcomes), outcomes
        elif how == STAFF_CANCELS:
            # Then the cancel gave the stock back, and an approved charge was refunded
            stored = self.store.order_get(order_id)
            assert stored.status == OrderStatus.CANCELLED and stored.payment is None
            if expected == "approved":
                assert _refused(outcomes[0], OrderStatus.CANCELLED), outcomes
                assert gateway.refunds == 1 and "refunded" in stored.status_reason
                self._saw("refunds of a cancelled order's charge")
            else:
                assert isinstance(outcomes[0], error), outcomes
                assert gateway.refunds == 0
                # and the compensation that follows finds nothing left to give back
                late = inventory_release(store=self.store, order_id=order_id, reason="failed")
                assert not late.changed
            self._give_back(order)
            order.status = OrderStatus.CANCELLED
            self._saw("cancels of a reserved order")
        elif expected == "approved":
            # Then it is PAID once: the retry finds the payment and does not charge again
            assert gateway.charges == 1
            assert all(isinstance(o, Order) for o in outcomes), outcomes
            assert len({o.payment["TransactionId"] for o in outcomes}) == 1
            order.status = OrderStatus.PAID
            self._saw("payments")
        else:
            # Then every attempt fails and changes nothing; the compensation gives the stock
            # back once (the ReleaseStock task may run twice too)
            assert all(isinstance(o, error) for o in outcomes), outcomes
            assert self.store.order_get(order_id).status == OrderStatus.RESERVED
            reason = failure_reason("Payment failed", error.__name__, str(outcomes[0]))
            released = _deliver(
                how,
                lambda: inventory_release(
                    store=self.store,
                    order_id=order_id,
                    target=OrderStatus.PAYMENT_FAILED,
                    reason=reason,
                ),
            )
            assert _once_then_nothing([r.changed for r in released]), released
            self._give_back(order)
            order.status = OrderStatus.PAYMENT_FAILED
            self._saw("failed payments compensated")
        self._expect_stock(how, "pay")

    @rule(data=st.data(), how=ANY_DELIVERY)
    def release(self, data: st.DataObject, how: str) -> None:
        """The compensation on its own (the gateway stayed down, or a late redelivery)."""
        order_id = self._choose(data, {OrderStatus.RESERVED})
        self._step("release")
        order = self.model[order_id]
        outcomes = _deliver(
            how,
            lambda: inventory_release(
                store=self.store, order_id=order_id, reason="Payment failed: gateway down"
            ),
        )
        assert all(not isinstance(o, PipelineError) for o in outcomes), outcomes
        if order.status == OrderStatus.RESERVED:
            # Then exactly one delivery gave the stock back
            assert _once_then_nothing([o.changed for o in outcomes]), outcomes
            self._give_back(order)
            order.status = OrderStatus.PAYMENT_FAILED
            self._saw("releases")
        else:
            # Then an order holding no stock for payment is left as it is
            assert not any(o.changed for o in outcomes), outcomes
        assert {o.order.status for o in outcomes} == {order.status}
        self._expect_stock(how, "release")

    @rule(data=st.data(), how=SEQUENTIAL)
    def ship(self, data: st.DataObject, how: str) -> None:
        """The shipping step (a carrier failure ends in manual intervention), or staff shipping
        a manual-intervention order by hand."""
        order_id = self._choose(data, {OrderStatus.PAID, OrderStatus.MANUAL_INTERVENTION})
        self._step("ship")
        order = self.model[order_id]
        if order.status == OrderStatus.MANUAL_INTERVENTION:
            resolved = _deliver(
                how,
                lambda: order_mark_shipped(
                    store=self.store,
                    order_id=order_id,
                    actor="staff",
                    reason="by courier",
                    carrier="courier",
                    tracking_number="T1",
                ),
            )
            assert isinstance(resolved[0], Order) and resolved[0].status == OrderStatus.SHIPPED
            assert all(_refused(o, OrderStatus.SHIPPED) for o in resolved[1:]), resolved
            # Staff recorded the shipment (tracking T1): a late shipping step finds it and
            # returns it, as it does a shipment it booked itself, instead of booking another.
            order.status, order.shipment = OrderStatus.SHIPPED, "T1"
            self._saw("shipped by hand")
            return
        carriers = MockCarriers()
        outcomes = _deliver(
            how, lambda: shipment_create(store=self.store, carriers=carriers, order_id=order_id)
        )
        if order.status == OrderStatus.PAID and order.address in ("undeliverable", "carrier-down"):
            # Then the booking fails every time, and the order is flagged for staff once
            error = AddressRejected if order.address == "undeliverable" else CarrierUnavailable
            assert all(isinstance(o, error) for o in outcomes), outcomes
            flagged = _deliver(
                how,
                lambda: order_flag_for_review(
                    store=self.store,
                    order_id=order_id,
                    reason=failure_reason("Shipping failed", error.__name__, str(outcomes[0])),
                ),
            )
            assert _once_then_nothing([f.changed for f in flagged]), flagged
            order.status = OrderStatus.MANUAL_INTERVENTION
            self._saw("manual interventions")
        elif order.status == OrderStatus.PAID or (
            order.status == OrderStatus.SHIPPED and order.shipment
        ):
            # Then it ships once: a retry returns the recorded shipment
            assert all(isinstance(o, Order) for o in outcomes), outcomes
            tracking = {o.shipment["TrackingNumber"] for o in outcomes}
            assert len(tracking) == 1 and order.shipment in (None, *tracking)
            order.status, order.shipment = OrderStatus.SHIPPED, tracking.pop()
            self._saw("shipments")
        else:
            assert all(_refused(o, order.status) for o in outcomes), outcomes

    @rule(data=st.data(), how=ANY_DELIVERY)
    def cancel(self, data: st.DataObject, how: str) -> None:
        """Staff cancel the order (a double click sends it twice)."""
        order_id = self._choose(data, {OrderStatus.PENDING, OrderStatus.RESERVED})
        self._step("cancel")
        order = self.model[order_id]
        outcomes = _deliver(
            how,
            lambda: order_cancel(store=self.store, order_id=order_id, actor="staff", reason="test"),
        )
        if order.status in (OrderStatus.PENDING, OrderStatus.RESERVED):
            # Then one cancel wins and gives back what was reserved; the other is refused
            done = [o for o in outcomes if isinstance(o, Order)]
            assert len(done) == 1 and done[0].status == OrderStatus.CANCELLED, outcomes
            assert all(_refused(o, OrderStatus.CANCELLED) for o in outcomes if o is not done[0])
            self._saw(f"cancels of a {order.status.lower()} order")
            self._give_back(order)
            order.status = OrderStatus.CANCELLED
        else:
            assert all(_refused(o, order.status) for o in outcomes), outcomes
        self._expect_stock(how, "cancel")

    @rule(data=st.data(), then_reserve=st.booleans())
    def resubmit(self, data: st.DataObject, then_reserve: bool) -> None:
        """Staff resubmit a rejected or payment-failed order, and the stream reserves it again."""
        order_id = self._choose(data, {OrderStatus.REJECTED, OrderStatus.PAYMENT_FAILED})
        self._step("resubmit")
        order = self.model[order_id]
        outcome = _deliver(
            ONCE,
            lambda: order_resubmit(
                store=self.store, order_id=order_id, actor="staff", reason="test"
            ),
        )[0]
        if order.status in (OrderStatus.REJECTED, OrderStatus.PAYMENT_FAILED):
            assert isinstance(outcome, Order) and outcome.status == OrderStatus.PENDING, outcome
            assert outcome.payment is None
            order.status = OrderStatus.PENDING
            order.images.append(outcome)
            self._saw("resubmits")
            if then_reserve:
                self._reserve(order_id, ONCE)
        else:
            assert _refused(outcome, order.status), outcome

    @rule(data=st.data())
    def illegal_transition(self, data: st.DataObject) -> None:
        """Any status move the rules forbid is refused, names the real status, changes nothing."""
        order_id = self._choose(data, set(OrderStatus))
        self._step("illegal_transition")
        order = self.model[order_id]
        targets = sorted(s for s in OrderStatus if not can_transition(order.status, s))
        target = targets[_pick(data, len(targets), "target")]
        note(f"trying {order.status} -> {target}")
        before = self.store.order_get(order_id)
        with pytest.raises(InvalidTransition) as refused:
            self.store.order_transition(order_id, target, "forbidden move", utc_now())
        assert OrderStatus(refused.value.current) == order.status
        assert refused.value.target == str(target)
        assert self.store.order_get(order_id).as_item() == before.as_item()

    # -- inventory --------------------------------------------------------------------------------

    @rule(slot=st.integers(0, KNOWN_ITEMS + UNKNOWN_ITEMS - 1), delta=st.integers(-9, 9))
    def restock(self, slot: int, delta: int) -> None:
        """Staff adjust an item's stock by a delta; never below zero."""
        self._step("restock")
        item = self.items[slot]
        outcome = _deliver(
            ONCE,
            lambda: inventory_adjust_stock(store=self.store, item_name=item.name, delta=delta),
        )[0]
        if delta == 0:
            assert isinstance(outcome, InvalidInventoryItem), outcome
        elif not item.exists:
            assert isinstance(outcome, InventoryItemNotFound), outcome
        elif item.stock + delta < 0:
            # Then a change that would go below zero is refused and nothing moves
            assert isinstance(outcome, InsufficientStock), outcome
            self._saw("restocks refused below zero")
        else:
            assert not isinstance(outcome, PipelineError), outcome
            assert outcome.stock == item.stock + delta
            item.stock += delta
            item.supplied += delta
            self._saw("restocks")

    @rule(data=st.data(), create=st.booleans(), stock=st.integers(0, 8))
    def remove_or_create_item(self, data: st.DataObject, create: bool, stock: int) -> None:
        """Staff delete an item (usually one that orders hold some of: its stock leaves with the
        row, the orders keep theirs), or create one (usually a deleted one) without ever
        overwriting a row."""
        self._step("remove_or_create_item")
        if create:
            known = [i for i in self.items if i.known]  # an unknown name stays unknown
            item = self._choose_item(data, [i for i in known if not i.exists], known)
            outcome = _deliver(
                ONCE,
                lambda: inventory_create(
                    store=self.store, item_name=item.name, stock=stock, price="5.00"
                ),
            )[0]
            if item.exists:
                assert isinstance(outcome, InventoryItemExists), outcome
            else:
                assert not isinstance(outcome, PipelineError), outcome
                item.exists, item.stock = True, stock
                item.supplied += stock
                self._saw("items created again")
            return
        held = {name for order in self.model.values() for name in order.held}
        fitting = [i for i in self.items if i.exists and i.name in held]
        item = self._choose_item(data, fitting, self.items)
        outcome = _deliver(ONCE, lambda: inventory_remove(store=self.store, item_name=item.name))[0]
        if item.exists:
            assert not isinstance(outcome, PipelineError) and outcome.stock == item.stock, outcome
            item.supplied -= item.stock
            item.exists, item.stock = False, 0
            self._saw("items removed" + (" while held" if item.name in held else ""))
        else:
            assert isinstance(outcome, InventoryItemNotFound), outcome

    # -- invariants, read from the tables ---------------------------------------------------------

    def _stored_orders(self) -> list[Order]:
        ids = list(self.model)
        found: list[Order] = []
        self.stored_not_returned: Counter[str] = Counter()
        table = self.store.orders_table
        for start in range(0, len(ids), 100):
            request: dict[str, Any] = {
                table: {
                    "Keys": [{"OrderId": {"S": i}} for i in ids[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self.store.client.batch_get_item(RequestItems=request)
                for raw in response["Responses"][table]:
                    plain = deserialize(raw)
                    found.append(Order.from_item(plain))
                    for line in plain.get("StockNotReturned", []):
                        self.stored_not_returned[line["ItemName"]] += int(line["Quantity"])
                request = response.get("UnprocessedKeys") or {}
        assert len(found) == len(ids)
        return found

    @invariant()
    def stock_is_conserved(self) -> None:
        """Stock >= 0, and what each item was given == its stock + what orders took and hold."""
        rows = self._table_stock()
        held: Counter[str] = Counter()
        statuses = {}
        for order in self._stored_orders():
            statuses[order.order_id] = order.status
            if order.status in TOOK_STOCK:
                for line in (order.reservation or {}).get("Lines", []):
                    held[line["ItemName"]] += int(line["Quantity"])
        for item in self.items:
            stock = rows[item.name]
            assert stock is None or stock >= 0, f"{item.name}: stock {stock} below zero"
            lost = self.stored_not_returned[item.name]
            assert item.supplied == (stock or 0) + held[item.name] + lost, (
                f"{item.name}: given {item.supplied}, in stock {stock}, held {held[item.name]}, "
                f"not returned {lost}"
            )
            assert lost == item.not_returned, f"{item.name}: {lost} not returned, model differs"
            if not item.known:
                assert stock is None and held[item.name] == 0
        # and the tables agree with the model (stock, statuses and who holds what)
        assert rows == {i.name: (i.stock if i.exists else None) for i in self.items}
        assert statuses == {oid: o.status for oid, o in self.model.items()}
        expected_held: Counter[str] = Counter()
        for order in self.model.values():
            expected_held.update(order.held)
        assert +held == +expected_held


class RacingStockMachine(StockMachine):
    """The same, plus steps running two different use cases at the same moment."""

    @rule(
        data=st.data(),
        kinds=st.lists(st.sampled_from(sorted(RACERS)), min_size=2, max_size=2),
        delta=st.integers(-6, 6).filter(bool),
    )
    def two_at_once(self, data: st.DataObject, kinds: list[str], delta: int) -> None:
        """The stream, the workflow and staff do not take turns: who wins decides the outcome,
        so the model reads it back (the invariants still check the stock against the tables)."""
        self._step("two_at_once")
        calls: list[tuple[str, str, Callable[[], object]]] = []
        for kind in kinds:
            if kind == "restock":
                item = self._choose_item(data, [], self.items[:KNOWN_ITEMS])
                calls.append((kind, item.name, self._use_case(kind, item.name, delta)))
            else:
                order_id = self._choose(data, RACERS[kind])
                calls.append((kind, order_id, self._use_case(kind, order_id, delta)))
        before = {oid: order.status for oid, order in self.model.items()}
        # When both run at once
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda call: _deliver(ONCE, call[2])[0], calls))
        # Then each either happened or was refused for a good reason
        for (kind, target, _), result in zip(calls, results, strict=True):
            if kind == "restock":
                if isinstance(result, PipelineError):
                    assert isinstance(result, InsufficientStock | InventoryItemNotFound), result
                else:
                    self.by_name[target].supplied += delta
            elif kind in ("cancel", "resubmit"):
                assert isinstance(result, Order | InvalidTransition), result
            else:
                assert not isinstance(result, PipelineError), result
        self._saw("races")
        self._read_back(before)

    def _use_case(self, kind: str, target: str, delta: int) -> Callable[[], object]:
        store = self.store
        return {
            "reserve": lambda: inventory_reserve(store=store, order_id=target),
            "cancel": lambda: order_cancel(
                store=store, order_id=target, actor="staff", reason="test"
            ),
            "release": lambda: inventory_release(store=store, order_id=target, reason="failed"),
            "resubmit": lambda: order_resubmit(
                store=store, order_id=target, actor="staff", reason="test"
            ),
            "restock": lambda: inventory_adjust_stock(store=store, item_name=target, delta=delta),
        }[kind]

    def _read_back(self, before: dict[str, OrderStatus]) -> None:
        """Take statuses, holdings and stock from the tables after a race, checking that every
        order moved by at most two allowed transitions.

        What each item was given is never read back: the invariants still check it.
        """
        for stored in self._stored_orders():
            order = self.model[stored.order_id]
            was = before[stored.order_id]
            assert stored.status in _within_two_moves(was), f"{was} -> {stored.status}"
            order.status = stored.status
            order.held = {}
            if stored.status in TOOK_STOCK:
                for line in stored.reservation["Lines"]:
                    order.held[line["ItemName"]] = int(line["Quantity"])
            if stored.status == OrderStatus.PENDING and stored.attempt != order.images[-1].attempt:
                order.images.append(stored)
        for name, stock in self._table_stock().items():
            item = self.by_name[name]
            item.exists, item.stock = stock is not None, stock or 0
            item.not_returned = self.stored_not_returned[name]


def _run(machine: type[StockMachine], store: DynamoStore, share: float = 1.0) -> None:
    STATS.clear()
    examples = max(1, round(PROFILE.max_examples * share))
    run_state_machine_as_test(
        lambda: machine(store), settings=settings(PROFILE, max_examples=examples)
    )
    rules = ", ".join(f"{k[5:]} {v}" for k, v in sorted(STATS.items()) if k.startswith("rule "))
    seen = ", ".join(f"{k[4:]} {v}" for k, v in sorted(STATS.items()) if k.startswith("saw "))
    print(f"\n{machine.__name__}: {STATS['sequences']} sequences, {STATS['steps']} steps")
    print(f"  rules: {rules}\n  outcomes: {seen}")


def test_random_interleavings_conserve_stock(store: DynamoStore) -> None:
    """Every sequence of the use cases keeps every item's stock accounted for."""
    _run(StockMachine, store)
    assert STATS["steps"] > 0


def test_racing_use_cases_conserve_stock(store: DynamoStore) -> None:
    """So do use cases racing each other."""
    _run(RacingStockMachine, store, share=0.5)
    assert STATS["steps"] > 0


# -- Every (current, target) pair of statuses -----------------------------------------------------

STATUSES = sorted(OrderStatus)


def _order_in(store: DynamoStore, status: OrderStatus) -> Order:
    """An order written straight into `status` (its lines name no real item)."""
    order = replace(
        Order.new(customer_name=f"prop-{RUN}", lines=[OrderLine(f"prop-{RUN}-none", 1)]),
        status=status,
    )
    store.order_put_new(order)
    return order


def _pairs() -> list[tuple[OrderStatus, OrderStatus]]:
    return [(current, target) for current in STATUSES for target in STATUSES]


def test_order_transition_succeeds_exactly_when_allowed(store: DynamoStore) -> None:
    """store.order_transition with the default guard (sources_of(target)) follows the rules."""
    seen: set[tuple[OrderStatus, OrderStatus]] = set()

    @settings(PROFILE, max_examples=4 * len(STATUSES) ** 2)
    @given(current=st.sampled_from(STATUSES), target=st.sampled_from(STATUSES))
    def check(current: OrderStatus, target: OrderStatus) -> None:
        seen.add((current, target))
        # Given an order in `current`
        order = _order_in(store, current)
        before = store.order_get(order.order_id)
        # When it is moved to `target` with the default guard
        try:
            moved = store.order_transition(order.order_id, target, "probe", utc_now())
        except InvalidTransition as exc:
            # Then a refused move names the real status and changes nothing
            assert not can_transition(current, target), f"{current} -> {target} refused"
            assert OrderStatus(exc.current) == current and exc.target == str(target)
            assert str(current) in str(exc)
            assert store.order_get(order.order_id).as_item() == before.as_item()
            return
        # Then an allowed move is written, with its history entry
        assert can_transition(current, target), f"{current} -> {target} was allowed"
        assert moved.status == target
        assert [h.status for h in moved.history] == [OrderStatus.PENDING, target]
        assert store.order_get(order.order_id).as_item() == moved.as_item()

    check()
    # Hypothesis stops once the 64 pairs are exhausted: every one of them was tried
    assert seen == set(_pairs())
    assert sum(len(t) for t in ALLOWED_TRANSITIONS.values()) == sum(
        can_transition(c, t) for c, t in _pairs()
    )

"""Unit tests of pipeline.statuses: the order status transition table and its helpers."""

from __future__ import annotations

import pytest

from pipeline.statuses import (
    ALLOWED_TRANSITIONS,
    FINAL_STATUSES,
    HOLDS_STOCK,
    OrderStatus,
    can_transition,
    sources_of,
)

S = OrderStatus

# What the automated pipeline does (stream, payment, shipping, compensation, review flag).
AUTOMATED = {
    (S.PENDING, S.RESERVED),
    (S.PENDING, S.REJECTED),
    (S.RESERVED, S.PAID),
    (S.RESERVED, S.PAYMENT_FAILED),
    (S.PAID, S.SHIPPED),
    (S.PAID, S.MANUAL_INTERVENTION),
}
# What only staff do: resubmit, cancel, and resolve a manual intervention by shipping by hand,
# retrying the shipping (PAID again, under a new workflow run) or refunding it.
STAFF = {
    (S.REJECTED, S.PENDING),
    (S.PAYMENT_FAILED, S.PENDING),
    (S.PENDING, S.CANCELLED),
    (S.RESERVED, S.CANCELLED),
    (S.MANUAL_INTERVENTION, S.SHIPPED),
    (S.MANUAL_INTERVENTION, S.PAID),
    (S.MANUAL_INTERVENTION, S.REFUNDED),
}


def _edges() -> set[tuple[OrderStatus, OrderStatus]]:
    return {(src, dst) for src, targets in ALLOWED_TRANSITIONS.items() for dst in targets}


def test_statuses_store_their_seed_compatible_names() -> None:
    # Given the status enum
    # When its values are listed
    # Then they are the strings DynamoDB stores, equal to their names
    assert [s.value for s in S] == [
        "PENDING",
        "RESERVED",
        "REJECTED",
        "PAID",
        "PAYMENT_FAILED",
        "SHIPPED",
        "MANUAL_INTERVENTION",
        "CANCELLED",
        "REFUNDED",
    ]
    assert all(str(s) == s.name == s.value for s in S)
    assert S("PAID") is S.PAID


def test_every_status_has_an_entry_in_the_table() -> None:
    # Given the transition table
    # When its keys and targets are compared with the enum
    # Then every status has exactly one entry and every target is a status
    assert set(ALLOWED_TRANSITIONS) == set(S)
    assert all(isinstance(t, OrderStatus) for ts in ALLOWED_TRANSITIONS.values() for t in ts)


def test_the_table_is_exactly_the_automated_and_staff_transitions() -> None:
    # Given the transitions the pipeline and staff perform
    # When they are compared with the table
    # Then nothing is missing and nothing extra is allowed
    assert _edges() == AUTOMATED | STAFF


def test_no_status_moves_to_itself() -> None:
    # Given the table
    # When self-loops are looked for
    # Then there are none (a repeated write is not a transition)
    assert not [s for s in S if s in ALLOWED_TRANSITIONS[s]]


@pytest.mark.parametrize(("current", "target"), sorted(AUTOMATED | STAFF))
def test_can_transition_allows_every_table_edge(current: S, target: S) -> None:
    # Given an edge of the table
    # When it is checked, as enum members and as the stored strings
    # Then it is allowed either way
    assert can_transition(current, target)
    assert can_transition(current.value, target.value)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.PENDING, S.PAID),
        (S.PENDING, S.SHIPPED),
        (S.RESERVED, S.SHIPPED),
        (S.RESERVED, S.PENDING),
        (S.PAID, S.CANCELLED),
        (S.PAID, S.PAYMENT_FAILED),
        (S.SHIPPED, S.PENDING),
        (S.CANCELLED, S.PENDING),
        (S.MANUAL_INTERVENTION, S.CANCELLED),
        (S.REFUNDED, S.PENDING),
        (S.REFUNDED, S.SHIPPED),
        (S.PAID, S.REFUNDED),
        (S.REJECTED, S.RESERVED),
        (S.PAYMENT_FAILED, S.RESERVED),
        (S.PENDING, S.PENDING),
    ],
)
def test_can_transition_refuses_everything_else(current: S, target: S) -> None:
    # Given a move the table does not list
    # When it is checked
    # Then it is refused
    assert not can_transition(current, target)
    assert not can_transition(str(current), str(target))


def test_can_transition_rejects_unknown_status_names() -> None:
    # Given a status name that does not exist
    # When it is checked as source or target
    # Then it raises instead of answering False
    with pytest.raises(ValueError):
        can_transition("Processing", S.PAID)
    with pytest.raises(ValueError):
        can_transition(S.PENDING, "pending")


@pytest.mark.parametrize(
    ("target", "sources"),
    [
        (S.PENDING, {S.REJECTED, S.PAYMENT_FAILED}),
        (S.RESERVED, {S.PENDING}),
        (S.REJECTED, {S.PENDING}),
        (S.PAID, {S.RESERVED, S.MANUAL_INTERVENTION}),
        (S.PAYMENT_FAILED, {S.RESERVED}),
        (S.SHIPPED, {S.PAID, S.MANUAL_INTERVENTION}),
        (S.MANUAL_INTERVENTION, {S.PAID}),
        (S.CANCELLED, {S.PENDING, S.RESERVED}),
        (S.REFUNDED, {S.MANUAL_INTERVENTION}),
    ],
)
def test_sources_of_names_every_status_a_target_can_be_reached_from(
    target: S, sources: set[S]
) -> None:
    # Given a target status
    # When its sources are asked for (by enum and by string)
    # Then they are exactly the statuses listing it
    assert sources_of(target) == frozenset(sources)
    assert sources_of(target.value) == frozenset(sources)


def test_sources_of_is_the_inverse_of_can_transition() -> None:
    # Given every pair of statuses
    # When sources_of and can_transition are compared
    # Then they agree everywhere
    for target in S:
        assert sources_of(target) == {s for s in S if can_transition(s, target)}


def test_final_statuses_have_no_automated_way_out() -> None:
    # Given the final statuses
    # When the automated transitions are searched for one leaving them
    # Then there is none
    assert {
        S.REJECTED,
        S.PAYMENT_FAILED,
        S.SHIPPED,
        S.MANUAL_INTERVENTION,
        S.CANCELLED,
        S.REFUNDED,
    } == FINAL_STATUSES
    assert not [(src, dst) for src, dst in AUTOMATED if src in FINAL_STATUSES]


def test_final_statuses_are_left_only_by_staff_actions() -> None:
    # Given the final statuses
    # When every allowed way out of them is listed
    exits = {(src, dst) for src, dst in _edges() if src in FINAL_STATUSES}

    # Then they are staff's resubmission and the three ways out of a manual intervention, and
    # SHIPPED, CANCELLED and REFUNDED are terminal
    assert exits == {
        (S.REJECTED, S.PENDING),
        (S.PAYMENT_FAILED, S.PENDING),
        (S.MANUAL_INTERVENTION, S.SHIPPED),
        (S.MANUAL_INTERVENTION, S.PAID),
        (S.MANUAL_INTERVENTION, S.REFUNDED),
    }
    assert exits <= STAFF
    assert ALLOWED_TRANSITIONS[S.SHIPPED] == frozenset()
    assert ALLOWED_TRANSITIONS[S.CANCELLED] == frozenset()
    assert ALLOWED_TRANSITIONS[S.REFUNDED] == frozenset()


def test_non_final_statuses_always_have_an_automated_way_on() -> None:
    # Given the statuses the pipeline is working on
    working = set(S) - FINAL_STATUSES

    # When their automated exits are listed
    # Then each has at least one, so no order gets stuck without staff
    assert working == {S.PENDING, S.RESERVED, S.PAID}
    for status in working:
        assert any(src == status for src, _ in AUTOMATED), status


def test_every_status_is_reachable_from_pending() -> None:
    # Given the table
    # When it is walked from PENDING
    seen = {S.PENDING}
    frontier = [S.PENDING]
    while frontier:
        for nxt in ALLOWED_TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)

    # Then no status is dead code
    assert seen == set(S)


def test_only_reserved_orders_hold_stock() -> None:
    # Given the statuses holding reserved stock
    # When they are listed
    # Then only RESERVED does, and every way out of it except PAID must give stock back
    assert {S.RESERVED} == HOLDS_STOCK
    assert ALLOWED_TRANSITIONS[S.RESERVED] - {S.PAID} == {S.PAYMENT_FAILED, S.CANCELLED}

"""Unit tests of the mock payment gateway: test tokens, rates, determinism, refunds."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from decimal import Decimal

import pytest

from pipeline.adapters.mock_payments import (
    TOKEN_APPROVE,
    TOKEN_DECLINE,
    TOKEN_UNAVAILABLE,
    MockPaymentGateway,
    refund_charge,
)
from pipeline.errors import PaymentDeclined, PaymentGatewayUnavailable
from pipeline.ports import Charge

AMOUNT = Decimal("1049.97")
SEED = "unit-tests"


def _outcome(gateway: MockPaymentGateway, key: str, attempt: int = 0, token: str | None = None):
    """'approved', 'declined' or 'unavailable' for one charge."""
    try:
        gateway.charge(
            amount=AMOUNT, currency="USD", token=token, idempotency_key=key, attempt=attempt
        )
    except PaymentDeclined:
        return "declined"
    except PaymentGatewayUnavailable:
        return "unavailable"
    return "approved"


# -- test tokens ------------------------------------------------------------------------------


def test_tok_approve_is_approved_even_when_every_charge_would_fail() -> None:
    # Given a gateway that declines everything and fails every attempt transiently
    gateway = MockPaymentGateway(success_rate=0.0, transient_error_rate=1.0, seed=SEED)

    # When an order with the approve test token is charged
    charge = gateway.charge(
        amount=AMOUNT, currency="USD", token=TOKEN_APPROVE, idempotency_key="o-1:1"
    )

    # Then it is approved for the asked amount and currency
    assert isinstance(charge, Charge)
    assert (charge.amount, charge.currency) == (AMOUNT, "USD")


@pytest.mark.parametrize("attempt", [0, 1, 2, 5])
def test_tok_decline_is_declined_on_every_attempt(attempt: int) -> None:
    # Given a gateway that approves everything
    gateway = MockPaymentGateway(success_rate=1.0, seed=SEED)

    # When the decline test token is charged, on any attempt
    # Then it is declined (not a transient error, so the state machine does not retry it)
    with pytest.raises(PaymentDeclined, match="test token"):
        gateway.charge(
            amount=AMOUNT,
            currency="USD",
            token=TOKEN_DECLINE,
            idempotency_key="o-1:1",
            attempt=attempt,
        )


@pytest.mark.parametrize("attempt", [0, 3, 10])
def test_tok_unavailable_is_unavailable_on_every_attempt(attempt: int) -> None:
    # Given a gateway that approves everything
    gateway = MockPaymentGateway(success_rate=1.0, seed=SEED)

    # When the unavailable test token is charged
    # Then the gateway looks down whatever the attempt
    with pytest.raises(PaymentGatewayUnavailable, match="timed out"):
        gateway.charge(
            amount=AMOUNT,
            currency="USD",
            token=TOKEN_UNAVAILABLE,
            idempotency_key="o-1:1",
            attempt=attempt,
        )


@pytest.mark.parametrize(
    ("token", "failing_attempts"),
    [("tok_flaky_1", 1), ("tok_flaky_2", 2), ("tok_flaky_3", 3), ("tok_flaky_", 1)],
)
def test_tok_flaky_fails_its_first_n_attempts_then_approves(
    token: str, failing_attempts: int
) -> None:
    # Given a gateway that would decline every ordinary charge
    gateway = MockPaymentGateway(success_rate=0.0, seed=SEED)

    # When the flaky token is charged on attempts 0..5
    outcomes = [_outcome(gateway, "o-1:1", attempt=a, token=token) for a in range(6)]

    # Then the first N attempts are transient failures and every later one is approved
    assert outcomes == ["unavailable"] * failing_attempts + ["approved"] * (6 - failing_attempts)


def test_tok_flaky_messages_count_the_attempts() -> None:
    # Given the flaky token failing twice
    gateway = MockPaymentGateway(seed=SEED)

    # When its second attempt (attempt index 1) is charged
    with pytest.raises(PaymentGatewayUnavailable) as info:
        gateway.charge(
            amount=AMOUNT, currency="USD", token="tok_flaky_2", idempotency_key="k", attempt=1
        )

    # Then the message says which attempt of how many failed
    assert "attempt 2 of 2 failing" in str(info.value)


def test_tok_flaky_with_the_state_machines_three_retries_gets_through() -> None:
    # Given the payment step's Retry (3 retries after the first attempt: RetryCount 0..3)
    gateway = MockPaymentGateway(success_rate=0.0, seed=SEED)

    # When tok_flaky_3 and tok_flaky_4 go through those four attempts
    three = [_outcome(gateway, "k", attempt=a, token="tok_flaky_3") for a in range(4)]
    four = [_outcome(gateway, "k", attempt=a, token="tok_flaky_4") for a in range(4)]

    # Then three failures are survived and four are not
    assert three[-1] == "approved"
    assert set(four) == {"unavailable"}


@pytest.mark.parametrize("token", ["tok_flaky_x", "tok_flaky_2b"])
def test_a_malformed_flaky_token_is_a_payment_error_not_a_crash(token: str) -> None:
    # Given a gateway and a token that only looks like a flaky test token
    gateway = MockPaymentGateway(success_rate=1.0, seed=SEED)

    # When it is charged
    # Then the outcome is one of the gateway's documented ones (ValueError escapes _outcome)
    assert _outcome(gateway, "k", token=token) in {"approved", "declined", "unavailable"}


# -- rates ------------------------------------------------------------------------------------


def test_seeded_success_rate_is_ninety_percent_over_ten_thousand_orders() -> None:
    # Given the default 90% gateway in deterministic mode
    gateway = MockPaymentGateway(seed=SEED)

    # When 10,000 different orders are charged once each
    outcomes = [_outcome(gateway, f"order-{i}:1") for i in range(10_000)]

    # Then about 90% are approved and the rest declined (never transient: rate 0)
    approved = outcomes.count("approved")
    assert 0.885 <= approved / 10_000 <= 0.915, approved
    assert outcomes.count("declined") == 10_000 - approved


@pytest.mark.parametrize("rate", [0.5, 0.75])
def test_seeded_success_rate_follows_the_configured_rate(rate: float) -> None:
    # Given gateways with other success rates
    gateway = MockPaymentGateway(success_rate=rate, seed=SEED)

    # When 10,000 orders are charged
    approved = sum(_outcome(gateway, f"order-{i}:1") == "approved" for i in range(10_000))

    # Then the approved share is within 1.5 points of the rate
    assert abs(approved / 10_000 - rate) <= 0.015, approved


def test_success_rate_bounds_are_absolute_without_a_seed() -> None:
    # Given unseeded gateways at 100% and 0%
    always = MockPaymentGateway(success_rate=1.0)
    never = MockPaymentGateway(success_rate=0.0)

    # When 500 orders are charged on each
    yes = {_outcome(always, f"o-{i}") for i in range(500)}
    no = {_outcome(never, f"o-{i}") for i in range(500)}

    # Then the first approves all and the second declines all
    assert yes == {"approved"}
    assert no == {"declined"}


def test_transient_error_rate_fails_that_share_of_attempts() -> None:
    # Given a gateway with 20% transient errors, in deterministic mode
    gateway = MockPaymentGateway(success_rate=0.9, transient_error_rate=0.2, seed=SEED)

    # When 10,000 orders are charged once
    outcomes = [_outcome(gateway, f"order-{i}:1") for i in range(10_000)]

    # Then about 20% fail transiently, and of the rest about 90% are approved
    unavailable = outcomes.count("unavailable")
    approved = outcomes.count("approved")
    assert abs(unavailable / 10_000 - 0.2) <= 0.015, unavailable
    assert abs(approved / (10_000 - unavailable) - 0.9) <= 0.015, approved


def test_transient_error_rate_zero_never_fails_transiently() -> None:
    # Given the default gateway (no transient errors)
    gateway = MockPaymentGateway(seed=SEED)

    # When 2,000 orders are charged on several attempts
    outcomes = {_outcome(gateway, f"o-{i}", attempt=a) for i in range(2_000) for a in range(3)}

    # Then nothing is ever "unavailable"
    assert "unavailable" not in outcomes


# -- determinism ------------------------------------------------------------------------------


def test_same_seed_and_key_give_the_same_outcome_in_every_instance() -> None:
    # Given two gateways made independently with the same seed
    first = MockPaymentGateway(seed=SEED, transient_error_rate=0.3)
    second = MockPaymentGateway(seed=SEED, transient_error_rate=0.3)

    # When the same 1,000 keys and attempts are charged on both
    keys = [(f"order-{i}:1", i % 4) for i in range(1_000)]
    a = [_outcome(first, k, attempt=n) for k, n in keys]
    b = [_outcome(second, k, attempt=n) for k, n in keys]

    # Then every outcome agrees, and both kinds of outcome occur (the test can tell them apart)
    assert a == b
    assert {"approved", "declined", "unavailable"} <= set(a)


def test_a_different_seed_gives_different_decisions() -> None:
    # Given two gateways with different seeds
    first = MockPaymentGateway(seed="seed-a")
    second = MockPaymentGateway(seed="seed-b")

    # When the same 1,000 keys are charged
    a = [_outcome(first, f"order-{i}:1") for i in range(1_000)]
    b = [_outcome(second, f"order-{i}:1") for i in range(1_000)]

    # Then some decisions differ
    assert a != b


def test_retries_never_turn_a_decline_into_an_approval() -> None:
    # Given a deterministic gateway with transient errors, and the keys it declines
    gateway = MockPaymentGateway(seed=SEED, transient_error_rate=0.5)
    plain = MockPaymentGateway(seed=SEED)
    declined = [k for k in (f"order-{i}:1" for i in range(500)) if _outcome(plain, k) == "declined"]
    assert len(declined) >= 20

    # When each declined order is retried on attempts 0..9
    per_key = {k: {_outcome(gateway, k, attempt=a) for a in range(10)} for k in declined}

    # Then an attempt may fail transiently but never succeeds
    assert all("approved" not in outcomes for outcomes in per_key.values())
    assert all("declined" in outcomes for outcomes in per_key.values())


def test_transient_errors_are_drawn_per_attempt() -> None:
    # Given a deterministic gateway with 50% transient errors
    gateway = MockPaymentGateway(seed=SEED, success_rate=1.0, transient_error_rate=0.5)

    # When 200 orders are tried on attempts 0..9
    histories = [[_outcome(gateway, f"o-{i}", attempt=a) for a in range(10)] for i in range(200)]

    # Then most orders that failed on attempt 0 get through on a later attempt
    failed_first = [h for h in histories if h[0] == "unavailable"]
    recovered = [h for h in failed_first if "approved" in h[1:]]
    assert len(failed_first) > 50
    assert len(recovered) >= 0.95 * len(failed_first)


def test_an_order_resubmitted_gets_a_fresh_decision() -> None:
    # Given keys of the form order:attempt (a staff resubmission raises the attempt)
    gateway = MockPaymentGateway(seed=SEED)

    # When the first and second attempts of 1,000 orders are charged
    first = [_outcome(gateway, f"order-{i}:1") for i in range(1_000)]
    second = [_outcome(gateway, f"order-{i}:2") for i in range(1_000)]

    # Then some first-attempt declines are approved on the second reservation
    assert any(a == "declined" and b == "approved" for a, b in zip(first, second, strict=True))


# -- configuration ----------------------------------------------------------------------------


def test_from_env_defaults_are_the_seeds_ninety_percent() -> None:
    # Given an empty environment
    # When the gateway is made from it
    gateway = MockPaymentGateway.from_env({})

    # Then it approves 90%, never fails transiently and is not seeded
    assert (gateway.success_rate, gateway.transient_error_rate, gateway.seed) == (0.9, 0.0, None)


def test_from_env_reads_every_setting() -> None:
    # Given all three variables
    env = {
        "PAYMENT_SUCCESS_RATE": "0.75",
        "PAYMENT_TRANSIENT_ERROR_RATE": "0.1",
        "PAYMENT_RANDOM_SEED": "ci-42",
    }

    # When the gateway is made
    gateway = MockPaymentGateway.from_env(env)

    # Then they are used
    assert (gateway.success_rate, gateway.transient_error_rate, gateway.seed) == (
        0.75,
        0.1,
        "ci-42",
    )


def test_from_env_treats_empty_values_as_unset() -> None:
    # Given variables set to "" (as a template parameter left empty would)
    env = {
        "PAYMENT_SUCCESS_RATE": "",
        "PAYMENT_TRANSIENT_ERROR_RATE": "",
        "PAYMENT_RANDOM_SEED": "",
    }

    # When the gateway is made
    gateway = MockPaymentGateway.from_env(env)

    # Then the defaults apply
    assert (gateway.success_rate, gateway.transient_error_rate, gateway.seed) == (0.9, 0.0, None)


@pytest.mark.parametrize("value", ["0", "1", "1.0", "0.0"])
def test_from_env_accepts_the_rate_bounds(value: str) -> None:
    # Given a rate at 0 or 1
    # When the gateway is made
    gateway = MockPaymentGateway.from_env({"PAYMENT_SUCCESS_RATE": value})

    # Then it is taken as is
    assert gateway.success_rate == float(value)


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the variables in the process environment (as template.yaml sets them)
    monkeypatch.setenv("PAYMENT_SUCCESS_RATE", "0.25")
    monkeypatch.setenv("PAYMENT_RANDOM_SEED", "from-os")

    # When the gateway is made without an explicit mapping
    gateway = MockPaymentGateway.from_env()

    # Then os.environ was read
    assert (gateway.success_rate, gateway.seed) == (0.25, "from-os")


@pytest.mark.parametrize("name", ["PAYMENT_SUCCESS_RATE", "PAYMENT_TRANSIENT_ERROR_RATE"])
@pytest.mark.parametrize("value", ["1.5", "-0.1", "2", "nan", "inf", "-inf"])
def test_from_env_rejects_rates_outside_zero_to_one(name: str, value: str) -> None:
    # Given a rate that is not a share
    # When the gateway is made
    # Then start-up fails naming the variable and the value
    with pytest.raises(ValueError) as info:
        MockPaymentGateway.from_env({name: value})
    assert name in str(info.value)
    assert value in str(info.value)


@pytest.mark.parametrize("value", ["ninety", "90%", "0,9"])
def test_from_env_rejects_rates_that_are_not_numbers(value: str) -> None:
    # Given a rate that does not parse
    # When the gateway is made
    # Then it fails rather than silently using a default
    with pytest.raises(ValueError):
        MockPaymentGateway.from_env({"PAYMENT_SUCCESS_RATE": value})


# -- charges and refunds ----------------------------------------------------------------------


def test_an_approved_charge_has_a_transaction_id_and_timestamp() -> None:
    # Given an approving gateway
    gateway = MockPaymentGateway(success_rate=1.0, seed=SEED)

    # When 100 charges are made
    charges = [
        gateway.charge(amount=AMOUNT, currency="EUR", token=None, idempotency_key=f"o-{i}")
        for i in range(100)
    ]

    # Then each has a txn_ id of 24 hex digits, all different, and an ISO 8601 UTC time
    ids = [c.transaction_id for c in charges]
    assert all(re.fullmatch(r"txn_[0-9a-f]{24}", i) for i in ids)
    assert len(set(ids)) == 100
    assert charges[0].currency == "EUR"
    assert charges[0].processed_at.endswith("Z")
    datetime.fromisoformat(charges[0].processed_at.replace("Z", "+00:00"))


def test_charge_as_item_is_the_stored_payment_shape() -> None:
    # Given a charge
    charge = Charge("txn_abc", Decimal("10.50"), "USD", "2024-05-01T10:00:00.000Z")

    # When it is stored on the order
    # Then the attribute names are the Payment map's
    assert charge.as_item() == {
        "TransactionId": "txn_abc",
        "Amount": Decimal("10.50"),
        "Currency": "USD",
        "ProcessedAt": "2024-05-01T10:00:00.000Z",
    }


def test_refund_charge_is_a_stable_id_derived_from_the_transaction() -> None:
    # Given two transaction ids
    # When refunds are asked for, twice for the first
    first = refund_charge("txn_0123456789abcdef01234567")
    again = refund_charge("txn_0123456789abcdef01234567")
    other = refund_charge("txn_ffffffffffffffffffffffff")

    # Then the id is rfd_ + the first 24 hex digits of the transaction's SHA-256, stable per txn
    expected = "rfd_" + hashlib.sha256(b"txn_0123456789abcdef01234567").hexdigest()[:24]
    assert first == again == expected
    assert other != first
    assert re.fullmatch(r"rfd_[0-9a-f]{24}", other)

"""The mock gateway's ledger on DynamoDB Local: one charge per key across processes, and the
first charge of a key costs one conditional write."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from pipeline import aws
from pipeline.adapters.mock_payments import MockPaymentGateway, transaction_id_for
from pipeline.adapters.payment_ledger import DynamoLedger
from pipeline.errors import PaymentGatewayUnavailable


@pytest.fixture
def ledger(dynamodb_endpoint: dict[str, str], store: object) -> DynamoLedger:
    # (`store` points this process's AWS clients at DynamoDB Local.)
    return DynamoLedger(dynamodb_endpoint["PAYMENT_LEDGER_TABLE_NAME"], client=counted_client())


def counted_client() -> Any:
    """A DynamoDB client that counts the operations it sends (on `client.calls`)."""
    client = aws.new_client("dynamodb", config=aws.SDK_DEFAULT_CONFIG)
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register("before-call.dynamodb", count)
    client.calls = calls
    return client


def charge(gateway: MockPaymentGateway, key: str, token: str = "tok_approve") -> Any:
    return gateway.charge(amount=Decimal("9.50"), currency="EUR", token=token, idempotency_key=key)


def test_a_first_charge_is_one_conditional_write_and_a_retry_replays_it(ledger: DynamoLedger):
    # Given two gateways (two Lambda sandboxes) sharing the ledger table
    first = MockPaymentGateway(success_rate=1.0, seed="ledger", ledger=ledger)
    second = MockPaymentGateway(success_rate=1.0, seed="ledger", ledger=ledger)

    # When one charges a key, and the other is asked again with the same key
    made = charge(first, "ledger-o1:1")
    calls_for_first = dict(ledger.client.calls)
    again = charge(second, "ledger-o1:1")

    # Then the first charge was one PutItem, with no read before it
    assert calls_for_first == {"PutItem": 1}
    # And the retry got the same transaction: one entry in the ledger, charged once
    assert again.transaction_id == made.transaction_id == transaction_id_for("ledger-o1:1")
    assert again.processed_at == made.processed_at
    stored = ledger.get(made.transaction_id)
    assert stored is not None
    assert (stored["Outcome"], stored["Amount"]) == ("APPROVED", Decimal("9.50"))


def test_an_answered_key_is_replayed_while_the_gateway_is_down(ledger: DynamoLedger):
    # Given a key charged once
    gateway = MockPaymentGateway(success_rate=1.0, seed="ledger", ledger=ledger)
    made = charge(gateway, "ledger-o2:1")

    # When it is asked again with a token that makes the gateway time out
    again = charge(gateway, "ledger-o2:1", token="tok_unavailable")

    # Then the recorded charge is the answer; an unanswered key still fails
    assert again.transaction_id == made.transaction_id
    with pytest.raises(PaymentGatewayUnavailable):
        charge(gateway, "ledger-o3:1", token="tok_unavailable")
    assert ledger.get(transaction_id_for("ledger-o3:1")) is None

"""The mock payment gateway: approvals, declines and transient failures, with test tokens."""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from collections.abc import Mapping
from decimal import Decimal

from pipeline.adapters.payment_ledger import DynamoLedger, InMemoryLedger, Ledger
from pipeline.config import ENV_PAYMENT_LEDGER_TABLE, rate_from_env
from pipeline.domain import utc_now
from pipeline.errors import PaymentDeclined, PaymentGatewayUnavailable
from pipeline.ports import Charge

# Test tokens, in the manner of real gateways' sandbox cards: they make an outcome certain.
TOKEN_APPROVE = "tok_approve"
TOKEN_DECLINE = "tok_decline"
TOKEN_UNAVAILABLE = "tok_unavailable"
TOKEN_FLAKY_PREFIX = "tok_flaky_"  # tok_flaky_2: unavailable on attempts 0 and 1, then approved


class MockPaymentGateway:
    """Approves `success_rate` of charges (the seed's 90% by default).

    With a seed the outcome is a pure function of the seed and the idempotency key, so the same
    order gets the same answer in every process and on every retry (the deterministic mode).
    """

    def __init__(
        self,
        *,
        success_rate: float = 0.9,
        transient_error_rate: float = 0.0,
        seed: str | None = None,
        ledger: Ledger | None = None,
    ):
        self.success_rate = success_rate
        self.transient_error_rate = transient_error_rate
        self.seed = seed
        # Without a ledger the gateway answers each call afresh (the unit tests of its rates);
        # with one it is idempotent by key, as the pipeline needs.
        self.ledger = ledger
        self._rng = random.Random()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MockPaymentGateway:
        """PAYMENT_SUCCESS_RATE, PAYMENT_TRANSIENT_ERROR_RATE, PAYMENT_RANDOM_SEED, and
        PAYMENT_LEDGER_TABLE (the ledger's table; without it the ledger lives in this process).
        """
        env = os.environ if environ is None else environ
        table = env.get(ENV_PAYMENT_LEDGER_TABLE)
        return cls(
            success_rate=rate_from_env(env, "PAYMENT_SUCCESS_RATE", 0.9),
            transient_error_rate=rate_from_env(env, "PAYMENT_TRANSIENT_ERROR_RATE", 0.0),
            seed=env.get("PAYMENT_RANDOM_SEED") or None,
            ledger=DynamoLedger(table) if table else InMemoryLedger(),
        )

    def _draw(self, key: str, salt: str) -> float:
        if self.seed is None:
            return self._rng.random()
        digest = hashlib.sha256(f"{self.seed}:{salt}:{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        token: str | None,
        idempotency_key: str,
        attempt: int = 0,
    ) -> Charge:
        """Charge `amount`; raise PaymentDeclined or PaymentGatewayUnavailable.

        With a ledger, a key already answered gets that answer again (the same charge, or the
        same decline) and is never charged twice; transient failures are not remembered.
        """
        if self.ledger is None:
            return self._decide(
                amount=amount,
                currency=currency,
                token=token,
                idempotency_key=idempotency_key,
                attempt=attempt,
                transaction_id="txn_" + uuid.uuid4().hex[:24],
            )
        transaction_id = transaction_id_for(idempotency_key)
        # Decide, then record unless the key has an answer already (one conditional write):
        # the first answer stands and is replayed, so a retry never charges twice, and the
        # usual first charge costs one write instead of a read and a write.
        try:
            charge = self._decide(
                amount=amount,
                currency=currency,
                token=token,
                idempotency_key=idempotency_key,
                attempt=attempt,
                transaction_id=transaction_id,
            )
        except PaymentDeclined as exc:
            entry = self.ledger.record(
                _entry(transaction_id, idempotency_key, amount, currency, "DECLINED", str(exc))
            )
        except PaymentGatewayUnavailable:
            # A key already answered is answered again even while the gateway is down.
            answered = self.ledger.get(transaction_id)
            if answered is None:
                raise
            entry = answered
        else:
            entry = self.ledger.record(
                _entry(
                    transaction_id,
                    idempotency_key,
                    amount,
                    currency,
                    "APPROVED",
                    "",
                    charge.processed_at,
                )
            )
        return _replay(entry)

    def find_charge(self, idempotency_key: str) -> Charge | None:
        """The approved charge made for this key, or None (never charged, or declined)."""
        if self.ledger is None:
            return None
        entry = self.ledger.get(transaction_id_for(idempotency_key))
        if entry is None or entry["Outcome"] != "APPROVED":
            return None
        return _replay(entry)

    def _decide(
        self,
        *,
        amount: Decimal,
        currency: str,
        token: str | None,
        idempotency_key: str,
        attempt: int,
        transaction_id: str,
    ) -> Charge:
        token = token or ""
        if token == TOKEN_DECLINE:
            raise PaymentDeclined("card declined by issuer (test token)")
        if token == TOKEN_UNAVAILABLE:
            raise PaymentGatewayUnavailable("payment gateway timed out (test token)")
        if token.startswith(TOKEN_FLAKY_PREFIX):
            count = token.removeprefix(TOKEN_FLAKY_PREFIX) or "1"
            if not count.isdigit():
                raise PaymentDeclined(f"invalid card token {token!r}")
            failures = int(count)
            if attempt < failures:
                raise PaymentGatewayUnavailable(
                    f"payment gateway timed out (test token, attempt {attempt + 1} of "
                    f"{failures} failing)"
                )
        elif token != TOKEN_APPROVE:
            # Transient errors draw per attempt, the decision per order: a retry can get through
            # a flaky gateway but never turns a decline into an approval.
            if self._draw(f"{idempotency_key}:{attempt}", "transient") < self.transient_error_rate:
                raise PaymentGatewayUnavailable("payment gateway returned 503")
            if self._draw(idempotency_key, "decision") >= self.success_rate:
                raise PaymentDeclined("card declined by issuer")
        return Charge(
            transaction_id=transaction_id,
            amount=amount,
            currency=currency,
            processed_at=utc_now(),
        )

    def refund(self, transaction_id: str) -> str:
        """Void an approved mock charge; return the refund id (the mock has no money to move).

        The id is derived from the transaction, so refunding twice names the same refund;
        with a ledger the refund is noted on the charge.
        """
        refund_id = refund_charge(transaction_id)
        if self.ledger is not None and self.ledger.get(transaction_id) is not None:
            self.ledger.mark_refunded(transaction_id, refund_id, utc_now())
        return refund_id


def transaction_id_for(idempotency_key: str) -> str:
    """The transaction id the ledger gives a key's charge: one key, one transaction."""
    return "txn_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


def _entry(
    transaction_id: str,
    key: str,
    amount: Decimal,
    currency: str,
    outcome: str,
    reason: str,
    processed_at: str | None = None,
) -> dict[str, object]:
    entry: dict[str, object] = {
        "TransactionId": transaction_id,
        "IdempotencyKey": key,
        "Outcome": outcome,
        "Amount": amount,
        "Currency": currency,
        "ProcessedAt": processed_at or utc_now(),
    }
    if reason:
        entry["DeclineReason"] = reason
    return entry


def _replay(entry: dict[str, object]) -> Charge:
    """The answer a ledger entry stands for: its charge, or its decline raised again."""
    if entry["Outcome"] != "APPROVED":
        raise PaymentDeclined(str(entry.get("DeclineReason") or "card declined by issuer"))
    return Charge(
        transaction_id=str(entry["TransactionId"]),
        amount=Decimal(str(entry["Amount"])),
        currency=str(entry["Currency"]),
        processed_at=str(entry["ProcessedAt"]),
    )


def refund_charge(transaction_id: str) -> str:
    """The refund id of a mock charge: stable, derived from the transaction id."""
    return "rfd_" + hashlib.sha256(transaction_id.encode()).hexdigest()[:24]

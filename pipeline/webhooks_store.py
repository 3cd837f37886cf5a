"""Where webhooks live: endpoints, their KMS-encrypted secrets, events and attempts (DynamoDB),
and the delivery queue. Read by the functions without the portal's SQL database."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from pipeline import aws
from pipeline.adapters.dynamodb.codec import deserialize, error_code, serialize
from pipeline.webhooks import event_body

ENV_WEBHOOKS_TABLE = "WEBHOOKS_TABLE_NAME"
ENV_DELIVERIES_QUEUE_URL = "WEBHOOK_DELIVERIES_QUEUE_URL"
ENV_DELIVERIES_DLQ_URL = "WEBHOOK_DLQ_URL"
ENV_SECRETS_KEY_ID = "WEBHOOK_SECRETS_KEY_ID"
ENV_ALLOW_LOCAL = "WEBHOOK_ALLOW_LOCAL_ENDPOINTS"

# Attempts and stored events expire (the table's TTL) after this many days.
KEEP_DAYS = 30


class SecretUnreadable(RuntimeError):
    """KMS could not decrypt an endpoint's secret (its key is gone, or access was taken)."""


@dataclass(frozen=True)
class Subscription:
    """An endpoint of one API key: where its events go, which ones, and its health."""

    client_id: str
    subscription_id: str
    url: str
    events: tuple[str, ...]
    secret_ciphertext: bytes
    created_at: str
    created_by: str
    enabled: bool = True
    failing_since: float | None = None
    disabled_reason: str | None = None
    last_success_at: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Subscription:
        """Read a subscription row."""
        failing = item.get("FailingSince")
        return cls(
            client_id=item["ClientId"],
            subscription_id=item["SubscriptionId"],
            url=item["Url"],
            events=tuple(item.get("Events", ())),
            secret_ciphertext=bytes(item["SecretCiphertext"]),
            created_at=item.get("CreatedAt", ""),
            created_by=item.get("CreatedBy", ""),
            enabled=bool(item.get("Enabled", True)),
            failing_since=float(failing) if failing is not None else None,
            disabled_reason=item.get("DisabledReason"),
            last_success_at=item.get("LastSuccessAt"),
        )


def _now_iso() -> str:
    from pipeline.domain.orders import utc_now

    return utc_now()


class WebhookStore:
    """The Webhooks table (PK/SK): CLIENT#<id> / SUB#<id> rows are endpoints; SUB#<id> /
    EVT#<event id> rows keep each event sent there (for a resend); SUB#<id> / ATT#<time>#...
    rows record each attempt."""

    def __init__(
        self,
        table: str,
        *,
        key_id: str | None = None,
        client: Any | None = None,
        kms: Any | None = None,
    ) -> None:
        self.table = table
        self.key_id = key_id
        self._client = client
        self._kms = kms

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookStore:
        """The store the environment names (WEBHOOKS_TABLE_NAME, WEBHOOK_SECRETS_KEY_ID)."""
        env = os.environ if env is None else env
        table = env.get(ENV_WEBHOOKS_TABLE)
        if not table:
            from pipeline.config import MissingSetting

            raise MissingSetting(f"{ENV_WEBHOOKS_TABLE} is not set")
        return cls(table, key_id=env.get(ENV_SECRETS_KEY_ID) or None)

    @property
    def client(self) -> Any:
        """The DynamoDB client given, or the shared one."""
        return self._client or aws.client("dynamodb")

    @property
    def kms(self) -> Any:
        """The KMS client given, or the shared one."""
        return self._kms or aws.client("kms")

    # -- Secrets ---------------------------------------------------------------------------

    def _encrypt(self, subscription_id: str, secret: str) -> bytes:
        if not self.key_id:
            from pipeline.config import MissingSetting

            raise MissingSetting(f"{ENV_SECRETS_KEY_ID} is not set")
        # The context binds the ciphertext to its endpoint: copied onto another row, it fails.
        response = self.kms.encrypt(
            KeyId=self.key_id,
            Plaintext=secret.encode(),
            EncryptionContext={"webhook-subscription": subscription_id},
        )
        return bytes(response["CiphertextBlob"])

    def secret(self, subscription: Subscription) -> str:
        """The endpoint's signing secret, decrypted; SecretUnreadable if KMS cannot."""
        try:
            response = self.kms.decrypt(
                CiphertextBlob=subscription.secret_ciphertext,
                EncryptionContext={"webhook-subscription": subscription.subscription_id},
            )
        except ClientError as exc:
            raise SecretUnreadable(
                f"the endpoint's secret cannot be decrypted ({error_code(exc)}); remove the "
                "endpoint and add it again"
            ) from exc
        return bytes(response["Plaintext"]).decode()

    # -- Subscriptions ---------------------------------------------------------------------

    def create(
        self, *, client_id: str, url: str, events: Iterable[str], secret: str, created_by: str
    ) -> Subscription:
        """A new endpoint for the key, its secret encrypted with KMS before it is stored."""
        subscription_id = uuid.uuid4().hex
        item = {
            "PK": f"CLIENT#{client_id}",
            "SK": f"SUB#{subscription_id}",
            "ClientId": client_id,
            "SubscriptionId": subscription_id,
            "Url": url,
            "Events": list(events),
            "SecretCiphertext": self._encrypt(subscription_id, secret),
            "CreatedAt": _now_iso(),
            "CreatedBy": created_by,
            "Enabled": True,
        }
        self.client.put_item(
            TableName=self.table,
            Item=serialize(item),
            ConditionExpression="attribute_not_exists(PK)",
        )
        return Subscription.from_item(item)

    def for_client(self, client_id: str) -> list[Subscription]:
        """The key's endpoints, oldest first."""
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :sub)",
            ExpressionAttributeValues={":pk": {"S": f"CLIENT#{client_id}"}, ":sub": {"S": "SUB#"}},
            ConsistentRead=True,
        )
        subs = [Subscription.from_item(deserialize(i)) for i in response.get("Items", [])]
        return sorted(subs, key=lambda s: s.created_at)

    def get(self, client_id: str, subscription_id: str) -> Subscription | None:
        """One endpoint of the key, or None."""
        response = self.client.get_item(
            TableName=self.table,
            Key=self._key(client_id, subscription_id),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return Subscription.from_item(deserialize(item)) if item else None

    def delete(self, client_id: str, subscription_id: str) -> None:
        """Remove the endpoint (its queued deliveries find it gone and stop)."""
        self.client.delete_item(TableName=self.table, Key=self._key(client_id, subscription_id))

    def set_enabled(self, client_id: str, subscription_id: str, enabled: bool, reason: str) -> None:
        """Disable (with the reason shown on the key's page) or enable the endpoint again."""
        if enabled:
            expression = "SET Enabled = :e REMOVE DisabledReason, FailingSince"
            values: dict[str, Any] = {":e": True}
        else:
            expression = "SET Enabled = :e, DisabledReason = :r"
            values = {":e": False, ":r": reason}
        self._update(client_id, subscription_id, expression, values)

    def note_success(self, client_id: str, subscription_id: str) -> None:
        """A delivery got through: the endpoint is not failing."""
        self._update(
            client_id,
            subscription_id,
            "SET LastSuccessAt = :t REMOVE FailingSince",
            {":t": _now_iso()},
        )

    def note_failure(self, client_id: str, subscription_id: str, now: float) -> float | None:
        """A delivery failed: when the endpoint started failing (kept from its first failure
        since the last success); None if the endpoint is gone."""
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key=self._key(client_id, subscription_id),
                UpdateExpression="SET FailingSince = if_not_exists(FailingSince, :now)",
                ConditionExpression="attribute_exists(PK)",
                # DynamoDB's serializer takes Decimal, not float.
                ExpressionAttributeValues=serialize({":now": Decimal(str(round(now, 3)))}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return float(deserialize(response["Attributes"])["FailingSince"])

    def _update(
        self, client_id: str, subscription_id: str, expression: str, values: Mapping[str, Any]
    ) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(client_id, subscription_id),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeValues=serialize(values),
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    @staticmethod
    def _key(client_id: str, subscription_id: str) -> dict[str, Any]:
        return {"PK": {"S": f"CLIENT#{client_id}"}, "SK": {"S": f"SUB#{subscription_id}"}}

    # -- Events and attempts ---------------------------------------------------------------

    def save_event(self, subscription_id: str, event: Mapping[str, Any]) -> None:
        """Keep the event as sent to this endpoint (the same bytes every time, resends too)."""
        self.client.put_item(
            TableName=self.table,
            Item=serialize(
                {
                    "PK": f"SUB#{subscription_id}",
                    "SK": f"EVT#{event['EventId']}",
                    "EventId": event["EventId"],
                    "OrderId": event["OrderId"],
                    "Type": event["Type"],
                    "Body": event_body(event).decode(),
                    "ExpiresAt": int(time.time()) + KEEP_DAYS * 86400,
                }
            ),
        )

    def event(self, subscription_id: str, event_id: str) -> dict[str, Any] | None:
        """An event kept for this endpoint, or None."""
        response = self.client.get_item(
            TableName=self.table,
            Key={"PK": {"S": f"SUB#{subscription_id}"}, "SK": {"S": f"EVT#{event_id}"}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return json.loads(deserialize(item)["Body"]) if item else None

    def record_attempt(
        self,
        subscription_id: str,
        event: Mapping[str, Any],
        *,
        attempt: int,
        status_code: int | None,
        latency_ms: int,
        error: str | None,
        outcome: str,
    ) -> None:
        """One attempt's record: shown newest first on the key's page."""
        at = _now_iso()
        item = {
            "PK": f"SUB#{subscription_id}",
            "SK": f"ATT#{at}#{event['EventId']}#{attempt}#{uuid.uuid4().hex[:6]}",
            "At": at,
            "EventId": event["EventId"],
            "OrderId": event["OrderId"],
            "Type": event["Type"],
            "Sequence": event.get("Sequence", 0),
            "Attempt": attempt,
            "StatusCode": status_code,
            "LatencyMs": latency_ms,
            "Error": error,
            "Outcome": outcome,
            "ExpiresAt": int(time.time()) + KEEP_DAYS * 86400,
        }
        self.client.put_item(
            TableName=self.table,
            Item=serialize({k: v for k, v in item.items() if v is not None}),
        )

    def attempts(self, subscription_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The endpoint's latest attempts, newest first."""
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :att)",
            ExpressionAttributeValues={
                ":pk": {"S": f"SUB#{subscription_id}"},
                ":att": {"S": "ATT#"},
            },
            ScanIndexForward=False,
            Limit=limit,
        )
        return [deserialize(i) for i in response.get("Items", [])]


def delivery_message(
    subscription: Subscription,
    event_id: str,
    *,
    attempt: int = 0,
    first_attempt_at: float | None = None,
    due_at: float | None = None,
    resend: bool = False,
) -> dict[str, Any]:
    """The delivery queue's message: which event to which endpoint, and where its retries are."""
    message: dict[str, Any] = {
        "ClientId": subscription.client_id,
        "SubscriptionId": subscription.subscription_id,
        "EventId": event_id,
        "Attempt": attempt,
    }
    if first_attempt_at is not None:
        message["FirstAttemptAt"] = first_attempt_at
    if due_at is not None:
        message["DueAt"] = due_at
    if resend:
        message["Resend"] = True
    return message

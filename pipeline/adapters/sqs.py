"""SQS queues: sending, receiving, releasing and measuring the messages of one queue."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pipeline import aws
from pipeline.ports import QueueMessage


class SqsQueue:
    """Any one SQS queue: the Orders queue, its DLQ and the stream-failure queue are all this."""

    def __init__(self, queue_url: str, client: Any | None = None):
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        """The SQS client given, or the shared one."""
        return self._client or aws.client("sqs")

    def send_json(
        self, body: Mapping[str, Any], *, attributes: Mapping[str, str] | None = None
    ) -> str:
        """Send one JSON message; return its MessageId."""
        kwargs: dict[str, Any] = {"QueueUrl": self.queue_url, "MessageBody": json.dumps(body)}
        if attributes:
            kwargs["MessageAttributes"] = {
                k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
            }
        return self.client.send_message(**kwargs)["MessageId"]

    def send_raw(self, body: str, *, attributes: Mapping[str, Any] | None = None) -> str:
        """Send a body as it is (replay keeps the original bytes); return the new MessageId."""
        kwargs: dict[str, Any] = {"QueueUrl": self.queue_url, "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = dict(attributes)
        return self.client.send_message(**kwargs)["MessageId"]

    def receive(
        self, *, max_messages: int = 10, wait_seconds: int = 0, visibility: int | None = None
    ) -> list[QueueMessage]:
        """Up to `max_messages` messages; they stay invisible for the visibility timeout."""
        kwargs: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": wait_seconds,
            "AttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if visibility is not None:
            kwargs["VisibilityTimeout"] = visibility
        response = self.client.receive_message(**kwargs)
        return [
            QueueMessage(m["MessageId"], m["ReceiptHandle"], m["Body"], m.get("Attributes", {}))
            for m in response.get("Messages", [])
        ]

    def delete(self, message: QueueMessage) -> None:
        """Remove a handled message."""
        self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message.receipt_handle)

    def release(self, messages: Iterable[QueueMessage]) -> int:
        """Make received messages visible again at once (a peek must not hide them); return
        how many SQS accepted. A message it refuses shows again after its visibility timeout.
        """
        pending = list(messages)
        released = 0
        for start in range(0, len(pending), 10):  # ChangeMessageVisibilityBatch takes 10 at most
            entries = [
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                for i, m in enumerate(pending[start : start + 10])
            ]
            response = self.client.change_message_visibility_batch(
                QueueUrl=self.queue_url, Entries=entries
            )
            released += len(response.get("Successful", []))
        return released

    def depth(self) -> dict[str, int]:
        """Visible, in-flight and delayed message counts."""
        attrs = self.client.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return {
            "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        }

    def drain(self, *, visibility: int = 60) -> Iterator[QueueMessage]:
        """Every message visible now, each hidden for `visibility` seconds while handled."""
        while True:
            batch = self.receive(max_messages=10, wait_seconds=0, visibility=visibility)
            if not batch:
                return
            yield from batch

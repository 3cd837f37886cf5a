"""SQS queues: sending, receiving, releasing and measuring the messages of one queue."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pipeline import aws
from pipeline.ports import QueueMessage

# SendMessageBatch / DeleteMessageBatch take at most 10 entries. A batch's bodies are kept under
# 256 KiB together, the limit SQS had for years (it is 1 MiB since 2025): a queue created with
# the old MaximumMessageSize still refuses more, and a smaller batch costs only one more call.
BATCH_ENTRIES = 10
BATCH_BYTES = 262_144
# The shared client reads an answer for at most SDK_READ_TIMEOUT_S: a long poll must end well
# before, or it is retried as timed out (three times over) instead of coming back empty.
LONG_POLL_MAX_S = aws.SDK_READ_TIMEOUT_S - 2


def _batches(bodies: Sequence[str]) -> Iterator[range]:
    """Index ranges of `bodies` that fit one SendMessageBatch call each."""
    start = 0
    while start < len(bodies):
        end, size = start, 0
        while end < len(bodies) and end - start < BATCH_ENTRIES:
            length = len(bodies[end].encode())
            if end > start and size + length > BATCH_BYTES:
                break
            size += length
            end += 1
        yield range(start, end)
        start = end


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

    def send_raw_batch(self, bodies: Sequence[str]) -> list[str | None]:
        """Send bodies as they are, up to 10 a call; return each one's new MessageId, or None
        where SQS refused that entry. A call that fails as a whole raises (ClientError)."""
        ids: list[str | None] = [None] * len(bodies)
        for span in _batches(bodies):
            response = self.client.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "MessageBody": bodies[i]} for i in span],
            )
            for entry in response.get("Successful", []):
                ids[int(entry["Id"])] = entry["MessageId"]
        return ids

    def send_json_batch(
        self, messages: Sequence[tuple[Mapping[str, Any], Mapping[str, str]]]
    ) -> list[str | None]:
        """Send (JSON body, string attributes) pairs, up to 10 a call; return each one's
        MessageId, or None where SQS refused that entry. A call that fails as a whole raises."""
        bodies = [json.dumps(body) for body, _ in messages]
        # What counts against a batch's size: each body and its attributes' names and values.
        sized = [
            body + "".join(k + v for k, v in attributes.items())
            for body, (_, attributes) in zip(bodies, messages, strict=True)
        ]
        ids: list[str | None] = [None] * len(bodies)
        for span in _batches(sized):
            entries = []
            for i in span:
                entry: dict[str, Any] = {"Id": str(i), "MessageBody": bodies[i]}
                if messages[i][1]:
                    entry["MessageAttributes"] = {
                        k: {"DataType": "String", "StringValue": v}
                        for k, v in messages[i][1].items()
                    }
                entries.append(entry)
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for entry in response.get("Successful", []):
                ids[int(entry["Id"])] = entry["MessageId"]
        return ids

    def receive(
        self, *, max_messages: int = 10, wait_seconds: int = 0, visibility: int | None = None
    ) -> list[QueueMessage]:
        """Up to `max_messages` messages; they stay invisible for the visibility timeout.

        A short poll (`wait_seconds=0`) asks only some of SQS's servers and may come back empty
        while messages wait; a long poll asks them all and waits up to `wait_seconds` (SQS
        allows 20; the shared client's read timeout, LONG_POLL_MAX_S) for one to be visible.
        Either way, empty is only believed once `depth` agrees."""
        if self._client is None and wait_seconds > LONG_POLL_MAX_S:
            raise ValueError(
                f"a long poll of {wait_seconds} s outlasts the SDK's read timeout: "
                f"at most {LONG_POLL_MAX_S} s"
            )
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

    def delete_batch(self, messages: Sequence[QueueMessage]) -> int:
        """Remove handled messages, up to 10 a call; return how many SQS accepted."""
        deleted = 0
        for start in range(0, len(messages), BATCH_ENTRIES):
            entries = [
                {"Id": str(i), "ReceiptHandle": m.receipt_handle}
                for i, m in enumerate(messages[start : start + BATCH_ENTRIES])
            ]
            response = self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            deleted += len(response.get("Successful", []))
        return deleted

    def purge(self) -> None:
        """Delete every message (PurgeQueue: once a minute; SQS finishes it within 60 s)."""
        self.client.purge_queue(QueueUrl=self.queue_url)

    @property
    def name(self) -> str:
        """The queue's name: the last part of its URL (what staff type to confirm a purge)."""
        return self.queue_url.rstrip("/").rsplit("/", 1)[-1]

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

    def drain(self, *, visibility: int = 60, wait_seconds: int = 1) -> Iterator[QueueMessage]:
        """Every message visible now, each hidden for `visibility` seconds while handled.

        Long polls, and an empty receive ends it only when the queue's depth shows nothing
        visible either (a receive can miss messages that are there)."""
        misses = 0
        while True:
            batch = self.receive(max_messages=10, wait_seconds=wait_seconds, visibility=visibility)
            if batch:
                misses = 0
                yield from batch
                continue
            misses += 1
            if misses > 3 or self.depth()["visible"] == 0:
                return

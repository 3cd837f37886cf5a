"""The MessageQueue contract: FakeQueue and SqsQueue (on a moto SQS server) alike."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError

from pipeline.adapters.sqs import SqsQueue
from pipeline.ports import QueueMessage
from tests.fakes import FakeQueue

pytestmark = pytest.mark.integration

Queue = FakeQueue | SqsQueue


def _ids(messages: list) -> list[str]:
    return [m.message_id for m in messages]


def test_a_sent_message_is_received_as_sent_and_gone_once_deleted(message_queue: Queue) -> None:
    # Given a JSON message with attributes and a raw body
    queue = message_queue
    body = {"OrderId": "o-1", "Attempt": 2, "Note": "é"}
    json_id = queue.send_json(body, attributes={"OrderId": "o-1"})
    raw_id = queue.send_raw('{"OrderId":"o-2"}  ', attributes=None)

    # When the queue is read
    received = queue.receive(max_messages=10, visibility=30)

    # Then both come back under the ids the sends returned, the JSON as json.dumps wrote it
    # and the raw body byte for byte
    assert json_id != raw_id
    bodies = {m.message_id: m.body for m in received}
    assert bodies == {json_id: json.dumps(body), raw_id: '{"OrderId":"o-2"}  '}
    # And once deleted they are gone for good
    for message in received:
        queue.delete(message)
    assert queue.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert queue.receive(max_messages=10, visibility=0) == []


def test_a_received_message_is_hidden_for_its_visibility_timeout(
    message_queue: Queue, pass_time: Callable[[float], None]
) -> None:
    # Given a message received with a one-second visibility timeout
    queue = message_queue
    message_id = queue.send_json({"OrderId": "o-1"})
    (first,) = queue.receive(max_messages=10, visibility=1)

    # When the queue is read again at once, then after the timeout
    hidden = queue.receive(max_messages=10, visibility=30)
    pass_time(1.5)
    again = queue.receive(max_messages=10, visibility=30)

    # Then it is hidden at first and handed out again once the timeout ran out
    assert first.message_id == message_id
    assert hidden == []
    assert _ids(again) == [message_id]
    assert again[0].receive_count == 2


def test_release_makes_received_messages_visible_at_once(message_queue: Queue) -> None:
    # Given two messages received with a long visibility timeout
    queue = message_queue
    sent = [queue.send_json({"OrderId": f"o-{n}"}) for n in range(2)]
    received = queue.receive(max_messages=10, visibility=300)
    assert sorted(_ids(received)) == sorted(sent)

    # When they are released
    released = queue.release(received)

    # Then both are visible again now, and handed out again
    assert released == 2
    assert queue.depth()["visible"] == 2
    assert sorted(_ids(queue.receive(max_messages=10, visibility=300))) == sorted(sent)


def test_release_counts_only_the_messages_still_in_the_queue(message_queue: Queue) -> None:
    # Given two received messages, one of which is then deleted
    queue = message_queue
    for n in range(2):
        queue.send_json({"OrderId": f"o-{n}"})
    kept, deleted = queue.receive(max_messages=10, visibility=300)
    queue.delete(deleted)

    # When both are released
    released = queue.release([kept, deleted])

    # Then only the one still there is counted and comes back
    assert released == 1
    assert _ids(queue.receive(max_messages=10, visibility=300)) == [kept.message_id]
    assert queue.release([]) == 0


def test_every_receive_counts_and_keeps_the_first_receive_time(message_queue: Queue) -> None:
    # Given a message
    queue = message_queue
    queue.send_json({"OrderId": "o-1"})

    # When it is received and released three times
    looks = []
    for _ in range(3):
        (message,) = queue.receive(max_messages=1, visibility=300)
        looks.append(message)
        queue.release([message])

    # Then its receive count goes 1, 2, 3; sent and first-received times stay; each look has
    # its own receipt handle
    assert [m.receive_count for m in looks] == [1, 2, 3]
    for name in ("SentTimestamp", "ApproximateFirstReceiveTimestamp"):
        assert len({m.attributes[name] for m in looks}) == 1
        assert int(looks[0].attributes[name]) > 1_700_000_000_000  # epoch milliseconds
    assert int(looks[0].attributes["ApproximateFirstReceiveTimestamp"]) >= int(
        looks[0].attributes["SentTimestamp"]
    )
    assert len({m.receipt_handle for m in looks}) == 3


def test_depth_counts_visible_and_in_flight_messages(message_queue: Queue) -> None:
    # Given three messages, two of them received
    queue = message_queue
    for n in range(3):
        queue.send_json({"OrderId": f"o-{n}"})
    assert queue.depth() == {"visible": 3, "in_flight": 0, "delayed": 0}
    received = queue.receive(max_messages=2, visibility=300)

    # When the queue is measured, then one received message deleted
    during = queue.depth()
    queue.delete(received[0])
    after = queue.depth()

    # Then receives move messages to in flight, deletes remove them
    assert len(received) == 2
    assert during == {"visible": 1, "in_flight": 2, "delayed": 0}
    assert after == {"visible": 1, "in_flight": 1, "delayed": 0}


@pytest.mark.parametrize("max_messages", [0, 11])
def test_a_receive_asks_for_one_to_ten_messages(message_queue: Queue, max_messages: int) -> None:
    # Given a message
    message_queue.send_json({"OrderId": "o-1"})

    # When more than ten, or none, are asked for
    with pytest.raises(ClientError) as raised:
        message_queue.receive(max_messages=max_messages)

    # Then SQS refuses the call, and the message is still there to receive
    assert raised.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert len(message_queue.receive(max_messages=10, visibility=30)) == 1


# -- Batches, long polls and purge (what DLQ replay relies on) --------------------------------


@pytest.fixture
def clock(message_queue: Queue) -> Callable[[], float]:
    """The queue's time: the fake's own clock, or the wall clock for the real queue."""
    if isinstance(message_queue, FakeQueue):
        return lambda: message_queue.now
    return time.time


def _receive_all(queue: Queue) -> list:
    received: list = []
    while batch := queue.receive(max_messages=10, wait_seconds=1, visibility=300):
        received.extend(batch)
    return received


def test_a_batch_send_returns_an_id_per_body_in_order_and_splits_past_ten(
    message_queue: Queue,
) -> None:
    # Given twelve bodies, more than one SendMessageBatch call takes
    queue = message_queue
    bodies = [json.dumps({"OrderId": f"o-{n}"}) for n in range(12)]

    # When they are sent as a batch
    ids = queue.send_raw_batch(bodies)

    # Then each has its own new id, and each is in the queue under that id, byte for byte
    assert len(ids) == 12 and None not in ids and len(set(ids)) == 12
    assert {m.message_id: m.body for m in _receive_all(queue)} == dict(
        zip(ids, bodies, strict=True)
    )
    # And an empty batch sends nothing and makes no call that SQS would refuse
    assert queue.send_raw_batch([]) == []


def test_a_json_batch_send_keeps_bodies_and_attributes_and_splits_past_ten(
    message_queue: Queue,
) -> None:
    # Given twelve JSON bodies, each with an OrderId attribute
    queue = message_queue
    messages = [({"OrderId": f"o-{n}", "Attempt": 1}, {"OrderId": f"o-{n}"}) for n in range(12)]

    # When they are sent as a batch
    ids = queue.send_json_batch(messages)

    # Then each has its own new id and is in the queue as sent, with its attribute
    assert len(ids) == 12 and None not in ids and len(set(ids)) == 12
    if isinstance(queue, SqsQueue):
        found = _received_with_attributes(queue)
    else:
        attributes = {m.message_id: m.string_attributes for m in queue.sent}
        found = {m.message_id: (m.body, attributes[m.message_id]) for m in _receive_all(queue)}
    assert {i: (json.loads(body), a) for i, (body, a) in found.items()} == dict(
        zip(ids, messages, strict=True)
    )
    # And an empty batch sends nothing
    assert queue.send_json_batch([]) == []


def _received_with_attributes(queue: SqsQueue) -> dict:
    """Id -> (body, string attributes) of every visible message, straight from SQS."""
    found: dict = {}
    while got := queue.client.receive_message(
        QueueUrl=queue.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
        WaitTimeSeconds=1, VisibilityTimeout=300,
    ).get("Messages", []):  # fmt: skip
        for m in got:
            attributes = {k: v["StringValue"] for k, v in m["MessageAttributes"].items()}
            found[m["MessageId"]] = (m["Body"], attributes)
    return found


def test_a_batch_delete_counts_what_it_removed(message_queue: Queue) -> None:
    # Given twelve received messages
    queue = message_queue
    queue.send_raw_batch([f"body-{n}" for n in range(12)])
    received = _receive_all(queue)

    # When they are deleted in one go, then once more, then with a handle never issued
    deleted = queue.delete_batch(received)
    again = queue.delete_batch(received[:2])
    bogus = queue.delete_batch([QueueMessage("m-x", "not-a-receipt-handle", "b", {})])

    # Then all twelve are gone; a second delete of a deleted message is accepted, a bogus
    # handle is not
    assert deleted == 12
    assert queue.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert again == 2
    assert bogus == 0


def test_a_long_poll_waits_for_a_hidden_message_to_come_back(
    message_queue: Queue, clock: Callable[[], float]
) -> None:
    # Given a message hidden for one second
    queue = message_queue
    message_id = queue.send_json({"OrderId": "o-1"})
    queue.receive(max_messages=1, visibility=1)
    assert queue.depth() == {"visible": 0, "in_flight": 1, "delayed": 0}

    # When the queue is long-polled for up to five seconds
    started = clock()
    batch = queue.receive(max_messages=10, wait_seconds=5, visibility=30)

    # Then the poll returns it once it is visible again, well before the wait is over
    assert _ids(batch) == [message_id]
    assert 0.5 <= clock() - started < 4.5


def test_a_long_poll_of_an_empty_queue_waits_its_time_and_returns_nothing(
    message_queue: Queue, clock: Callable[[], float]
) -> None:
    # Given an empty queue
    # When it is long-polled for one second
    started = clock()
    batch = message_queue.receive(max_messages=10, wait_seconds=1)

    # Then nothing comes back, after the whole second
    assert batch == []
    assert clock() - started >= 0.9


def test_purge_removes_visible_and_in_flight_messages_once_a_minute(message_queue: Queue) -> None:
    # Given two messages, one of them in flight
    queue = message_queue
    queue.send_raw_batch(["a", "b"])
    queue.receive(max_messages=1, visibility=300)
    assert queue.depth() == {"visible": 1, "in_flight": 1, "delayed": 0}

    # When the queue is purged, then purged again at once
    queue.purge()
    with pytest.raises(ClientError) as raised:
        queue.purge()

    # Then both messages are gone, and SQS refuses a second purge within the minute
    assert queue.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert raised.value.response["Error"]["Code"] == "AWS.SimpleQueueService.PurgeQueueInProgress"

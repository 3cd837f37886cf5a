"""moto's SQS with the local runtime's speed-ups answers as moto does: counts, retention, FIFO."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.local import moto_fast


@pytest.fixture
def sqs() -> Iterator[Any]:
    moto_fast.apply()
    with mock_aws():
        yield boto3.client(
            "sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )


def _counts(sqs: Any, url: str) -> tuple[int, int, int]:
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (
        int(found["ApproximateNumberOfMessages"]),
        int(found["ApproximateNumberOfMessagesNotVisible"]),
        int(found["ApproximateNumberOfMessagesDelayed"]),
    )


def test_depths_count_visible_in_flight_and_delayed_messages(sqs: Any):
    url = sqs.create_queue(QueueName="depths")["QueueUrl"]
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=60)
    assert len(got["Messages"]) == 2
    # 3 visible, 2 in flight, 1 delayed
    assert _counts(sqs, url) == (3, 2, 1)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got["Messages"][0]["ReceiptHandle"])
    assert _counts(sqs, url) == (3, 1, 1)


def test_a_message_past_its_retention_period_is_never_received(sqs: Any):
    url = sqs.create_queue(QueueName="retention", Attributes={"MessageRetentionPeriod": "60"})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="old")
    from moto.sqs.models import sqs_backends

    queue = sqs_backends["123456789012"]["us-east-1"].get_queue("retention")
    queue._messages[0].sent_timestamp = int((time.time() - 120) * 1000)
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    # while a message inside the period is received
    fresh = sqs.create_queue(QueueName="fresh", Attributes={"MessageRetentionPeriod": "60"})
    sqs.send_message(QueueUrl=fresh["QueueUrl"], MessageBody="new")
    got = sqs.receive_message(QueueUrl=fresh["QueueUrl"], MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["new"]


def test_fifo_content_based_deduplication_still_applies(sqs: Any):
    url = sqs.create_queue(
        QueueName="dedup.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    for _ in range(3):
        sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    assert _counts(sqs, url)[0] == 1


@pytest.mark.parametrize(
    "host",
    [
        None,
        "moto_api",
        "sqs",
        "sqs.us-east-1.amazonaws.com",
        "monitoring.us-east-1.amazonaws.com",
        "logs.eu-west-1.amazonaws.com",
        "127.0.0.1:5000",
        "s3.amazonaws.com",
    ],
)
def test_the_service_of_a_host_is_the_one_moto_finds(sqs: Any, host: str | None):
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    kept = DomainDispatcherApplication.get_backend_for_host
    dispatcher = DomainDispatcherApplication(create_app=lambda service: None)
    expected = kept.moto_original(dispatcher, host)
    assert kept(dispatcher, host) == expected
    assert kept(dispatcher, host) == expected  # and again, from what was kept

"""Fixtures of the operations portal's tests: staff and other users, clients, a clean DLQ."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from operations.models import AuditLogEntry
from pipeline import aws
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.adapters.sqs import SqsQueue
from pipeline.local.emulators import LOCAL_CREDENTIALS, LOCAL_REGION

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def dead_endpoint(refused_port: int) -> str:
    """A loopback address where nothing listens: what a stopped local runtime looks like."""
    return f"http://127.0.0.1:{refused_port}"


@pytest.fixture(autouse=True)
def no_real_aws(monkeypatch: pytest.MonkeyPatch, dead_endpoint: str) -> None:
    """Every AWS call of these tests goes to loopback: fake credentials (so the SDK never asks
    an instance-metadata address for real ones) and, unless a fixture sets its own endpoints,
    a dead local one."""
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(key)
    for key, value in {**LOCAL_CREDENTIALS, "AWS_REGION": LOCAL_REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", LOCAL_REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint)
    aws.reset_clients()


@pytest.fixture
def store(store: DynamoStore, monkeypatch: pytest.MonkeyPatch, dead_endpoint: str) -> DynamoStore:
    """The shared `store` (DynamoDB Local), with every other AWS service at a dead loopback
    endpoint: the shared fixture drops AWS_ENDPOINT_URL, which would mean real AWS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint)
    aws.reset_clients()
    return store


@pytest.fixture
def staff_user(db: None) -> Any:
    """A staff member (is_staff, not a superuser)."""
    return get_user_model().objects.create_user(
        username=f"staff-{uuid.uuid4().hex[:6]}", password=PASSWORD, is_staff=True
    )


@pytest.fixture
def staff(staff_user: Any) -> Client:
    """A test client logged in as the staff member."""
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def customer_user(db: None) -> Any:
    """A logged-in user who is not staff."""
    return get_user_model().objects.create_user(username="shopper", password=PASSWORD)


def last_audit() -> AuditLogEntry:
    """The newest audit entry."""
    return AuditLogEntry.objects.order_by("-at", "-id").first()  # type: ignore[return-value]


def sqs_client(env: dict[str, str]) -> Any:
    """A plain SQS client on the runtime's moto (for setting up and checking queues)."""
    return boto3.client(
        "sqs",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def drain(queue: SqsQueue) -> list[str]:
    """Receive and delete everything visible in `queue`; return the bodies."""
    bodies = []
    while True:
        batch = queue.receive(max_messages=10, visibility=30)
        if not batch:
            return bodies
        for message in batch:
            bodies.append(message.body)
            queue.delete(message)


@pytest.fixture
def dlq(runtime_env: dict[str, str]) -> Iterator[SqsQueue]:
    """The runtime's dead-letter queue, emptied before and after the test."""
    queue = SqsQueue(runtime_env["ORDERS_DLQ_URL"])
    drain(queue)
    yield queue
    drain(queue)


@pytest.fixture
def scratch_queue(
    runtime_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[SqsQueue]:
    """A queue of this test's own standing in for the Orders queue (ORDERS_QUEUE_URL points at
    it), so replayed messages can be counted before any consumer takes them."""
    sqs = sqs_client(runtime_env)
    url = sqs.create_queue(QueueName=f"ops-target-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    monkeypatch.setenv("ORDERS_QUEUE_URL", url)
    yield SqsQueue(url)
    sqs.delete_queue(QueueUrl=url)

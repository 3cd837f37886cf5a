"""The one place AWS clients are made; endpoints and region come from the SDK's own variables."""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config

# Local runs point the SDK's standard variables (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_DYNAMODB, ...)
# at the emulators; boto3 reads them itself, so nothing here knows whether it is local.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=3,
    read_timeout=15,
    max_pool_connections=64,
)

_lock = threading.Lock()
_clients: dict[tuple[str, ...], Any] = {}


def client(service: str) -> Any:
    """A shared, thread-safe boto3 client for `service`.

    Clients are cached by service, region and endpoint, so a Lambda reuses its connections
    across invocations while a test that changes the environment gets a fresh client.
    """
    key = (
        service,
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "",
        os.environ.get("AWS_ACCESS_KEY_ID", ""),
        *sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL")),
    )
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:  # boto3's default session is not thread-safe while it builds clients
        found = _clients.get(key)
        if found is None:
            found = boto3.session.Session().client(service, config=_CONFIG)
            _clients[key] = found
        return found


def reset_clients() -> None:
    """Forget every cached client (tests that swap endpoints call this)."""
    with _lock:
        _clients.clear()

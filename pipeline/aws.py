"""The one place AWS clients are made, and the one place their timeouts and retries are set."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config

# The pipeline's clients (functions, portal, scripts): a call stuck on the network fails within
# seconds and is retried, and the worst case of one call (every attempt timing out, plus the
# backoff between them: worst_call_seconds) stays inside every function's timeout and inside
# API Gateway's 29 s, so a caller always gets an answer it can act on (tests/unit/
# test_sdk_budget.py). The pool serves a threaded portal.
SDK_ATTEMPTS = 3
SDK_CONNECT_TIMEOUT_S = 2
SDK_READ_TIMEOUT_S = 5
# botocore's standard retry mode sleeps at most 2**n seconds (with jitter) before retry n+1.
_STANDARD_BACKOFF_CAP_S = 20
DEFAULT_CONFIG = Config(
    # total_max_attempts counts the first try; botocore's max_attempts would count retries only.
    retries={"mode": "standard", "total_max_attempts": SDK_ATTEMPTS},
    connect_timeout=SDK_CONNECT_TIMEOUT_S,
    read_timeout=SDK_READ_TIMEOUT_S,
    max_pool_connections=64,
)


def worst_call_seconds() -> float:
    """The longest one call with DEFAULT_CONFIG can take before it raises: every attempt
    connecting and reading for as long as allowed, and the longest backoff between them."""
    attempts = SDK_ATTEMPTS
    backoff = sum(min(_STANDARD_BACKOFF_CAP_S, 2**n) for n in range(attempts - 1))
    return attempts * (SDK_CONNECT_TIMEOUT_S + SDK_READ_TIMEOUT_S) + backoff


# The local runtime's clients of its emulators (pipeline/local/runtime.py): each one is shared
# by the runtime's pollers and servers, hence the larger pool; botocore's 60 s timeouts.
LOCAL_RUNTIME_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32
)
# botocore's own defaults (standard retries, 60 s timeouts, 10 connections), as the local
# tools' one-off clients (table set-up, benchmarks, the launcher's metrics) have always had.
SDK_DEFAULT_CONFIG = Config()

_lock = threading.Lock()
_clients: dict[tuple[str, ...], Any] = {}
# new_client's session: one for all of them, as building a session costs ~60 ms (its own copy
# of the service models) and the clients it makes are given their credentials.
_session: boto3.session.Session | None = None


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
            # A session of its own: a session keeps the credentials it first found, and the
            # key changes when the environment's do. Endpoints come from AWS_ENDPOINT_URL*
            # (local runs point them at the emulators), so nothing here knows it is local.
            found = boto3.session.Session().client(service, config=DEFAULT_CONFIG)
            _clients[key] = found
        return found


def warm(services: tuple[str, ...]) -> None:
    """Make the shared clients of `services` now (a server's workers, as they start): building
    one loads its service model, ~0.1 s each, which a worker's first requests would pay
    otherwise. No request is sent; a client that cannot be made yet (no region set) is left
    for its first use to report."""
    for service in services:
        try:
            client(service)
        except Exception:  # the first real call raises it again, where it is handled
            continue


def new_client(
    service: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    credentials: Mapping[str, str] | None = None,
    config: Config = DEFAULT_CONFIG,
) -> Any:
    """A boto3 client of its own (not cached) for an explicit endpoint, region or credentials.

    `credentials` holds AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, as an environment does;
    without it (and for whatever else is not given) the SDK's usual lookup applies.
    """
    global _session
    with _lock:  # a session is not thread-safe while it builds clients
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(
            service,
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"] if credentials else None,
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"] if credentials else None,
            config=config,
        )


def reset_clients() -> None:
    """Forget every cached client and session (tests that swap endpoints call this)."""
    global _session
    with _lock:
        _clients.clear()
        _session = None

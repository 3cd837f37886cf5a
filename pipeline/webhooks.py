"""Webhooks of API clients: the events an order's status change makes, their signature, the
endpoint rules (https, no private addresses) and the retry schedule. No AWS, no Django."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pipeline.domain import Order
from pipeline.statuses import FINAL_STATUSES, OrderStatus

# The headers of a delivery. The signature header is "t=<unix seconds>,v1=<hex HMAC-SHA256 of
# '<t>.<body>'>": the timestamp is signed with the body, so a receiver that refuses old ones
# (5 minutes is the advice) refuses a replayed request, and nothing else can be altered.
SIGNATURE_HEADER = "Webhook-Signature"
EVENT_ID_HEADER = "Webhook-Id"
TIMESTAMP_HEADER = "Webhook-Timestamp"
REPLAY_TOLERANCE_S = 300

# Event types: one per status an order can move to.
EVENT_PREFIX = "order."
ALL_EVENTS: tuple[str, ...] = tuple(f"{EVENT_PREFIX}{s.lower()}" for s in OrderStatus)
# What a new endpoint gets unless staff ask for every transition: the statuses an order stops in.
DEFAULT_EVENTS: tuple[str, ...] = tuple(
    f"{EVENT_PREFIX}{s.lower()}" for s in OrderStatus if s in FINAL_STATUSES
)

# What an event shows of the order: GET /orders/{id}'s fields (orders_api.serializers'
# ORDER_FIELDS, checked equal by a test), never the payment token or the client id.
PUBLIC_ORDER_FIELDS: tuple[str, ...] = (
    "OrderId", "CustomerName", "Items", "Status", "StatusReason", "OrderDate", "LastUpdated",
    "StatusHistory", "ShippingAddress", "Reservation", "Payment", "Shipment", "Rejection",
)  # fmt: skip

# A receiver gets this long to answer in full; a slow or hanging one cannot hold a worker.
DELIVERY_TIMEOUT_S = 5.0
# At most this much of a receiver's answer is read (and kept, for the attempt's record).
MAX_RESPONSE_BYTES = 1024
# SQS holds a message back at most 15 minutes: longer waits are chained (WebhookDelivery.due).
SQS_MAX_DELAY_S = 900
# A receiver failing every delivery this long is disabled (and alarmed on, and noted).
DISABLE_AFTER_DAYS = 3

SECRET_PREFIX = "whsec_"
MAX_URL_LENGTH = 2048


class InvalidEndpoint(ValueError):
    """An endpoint URL that may not receive webhooks, and why."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: the n-th failure waits base * 2**(n-1), at most max_delay, until
    `window` seconds after the first attempt; then the delivery is dead-lettered."""

    base_s: float = 30.0
    max_delay_s: float = 3600.0
    window_s: float = 26 * 3600.0

    def delay_after(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failed attempt."""
        return min(self.max_delay_s, self.base_s * 2 ** max(0, failures - 1))

    def gives_up(self, first_attempt_at: float, now: float, failures: int) -> bool:
        """Whether the next attempt would fall outside the window."""
        return now + self.delay_after(failures) - first_attempt_at > self.window_s

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryPolicy:
        """The policy the template sets (WEBHOOK_RETRY_*), or the defaults."""
        default = cls()
        return cls(
            base_s=float(env.get("WEBHOOK_RETRY_BASE_SECONDS") or default.base_s),
            max_delay_s=float(env.get("WEBHOOK_RETRY_MAX_DELAY_SECONDS") or default.max_delay_s),
            window_s=float(env.get("WEBHOOK_RETRY_WINDOW_SECONDS") or default.window_s),
        )


def new_secret() -> str:
    """A signing secret: shown to staff once, stored encrypted."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, now: float, tolerance: int = REPLAY_TOLERANCE_S
) -> bool:
    """What a receiver does: the header's timestamp is recent and one v1 matches the body."""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k.strip() == "t"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit():
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return any(k.strip() == "v1" and hmac.compare_digest(v.strip(), expected) for k, v in parts)


# -- Events -------------------------------------------------------------------------------------


def event_type(status: OrderStatus | str) -> str:
    """The event type of a move to `status`."""
    return f"{EVENT_PREFIX}{str(status).lower()}"


def event_id(order_id: str, sequence: int) -> str:
    """The same id for the same change of the same order, however often it is delivered."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"order-event:{order_id}:{sequence}"))


def status_change_event(old: Order | None, new: Order) -> dict[str, Any] | None:
    """The event for a write that changed the order's status (None for any other write).

    Sequence is the change's place in the order's StatusHistory (1 for PENDING on arrival): a
    receiver orders one order's events by it and drops one it has seen (same EventId).
    """
    if old is not None and old.status == new.status and len(old.history) == len(new.history):
        return None
    sequence = max(1, len(new.history))
    shown = new.as_json()
    previous = None
    if old is not None:
        previous = str(old.status)
    elif len(new.history) > 1:
        previous = str(new.history[-2].status)
    return {
        "EventId": event_id(new.order_id, sequence),
        "Type": event_type(new.status),
        "OrderId": new.order_id,
        "Sequence": sequence,
        "Status": str(new.status),
        "PreviousStatus": previous,
        "Reason": new.status_reason,
        "Time": new.history[-1].at if new.history else new.last_updated,
        "Order": {name: shown[name] for name in PUBLIC_ORDER_FIELDS if name in shown},
    }


def event_body(event: Mapping[str, Any]) -> bytes:
    """The bytes sent (and signed): compact JSON, keys in a fixed order."""
    return json.dumps(event, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def wants(events: Iterable[str], event: Mapping[str, Any]) -> bool:
    """Whether an endpoint subscribed to `events` gets this event."""
    return event["Type"] in set(events)


def check_events(events: Iterable[str]) -> tuple[str, ...]:
    """The chosen event types, each known, in a stable order; InvalidEndpoint otherwise."""
    chosen = set(events)
    unknown = sorted(chosen - set(ALL_EVENTS))
    if unknown:
        raise InvalidEndpoint(f"unknown event types: {', '.join(unknown)}")
    if not chosen:
        raise InvalidEndpoint("choose at least one event type")
    return tuple(e for e in ALL_EVENTS if e in chosen)


# -- Endpoints ----------------------------------------------------------------------------------

LOCAL_HOSTS = ("127.0.0.1", "localhost")
Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def forbidden_address(address: str) -> bool:
    """An address a production webhook may not reach: private, loopback, link-local (the
    instance metadata service), multicast, reserved or unspecified."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


@dataclass(frozen=True)
class Endpoint:
    """A checked endpoint URL, and the addresses it may be reached at."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def check_endpoint(url: str, *, allow_local: bool, resolver: Resolver = resolve) -> Endpoint:
    """The endpoint if webhooks may go to `url`, else InvalidEndpoint saying why.

    https only; http and private addresses only for 127.0.0.1 and localhost, and only when
    `allow_local` (local settings). Checked when staff add it and again before each delivery
    (DNS may have changed): the delivery connects to the addresses checked here.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidEndpoint("enter the endpoint's URL")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidEndpoint(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidEndpoint("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidEndpoint(f"not a valid URL ({exc})") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise InvalidEndpoint("the URL has no host")
    if parts.username or parts.password:
        raise InvalidEndpoint("the URL may not carry a user name or password")
    if parts.fragment:
        raise InvalidEndpoint("the URL may not have a #fragment")
    local = host in LOCAL_HOSTS
    if parts.scheme == "http":
        if not (local and allow_local):
            raise InvalidEndpoint("the URL must start with https://")
    elif parts.scheme != "https":
        raise InvalidEndpoint("the URL must start with https://")
    port = port or (443 if parts.scheme == "https" else 80)
    if local and allow_local:
        return Endpoint(url, parts.scheme, host, port, ("127.0.0.1",))
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise InvalidEndpoint(f"{host} does not resolve ({exc})") from None
    if not addresses:
        raise InvalidEndpoint(f"{host} does not resolve")
    bad = [a for a in addresses if forbidden_address(a)]
    if bad:
        raise InvalidEndpoint(
            f"{host} resolves to a private, loopback or link-local address ({', '.join(bad)})"
        )
    return Endpoint(url, parts.scheme, host, port, tuple(addresses))

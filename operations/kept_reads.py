"""Slow, slowly changing dashboard reads kept in Redis for a few seconds, shared by every process.

A value kept here carries the time it was read, so the page can say how old it is. Only
values are kept, never errors: a read that fails is tried again by the next view. Without
Redis nothing is kept (every view reads afresh) and Redis is left alone for a minute, so a
dead Redis costs one short timeout a minute, not one per view.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

log = logging.getLogger(__name__)

KEY_PREFIX = "ops:kept:"
REDIS_TIMEOUT_S = 0.25
REDIS_RETRY_S = 60.0

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}
_redis_down_until = 0.0


@dataclass(frozen=True)
class Kept:
    """A value and when it was read (epoch seconds), by this view or an earlier one."""

    value: Any
    read_at: float


def _redis() -> redis.Redis | None:
    if time.monotonic() < _redis_down_until:
        return None
    url = settings.REDIS_URL
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
            )
            _clients[url] = client
        return client


def _redis_failed(exc: Exception) -> None:
    global _redis_down_until
    _redis_down_until = time.monotonic() + REDIS_RETRY_S
    log.warning("Redis unavailable: dashboard reads are not kept (%s)", exc)


def _stored(raw: bytes | None) -> Kept | None:
    """What another view stored, or None (nothing, or not something this module wrote)."""
    if raw is None:
        return None
    try:
        stored = json.loads(raw)
        return Kept(stored["value"], float(stored["at"]))
    except (ValueError, TypeError, KeyError):
        return None


def kept(key: str, read: Callable[[], Any], *, seconds: float) -> Kept:
    """`read()`'s value as any process stored it within the last `seconds`, or read now and
    stored. The value must be JSON. `seconds` <= 0 reads every time."""
    if seconds <= 0:
        return Kept(read(), time.time())
    client = _redis()
    name = f"{KEY_PREFIX}{key}"
    if client is not None:
        try:
            stored = _stored(client.get(name))
        except redis.RedisError as exc:
            _redis_failed(exc)
            client = None
        else:
            # The key expires on its own; the time check also covers a window shortened since
            # it was stored.
            if stored is not None and time.time() - stored.read_at < seconds:
                return stored
    found = Kept(read(), time.time())
    if client is not None:
        try:
            client.set(
                name,
                json.dumps({"at": found.read_at, "value": found.value}),
                px=max(1, int(seconds * 1000)),
            )
        except redis.RedisError as exc:
            _redis_failed(exc)
    return found


def reset_for_tests() -> None:
    """Forget the Redis clients and any Redis failure (tests that switch Redis)."""
    global _redis_down_until
    with _lock:
        _clients.clear()
        _redis_down_until = 0.0

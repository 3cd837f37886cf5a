"""A per-process cache of API keys found by their raw value, so a busy client's requests do not
each cost a database query and a hash.

Every change to a key or a plan (revoke, expiry, plan, delete: a save through the ORM, as the
admin does) raises a version number in Redis; a cached key is used only while Redis still
holds the version it was cached under, so every process refuses a revoked key at its next
request. The version rides in one Redis script with the address's failed-authentication count
and the key's token (RedisRateLimiter.gate): one round trip for all three. Without Redis there
is no cache (every request reads the database); a change the ORM's signals do not see (a bulk
UPDATE, SQL by hand) reaches every process within API_KEY_CACHE_SECONDS (0 turns the cache off).
Only keys that were found are cached, so a key created a moment ago works at once; revoked and
expired keys are refused on every request, from the cached row.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from orders_api.models import ClientAPIKey, UsagePlan
from orders_api.ratelimit import Decision
from orders_api.throttling import FailureThrottle, limiter

log = logging.getLogger(__name__)

# The cache holds at most this many keys; when full it is emptied (simple, and a process
# serving more distinct keys than this gains little from caching them anyway).
MAX_KEYS = 10_000

_lock = threading.Lock()
# digest of the raw key -> (when cached, the keys' version then, the key)
_keys: dict[str, tuple[float, int, ClientAPIKey]] = {}


def _digest(raw_key: str) -> str:
    # The raw key is a secret: only its digest is kept in memory as the cache's index.
    return hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class KeyCheck:
    """What check_key found: the address's standing, the key, and maybe its token."""

    address: Decision  # the failed-authentication throttle's word on the client address
    key: ClientAPIKey | None  # None: no such key, or not looked up (the address is blocked)
    usage: Decision | None = None  # the key's plan, when its token was taken in the same call


def check_key(
    raw_key: str, *, failures: FailureThrottle, address: str, take_token: bool
) -> KeyCheck:
    """The address's failed authentications, then the key `raw_key` names (revoked and expired
    ones included), from the cache while its entry is fresh and no key or plan changed since.

    With `take_token`, a fresh cached key that is still usable also has one token taken from
    its plan (usage): the version, the address and the token cost one Redis round trip. A key
    read from the database has no token taken here (usage None): the caller takes it.
    """
    ttl = settings.API_KEY_CACHE_SECONDS
    digest = _digest(raw_key)
    now = time.monotonic()
    hit = None
    if ttl > 0:
        with _lock:
            hit = _keys.get(digest)
        if hit is not None and now - hit[0] >= ttl:
            hit = None
    take = None
    if take_token and hit is not None and not (hit[2].revoked or hit[2].has_expired):
        take = (hit[2].client_id, hit[2].limits, hit[1])
    gate = None
    if ttl > 0 or failures.enabled:
        gate = limiter().gate(
            version_key=settings.API_KEY_CACHE_VERSION_KEY,
            failures=(failures.scope, address, failures.limit) if failures.enabled else None,
            take=take,
            prefix=settings.RATE_LIMIT_KEY_PREFIX,
        )
    if not failures.enabled:
        standing = Decision(True, "ok")
    elif gate is None:
        standing = failures.judged(Decision(False, "unavailable"))
    else:
        standing = failures.judged(gate.address)
    if not standing.allowed:
        return KeyCheck(standing, None)
    version = gate.version if gate is not None and ttl > 0 else None
    if version is None:
        return KeyCheck(standing, ClientAPIKey.objects.find(raw_key))
    if hit is not None and hit[1] == version:
        return KeyCheck(standing, hit[2], gate.usage if gate is not None else None)
    key = ClientAPIKey.objects.find(raw_key)
    if key is not None:
        with _lock:
            if len(_keys) >= MAX_KEYS:
                _keys.clear()
            _keys[digest] = (now, version, key)
    return KeyCheck(standing, key)


def changed(**_: Any) -> None:
    """A key or plan changed: forget this process's keys and tell every other process."""
    with _lock:
        _keys.clear()
    if limiter().keys_version_bump(settings.API_KEY_CACHE_VERSION_KEY) is None:
        log.warning(
            "API key cache: Redis is unavailable, other processes may use the old key or plan "
            "for up to %.0f s",
            settings.API_KEY_CACHE_SECONDS,
        )


for model in (ClientAPIKey, UsagePlan):
    post_save.connect(changed, sender=model, dispatch_uid=f"key-cache-{model.__name__}-save")
    post_delete.connect(changed, sender=model, dispatch_uid=f"key-cache-{model.__name__}-delete")

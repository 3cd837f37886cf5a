"""A per-process cache of API keys found by their raw value, so a busy client's requests do not
each cost a database query and a hash.

Every change to a key or a plan (revoke, expiry, plan, delete: a save through the ORM, as the
admin does) raises a version number in Redis; a cached key is used only while Redis still
holds the version it was cached under, so every process refuses a revoked key at its next
request. The check is one Redis GET beside the limiter's own calls. Without Redis there is no
cache (every request reads the database); a change the ORM's signals do not see (a bulk
UPDATE, SQL by hand) reaches every process within API_KEY_CACHE_SECONDS (0 turns the cache off).
Only keys that were found are cached, so a key created a moment ago works at once; revoked and
expired keys are refused on every request, from the cached row.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from orders_api.models import ClientAPIKey, UsagePlan
from orders_api.throttling import limiter

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


def find_key(raw_key: str) -> ClientAPIKey | None:
    """The key `raw_key` names (revoked and expired ones included), or None; from the cache
    while its entry is fresh and no key or plan changed since."""
    ttl = settings.API_KEY_CACHE_SECONDS
    version = limiter().keys_version(settings.API_KEY_CACHE_VERSION_KEY) if ttl > 0 else None
    if version is None:
        return ClientAPIKey.objects.find(raw_key)
    digest = _digest(raw_key)
    now = time.monotonic()
    with _lock:
        hit = _keys.get(digest)
    if hit is not None and hit[1] == version and now - hit[0] < ttl:
        return hit[2]
    key = ClientAPIKey.objects.find(raw_key)
    if key is not None:
        with _lock:
            if len(_keys) >= MAX_KEYS:
                _keys.clear()
            _keys[digest] = (now, version, key)
    return key


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

"""A short-lived per-process cache of API keys found by their raw value, so a busy client's
requests do not each cost a database query and a hash.

Only keys that were found are cached (a key created a moment ago works at once), for at most
API_KEY_CACHE_SECONDS; revoked and expired keys are still refused on every request, from the
cached row. A change to a key (revoke, plan, expiry, delete) clears this process's cache at
once; other processes see it within API_KEY_CACHE_SECONDS (0 turns the cache off).
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from orders_api.models import ClientAPIKey, UsagePlan

# The cache holds at most this many keys; when full it is emptied (simple, and a process
# serving more distinct keys than this gains little from caching them anyway).
MAX_KEYS = 10_000

_lock = threading.Lock()
_keys: dict[str, tuple[float, ClientAPIKey]] = {}


def _digest(raw_key: str) -> str:
    # The raw key is a secret: only its digest is kept in memory as the cache's index.
    return hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()


def find_key(raw_key: str) -> ClientAPIKey | None:
    """The key `raw_key` names (revoked and expired ones included), or None; from the cache
    while it is fresh."""
    ttl = settings.API_KEY_CACHE_SECONDS
    if ttl <= 0:
        return ClientAPIKey.objects.find(raw_key)
    digest = _digest(raw_key)
    now = time.monotonic()
    with _lock:
        hit = _keys.get(digest)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    key = ClientAPIKey.objects.find(raw_key)
    if key is not None:
        with _lock:
            if len(_keys) >= MAX_KEYS:
                _keys.clear()
            _keys[digest] = (now, key)
    return key


def clear(**_: Any) -> None:
    """Forget every cached key (a key or plan changed)."""
    with _lock:
        _keys.clear()


for model in (ClientAPIKey, UsagePlan):
    post_save.connect(clear, sender=model, dispatch_uid=f"key-cache-{model.__name__}-save")
    post_delete.connect(clear, sender=model, dispatch_uid=f"key-cache-{model.__name__}-delete")

"""Per-key limits in Redis: a token bucket and a daily quota, checked and taken in one Lua call."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from string import Template
from typing import Any

import redis

from orders_api.models import Limits

log = logging.getLogger(__name__)

# One hash per key holds the bucket (tokens, ts in microseconds) and the day's count (day, used).
# The script runs atomically in Redis, so every process and Lambda instance shares one bucket;
# Redis's own clock is the only clock, so instances with skewed clocks cannot cheat the limits.
# $bucket and $usage name the two hashes, $rate, $burst and $quota the plan's numbers: the same
# body serves TOKEN_BUCKET_LUA and GATE_LUA. It leaves verdict, wait, used and tokens set.
_BUCKET_BODY = """
local rate = tonumber($rate)
local burst = tonumber($burst)
local quota = tonumber($quota)
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local day = math.floor(tonumber(t[1]) / 86400)
local state = redis.call('HMGET', $bucket, 'tokens', 'ts', 'day', 'used')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
local used = tonumber(state[4]) or 0
if tonumber(state[3]) ~= day then used = 0 end
if tokens == nil or ts == nil then
  tokens = burst
  ts = now_us
end
tokens = math.min(burst, tokens + math.max(0, now_us - ts) / 1000000 * rate)
local verdict = 'ok'
local wait = 0
if quota > 0 and used >= quota then
  verdict = 'quota'
  wait = ((day + 1) * 86400 * 1000000 - now_us) / 1000000
elseif tokens < 1 then
  verdict = 'rate'
  wait = (1 - tokens) / rate
else
  tokens = tokens - 1
  used = used + 1
end
redis.call('HSET', $bucket, 'tokens', string.format('%.6f', tokens),
  'ts', string.format('%.0f', now_us), 'day', string.format('%d', day), 'used', used)
redis.call('EXPIRE', $bucket, 172800)
-- The key's usage for the admin: requests and refusals per UTC day, and its last request;
-- days older than USAGE_DAYS are dropped as it goes, so the hash stays small.
if $usage then
  local field = verdict == 'ok' and ':r' or ':t'
  redis.call('HINCRBY', $usage, day .. field, 1)
  redis.call('HSET', $usage, 'last', string.format('%.0f', now_us))
  redis.call('HDEL', $usage, (day - 15) .. ':r', (day - 15) .. ':t')
  redis.call('EXPIRE', $usage, 1382400)
end
"""
# TIME before a write needs effect replication on Redis before 5 (the default from 5 on).
_REPLICATE = "if redis.replicate_commands then redis.replicate_commands() end\n"

TOKEN_BUCKET_LUA = (
    _REPLICATE
    + Template(_BUCKET_BODY).substitute(
        bucket="KEYS[1]", usage="KEYS[2]", rate="ARGV[1]", burst="ARGV[2]", quota="ARGV[3]"
    )
    + "return {verdict, string.format('%.6f', wait), used, string.format('%.6f', tokens)}\n"
)

# What one API request asks before its view runs, in one round trip: the API keys' version (is
# this process's cached key still good?), the client address's failed authentications (refused
# before anything else), and, only when the address may go on and the cached key is still the
# current one, a token from that key's bucket. KEYS: the version, the failure counter, the
# bucket, the usage hash; ARGV: the failure limit (0: not checked), the version the key was
# cached under (-1: none, take no token), then the plan's rate, burst and quota. The keys sit
# in different hash slots: one Redis node (REDIS_URL) serves them all.
GATE_LUA = (
    _REPLICATE
    + """
local version = tonumber(redis.call('GET', KEYS[1]) or '0')
local limit = tonumber(ARGV[1])
local failures = 0
local ttl = -2
if limit > 0 then
  failures = tonumber(redis.call('GET', KEYS[2]) or '0')
  ttl = redis.call('PTTL', KEYS[2])
  if failures >= limit then return {version, failures, ttl} end
end
if tonumber(ARGV[2]) ~= version then return {version, failures, ttl} end
"""
    + Template(_BUCKET_BODY).substitute(
        bucket="KEYS[3]", usage="KEYS[4]", rate="ARGV[3]", burst="ARGV[4]", quota="ARGV[5]"
    )
    + "return {version, failures, ttl, verdict, string.format('%.6f', wait), used}\n"
)

# Days of usage kept per key (the key's page shows 14).
USAGE_DAYS = 14

# Failed authentications of one client address, in a window that starts at its first failure:
# INCR and the window's expiry in one atomic step, so racing failures all count and the key
# always expires (a crash between INCR and EXPIRE cannot leave a counter that never resets).
FAILURE_RECORD_LUA = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

# The address's failure count and the milliseconds left in its window, read together.
FAILURE_READ_LUA = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
return {count, redis.call('PTTL', KEYS[1])}
"""


@dataclass(frozen=True)
class Decision:
    """What the limiter said about one request."""

    allowed: bool
    # "ok", "rate" (bucket empty), "quota" (day used up), "blocked" (too many failed
    # authentications from the address), "unavailable" (no Redis)
    reason: str
    retry_after: float = 0.0  # seconds until a request can succeed
    used_today: int | None = None

    @property
    def retry_after_header(self) -> str:
        """Retry-After in whole seconds, never 0 (a client retrying at once would be refused)."""
        return str(max(1, math.ceil(self.retry_after)))


@dataclass(frozen=True)
class Gate:
    """What the limiter said before a request's key was looked up (RedisRateLimiter.gate)."""

    version: int  # the API keys' version
    address: Decision  # the client address's failed authentications: "ok" or "blocked"
    usage: Decision | None  # the key's token, when one was asked for and could be taken


class RedisRateLimiter:
    """The shared limiter; when Redis fails it reports `unavailable` and stays away from Redis
    for `retry_seconds`, so an outage costs one timeout per process, not one per request."""

    def __init__(self, url: str, *, timeout: float, retry_seconds: float):
        self.url = url
        self.retry_seconds = retry_seconds
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
        )
        self._script = self._redis.register_script(TOKEN_BUCKET_LUA)
        self._failures_read = self._redis.register_script(FAILURE_READ_LUA)
        self._failures_record = self._redis.register_script(FAILURE_RECORD_LUA)
        self._gate = self._redis.register_script(GATE_LUA)
        self._down_until = 0.0

    def hit(self, client_id: str, limits: Limits, *, prefix: str) -> Decision:
        """Take one request from the client's bucket and day, or say why not."""
        # The hash tag {…} keeps one client's key on one cluster slot.
        result = self._run(
            self._script,
            [f"{prefix}ratelimit:{{{client_id}}}", _usage_key(prefix, client_id)],
            [limits.rate_limit, limits.burst_limit, limits.daily_quota or 0],
        )
        if result is None:
            return Decision(False, "unavailable", self.retry_seconds)
        verdict, wait, used, _tokens = result
        reason = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
        return Decision(reason == "ok", reason, float(wait), int(used))

    def failures_check(self, scope: str, address: str, *, limit: int, prefix: str) -> Decision:
        """Whether `address` may try to authenticate in `scope` ("api-key", "login"): refused
        ("blocked") once it has `limit` failures in its current window. Reads, never counts."""
        result = self._run(self._failures_read, [_failure_key(prefix, scope, address)], [])
        if result is None:
            return Decision(False, "unavailable", self.retry_seconds)
        count, ttl_ms = int(result[0]), int(result[1])
        if count >= limit:
            return Decision(False, "blocked", max(ttl_ms, 0) / 1000, count)
        return Decision(True, "ok", 0.0, count)

    def failures_record(
        self, scope: str, address: str, *, window: float, prefix: str
    ) -> int | None:
        """Count one failed authentication of `address`; its window opens at the first failure
        and lasts `window` seconds. The count so far, or None when Redis is unavailable."""
        window_ms = max(1, round(window * 1000))
        key = _failure_key(prefix, scope, address)
        result = self._run(self._failures_record, [key], [window_ms])
        return None if result is None else int(result[0])

    def failures_reset(self, scope: str, address: str, *, prefix: str) -> None:
        """Forget an address's failures (tests, and staff unblocking an address by hand)."""
        self._redis.delete(_failure_key(prefix, scope, address))

    def gate(
        self,
        *,
        version_key: str,
        failures: tuple[str, str, int] | None,
        take: tuple[str, Limits, int] | None,
        prefix: str,
    ) -> Gate | None:
        """GATE_LUA in one round trip: the keys' version under `version_key`; with `failures`
        (scope, address, limit), that address's failed authentications as failures_check
        decides them; with `take` (client id, limits, cached version), one token as hit takes
        it, only if the address is not blocked and the version is still the cached one. None
        when Redis is unavailable."""
        scope, address, limit = failures if failures else ("", "", 0)
        client_id, limits, cached = take if take else ("", None, -1)
        keys = [version_key, _failure_key(prefix, scope, address)]
        args: list[Any] = [limit, cached]
        if limits is not None:
            keys += [f"{prefix}ratelimit:{{{client_id}}}", _usage_key(prefix, client_id)]
            args += [limits.rate_limit, limits.burst_limit, limits.daily_quota or 0]
        result = self._run(self._gate, keys, args)
        if result is None:
            return None
        version, count, ttl_ms = int(result[0]), int(result[1]), int(result[2])
        blocked = limit > 0 and count >= limit
        if blocked:
            address_decision = Decision(False, "blocked", max(ttl_ms, 0) / 1000, count)
        else:
            address_decision = Decision(True, "ok", 0.0, count)
        usage = None
        if len(result) > 3:
            verdict, wait, used = result[3:6]
            reason = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
            usage = Decision(reason == "ok", reason, float(wait), int(used))
        return Gate(version, address_decision, usage)

    def keys_version(self, name: str) -> int | None:
        """The API keys' version, kept in Redis under `name`: a number every change to a key
        or plan raises (None when Redis is unavailable)."""
        return self._call(lambda: int(self._redis.get(name) or 0))

    def keys_version_bump(self, name: str) -> int | None:
        """Raise the API keys' version (a key or plan changed); None when Redis is down."""
        return self._call(lambda: int(self._redis.incr(name)))

    def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run one script on its keys; None (and Redis left alone for a while) on failure."""
        return self._call(lambda: script(keys=keys, args=args))

    def _call(self, call: Any) -> Any:
        """One call to Redis; None (and Redis left alone for a while) on failure."""
        if time.monotonic() < self._down_until:
            return None
        try:
            return call()
        except redis.RedisError as exc:
            self._down_until = time.monotonic() + self.retry_seconds
            log.warning(
                "rate limiter: Redis at %s failed (%s); not asking it again for %.0f s",
                self._redis.connection_pool.connection_kwargs.get("host", self.url),
                exc,
                self.retry_seconds,
            )
            return None

    def reset(self, client_id: str, *, prefix: str) -> None:
        """Forget a client's bucket and day count (tests, and staff after a plan change)."""
        self._redis.delete(f"{prefix}ratelimit:{{{client_id}}}")

    def usage(self, client_ids: list[str], *, prefix: str) -> dict[str, KeyUsage] | None:
        """Each key's usage (one round trip for all of them), or None if Redis is unavailable:
        the admin says so instead of showing zeros."""
        if time.monotonic() < self._down_until:
            return None
        try:
            pipe = self._redis.pipeline(transaction=False)
            for client_id in client_ids:
                pipe.hgetall(_usage_key(prefix, client_id))
            rows = pipe.execute()
        except redis.RedisError as exc:
            log.warning("rate limiter: Redis failed reading usage (%s)", exc)
            return None
        return {cid: KeyUsage.from_hash(row) for cid, row in zip(client_ids, rows, strict=True)}

    @property
    def redis(self) -> Any:
        """The underlying client."""
        return self._redis


def _usage_key(prefix: str, client_id: str) -> str:
    # The same hash tag as the bucket's: one slot, so the script may touch both.
    return f"{prefix}usage:{{{client_id}}}"


@dataclass(frozen=True)
class KeyUsage:
    """A key's use as the limiter counted it: last request, and per UTC day (days since the
    epoch) the requests it saw and how many of them it refused (429)."""

    last_used: datetime | None
    requests: dict[int, int]
    throttled: dict[int, int]

    @classmethod
    def from_hash(cls, row: dict[bytes, bytes]) -> KeyUsage:
        """Read the usage hash the token-bucket script writes."""
        last = row.get(b"last")
        requests: dict[int, int] = {}
        throttled: dict[int, int] = {}
        for field, value in row.items():
            day, _, kind = field.decode().partition(":")
            if kind == "r":
                requests[int(day)] = requests.get(int(day), 0) + int(value)
            elif kind == "t":
                throttled[int(day)] = int(value)
                requests[int(day)] = requests.get(int(day), 0) + int(value)
        return cls(
            datetime.fromtimestamp(int(last) / 1e6, UTC) if last else None, requests, throttled
        )

    def today(self) -> tuple[int, int]:
        """(requests, 429s) of the current UTC day."""
        day = today_number()
        return self.requests.get(day, 0), self.throttled.get(day, 0)

    def history(self, days: int = USAGE_DAYS) -> list[tuple[date, int, int]]:
        """(day, requests, 429s) for the last `days` UTC days, oldest first, zeros included."""
        last = today_number()
        return [
            (date.fromordinal(EPOCH_ORDINAL + d), self.requests.get(d, 0), self.throttled.get(d, 0))
            for d in range(last - days + 1, last + 1)
        ]


EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def today_number() -> int:
    """Today (UTC) as days since the epoch, as the script counts."""
    return int(time.time() // 86400)


def _failure_key(prefix: str, scope: str, address: str) -> str:
    return f"{prefix}authfail:{scope}:{{{address}}}"


_lock = threading.Lock()
_limiters: dict[tuple[str, float, float], RedisRateLimiter] = {}


def get_limiter(url: str, *, timeout: float, retry_seconds: float) -> RedisRateLimiter:
    """One limiter (and connection pool) per process and Redis URL, made on first use."""
    key = (url, timeout, retry_seconds)
    limiter = _limiters.get(key)
    if limiter is None:
        with _lock:
            limiter = _limiters.get(key)
            if limiter is None:
                limiter = RedisRateLimiter(url, timeout=timeout, retry_seconds=retry_seconds)
                _limiters[key] = limiter
    return limiter

"""Speed-ups for moto's SQS, applied in the local runtime's moto server: same answers, less work.

moto (5.x) recomputes a queue's attributes, three scans over every message, for each message it
sends, and reads the retention period through them for each message a receive looks at; each
scan asks the clock through datetime arithmetic per message. With thousands of messages waiting
(a DLQ replay, a backlog) a receive took a second. Here the clock is time.time(), a receive
reads the retention period directly, the three counts share one pass, and sending a message
skips the counts it never uses. The server also found each request's service anew, under one
lock: a listing of moto's ~200 package directories (an isdir each) and hundreds of URL patterns
per request; the answer depends only on the host, so it is kept per host.
tests/unit/test_moto_fast.py checks the answers are moto's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

_EPOCH = datetime(1970, 1, 1)
_local = threading.local()


def _unix_time(dt: datetime | None = None) -> float:
    if dt is None:
        return time.time()
    return (dt - _EPOCH).total_seconds()


def _unix_time_millis(dt: datetime | None = None) -> float:
    return _unix_time(dt) * 1000.0


def _counts(queue: Any) -> tuple[int, int, int]:
    """Visible, delayed and not-visible messages, in one pass with one clock reading."""
    cached = getattr(_local, "counts", None)
    if cached is not None and cached[0] is queue:
        return cached[1]
    now = time.time() * 1000.0
    visible = delayed = hidden = 0
    for message in queue._messages:
        is_visible = now > message.visible_at
        is_delayed = now < message.delayed_until
        visible += is_visible and not is_delayed
        delayed += is_delayed
        hidden += not is_visible
    return visible, delayed, hidden


def apply() -> None:
    """Patch moto's SQS models in this process (idempotent)."""
    import moto.core.utils as core_utils
    from moto.sqs import models

    if getattr(models, "_pipeline_fast", False):
        return
    core_utils.unix_time = _unix_time
    core_utils.unix_time_millis = _unix_time_millis
    models.unix_time = _unix_time
    models.unix_time_millis = _unix_time_millis

    queue_cls = models.Queue
    original_attributes: Callable[[Any], dict[str, Any]] = queue_cls.attributes.fget

    def attributes(self: Any) -> dict[str, Any]:
        if getattr(_local, "skip_counts", False):
            _local.counts = (self, (0, 0, 0))
        else:
            _local.counts = (self, _counts(self))
        try:
            return original_attributes(self)
        finally:
            _local.counts = None

    queue_cls.attributes = property(attributes)
    queue_cls.approximate_number_of_messages = property(lambda self: _counts(self)[0])
    queue_cls.approximate_number_of_messages_delayed = property(lambda self: _counts(self)[1])
    queue_cls.approximate_number_of_messages_not_visible = property(lambda self: _counts(self)[2])

    backend_cls = models.SQSBackend
    original_send: Callable[..., Any] = backend_cls.send_message

    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        # send_message reads only ContentBasedDeduplication from the attributes.
        _local.skip_counts = True
        try:
            return original_send(self, *args, **kwargs)
        finally:
            _local.skip_counts = False

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return retention + message.sent_timestamp / 1000 > time.time()

    backend_cls.send_message = send_message
    _keep_services_per_host()
    backend_cls.is_message_valid_based_on_retention_period = (
        is_message_valid_based_on_retention_period
    )
    models._pipeline_fast = True


def _keep_services_per_host() -> None:
    """Find the service of a request's host once per host (moto's server, this process)."""
    from moto import backends
    from moto.moto_server import werkzeug_app

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    dispatcher = werkzeug_app.DomainDispatcherApplication
    find = dispatcher.get_backend_for_host
    found: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        # Called under the dispatcher's own lock, so the dict needs no lock of its own.
        if host not in found:
            found[host] = find(self, host)
        return found[host]

    get_backend_for_host.moto_original = find  # type: ignore[attr-defined]
    dispatcher.get_backend_for_host = get_backend_for_host

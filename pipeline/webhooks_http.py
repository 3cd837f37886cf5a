"""One webhook POST: to the address that was checked, within one deadline, the answer bounded."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.webhooks import DELIVERY_TIMEOUT_S, MAX_RESPONSE_BYTES, Endpoint


@dataclass(frozen=True)
class AttemptResult:
    """What one delivery attempt got: a status code (None if no answer), latency, error."""

    status_code: int | None
    latency_ms: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer: delivered."""
        return self.status_code is not None and 200 <= self.status_code < 300


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address, not to whatever the name resolves to by now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address, verifying the certificate for the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def post(
    endpoint: Endpoint,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float = DELIVERY_TIMEOUT_S,
) -> AttemptResult:
    """POST `body` to the endpoint; never raises for a network or HTTP failure.

    The whole exchange (connect, send, answer) must end within `timeout`: each socket wait is
    bounded by what is left of it, so a receiver that trickles its answer is cut off too.
    """
    started = time.monotonic()
    deadline = started + timeout
    parts = urlsplit(endpoint.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cls = _PinnedHTTPSConnection if endpoint.scheme == "https" else _PinnedHTTPConnection
    conn = cls(endpoint.host, endpoint.port, endpoint.addresses[0], timeout)

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "order-webhooks/1",
                **headers,
            },
        )
        if conn.sock is not None:
            conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
        response = conn.getresponse()
        read = 0
        while read < MAX_RESPONSE_BYTES:
            if time.monotonic() > deadline:
                raise TimeoutError("the answer took too long")
            if conn.sock is not None:
                conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = response.read1(MAX_RESPONSE_BYTES - read)
            if not chunk:
                break
            read += len(chunk)
        return AttemptResult(response.status, elapsed_ms())
    except TimeoutError:
        return AttemptResult(None, elapsed_ms(), f"timed out after {timeout:g} s")
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        return AttemptResult(None, elapsed_ms(), f"{type(exc).__name__}: {exc}"[:300])
    finally:
        conn.close()

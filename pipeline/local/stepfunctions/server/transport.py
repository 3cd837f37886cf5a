"""The Step Functions JSON 1.0 protocol over HTTP on 127.0.0.1: POST / with X-Amz-Target."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

# One API operation: its JSON parameters in, its JSON result out (or ApiError).
Operation = Callable[[dict[str, Any]], dict[str, Any]]


class ApiError(Exception):
    """An error the API reports as HTTP 400 with `__type` = `code`."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def dispatch(
    operations: Mapping[str, Operation], target: str, body: bytes
) -> tuple[int, dict[str, Any]]:
    """Answer one API call: (HTTP status, JSON body), errors shaped as AWS shapes them."""
    prefix, _, operation = target.partition(".")
    handler = operations.get(operation) if prefix == "AWSStepFunctions" else None
    if handler is None:
        message = f"operation {target or '(no X-Amz-Target)'} is not supported locally"
        return 400, {"__type": "UnknownOperationException", "message": message}
    try:
        params = json.loads(body or b"{}")
        if not isinstance(params, dict):
            raise ValueError("the body must be a JSON object")
    except ValueError as exc:
        return 400, {"__type": "SerializationException", "message": str(exc)}
    try:
        return 200, handler(params)
    except ApiError as exc:
        return 400, {"__type": exc.code, "message": exc.message}
    except Exception:
        log.exception("%s failed", operation)
        return 500, {"__type": "InternalFailure", "message": f"{operation} failed"}


class Dispatcher(Protocol):
    """What the HTTP server hands each request to."""

    def dispatch(self, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one API call: (HTTP status, JSON body)."""
        ...


class HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that passes every request to `api`."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's backlog of 5 drops connections when a burst of clients connects at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: Dispatcher):
        super().__init__(address, _Handler)
        self.api = api


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalStepFunctions/1.0"
    # Headers and body go out in two writes; with Nagle on, keep-alive clients stall ~40 ms.
    disable_nagle_algorithm = True
    server: HTTPServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path not in ("/", ""):
            self._send(404, {"__type": "UnknownOperationException", "message": "POST / only"})
            return
        status, payload = self.server.api.dispatch(self.headers.get("X-Amz-Target", ""), body)
        self._send(status, payload)

    def do_GET(self) -> None:
        self._send(400, {"__type": "UnknownOperationException", "message": "use POST /"})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

"""Lambda's Invoke API over HTTP on 127.0.0.1, so tools and tests can call local functions."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from pipeline.local.lambdas import FunctionError, LambdaService

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


class LambdaApiServer:
    """Answers `lambda.invoke(FunctionName=..., Payload=...)` (RequestResponse and Event)."""

    def __init__(self, service: LambdaService, port: int = 0):
        self._service = service
        handler = self._handler_class()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The bound port."""
        return self._httpd.server_address[1]

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        service = self._service

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # the runtime logs invocations itself

            def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                match = _INVOKE_PATH.match(self.path.split("?", 1)[0])
                if not match:
                    self._reply(404, {"Type": "User", "message": f"no route {self.path}"})
                    return
                name = unquote(match.group(1))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    payload = json.loads(raw) if raw else {}
                except json.JSONDecodeError:
                    self._reply(
                        400,
                        {"Type": "User", "message": "Could not parse request body into json"},
                        {"x-amzn-ErrorType": "InvalidRequestContentException"},
                    )
                    return
                try:
                    function = service.get(name)
                except FunctionError as exc:
                    self._reply(
                        404,
                        {"Type": "User", "Message": exc.message},
                        {"x-amzn-ErrorType": "ResourceNotFoundException"},
                    )
                    return
                if self.headers.get("X-Amz-Invocation-Type") == "Event":
                    threading.Thread(target=_quietly, args=(function.invoke, payload)).start()
                    self._reply(202, None)
                    return
                try:
                    result = function.invoke(payload)
                except FunctionError as exc:
                    self._reply(200, exc.payload, {"X-Amz-Function-Error": "Unhandled"})
                    return
                self._reply(200, result, {"X-Amz-Executed-Version": "$LATEST"})

        return Handler


def _quietly(invoke: Any, payload: Any) -> None:
    # An asynchronous invocation's error is in the function's own log lines.
    with contextlib.suppress(FunctionError):
        invoke(payload)

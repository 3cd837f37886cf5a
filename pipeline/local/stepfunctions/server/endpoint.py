"""StepFunctionsServer: the local endpoint's lifecycle, wiring transport, store, API and workers."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from pipeline.local.stepfunctions.asl import Invoke
from pipeline.local.stepfunctions.server.api import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_REGION,
    StepFunctionsApi,
)
from pipeline.local.stepfunctions.server.store import Store
from pipeline.local.stepfunctions.server.transport import HOST, HTTPServer, dispatch
from pipeline.local.stepfunctions.server.workers import ExecutionWorkers

log = logging.getLogger(__name__)


class StepFunctionsServer:
    """The Step Functions API over HTTP on 127.0.0.1, running executions in-process."""

    def __init__(
        self,
        *,
        invoke: Invoke,
        db_path: str | os.PathLike[str] | None = None,
        port: int = 0,
        time_scale: float = 1.0,
        max_concurrent_executions: int = 16,
        on_execution_finished: Callable[[dict[str, Any]], None] | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        region: str = DEFAULT_REGION,
    ):
        """Configure the server; nothing listens or runs until start().

        `on_execution_finished(execution)` is called once per execution that ends (succeeded,
        failed, timed out or stopped) with the DescribeExecution fields, dates as datetimes.
        """
        if max_concurrent_executions < 1:
            raise ValueError("max_concurrent_executions must be at least 1")
        self._requested_port = port
        self.account_id = account_id
        self.region = region
        self._store = Store(db_path)
        self._workers = ExecutionWorkers(
            self._store,
            invoke=invoke,
            size=max_concurrent_executions,
            time_scale=time_scale,
            on_finished=on_execution_finished,
        )
        self._api = StepFunctionsApi(
            self._store,
            account_id=account_id,
            region=region,
            submit=self._workers.submit,
            notify=self._workers.notify,
        )
        self._httpd: HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (only after start())."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return self._httpd.server_address[1]

    @property
    def endpoint_url(self) -> str:
        """The URL to give boto3 as endpoint_url."""
        return f"http://{HOST}:{self.port}"

    def state_machine_arn(self, name: str) -> str:
        """The ARN a state machine called `name` has on this server."""
        return self._api.state_machine_arn(name)

    def dispatch(self, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one API call: (HTTP status, JSON body)."""
        return dispatch(self._api.operations, target, body)

    def start(self) -> None:
        """Open the database, resume executions left RUNNING and start listening."""
        if self._httpd is not None:
            raise RuntimeError("the server is already started")
        httpd = HTTPServer((HOST, self._requested_port), self)
        store = self._store
        try:
            with store.lock:
                store.open()
                self._workers.reset()
                resumed = store.resume_running()
        except BaseException:
            httpd.server_close()
            store.accepting = False
            raise
        self._workers.start(resumed)
        self._httpd = httpd
        self._serve_thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="sfn-http", daemon=True
        )
        self._serve_thread.start()
        log.info("local Step Functions on %s (%d resumed)", self.endpoint_url, len(resumed))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening and running; RUNNING executions stay RUNNING for the next start()."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout)
        lives = self._store.stop_accepting()
        # The interpreters leave at their next checkpoint; nothing they report is stored now.
        for live in lives:
            live.stop.set()
        self._workers.stop(timeout)
        self._store.close()

    def __enter__(self) -> StepFunctionsServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

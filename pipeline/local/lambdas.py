"""Local Lambda functions: warm worker processes per function, invoked like Lambda invokes."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pipeline.local.emulators import REPO_ROOT

LogSink = Callable[[str, str], None]  # (function name, line)
InvokeObserver = Callable[[str, float, bool], None]  # (function name, duration s, failed)


class FunctionError(Exception):
    """An invocation failed; carries Lambda's error payload."""

    def __init__(self, error_type: str, message: str, payload: Mapping[str, Any] | None = None):
        self.error_type = error_type
        self.message = message
        self.payload = dict(payload or {"errorType": error_type, "errorMessage": message})
        super().__init__(f"{error_type}: {message}")

    @property
    def cause(self) -> str:
        """The JSON text Step Functions shows as an error's Cause."""
        return json.dumps(self.payload)


@dataclass
class FunctionSpec:
    """What the template says about one function."""

    logical_id: str
    name: str
    arn: str
    handler: str
    runtime: str
    code_dir: Path
    layer_dirs: list[Path]
    timeout: int = 3
    memory: int = 128
    environment: dict[str, str] = field(default_factory=dict)
    log_group: str | None = None
    max_concurrency: int = 8
    # The template's ReservedConcurrentExecutions, when it sets one: Lambda never runs more
    # at once, so the local runtime gives the function no more workers or stream lanes.
    reserved_concurrency: int | None = None


class _Worker:
    """One warm sandbox process."""

    def __init__(self, spec: FunctionSpec, env: Mapping[str, str], log: LogSink | None):
        self.spec = spec
        req_read, self._req_write = os.pipe()
        self._resp_read, resp_write = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.local.lambda_worker", str(req_read), str(resp_write)],
            env=dict(env),
            cwd=spec.code_dir,
            pass_fds=(req_read, resp_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        os.close(req_read)
        os.close(resp_write)
        self._requests = os.fdopen(self._req_write, "w", encoding="utf-8")
        self._buffer = b""
        self._log_thread = threading.Thread(
            target=self._pump, args=(self.proc.stdout, log), daemon=True
        )
        self._log_thread.start()

    def _pump(self, stream: IO[bytes] | None, log: LogSink | None) -> None:
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            if log is not None:
                log(self.spec.name, raw.decode("utf-8", "replace").rstrip("\n"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, payload: Any, timeout: float) -> Any:
        request_id = str(uuid.uuid4())
        deadline = time.time() + timeout
        self._requests.write(
            json.dumps({"payload": payload, "request_id": request_id, "deadline": deadline}) + "\n"
        )
        self._requests.flush()
        while b"\n" not in self._buffer:
            remaining = deadline - time.time()
            if remaining <= 0:
                self.kill()
                raise FunctionError(
                    "Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds"
                )
            ready, _, _ = select.select([self._resp_read], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._resp_read, 65536)
            if not chunk:
                self.kill()
                raise FunctionError(
                    "Runtime.ExitError",
                    f"RequestId: {request_id} Error: Runtime exited with code {self.proc.poll()}",
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply = json.loads(line)
        if reply["ok"]:
            return reply["result"]
        error = reply["error"]
        raise FunctionError(
            error.get("errorType", "Unhandled"), error.get("errorMessage", ""), error
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for closer in (self._requests.close, lambda: os.close(self._resp_read)):
            with contextlib.suppress(OSError):
                closer()

    def close(self) -> None:
        self.stop()
        self.join()

    def stop(self) -> None:
        """Ask the worker to end (EOF on its requests ends its loop); do not wait."""
        with contextlib.suppress(OSError):
            self._requests.close()

    def join(self) -> None:
        """Wait for a stopped worker to end (killing it after 5 s) and free its pipe."""
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            os.close(self._resp_read)


class LocalFunction:
    """A function with a pool of warm workers; one invocation per worker at a time."""

    def __init__(
        self,
        spec: FunctionSpec,
        base_env: Mapping[str, str],
        *,
        log: LogSink | None = None,
        observe: InvokeObserver | None = None,
    ):
        self.spec = spec
        self._env = self._environment(spec, base_env)
        self._log = log
        self._observe = observe
        self._idle: list[_Worker] = []
        self._busy = 0
        self._cond = threading.Condition()
        self._closed = False

    @staticmethod
    def _environment(spec: FunctionSpec, base_env: Mapping[str, str]) -> dict[str, str]:
        # What Lambda sets, then the template's variables; the pipeline layer's code is the
        # repository itself, put on the path where /opt/python would be.
        python_path = [str(spec.code_dir), *(str(d) for d in spec.layer_dirs), str(REPO_ROOT)]
        return {
            **base_env,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group or f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{spec.name}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "LOCAL_LAMBDA_FUNCTION_ARN": spec.arn,
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
            "PYTHONPATH": os.pathsep.join(python_path),
            "PYTHONUNBUFFERED": "1",
            "TZ": "UTC",
            **spec.environment,
        }

    def invoke(self, payload: Any, *, timeout: float | None = None) -> Any:
        """Run the handler with `payload`; return its result or raise FunctionError."""
        worker = self._acquire()
        started = time.monotonic()
        failed = True
        try:
            result = worker.call(payload, timeout or self.spec.timeout)
            failed = False
            return result
        finally:
            if self._observe is not None:
                self._observe(self.spec.name, time.monotonic() - started, failed)
            self._release(worker)

    def prewarm(self) -> None:
        """Start one worker ahead of the first invocation (Lambda's cold start, paid early)."""
        with self._cond:
            if self._closed or self._idle or self._busy:
                return
            self._busy += 1
        worker = None
        try:
            worker = _Worker(self.spec, self._env, self._log)
        finally:
            with self._cond:
                self._busy -= 1
                if worker is not None and not self._closed:
                    self._idle.append(worker)
                elif worker is not None:
                    worker.close()
                self._cond.notify()

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise FunctionError("Lambda.ServiceException", "the local runtime is stopping")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        self._busy += 1
                        return worker
                if self._busy < self.spec.max_concurrency:
                    self._busy += 1
                    break
                self._cond.wait()
        try:
            return _Worker(self.spec, self._env, self._log)
        except Exception:
            with self._cond:
                self._busy -= 1
                self._cond.notify()
            raise

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            self._busy -= 1
            if worker.alive() and not self._closed:
                self._idle.append(worker)
            self._cond.notify()

    def close(self) -> None:
        """Stop every idle worker; busy ones stop when their invocation ends."""
        _stop_all(self.take_idle())

    def take_idle(self) -> list[_Worker]:
        """Refuse new invocations and hand over the idle workers, for the caller to stop."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        return idle


def _stop_all(workers: list[_Worker]) -> None:
    # Every worker is asked first and waited for after, so they end together: one at a time
    # took a second or more each (their interpreters exit one after the other).
    for worker in workers:
        worker.stop()
    for worker in workers:
        worker.join()


class LambdaService:
    """Every local function, found by name or ARN."""

    def __init__(self) -> None:
        self._functions: dict[str, LocalFunction] = {}

    def add(self, function: LocalFunction) -> None:
        """Register a function under its name and ARN."""
        self._functions[function.spec.name] = function
        self._functions[function.spec.arn] = function

    def get(self, name_or_arn: str) -> LocalFunction:
        """The function, by name, ARN, or ARN with a :$LATEST qualifier."""
        key = name_or_arn.removesuffix(":$LATEST")
        try:
            return self._functions[key]
        except KeyError:
            raise FunctionError(
                "Lambda.ResourceNotFoundException", f"Function not found: {name_or_arn}"
            ) from None

    def invoke(self, name_or_arn: str, payload: Any, timeout: float | None = None) -> Any:
        """Invoke a function synchronously."""
        return self.get(name_or_arn).invoke(payload, timeout=timeout)

    def functions(self) -> list[LocalFunction]:
        """Each function once."""
        return list({id(f): f for f in self._functions.values()}.values())

    def close(self) -> None:
        """Stop every worker of every function, all at once."""
        _stop_all([worker for function in self.functions() for worker in function.take_idle()])

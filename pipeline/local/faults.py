"""Test-only fault injection into the local functions' AWS SDK calls (never deployed)."""

from __future__ import annotations

import json
import os
import random
import re
import sys
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

from pipeline import aws
from pipeline.local.emulators import write_json_object

# The kinds of fault, as the command line names them (--fault-kinds).
THROTTLING = "throttling"  # the service refuses the call: HTTP 400, a throttling code
SERVER_ERROR = "server_error"  # the service fails: HTTP 500 / 503
TIMEOUT = "timeout"  # no answer, nothing sent: a connect or read timeout
LOST_RESPONSE = "lost_response"  # sent and applied, then the answer is lost (a read timeout)
KINDS: tuple[str, ...] = (THROTTLING, SERVER_ERROR, TIMEOUT, LOST_RESPONSE)

# How the local runtime tells a worker process to inject faults (pipeline/local/lambda_worker.py
# reads them); nothing outside pipeline/local knows these names.
ENV_RATE = "LOCAL_FAULT_RATE"
ENV_SEED = "LOCAL_FAULT_SEED"
ENV_KINDS = "LOCAL_FAULT_KINDS"
ENV_REPORT_DIR = "LOCAL_FAULT_REPORT_DIR"

REPORT_GLOB = "faults-*.json"
# Ids (orders, executions, messages) in a request body, named in the log line of its fault.
_ID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# What each service answers when it throttles a caller; botocore's standard retry mode treats
# every one of these codes as throttling (retried, with the throttling retry cost).
_THROTTLING_CODES: dict[str, tuple[str, ...]] = {
    "dynamodb": ("ProvisionedThroughputExceededException", "ThrottlingException"),
    "sqs": ("RequestThrottled",),
}
_DEFAULT_THROTTLING_CODES = ("ThrottlingException",)
_SERVER_ERRORS = (("InternalServerError", 500), ("ServiceUnavailable", 503))
# The __type namespaces the JSON services put before an error code (botocore keeps what
# follows '#', so any prefix parses; these are what the services really send).
_JSON_ERROR_NAMESPACES = {
    "dynamodb": "com.amazonaws.dynamodb.v20120810",
    "dynamodb-streams": "com.amazonaws.dynamodb.v20120810",
    "sqs": "com.amazonaws.sqs",
}


@dataclass(frozen=True)
class Fault:
    """One fault to inject into one call: its kind and what the service (or network) does."""

    kind: str
    code: str  # the error code, or the exception's class name for timeouts
    status: int | None = None  # the HTTP status of an error answer

    @property
    def label(self) -> str:
        """`kind:code`, as the report counts it."""
        return f"{self.kind}:{self.code}"


class _Body:
    """The raw body of a made-up HTTP answer (AWSResponse reads `raw.stream()`)."""

    def __init__(self, data: bytes):
        self._data = data

    def stream(self, **_kwargs: Any) -> Iterable[bytes]:
        yield self._data


class FaultInjector:
    """Makes `rate` of the calls of the clients it is installed on fail, with a seeded RNG.

    It hooks botocore's `before-send` event, the last step before the HTTP request leaves, so
    everything botocore does above it (its standard retries, their backoff and retry quota, the
    parsing of an error answer into a ClientError) runs as it would against the real service.
    One seed gives one sequence of decisions: the n-th call an injector sees always gets the
    same fault (the local runtime seeds each worker process apart). Which calls a worker gets
    depends on scheduling, so a run repeats its faults worker by worker, not call for call.
    """

    def __init__(
        self,
        rate: float,
        *,
        seed: int | str = 0,
        kinds: Iterable[str] = KINDS,
        report_path: Path | None = None,
        log: TextIO | None = None,
    ):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {rate}")
        self.kinds = tuple(kinds)
        unknown = set(self.kinds) - set(KINDS)
        if not self.kinds or unknown:
            raise ValueError(f"fault kinds must be some of {', '.join(KINDS)}, got {self.kinds}")
        self.rate = rate
        self.seed = seed
        self.report_path = report_path
        self.log = log
        self.calls = 0
        self.faults: Counter[str] = Counter()
        self.details: Counter[str] = Counter()
        self.operations: Counter[str] = Counter()
        self._rng = random.Random(str(seed))
        self._lock = threading.Lock()
        self._installed: weakref.WeakSet[Any] = weakref.WeakSet()
        self._flushed_calls = -1

    # -- deciding ------------------------------------------------------------------------

    def decide(self, service: str, operation: str) -> Fault | None:
        """Whether this call fails, and how (counted): the next draws of the seeded RNG."""
        with self._lock:
            self.calls += 1
            # Every call draws the same number of values, so a worker's sequence of decisions
            # depends only on the seed and how many calls it made.
            roll, pick, variant = self._rng.random(), self._rng.random(), self._rng.random()
            if roll >= self.rate:
                return None
            kind = self.kinds[int(pick * len(self.kinds))]
            fault = _fault(kind, service, variant)
            self.faults[kind] += 1
            self.details[fault.label] += 1
            self.operations[f"{service}.{operation}:{kind}"] += 1
            return fault

    # -- installing ----------------------------------------------------------------------

    def install(self, client: Any) -> Any:
        """Hook this injector into `client`'s events (once per client); return the client."""
        with self._lock:
            if client in self._installed:
                return client
            self._installed.add(client)
        # Registered on the client's own copy of the event system: other clients are untouched.
        client.meta.events.register("before-send", self._handler_for(client))
        return client

    def patch_client_factory(self, module: ModuleType = aws) -> None:
        """Install on every client `module` (pipeline.aws) makes from now on, in this process.

        The functions' code makes every client through pipeline.aws and looks its factories up
        at call time, so wrapping them here reaches every call a handler makes.
        """
        make_client, make_new_client = module.client, module.new_client

        def client(service: str) -> Any:
            return self.install(make_client(service))

        def new_client(service: str, **kwargs: Any) -> Any:
            return self.install(make_new_client(service, **kwargs))

        module.client = client  # type: ignore[attr-defined]
        module.new_client = new_client  # type: ignore[attr-defined]

    def _handler_for(self, client: Any) -> Callable[..., AWSResponse | None]:
        protocol = client.meta.service_model.resolved_protocol
        # The client's own connection pool: a "lost" answer is a real request on a real
        # connection, exactly as botocore would have sent it.
        endpoint = client._endpoint

        def before_send(request: Any, event_name: str = "", **_kwargs: Any) -> AWSResponse | None:
            # event_name is "before-send.<service id>.<operation>"
            _, service, operation = [*event_name.split(".", 2), "", ""][:3]
            fault = self.decide(service, operation)
            if fault is None:
                return None  # botocore sends the request itself
            self._note(fault, service, operation, request)
            if fault.kind in (THROTTLING, SERVER_ERROR):
                assert fault.status is not None
                return _error_response(request.url, protocol, service, fault.code, fault.status)
            if fault.kind == LOST_RESPONSE:
                endpoint.http_session.send(request)  # the service applies it; its answer is lost
                raise ReadTimeoutError(endpoint_url=request.url)
            if fault.code == ConnectTimeoutError.__name__:
                raise ConnectTimeoutError(endpoint_url=request.url)
            raise ReadTimeoutError(endpoint_url=request.url)

        return before_send

    # -- reporting -----------------------------------------------------------------------

    def _note(self, fault: Fault, service: str, operation: str, request: Any) -> None:
        """One log line per fault, naming the ids the request carried: the evidence that ties
        an order's history to the faults its calls met."""
        if self.log is None:
            return
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        ids = sorted({m.decode() for m in _ID.findall(body if isinstance(body, bytes) else b"")})
        line = {"injected_fault": fault.label, "call": f"{service}.{operation}", "ids": ids}
        self.log.write(json.dumps(line) + "\n")
        self.log.flush()

    def snapshot(self) -> dict[str, Any]:
        """The counts so far, as the report file holds them."""
        with self._lock:
            return {
                "pid": os.getpid(),
                "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""),
                "rate": self.rate,
                "seed": str(self.seed),
                "kinds": list(self.kinds),
                "calls": self.calls,
                "faults": dict(self.faults),
                "details": dict(self.details),
                "operations": dict(self.operations),
            }

    def flush(self) -> None:
        """Write the counts to the report file, if there is one and they changed."""
        if self.report_path is None or self.calls == self._flushed_calls:
            return
        snapshot = self.snapshot()
        write_json_object(self.report_path, snapshot)
        self._flushed_calls = snapshot["calls"]


def _fault(kind: str, service: str, variant: float) -> Fault:
    if kind == THROTTLING:
        codes = _THROTTLING_CODES.get(service, _DEFAULT_THROTTLING_CODES)
        return Fault(kind, codes[int(variant * len(codes))], 400)
    if kind == SERVER_ERROR:
        code, status = _SERVER_ERRORS[int(variant * len(_SERVER_ERRORS))]
        return Fault(kind, code, status)
    if kind == TIMEOUT:
        exception = ConnectTimeoutError if variant < 0.5 else ReadTimeoutError
        return Fault(kind, exception.__name__)
    return Fault(kind, ReadTimeoutError.__name__)


def _error_response(url: str, protocol: str, service: str, code: str, status: int) -> AWSResponse:
    """The error answer the service would send, in its protocol, for botocore to parse."""
    message = f"{code} (injected by pipeline.local.faults)"
    if protocol in ("json", "rest-json"):
        namespace = _JSON_ERROR_NAMESPACES.get(service)
        body = json.dumps(
            {"__type": f"{namespace}#{code}" if namespace else code, "message": message}
        ).encode()
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-ErrorType": code,
            "x-amzn-RequestId": "injected-fault",
        }
    else:  # query, ec2 and rest-xml answer in XML
        fault = "Sender" if status < 500 else "Receiver"
        body = (
            f"<ErrorResponse><Error><Type>{fault}</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            "<RequestId>injected-fault</RequestId></ErrorResponse>"
        ).encode()
        headers = {"Content-Type": "text/xml"}
    headers["Content-Length"] = str(len(body))
    return AWSResponse(url, status, headers, _Body(body))


def worker_env(
    rate: float, *, seed: int | str, kinds: Iterable[str], report_dir: Path
) -> dict[str, str]:
    """The environment that makes the local runtime's worker processes inject faults."""
    return {
        ENV_RATE: repr(float(rate)),
        ENV_SEED: str(seed),
        ENV_KINDS: ",".join(kinds),
        ENV_REPORT_DIR: str(report_dir),
    }


def parse_kinds(text: str) -> tuple[str, ...]:
    """`throttling,timeout` as a tuple of kinds; ValueError naming an unknown one."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown fault kind(s) {unknown or text!r}: choose from {KINDS}")
    return kinds


def install_from_env(
    environ: Mapping[str, str] | None = None, *, module: ModuleType = aws
) -> FaultInjector | None:
    """In a worker process: the injector the environment asks for, patched into `module`'s
    client factories, or None (no fault rate set: the worker runs as it always has).

    Each worker claims its own report file, `faults-<function>-<n>.json`; n also salts the
    seed, so two workers of one function do not fail the same calls.
    """
    env = os.environ if environ is None else environ
    rate = float(env.get(ENV_RATE) or 0)
    if rate <= 0:
        return None
    function = env.get("AWS_LAMBDA_FUNCTION_NAME") or "process"
    report_path = None
    ordinal = os.getpid()
    if env.get(ENV_REPORT_DIR):
        report_path, ordinal = _claim_report(Path(env[ENV_REPORT_DIR]), function)
    injector = FaultInjector(
        rate,
        seed=f"{env.get(ENV_SEED, '0')}:{function}:{ordinal}",
        kinds=parse_kinds(env.get(ENV_KINDS) or ",".join(KINDS)),
        report_path=report_path,
        log=sys.stderr,  # the worker's output: the runtime's function log
    )
    injector.patch_client_factory(module)
    injector.flush()
    return injector


def _claim_report(directory: Path, function: str) -> tuple[Path, int]:
    directory.mkdir(parents=True, exist_ok=True)
    ordinal = 0
    while True:
        path = directory / f"faults-{function}-{ordinal}.json"
        try:
            # O_EXCL: of two workers starting at once, each gets a number of its own.
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            ordinal += 1
            continue
        return path, ordinal


def read_reports(directory: Path) -> dict[str, Any]:
    """Every worker's report in `directory`, summed: calls, faults by kind and by code."""
    total: dict[str, Any] = {"workers": 0, "calls": 0, "faults": Counter(), "details": Counter()}
    for path in sorted(directory.glob(REPORT_GLOB)):
        text = path.read_text()
        if not text:
            continue  # claimed by a worker that has not written yet
        report = json.loads(text)
        total["workers"] += 1
        total["calls"] += report["calls"]
        total["faults"].update(report["faults"])
        total["details"].update(report["details"])
    total["faults"] = dict(total["faults"])
    total["details"] = dict(total["details"])
    return total


def clear_reports(directory: Path) -> None:
    """Remove the reports of an earlier run from `directory`, so they are not summed again."""
    for path in directory.glob(REPORT_GLOB):
        path.unlink(missing_ok=True)

"""A local AWS Step Functions endpoint: the JSON 1.0 API on 127.0.0.1, kept in SQLite.

boto3's ``stepfunctions`` client works against it with ``endpoint_url``. It answers
CreateStateMachine, DescribeStateMachine, ListStateMachines, UpdateStateMachine,
DeleteStateMachine, StartExecution, DescribeExecution, ListExecutions, GetExecutionHistory and
StopExecution; any other operation gets ``UnknownOperationException``. Only STANDARD workflows
exist here. Definitions are checked by ``asl.validate_definition``: what the interpreter cannot
run faithfully is refused at CreateStateMachine with ``InvalidDefinition``.

Executions run in a bounded pool of background threads (16 at once by default); more wait
their turn as RUNNING, as AWS would keep them. Execution names are unique per state machine for
the life of the database: the same name with the same input while that execution is RUNNING
returns it again (AWS's idempotent start); any other reuse is ``ExecutionAlreadyExists``. One
lock around every database access makes that check-and-insert atomic across request threads.

State machines, executions and their event histories live in the SQLite file given to the
constructor (``None`` keeps them in memory for the life of one start/stop cycle).

Restart semantics: ``stop()`` does not abort anything. Executions still running are left
RUNNING in the database; whatever they do after the stop is not recorded. The next ``start()``
on the same file runs every execution it finds RUNNING again *from its first state*, with its
original input and the definition it started with, after discarding its partial history. This
is at-least-once execution of tasks: safe because the project's task handlers are idempotent
(each is guarded by the order's status), and it is how a process that died mid-way catches up.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import queue
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipeline.local.stepfunctions.asl import (
    ABORTED,
    FAILED,
    RUNNING,
    ExecutionResult,
    InvalidDefinition,
    Invoke,
    StateMachineInterpreter,
    StopSignal,
    UnsupportedFeature,
    validate_definition,
)

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
_HOST = "127.0.0.1"
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_STATUSES = {"RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"}
_DEFAULT_PAGE = 100
_MAX_PAGE = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state_machines (
    arn TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    role_arn TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    creation_date REAL NOT NULL,
    logging TEXT NOT NULL,
    tracing TEXT NOT NULL,
    tags TEXT NOT NULL,
    revision_id TEXT
);
CREATE TABLE IF NOT EXISTS executions (
    arn TEXT PRIMARY KEY,
    machine_arn TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    cause TEXT,
    start_date REAL NOT NULL,
    stop_date REAL,
    definition TEXT NOT NULL,
    role_arn TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_machine ON executions (machine_arn, start_date);
CREATE TABLE IF NOT EXISTS history (
    execution_arn TEXT NOT NULL,
    id INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (execution_arn, id)
);
"""


class ApiError(Exception):
    """An error the API reports as HTTP 400 with `__type` = `code`."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class _Live:
    """An execution this process is responsible for until it is finalised."""

    stop: StopSignal = field(default_factory=StopSignal)
    # Set once the outcome is stored; later reports from the interpreter are dropped.
    finalised: bool = False


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's backlog of 5 drops connections when a burst of clients connects at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: StepFunctionsServer):
        super().__init__(address, _Handler)
        self.api = api


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalStepFunctions/1.0"
    # Headers and body go out in two writes; with Nagle on, keep-alive clients stall ~40 ms.
    disable_nagle_algorithm = True
    server: _HTTPServer

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


def _from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _encode_token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _decode_token(token: str, scope: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ApiError("InvalidToken", "the nextToken is not valid") from None
    # A token only continues the listing it came from.
    if not isinstance(data, dict) or data.get("scope") != scope:
        raise ApiError("InvalidToken", "the nextToken belongs to another request")
    return data


def _page_size(params: dict[str, Any]) -> int:
    size = params.get("maxResults") or _DEFAULT_PAGE
    if not isinstance(size, int) or not 0 < size <= _MAX_PAGE:
        raise ApiError("ValidationException", f"maxResults must be from 0 to {_MAX_PAGE}")
    return size


def _required_string(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError("ValidationException", f"{key} is required")
    return value


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
        self._invoke = invoke
        self._db_path = os.fspath(db_path) if db_path is not None else None
        self._requested_port = port
        self._time_scale = time_scale
        self._max_workers = max_concurrent_executions
        self._on_finished = on_execution_finished
        self.account_id = account_id
        self.region = region
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._accepting = False
        self._live: dict[str, _Live] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateStateMachine": self._create_state_machine,
            "DescribeStateMachine": self._describe_state_machine,
            "ListStateMachines": self._list_state_machines,
            "UpdateStateMachine": self._update_state_machine,
            "DeleteStateMachine": self._delete_state_machine,
            "StartExecution": self._start_execution,
            "DescribeExecution": self._describe_execution,
            "ListExecutions": self._list_executions,
            "GetExecutionHistory": self._get_execution_history,
            "StopExecution": self._stop_execution,
        }

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (only after start())."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return self._httpd.server_address[1]

    @property
    def endpoint_url(self) -> str:
        """The URL to give boto3 as endpoint_url."""
        return f"http://{_HOST}:{self.port}"

    def state_machine_arn(self, name: str) -> str:
        """The ARN a state machine called `name` has on this server."""
        return f"arn:aws:states:{self.region}:{self.account_id}:stateMachine:{name}"

    def start(self) -> None:
        """Open the database, resume executions left RUNNING and start listening."""
        if self._httpd is not None:
            raise RuntimeError("the server is already started")
        httpd = _HTTPServer((_HOST, self._requested_port), self)
        try:
            with self._lock:
                self._db = self._open_database()
                self._accepting = True
                self._queue = queue.Queue()
                resumed = self._resume_running()
        except BaseException:
            httpd.server_close()
            self._accepting = False
            raise
        self._workers = [
            threading.Thread(target=self._worker, name=f"sfn-exec-{i}", daemon=True)
            for i in range(self._max_workers)
        ]
        for worker in self._workers:
            worker.start()
        for arn in resumed:
            self._queue.put(arn)
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
        with self._lock:
            self._accepting = False
            lives = list(self._live.values())
            self._live.clear()
        # The interpreters leave at their next checkpoint; nothing they report is stored now.
        for live in lives:
            live.stop.set()
        for _ in self._workers:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        self._workers = []
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> StepFunctionsServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _open_database(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._db_path or ":memory:", check_same_thread=False)
        db.row_factory = sqlite3.Row
        if self._db_path:
            # WAL with NORMAL sync: one commit per history event stays cheap on disk.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        db.commit()
        return db

    def _resume_running(self) -> list[str]:
        db = self._database()
        rows = db.execute(
            "SELECT arn FROM executions WHERE status = ? ORDER BY start_date, rowid", (RUNNING,)
        ).fetchall()
        arns = [row["arn"] for row in rows]
        with db:
            for arn in arns:
                db.execute("DELETE FROM history WHERE execution_arn = ?", (arn,))
                self._live[arn] = _Live()
        return arns

    def _database(self) -> sqlite3.Connection:
        if self._db is None or not self._accepting:
            raise ApiError("ServiceUnavailable", "the local Step Functions server is stopping")
        return self._db

    # -- HTTP ---------------------------------------------------------------------------------

    def dispatch(self, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one API call: (HTTP status, JSON body)."""
        prefix, _, operation = target.partition(".")
        handler = self._operations.get(operation) if prefix == "AWSStepFunctions" else None
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

    # -- ARNs ---------------------------------------------------------------------------------

    def _execution_arn(self, machine_name: str, name: str) -> str:
        return f"arn:aws:states:{self.region}:{self.account_id}:execution:{machine_name}:{name}"

    def _check_arn(self, arn: str, kind: str) -> None:
        prefix = f"arn:aws:states:{self.region}:{self.account_id}:{kind}:"
        names = arn[len(prefix) :].split(":") if arn.startswith(prefix) else []
        expected = 1 if kind == "stateMachine" else 2
        if len(names) != expected or not all(_NAME_RE.match(n) for n in names):
            raise ApiError("InvalidArn", f"Invalid Arn: '{arn}'")

    # -- state machines -----------------------------------------------------------------------

    def _parse_definition(self, text: Any) -> str:
        if not isinstance(text, str):
            raise ApiError("InvalidDefinition", "definition must be a JSON string")
        try:
            definition = json.loads(text)
            validate_definition(definition)
        except (InvalidDefinition, UnsupportedFeature) as exc:
            raise ApiError(
                "InvalidDefinition", f"Invalid State Machine Definition: {exc}"
            ) from None
        except ValueError as exc:
            raise ApiError("InvalidDefinition", f"the definition is not JSON: {exc}") from None
        return text

    @staticmethod
    def _check_unsupported_options(params: dict[str, Any]) -> None:
        if params.get("publish"):
            raise ApiError("ValidationException", "state machine versions are not supported")
        encryption = params.get("encryptionConfiguration")
        if encryption and encryption.get("type") != "AWS_OWNED_KEY":
            raise ApiError("ValidationException", "only AWS_OWNED_KEY encryption is supported")

    def _create_state_machine(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _required_string(params, "name")
        if not _NAME_RE.match(name):
            raise ApiError("InvalidName", f"Invalid Name: '{name}'")
        definition = self._parse_definition(params.get("definition"))
        role_arn = _required_string(params, "roleArn")
        kind = params.get("type") or "STANDARD"
        if kind != "STANDARD":
            raise ApiError("StateMachineTypeNotSupported", f"{kind} workflows are not supported")
        self._check_unsupported_options(params)
        logging_config = params.get("loggingConfiguration") or {
            "level": "OFF",
            "includeExecutionData": False,
        }
        tracing = params.get("tracingConfiguration") or {"enabled": False}
        arn = self.state_machine_arn(name)
        with self._lock:
            db = self._database()
            existing = db.execute("SELECT * FROM state_machines WHERE arn = ?", (arn,)).fetchone()
            if existing is not None:
                if existing["status"] == "DELETING":
                    raise ApiError(
                        "StateMachineDeleting", f"State Machine is being deleted: '{arn}'"
                    )
                # AWS answers a repeated, identical create with the existing machine.
                if existing["definition"] == definition and existing["role_arn"] == role_arn:
                    return {"stateMachineArn": arn, "creationDate": existing["creation_date"]}
                raise ApiError(
                    "StateMachineAlreadyExists", f"State Machine Already Exists: '{arn}'"
                )
            created = time.time()
            with db:
                db.execute(
                    "INSERT INTO state_machines (arn, name, definition, role_arn, type, status,"
                    " creation_date, logging, tracing, tags, revision_id)"
                    " VALUES (?, ?, ?, ?, ?, 'ACTIVE', ?, ?, ?, ?, ?)",
                    (
                        arn,
                        name,
                        definition,
                        role_arn,
                        kind,
                        created,
                        json.dumps(logging_config),
                        json.dumps(tracing),
                        json.dumps(params.get("tags") or []),
                        str(uuid.uuid4()),
                    ),
                )
        return {"stateMachineArn": arn, "creationDate": created}

    def _machine_row(self, arn: str) -> sqlite3.Row:
        self._check_arn(arn, "stateMachine")
        row = (
            self._database()
            .execute("SELECT * FROM state_machines WHERE arn = ?", (arn,))
            .fetchone()
        )
        if row is None:
            raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        return row

    def _describe_state_machine(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            row = self._machine_row(_required_string(params, "stateMachineArn"))
        return {
            "stateMachineArn": row["arn"],
            "name": row["name"],
            "status": row["status"],
            "definition": row["definition"],
            "roleArn": row["role_arn"],
            "type": row["type"],
            "creationDate": row["creation_date"],
            "loggingConfiguration": json.loads(row["logging"]),
            "tracingConfiguration": json.loads(row["tracing"]),
            "revisionId": row["revision_id"],
        }

    def _list_state_machines(self, params: dict[str, Any]) -> dict[str, Any]:
        size = _page_size(params)
        scope = {"op": "ListStateMachines"}
        after = 0
        if params.get("nextToken"):
            after = _decode_token(params["nextToken"], scope).get("after", 0)
        with self._lock:
            rows = (
                self._database()
                .execute(
                    "SELECT rowid, * FROM state_machines WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    (after, size + 1),
                )
                .fetchall()
            )
        result: dict[str, Any] = {
            "stateMachines": [
                {
                    "stateMachineArn": row["arn"],
                    "name": row["name"],
                    "type": row["type"],
                    "creationDate": row["creation_date"],
                }
                for row in rows[:size]
            ]
        }
        if len(rows) > size:
            result["nextToken"] = _encode_token({"scope": scope, "after": rows[size - 1]["rowid"]})
        return result

    def _update_state_machine(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = _required_string(params, "stateMachineArn")
        keys = ("definition", "roleArn", "loggingConfiguration", "tracingConfiguration")
        if not any(params.get(key) for key in keys):
            raise ApiError(
                "MissingRequiredParameter", "give definition, roleArn or a configuration"
            )
        self._check_unsupported_options(params)
        definition = (
            self._parse_definition(params["definition"]) if params.get("definition") else None
        )
        revision = str(uuid.uuid4())
        with self._lock:
            row = self._machine_row(arn)
            if row["status"] == "DELETING":
                raise ApiError("StateMachineDeleting", f"State Machine is being deleted: '{arn}'")
            db = self._database()
            # Running executions keep the definition they started with (stored per execution).
            with db:
                db.execute(
                    "UPDATE state_machines SET definition = ?, role_arn = ?, logging = ?,"
                    " tracing = ?, revision_id = ? WHERE arn = ?",
                    (
                        definition or row["definition"],
                        params.get("roleArn") or row["role_arn"],
                        json.dumps(params["loggingConfiguration"])
                        if params.get("loggingConfiguration")
                        else row["logging"],
                        json.dumps(params["tracingConfiguration"])
                        if params.get("tracingConfiguration")
                        else row["tracing"],
                        revision,
                        arn,
                    ),
                )
        return {"updateDate": time.time(), "revisionId": revision}

    def _delete_state_machine(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = _required_string(params, "stateMachineArn")
        self._check_arn(arn, "stateMachine")
        with self._lock:
            db = self._database()
            with db:
                db.execute("UPDATE state_machines SET status = 'DELETING' WHERE arn = ?", (arn,))
        # As on AWS, running executions finish first; the machine goes with the last of them.
        self._purge_if_deleting(arn)
        return {}

    def _purge_if_deleting(self, machine_arn: str) -> None:
        with self._lock:
            if not self._accepting or self._db is None:
                return
            db = self._db
            row = db.execute(
                "SELECT status FROM state_machines WHERE arn = ?", (machine_arn,)
            ).fetchone()
            if row is None or row["status"] != "DELETING":
                return
            running = db.execute(
                "SELECT 1 FROM executions WHERE machine_arn = ? AND status = ? LIMIT 1",
                (machine_arn, RUNNING),
            ).fetchone()
            if running:
                return
            with db:
                db.execute(
                    "DELETE FROM history WHERE execution_arn IN"
                    " (SELECT arn FROM executions WHERE machine_arn = ?)",
                    (machine_arn,),
                )
                db.execute("DELETE FROM executions WHERE machine_arn = ?", (machine_arn,))
                db.execute("DELETE FROM state_machines WHERE arn = ?", (machine_arn,))

    # -- executions ---------------------------------------------------------------------------

    def _start_execution(self, params: dict[str, Any]) -> dict[str, Any]:
        machine_arn = _required_string(params, "stateMachineArn")
        name = params.get("name") or str(uuid.uuid4())
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ApiError("InvalidName", f"Invalid Name: '{name}'")
        text = params.get("input")
        text = "{}" if text is None else text
        try:
            parsed_input = json.loads(text)
        except (TypeError, ValueError) as exc:
            message = f"Invalid State Machine Execution Input: {exc}"
            raise ApiError("InvalidExecutionInput", message) from None
        with self._lock:
            machine = self._machine_row(machine_arn)
            if machine["status"] == "DELETING":
                raise ApiError(
                    "StateMachineDeleting", f"State Machine is being deleted: '{machine_arn}'"
                )
            arn = self._execution_arn(machine["name"], name)
            db = self._database()
            existing = db.execute("SELECT * FROM executions WHERE arn = ?", (arn,)).fetchone()
            if existing is not None:
                same_input = json.loads(existing["input"]) == parsed_input
                if existing["status"] == RUNNING and same_input:
                    return {"executionArn": arn, "startDate": existing["start_date"]}
                raise ApiError("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
            started = time.time()
            with db:
                db.execute(
                    "INSERT INTO executions (arn, machine_arn, name, status, input, start_date,"
                    " definition, role_arn) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        arn,
                        machine_arn,
                        name,
                        RUNNING,
                        text,
                        started,
                        machine["definition"],
                        machine["role_arn"],
                    ),
                )
            self._live[arn] = _Live()
        self._queue.put(arn)
        return {"executionArn": arn, "startDate": started}

    def _execution_row(self, arn: str) -> sqlite3.Row:
        self._check_arn(arn, "execution")
        row = self._database().execute("SELECT * FROM executions WHERE arn = ?", (arn,)).fetchone()
        if row is None:
            raise ApiError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        return row

    @staticmethod
    def _describe_row(row: sqlite3.Row) -> dict[str, Any]:
        described: dict[str, Any] = {
            "executionArn": row["arn"],
            "stateMachineArn": row["machine_arn"],
            "name": row["name"],
            "status": row["status"],
            "startDate": row["start_date"],
            "input": row["input"],
            "inputDetails": {"included": True},
            "redriveCount": 0,
            "redriveStatus": "NOT_REDRIVABLE",
        }
        if row["stop_date"] is not None:
            described["stopDate"] = row["stop_date"]
        if row["output"] is not None:
            described["output"] = row["output"]
            described["outputDetails"] = {"included": True}
        # AWS leaves error and cause out, rather than null, when there are none.
        for key in ("error", "cause"):
            if row[key] is not None:
                described[key] = row[key]
        return described

    def _describe_execution(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            row = self._execution_row(_required_string(params, "executionArn"))
        return self._describe_row(row)

    def _list_executions(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("mapRunArn") or params.get("redriveFilter"):
            raise ApiError("ValidationException", "map runs and redrives are not supported")
        machine_arn = _required_string(params, "stateMachineArn")
        status = params.get("statusFilter")
        if status is not None and status not in _STATUSES:
            raise ApiError("ValidationException", f"statusFilter {status!r} is not a status")
        size = _page_size(params)
        scope = {"op": "ListExecutions", "machine": machine_arn, "status": status}
        where = ["machine_arn = ?"]
        args: list[Any] = [machine_arn]
        if status:
            where.append("status = ?")
            args.append(status)
        if params.get("nextToken"):
            start, rowid = _decode_token(params["nextToken"], scope)["after"]
            # Keyset paging: executions started meanwhile do not shift later pages.
            where.append("(start_date < ? OR (start_date = ? AND rowid < ?))")
            args += [start, start, rowid]
        with self._lock:
            self._machine_row(machine_arn)
            rows = (
                self._database()
                .execute(
                    f"SELECT rowid, * FROM executions WHERE {' AND '.join(where)}"
                    " ORDER BY start_date DESC, rowid DESC LIMIT ?",
                    (*args, size + 1),
                )
                .fetchall()
            )
        executions = []
        for row in rows[:size]:
            item = {
                "executionArn": row["arn"],
                "stateMachineArn": row["machine_arn"],
                "name": row["name"],
                "status": row["status"],
                "startDate": row["start_date"],
            }
            if row["stop_date"] is not None:
                item["stopDate"] = row["stop_date"]
            executions.append(item)
        result: dict[str, Any] = {"executions": executions}
        if len(rows) > size:
            last = rows[size - 1]
            after = [last["start_date"], last["rowid"]]
            result["nextToken"] = _encode_token({"scope": scope, "after": after})
        return result

    def _get_execution_history(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = _required_string(params, "executionArn")
        size = _page_size(params)
        reverse = bool(params.get("reverseOrder"))
        include_data = params.get("includeExecutionData", True)
        scope = {"op": "GetExecutionHistory", "execution": arn, "reverse": reverse}
        after = None
        if params.get("nextToken"):
            after = _decode_token(params["nextToken"], scope)["after"]
        query = "SELECT id, body FROM history WHERE execution_arn = ?"
        args: list[Any] = [arn]
        if after is not None:
            query += " AND id < ?" if reverse else " AND id > ?"
            args.append(after)
        query += f" ORDER BY id {'DESC' if reverse else 'ASC'} LIMIT ?"
        with self._lock:
            self._execution_row(arn)
            rows = self._database().execute(query, (*args, size + 1)).fetchall()
        events = [json.loads(row["body"]) for row in rows[:size]]
        if not include_data:
            for event in events:
                for key, details in event.items():
                    if key.endswith("EventDetails") and isinstance(details, dict):
                        for data_key in ("input", "output", "parameters"):
                            details.pop(data_key, None)
        result: dict[str, Any] = {"events": events}
        if len(rows) > size:
            result["nextToken"] = _encode_token({"scope": scope, "after": rows[size - 1]["id"]})
        return result

    def _stop_execution(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = _required_string(params, "executionArn")
        error, cause = params.get("error"), params.get("cause")
        with self._lock:
            row = self._execution_row(arn)
            if row["status"] != RUNNING:
                # Stopping a finished execution changes nothing.
                return {"stopDate": row["stop_date"]}
            db = self._database()
            stopped = time.time()
            last = db.execute(
                "SELECT MAX(id) AS last FROM history WHERE execution_arn = ?", (arn,)
            ).fetchone()["last"]
            with db:
                if last is None:
                    # Still queued: the history starts here, as AWS's would.
                    started = {
                        "input": row["input"],
                        "inputDetails": {"truncated": False},
                        "roleArn": row["role_arn"],
                    }
                    self._insert_event(
                        arn,
                        1,
                        0,
                        stopped,
                        "ExecutionStarted",
                        "executionStartedEventDetails",
                        started,
                    )
                    last = 1
                details = {k: v for k, v in (("error", error), ("cause", cause)) if v is not None}
                self._insert_event(
                    arn,
                    last + 1,
                    last,
                    stopped,
                    "ExecutionAborted",
                    "executionAbortedEventDetails",
                    details,
                )
                db.execute(
                    "UPDATE executions SET status = ?, error = ?, cause = ?, stop_date = ?"
                    " WHERE arn = ?",
                    (ABORTED, error, cause, stopped, arn),
                )
            live = self._live.pop(arn, None)
            if live is not None:
                live.finalised = True
            described = self._describe_row(self._execution_row(arn))
        if live is not None:
            live.stop.set(error, cause)
        self._notify(described)
        self._purge_if_deleting(row["machine_arn"])
        return {"stopDate": stopped}

    def _insert_event(
        self,
        arn: str,
        event_id: int,
        previous: int,
        timestamp: float,
        kind: str,
        details_key: str,
        details: dict[str, Any],
    ) -> None:
        body = {
            "id": event_id,
            "previousEventId": previous,
            "timestamp": timestamp,
            "type": kind,
            details_key: details,
        }
        self._database().execute(
            "INSERT INTO history (execution_arn, id, body) VALUES (?, ?, ?)",
            (arn, event_id, json.dumps(body)),
        )

    # -- running ------------------------------------------------------------------------------

    def _worker(self) -> None:
        while True:
            arn = self._queue.get()
            if arn is None:
                return
            try:
                self._run_execution(arn)
            except Exception:
                log.exception("execution %s could not be run", arn)

    def _run_execution(self, arn: str) -> None:
        with self._lock:
            if not self._accepting or self._db is None:
                return
            live = self._live.get(arn)
            row = self._db.execute("SELECT * FROM executions WHERE arn = ?", (arn,)).fetchone()
            if live is None or row is None or row["status"] != RUNNING:
                return

        def record(event: dict[str, Any]) -> None:
            self._record_event(arn, live, event)

        try:
            interpreter = StateMachineInterpreter(
                json.loads(row["definition"]), invoke=self._invoke, time_scale=self._time_scale
            )
        except (InvalidDefinition, UnsupportedFeature) as exc:
            # A definition stored by another version of this module that this one refuses.
            result = ExecutionResult(FAILED, error="States.Runtime", cause=str(exc))
        else:
            result = interpreter.run(
                json.loads(row["input"]),
                execution_arn=arn,
                state_machine_arn=row["machine_arn"],
                role_arn=row["role_arn"],
                start_time=_from_epoch(row["start_date"]),
                on_event=record,
                stop=live.stop,
            )
        self._finish(arn, live, result)

    def _record_event(self, arn: str, live: _Live, event: dict[str, Any]) -> None:
        with self._lock:
            if not self._accepting or self._db is None or live.finalised:
                return
            body = dict(event)
            body["timestamp"] = event["timestamp"].timestamp()
            with self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO history (execution_arn, id, body) VALUES (?, ?, ?)",
                    (arn, event["id"], json.dumps(body)),
                )

    def _finish(self, arn: str, live: _Live, result: ExecutionResult) -> None:
        with self._lock:
            if not self._accepting or self._db is None or live.finalised:
                return
            live.finalised = True
            self._live.pop(arn, None)
            output = _compact(result.output) if result.status == "SUCCEEDED" else None
            with self._db:
                self._db.execute(
                    "UPDATE executions SET status = ?, output = ?, error = ?, cause = ?,"
                    " stop_date = ? WHERE arn = ?",
                    (result.status, output, result.error, result.cause, time.time(), arn),
                )
            row = self._db.execute("SELECT * FROM executions WHERE arn = ?", (arn,)).fetchone()
            described = self._describe_row(row)
        self._notify(described)
        self._purge_if_deleting(row["machine_arn"])

    def _notify(self, described: dict[str, Any]) -> None:
        if self._on_finished is None:
            return
        execution = dict(described)
        for key in ("startDate", "stopDate"):
            if key in execution:
                execution[key] = _from_epoch(execution[key])
        try:
            self._on_finished(execution)
        except Exception:
            # A failing observer (metrics) must not undo or block the recorded outcome.
            log.exception("on_execution_finished failed for %s", described["executionArn"])

"""The Step Functions API operations, on the state kept by ``store``."""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

from pipeline.local.stepfunctions.asl import (
    ABORTED,
    RUNNING,
    InvalidDefinition,
    UnsupportedFeature,
    validate_definition,
)
from pipeline.local.stepfunctions.server.store import Live, Store, describe_row
from pipeline.local.stepfunctions.server.transport import ApiError, Operation

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_STATUSES = {"RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"}
_DEFAULT_PAGE = 100
_MAX_PAGE = 1000


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


class StepFunctionsApi:
    """The ten operations the local endpoint answers, by name, for one account and region."""

    def __init__(
        self,
        store: Store,
        *,
        account_id: str,
        region: str,
        submit: Callable[[str], None],
        notify: Callable[[dict[str, Any]], None],
    ) -> None:
        """`submit(arn)` queues a new execution; `notify(described)` reports a stopped one."""
        self._store = store
        self.account_id = account_id
        self.region = region
        self._submit = submit
        self._notify = notify
        self.operations: dict[str, Operation] = {
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

    def state_machine_arn(self, name: str) -> str:
        """The ARN a state machine called `name` has here."""
        return f"arn:aws:states:{self.region}:{self.account_id}:stateMachine:{name}"

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
        with self._store.lock:
            db = self._store.database()
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
            self._store.database()
            .execute("SELECT * FROM state_machines WHERE arn = ?", (arn,))
            .fetchone()
        )
        if row is None:
            raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        return row

    def _describe_state_machine(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._store.lock:
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
        with self._store.lock:
            rows = (
                self._store.database()
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
        with self._store.lock:
            row = self._machine_row(arn)
            if row["status"] == "DELETING":
                raise ApiError("StateMachineDeleting", f"State Machine is being deleted: '{arn}'")
            db = self._store.database()
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
        with self._store.lock:
            db = self._store.database()
            with db:
                db.execute("UPDATE state_machines SET status = 'DELETING' WHERE arn = ?", (arn,))
        # As on AWS, running executions finish first; the machine goes with the last of them.
        self._store.purge_if_deleting(arn)
        return {}

    # -- executions: starting -----------------------------------------------------------------

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
        with self._store.lock:
            machine = self._machine_row(machine_arn)
            if machine["status"] == "DELETING":
                raise ApiError(
                    "StateMachineDeleting", f"State Machine is being deleted: '{machine_arn}'"
                )
            arn = self._execution_arn(machine["name"], name)
            db = self._store.database()
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
            self._store.live[arn] = Live()
        self._submit(arn)
        return {"executionArn": arn, "startDate": started}

    def _execution_row(self, arn: str) -> sqlite3.Row:
        self._check_arn(arn, "execution")
        row = (
            self._store.database()
            .execute("SELECT * FROM executions WHERE arn = ?", (arn,))
            .fetchone()
        )
        if row is None:
            raise ApiError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        return row

    # -- executions: reading and stopping -----------------------------------------------------

    def _describe_execution(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._store.lock:
            row = self._execution_row(_required_string(params, "executionArn"))
        return describe_row(row)

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
        with self._store.lock:
            self._machine_row(machine_arn)
            rows = (
                self._store.database()
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
        with self._store.lock:
            self._execution_row(arn)
            rows = self._store.database().execute(query, (*args, size + 1)).fetchall()
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
        with self._store.lock:
            row = self._execution_row(arn)
            if row["status"] != RUNNING:
                # Stopping a finished execution changes nothing.
                return {"stopDate": row["stop_date"]}
            db = self._store.database()
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
                    self._store.insert_event(
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
                self._store.insert_event(
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
            live = self._store.live.pop(arn, None)
            if live is not None:
                live.finalised = True
            described = describe_row(self._execution_row(arn))
        if live is not None:
            live.stop.set(error, cause)
        self._notify(described)
        self._store.purge_if_deleting(row["machine_arn"])
        return {"stopDate": stopped}

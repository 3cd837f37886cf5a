"""The local Step Functions' state: the SQLite schema and the registry of live executions."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Any

from pipeline.local.stepfunctions.asl import RUNNING, StopSignal
from pipeline.local.stepfunctions.server.transport import ApiError

SCHEMA = """
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


@dataclass
class Live:
    """An execution this process is responsible for until it is finalised."""

    stop: StopSignal = field(default_factory=StopSignal)
    # Set once the outcome is stored; later reports from the interpreter are dropped.
    finalised: bool = False


class Store:
    """The database and the live executions, behind one lock around every access.

    The one lock makes check-and-insert sequences (StartExecution's name check, for one) atomic
    across request threads and execution workers; it is reentrant, so operations that hold it
    can call the helpers here.
    """

    def __init__(self, db_path: str | os.PathLike[str] | None) -> None:
        """Keep state in the SQLite file `db_path` (None: in memory, until close())."""
        self._db_path = os.fspath(db_path) if db_path is not None else None
        self.lock = threading.RLock()
        self.db: sqlite3.Connection | None = None
        # False while stopped or stopping: database() refuses and late reports are dropped.
        self.accepting = False
        self.live: dict[str, Live] = {}

    def open(self) -> None:
        """Open (creating if need be) the database and accept work; call it holding the lock."""
        db = sqlite3.connect(self._db_path or ":memory:", check_same_thread=False)
        db.row_factory = sqlite3.Row
        if self._db_path:
            # WAL with NORMAL sync: one commit per history event stays cheap on disk.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        db.commit()
        self.db = db
        self.accepting = True

    def stop_accepting(self) -> list[Live]:
        """Refuse further work and hand back the live executions, forgotten here from now on."""
        with self.lock:
            self.accepting = False
            lives = list(self.live.values())
            self.live.clear()
        return lives

    def close(self) -> None:
        """Close the database."""
        with self.lock:
            if self.db is not None:
                self.db.close()
                self.db = None

    def database(self) -> sqlite3.Connection:
        """The open database; ApiError ServiceUnavailable while the server is stopped."""
        if self.db is None or not self.accepting:
            raise ApiError("ServiceUnavailable", "the local Step Functions server is stopping")
        return self.db

    def resume_running(self) -> list[str]:
        """Make the executions an earlier process left RUNNING live again, history cleared."""
        db = self.database()
        rows = db.execute(
            "SELECT arn FROM executions WHERE status = ? ORDER BY start_date, rowid", (RUNNING,)
        ).fetchall()
        arns = [row["arn"] for row in rows]
        with db:
            for arn in arns:
                db.execute("DELETE FROM history WHERE execution_arn = ?", (arn,))
                self.live[arn] = Live()
        return arns

    def insert_event(
        self,
        arn: str,
        event_id: int,
        previous: int,
        timestamp: float,
        kind: str,
        details_key: str,
        details: dict[str, Any],
    ) -> None:
        """Add one event to an execution's history, inside the caller's transaction."""
        body = {
            "id": event_id,
            "previousEventId": previous,
            "timestamp": timestamp,
            "type": kind,
            details_key: details,
        }
        self.database().execute(
            "INSERT INTO history (execution_arn, id, body) VALUES (?, ?, ?)",
            (arn, event_id, json.dumps(body)),
        )

    def purge_if_deleting(self, machine_arn: str) -> None:
        """Remove a machine marked DELETING, with its executions, once none of them runs."""
        with self.lock:
            if not self.accepting or self.db is None:
                return
            db = self.db
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


def describe_row(row: sqlite3.Row) -> dict[str, Any]:
    """An executions row as DescribeExecution answers it."""
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

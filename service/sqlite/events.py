"""The event log: ``job_events``, appended inside the transaction that changes the job."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Sequence
from typing import Any

from ..clock import Clock
from ..jobs.interfaces import JobEvent
from .database import Database

__all__ = ["SCHEMA", "SqliteEventLog", "append_event"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS job_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    job TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS event_consumers (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
"""

# Acknowledged events are kept a while (a consumer that starts later reads nothing old);
# unacknowledged ones as long as the job records.
_ACKNOWLEDGED_KEEP_SECONDS = 3600.0


def append_event(tx: sqlite3.Connection, event_type: str, job: dict[str, Any], at: float) -> None:
    """Add an event in the caller's transaction: it commits or rolls back with the change."""
    tx.execute(
        "INSERT INTO job_events (id, type, job, at) VALUES (?, ?, ?, ?)",
        ("evt_" + secrets.token_urlsafe(16), event_type, json.dumps(job), at),
    )


class SqliteEventLog:
    def __init__(self, db: Database, clock: Clock, keep_seconds: float) -> None:
        self.db = db
        self.clock = clock
        self.keep_seconds = keep_seconds
        db.create(SCHEMA)

    def read(self, consumer: str, limit: int = 100) -> list[JobEvent]:
        rows = (
            self.db.conn()
            .execute(
                "SELECT id, type, job, at FROM job_events WHERE seq > COALESCE("
                "(SELECT position FROM event_consumers WHERE name = ?), 0) ORDER BY seq LIMIT ?",
                (consumer, limit),
            )
            .fetchall()
        )
        return [JobEvent(r["id"], r["type"], json.loads(r["job"]), r["at"]) for r in rows]

    def ack(self, consumer: str, events: Sequence[JobEvent]) -> None:
        if not events:
            return
        marks = ",".join("?" * len(events))
        with self.db.transaction() as tx:
            (last,) = tx.execute(
                f"SELECT MAX(seq) FROM job_events WHERE id IN ({marks})", [e.id for e in events]
            ).fetchone()
            if last is None:  # trimmed meanwhile: nothing left to move past
                return
            tx.execute(
                "INSERT INTO event_consumers (name, position) VALUES (?, ?) ON CONFLICT (name)"
                " DO UPDATE SET position = MAX(position, excluded.position)",
                (consumer, last),
            )

    def trim(self) -> None:
        """Forget events every consumer has had for a while, and any past the retention."""
        now = self.clock.now()
        with self.db.transaction() as tx:
            tx.execute(
                "DELETE FROM job_events WHERE at <= ? AND seq <= COALESCE("
                "(SELECT MIN(position) FROM event_consumers), 0)",
                (now - _ACKNOWLEDGED_KEEP_SECONDS,),
            )
            tx.execute("DELETE FROM job_events WHERE at <= ?", (now - self.keep_seconds,))

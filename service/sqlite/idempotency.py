"""Idempotency keys: reservations, and the stored response a replay gets."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Literal

from ..clock import Clock
from ..jobs.interfaces import IdempotencyOutcome
from .database import Database

__all__ = ["SCHEMA", "SqliteIdempotencyStore", "record_outcome"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    tenant TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    fingerprint TEXT,
    status_code INTEGER,
    body TEXT,
    location TEXT,
    job_id TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant, method, path, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_by_job ON idempotency (job_id);
"""

# An in-flight reservation older than this belongs to a request that died.
_STALE_RESERVATION_SECONDS = 3600.0


def record_outcome(
    tx: sqlite3.Connection, outcome: IdempotencyOutcome, body: dict[str, Any], job_id: str
) -> None:
    """Store what a replay answers, in the transaction that creates the job."""
    tx.execute(
        "UPDATE idempotency SET state = 'done', fingerprint = ?, status_code = ?, body = ?,"
        " location = ?, job_id = ? WHERE tenant = ? AND method = ? AND path = ? AND key = ?",
        (
            outcome.fingerprint,
            outcome.status_code,
            json.dumps(body),
            outcome.location,
            job_id,
            outcome.tenant,
            outcome.method,
            outcome.path,
            outcome.key,
        ),
    )


def forget_job(tx: sqlite3.Connection, job_id: str) -> None:
    """A key whose job is gone starts afresh rather than replaying a dangling response."""
    tx.execute("DELETE FROM idempotency WHERE job_id = ?", (job_id,))


class SqliteIdempotencyStore:
    def __init__(self, db: Database, clock: Clock, keep_seconds: float) -> None:
        self.db = db
        self.clock = clock
        self.keep_seconds = keep_seconds
        db.create(SCHEMA)

    def idempotency_begin(
        self, tenant: str, key: str, method: str, path: str
    ) -> Literal["new", "in_flight"] | IdempotencyOutcome:
        now = self.clock.now()
        with self.db.transaction() as tx:
            row = tx.execute(
                "SELECT * FROM idempotency WHERE tenant = ? AND method = ? AND path = ?"
                " AND key = ?",
                (tenant, method, path, key),
            ).fetchone()
            expired = row is not None and (
                row["created_at"] <= now - self.keep_seconds
                or (
                    row["state"] == "in_flight"
                    and row["created_at"] <= now - _STALE_RESERVATION_SECONDS
                )
            )
            if row is None or expired:
                tx.execute(
                    "INSERT OR REPLACE INTO idempotency (tenant, method, path, key, state,"
                    " created_at) VALUES (?, ?, ?, ?, 'in_flight', ?)",
                    (tenant, method, path, key, now),
                )
                return "new"
            if row["state"] == "in_flight":
                return "in_flight"
            return IdempotencyOutcome(
                tenant,
                key,
                method,
                path,
                fingerprint=row["fingerprint"],
                status_code=row["status_code"],
                body=json.loads(row["body"]),
                location=row["location"],
            )

    def idempotency_abort(self, tenant: str, key: str, method: str, path: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "DELETE FROM idempotency WHERE tenant = ? AND method = ? AND path = ? AND key = ?"
                " AND state = 'in_flight'",
                (tenant, method, path, key),
            )

    def expire(self) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "DELETE FROM idempotency WHERE created_at <= ?",
                (self.clock.now() - self.keep_seconds,),
            )

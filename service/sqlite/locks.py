"""Locks between the processes that share one data directory (``palette serve`` and any
``palette worker`` on the same file): one row per lock, changed in write transactions."""

from __future__ import annotations

from ..clock import Clock
from ..jobs.interfaces import LockLease
from .database import Database

__all__ = ["SqliteLocks"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY,
    owner TEXT,
    token INTEGER NOT NULL,
    until REAL NOT NULL
) WITHOUT ROWID;
"""


class SqliteLocks:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        db.create(SCHEMA)

    def acquire(self, name: str, owner: str, ttl: float) -> LockLease | None:
        now = self.clock.now()
        with self.db.transaction() as tx:
            row = tx.execute("SELECT token, until FROM locks WHERE name = ?", (name,)).fetchone()
            if row is not None and row["until"] > now:
                return None
            token = 1 if row is None else int(row["token"]) + 1
            tx.execute(
                "INSERT INTO locks (name, owner, token, until) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "token = excluded.token, until = excluded.until",
                (name, owner, token, now + ttl),
            )
        return LockLease(name, owner, token, now + ttl)

    def renew(self, lease: LockLease, ttl: float) -> LockLease | None:
        now = self.clock.now()
        with self.db.transaction() as tx:
            changed = tx.execute(
                "UPDATE locks SET until = ? WHERE name = ? AND token = ? AND until > ?",
                (now + ttl, lease.name, lease.token, now),
            ).rowcount
        return LockLease(lease.name, lease.owner, lease.token, now + ttl) if changed else None

    def release(self, lease: LockLease) -> bool:
        now = self.clock.now()
        with self.db.transaction() as tx:
            # The row stays (with its token), so the next grant's token is larger still.
            changed = tx.execute(
                "UPDATE locks SET owner = NULL, until = 0 WHERE name = ? AND token = ? "
                "AND until > ?",
                (lease.name, lease.token, now),
            ).rowcount
        return bool(changed)

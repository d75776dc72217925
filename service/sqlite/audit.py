"""The audit log in the embedded backend: one append-only table, chained by ``audit.chain``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from ..audit.chain import GENESIS, mac
from ..audit.interfaces import AuditEntry, AuditQuery, StoredEntry
from .database import Database

__all__ = ["SqliteAuditLog"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    tenant TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT NOT NULL,
    client TEXT NOT NULL,
    prev TEXT NOT NULL,
    mac TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit_log (tenant, seq);
"""

_FIELDS = "at, actor, tenant, action, target, outcome, request_id, client"


def _stored(row: sqlite3.Row) -> StoredEntry:
    entry = AuditEntry(*(row[name] for name in _FIELDS.split(", ")))
    return StoredEntry(row["seq"], entry, row["prev"], row["mac"])


class SqliteAuditLog:
    def __init__(self, db: Database, key: bytes) -> None:
        self.db = db
        self.key = key
        db.create(SCHEMA)

    def append(self, entry: AuditEntry) -> StoredEntry:
        with self.db.transaction() as tx:
            last = tx.execute("SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (1, GENESIS) if last is None else (last["seq"] + 1, last["mac"])
            signed = mac(self.key, seq, entry, prev)
            tx.execute(
                f"INSERT INTO audit_log (seq, {_FIELDS}, prev, mac) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    seq,
                    entry.at,
                    entry.actor,
                    entry.tenant,
                    entry.action,
                    entry.target,
                    entry.outcome,
                    entry.request_id,
                    entry.client,
                    prev,
                    signed,
                ),
            )
        return StoredEntry(seq, entry, prev, signed)

    def query(self, q: AuditQuery) -> list[StoredEntry]:
        where, params = ["tenant = ?"], [q.tenant]
        for column, op, value in (
            ("action", "=", q.action),
            ("actor", "=", q.actor),
            ("at", ">=", q.since),
            ("at", "<", q.until),
            ("seq", "<", q.before),
        ):
            if value is not None:
                where.append(f"{column} {op} ?")
                params.append(value)  # type: ignore[arg-type]
        rows = (
            self.db.conn()
            .execute(
                f"SELECT * FROM audit_log WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?",
                (*params, q.limit),
            )
            .fetchall()
        )
        return [_stored(r) for r in rows]

    def all_entries(self) -> Iterator[StoredEntry]:
        with self.db.snapshot() as conn:
            conn.row_factory = sqlite3.Row
            for row in conn.execute("SELECT * FROM audit_log ORDER BY seq"):
                yield _stored(row)

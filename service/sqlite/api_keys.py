"""API keys (their HMACs, tenants, roles and times) in the embedded backend."""

from __future__ import annotations

import sqlite3

from ..auth.interfaces import ApiKeyNotFound, ApiKeyRecord
from .database import Database

__all__ = ["SqliteApiKeyStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    last_used_at REAL,
    revoked_at REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys (tenant, key_id);
"""

_COLUMNS = "key_id, tenant, role, name, digest, created_at, expires_at, last_used_at, revoked_at"


def _record(row: sqlite3.Row) -> ApiKeyRecord:
    return ApiKeyRecord(*row)


class SqliteApiKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.create(SCHEMA)

    def create(self, record: ApiKeyRecord) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.key_id,
                    record.tenant,
                    record.role,
                    record.name,
                    record.digest,
                    record.created_at,
                    record.expires_at,
                    record.last_used_at,
                    record.revoked_at,
                ),
            )

    def get(self, key_id: str) -> ApiKeyRecord | None:
        row = (
            self.db.conn()
            .execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,))
            .fetchone()
        )
        return None if row is None else _record(row)

    def list_keys(
        self, tenant: str, limit: int, after: str | None
    ) -> tuple[list[ApiKeyRecord], str | None]:
        rows = (
            self.db.conn()
            .execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE tenant = ? AND key_id > ? "
                "ORDER BY key_id LIMIT ?",
                (tenant, after or "", limit + 1),
            )
            .fetchall()
        )
        records = [_record(r) for r in rows[:limit]]
        return records, records[-1].key_id if len(rows) > limit else None

    def revoke(self, key_id: str, tenant: str, at: float) -> ApiKeyRecord:
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) "
                "WHERE key_id = ? AND tenant = ?",
                (at, key_id, tenant),
            )
            row = tx.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ? AND tenant = ?",
                (key_id, tenant),
            ).fetchone()
        if row is None:
            raise ApiKeyNotFound(key_id)
        return _record(row)

    def touch(self, key_id: str, at: float) -> None:
        with self.db.transaction() as tx:
            tx.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (at, key_id))

    def has_keys(self) -> bool:
        return self.db.exists("SELECT 1 FROM api_keys LIMIT 1")

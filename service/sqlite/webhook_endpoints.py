"""Webhook endpoints: subscriptions, signing secrets (with a rotation overlap), failure state."""

from __future__ import annotations

import json
import secrets
import sqlite3
from typing import Any

from ..clock import Clock, iso_time
from ..webhooks.events import canonical_json
from ..webhooks.interfaces import NotFound, Precondition, PreconditionFailed
from ..webhooks.signing import generate_secret
from .database import Database

__all__ = ["SCHEMA", "SqliteWebhookEndpoints", "endpoint_row"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    event_types TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    batch_max_events INTEGER,
    batch_max_wait_ms INTEGER,
    metadata TEXT NOT NULL DEFAULT '{}',
    secret TEXT NOT NULL,
    old_secret TEXT,
    old_secret_expires_at REAL,
    failing_since REAL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""


def endpoint_row(conn: sqlite3.Connection, endpoint_id: str, owner: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM webhook_endpoints WHERE id = ? AND owner = ?", (endpoint_id, owner)
    ).fetchone()
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id!r}")
    return row


class SqliteWebhookEndpoints:
    def __init__(self, db: Database, clock: Clock, rotation_overlap_s: float) -> None:
        self.db = db
        self.clock = clock
        self.rotation_overlap_s = rotation_overlap_s
        db.create(SCHEMA)

    def create_endpoint(self, owner: str, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
        now = self.clock.now()
        secret = generate_secret()
        endpoint_id = "ep_" + secrets.token_urlsafe(12)
        batch = fields.get("batch") or {}
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO webhook_endpoints (id, owner, url, description, event_types, disabled, "
                "disabled_reason, batch_max_events, batch_max_wait_ms, metadata, secret, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    endpoint_id,
                    owner,
                    fields["url"],
                    fields.get("description", ""),
                    json.dumps(fields.get("event_types", ["*"])),
                    int(bool(fields.get("disabled"))),
                    fields.get("disabled_reason"),
                    batch.get("max_events"),
                    batch.get("max_wait_ms"),
                    canonical_json(fields.get("metadata", {})),
                    secret,
                    now,
                    now,
                ),
            )
            return self._as_dict(endpoint_row(tx, endpoint_id, owner)), secret

    def get_endpoint(self, endpoint_id: str, owner: str) -> dict[str, Any]:
        return self._as_dict(endpoint_row(self.db.conn(), endpoint_id, owner))

    def list_endpoints(
        self, owner: str, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """By id; returns a page and the cursor of the next one (None at the end)."""
        rows = (
            self.db.conn()
            .execute(
                "SELECT * FROM webhook_endpoints WHERE owner = ? AND (? IS NULL OR id > ?) "
                "ORDER BY id LIMIT ?",
                (owner, after, after, limit + 1),
            )
            .fetchall()
        )
        page = [self._as_dict(r) for r in rows[:limit]]
        return page, (page[-1]["id"] if len(rows) > limit else None)

    def _checked(
        self, tx: sqlite3.Connection, endpoint_id: str, owner: str, precondition: Precondition | None
    ) -> dict[str, Any]:
        current = self._as_dict(endpoint_row(tx, endpoint_id, owner))
        if precondition is not None and not precondition(current["etag"]):
            raise PreconditionFailed(current["etag"])
        return current

    def update_endpoint(
        self,
        endpoint_id: str,
        owner: str,
        changes: dict[str, Any],
        precondition: Precondition | None = None,
    ) -> dict[str, Any]:
        now = self.clock.now()
        with self.db.transaction() as tx:
            self._checked(tx, endpoint_id, owner, precondition)
            sets: list[str] = []
            params: list[Any] = []
            for key in ("url", "description"):
                if key in changes:
                    sets.append(f"{key} = ?")
                    params.append(changes[key])
            if "event_types" in changes:
                sets.append("event_types = ?")
                params.append(json.dumps(changes["event_types"]))
            if "metadata" in changes:
                sets.append("metadata = ?")
                params.append(canonical_json(changes["metadata"]))
            if "batch" in changes:
                batch = changes["batch"] or {}
                sets += ["batch_max_events = ?", "batch_max_wait_ms = ?"]
                params += [batch.get("max_events"), batch.get("max_wait_ms")]
            if "disabled" in changes:
                disabled = bool(changes["disabled"])
                sets += ["disabled = ?", "disabled_reason = ?"]
                params += [int(disabled), changes.get("disabled_reason") if disabled else None]
                if not disabled:
                    sets.append("failing_since = NULL")
            if sets:
                sets += ["version = version + 1", "updated_at = ?"]
                params.append(now)
                tx.execute(
                    f"UPDATE webhook_endpoints SET {', '.join(sets)} WHERE id = ?",
                    (*params, endpoint_id),
                )
            return self._as_dict(endpoint_row(tx, endpoint_id, owner))

    def delete_endpoint(
        self, endpoint_id: str, owner: str, precondition: Precondition | None = None
    ) -> None:
        with self.db.transaction() as tx:
            self._checked(tx, endpoint_id, owner, precondition)
            tx.execute(
                "DELETE FROM webhook_attempts WHERE message_id IN "
                "(SELECT id FROM webhook_messages WHERE endpoint_id = ?)",
                (endpoint_id,),
            )
            tx.execute("DELETE FROM webhook_messages WHERE endpoint_id = ?", (endpoint_id,))
            tx.execute("DELETE FROM webhook_batch_buffer WHERE endpoint_id = ?", (endpoint_id,))
            tx.execute("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,))

    def rotate_secret(self, endpoint_id: str, owner: str) -> tuple[dict[str, Any], str]:
        """A new secret signs from now on; the previous one keeps signing for the overlap."""
        now = self.clock.now()
        secret = generate_secret()
        with self.db.transaction() as tx:
            endpoint_row(tx, endpoint_id, owner)
            tx.execute(
                "UPDATE webhook_endpoints SET old_secret = secret, old_secret_expires_at = ?, "
                "secret = ?, version = version + 1, updated_at = ? WHERE id = ?",
                (now + self.rotation_overlap_s, secret, now, endpoint_id),
            )
            return self._as_dict(endpoint_row(tx, endpoint_id, owner)), secret

    def _as_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        now = self.clock.now()
        batch = None
        if row["batch_max_events"]:
            batch = {"max_events": row["batch_max_events"], "max_wait_ms": row["batch_max_wait_ms"]}
        previous_until = row["old_secret_expires_at"]
        return {
            "id": row["id"],
            "url": row["url"],
            "description": row["description"],
            "event_types": json.loads(row["event_types"]),
            "disabled": bool(row["disabled"]),
            "disabled_reason": row["disabled_reason"],
            "batch": batch,
            "metadata": json.loads(row["metadata"]),
            "failing_since": iso_time(row["failing_since"]) if row["failing_since"] else None,
            "previous_secret_expires_at": (
                iso_time(previous_until) if previous_until and previous_until > now else None
            ),
            "created_at": iso_time(row["created_at"]),
            "updated_at": iso_time(row["updated_at"]),
            "etag": f'"{row["id"]}-v{row["version"]}"',
        }

"""The webhook outbox: messages, their attempts and the batching buffer.

A message is the unit of delivery: it has the ``webhook-id`` that stays the same on every retry,
the exact body that is signed, and a due time. Senders claim due messages with a lease, so a
crash (kill -9) mid-send only delays the message until the lease runs out. Job events are
relayed in one transaction each, marked by their id, so relaying one twice writes nothing new.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Mapping
from typing import Any

from ..clock import Clock, iso_time
from ..crypto.fields import Plain
from ..jobs.interfaces import JobEvent
from ..webhooks.events import (
    CALLBACK_EVENTS,
    canonical_json,
    destination_key,
    job_payload,
    message_id,
    subscribed,
)
from ..webhooks.interfaces import Claimed, Conflict, NotFound, Outcome
from ..webhooks.signing import tenant_secret
from . import webhook_endpoints
from .database import Database
from .webhook_endpoints import endpoint_row

__all__ = ["SqliteWebhookOutbox"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_messages (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT,
    url TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    job_id TEXT,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    event_count INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until REAL,
    lease_owner TEXT,
    requeued_by TEXT,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_messages_due ON webhook_messages (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS webhook_messages_by_endpoint
    ON webhook_messages (endpoint_id, status, created_at);
CREATE INDEX IF NOT EXISTS webhook_messages_by_job ON webhook_messages (job_id);
CREATE INDEX IF NOT EXISTS webhook_messages_leased ON webhook_messages (lease_until)
    WHERE lease_until IS NOT NULL;
CREATE TABLE IF NOT EXISTS webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    attempted_at REAL NOT NULL,
    status_code INTEGER,
    latency_ms REAL,
    error TEXT,
    trigger TEXT NOT NULL DEFAULT 'scheduled'
);
CREATE INDEX IF NOT EXISTS webhook_attempts_by_message ON webhook_attempts (message_id, id);
CREATE TABLE IF NOT EXISTS webhook_batch_buffer (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id TEXT NOT NULL,
    job_id TEXT,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_batch_buffer_by_endpoint
    ON webhook_batch_buffer (endpoint_id, id);
CREATE TABLE IF NOT EXISTS webhook_relayed (
    event_id TEXT PRIMARY KEY,
    at REAL NOT NULL
) WITHOUT ROWID;
"""

# Messages a sender may claim now (both parameters: the current time). Shared by the cheap
# read-only "anything to do?" check and the claiming query, so the two cannot drift apart.
_DUE = (
    "FROM webhook_messages m LEFT JOIN webhook_endpoints e ON e.id = m.endpoint_id "
    "WHERE m.status = 'pending' AND m.next_attempt_at <= ? "
    "AND (m.lease_until IS NULL OR m.lease_until < ?) "
    "AND (m.endpoint_id IS NULL OR e.disabled = 0)"
)
# Relayed event ids are remembered this long: far longer than any event waits to be relayed.
_RELAYED_KEEP_SECONDS = 7 * 24 * 3600.0


class SqliteWebhookOutbox:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        callback_secret: str,
        disable_after_s: float,
        retention_s: float,
        cipher: Plain | None = None,
    ) -> None:
        self.db = db
        self.cipher = cipher or Plain()
        """Seals message bodies and buffered payloads (encryption at rest)."""
        self.clock = clock
        self.callback_secret = callback_secret
        self.disable_after_s = disable_after_s
        self.retention_s = retention_s
        db.create(webhook_endpoints.SCHEMA)
        db.create(SCHEMA)
        db.add_column("webhook_messages", "requeued_by", "TEXT")

    # -- enqueue -------------------------------------------------------------------------------

    def relay(self, event: JobEvent) -> int:
        now = self.clock.now()
        with self.db.transaction() as tx:
            seen = tx.execute(
                "INSERT OR IGNORE INTO webhook_relayed (event_id, at) VALUES (?, ?)",
                (event.id, now),
            )
            if not seen.rowcount:
                return 0
            if event.type == "job.deleted":
                return self._forget_job(tx, str(event.job["id"]), str(event.job.get("tenant")))
            return self._enqueue(tx, event, now)

    def _enqueue(self, tx: sqlite3.Connection, event: JobEvent, now: float) -> int:
        job, event_type = event.job, event.type
        payload = job_payload(job, event_type, event.at)
        body = canonical_json(payload)
        job_id = payload["data"]["job_id"]
        owner = str(job.get("tenant") or "")
        written = 0
        rows = tx.execute(
            "SELECT id, url, event_types, batch_max_events FROM webhook_endpoints "
            "WHERE disabled = 0 AND owner = ?",
            (owner,),
        ).fetchall()
        for endpoint_id, url, event_types_json, batch_max in rows:
            if not subscribed(json.loads(event_types_json), event_type):
                continue
            if batch_max:
                if event_type == "job.progress":  # only the latest progress matters
                    tx.execute(
                        "DELETE FROM webhook_batch_buffer WHERE endpoint_id = ? AND job_id = ? "
                        "AND event_type = 'job.progress'",
                        (endpoint_id, job_id),
                    )
                tx.execute(
                    "INSERT INTO webhook_batch_buffer (endpoint_id, job_id, event_type, payload, "
                    "created_at) VALUES (?, ?, ?, ?, ?)",
                    (endpoint_id, job_id, event_type, self.cipher.seal_text(body), now),
                )
            elif not (event_type == "job.progress" and self._coalesce(tx, endpoint_id, job_id, body, now)):
                self._insert(
                    tx, message_id(event.id, endpoint_id), endpoint_id, url, owner, job_id,
                    event_type, body, now,
                )
            written += 1
        callback_url = job.get("callback_url")
        if callback_url and event_type in CALLBACK_EVENTS:
            self._insert(
                tx, message_id(event.id, "callback"), None, str(callback_url), owner, job_id,
                event_type, body, now,
            )
            written += 1
        return written

    def _coalesce(
        self,
        tx: sqlite3.Connection, endpoint_id: str, job_id: str, body: str, now: float
    ) -> bool:
        """A progress message not yet tried takes the newer body, so a 1,000-image job does not
        queue 1,000 callbacks; its webhook-id was never sent, so nothing is lost."""
        updated = tx.execute(
            "UPDATE webhook_messages SET body = ?, updated_at = ? WHERE endpoint_id = ? "
            "AND job_id = ? AND event_type = 'job.progress' AND status = 'pending' "
            "AND tries = 0 AND lease_until IS NULL",
            (self.cipher.seal_text(body), now, endpoint_id, job_id),
        )
        return updated.rowcount > 0

    def _insert(
        self,
        tx: sqlite3.Connection,
        msg_id: str,
        endpoint_id: str | None,
        url: str,
        owner: str,
        job_id: str | None,
        event_type: str,
        body: str,
        now: float,
        event_count: int = 1,
    ) -> str:
        tx.execute(
            "INSERT OR IGNORE INTO webhook_messages (id, endpoint_id, url, owner, job_id,"
            " event_type, body, event_count, status, tries, next_attempt_at, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            (
                msg_id,
                endpoint_id,
                url,
                owner,
                job_id,
                event_type,
                self.cipher.seal_text(body),
                event_count,
                now,
                now,
                now,
            ),
        )
        return msg_id

    @staticmethod
    def _forget_job(tx: sqlite3.Connection, job_id: str, owner: str) -> int:
        """The job is gone (deleted, or removed by retention): its finished messages' links
        are dead, so they go too."""
        done = (
            "SELECT id FROM webhook_messages WHERE job_id = ? AND owner = ? AND status != 'pending'"
        )
        tx.execute(f"DELETE FROM webhook_attempts WHERE message_id IN ({done})", (job_id, owner))
        return tx.execute(f"DELETE FROM webhook_messages WHERE id IN ({done})", (job_id, owner)).rowcount

    def enqueue_test(self, endpoint_id: str, owner: str, event_type: str) -> str:
        """An example event to one endpoint (never batched, so it shows up at once)."""
        with self.db.transaction() as tx:
            endpoint = endpoint_row(tx, endpoint_id, owner)
            now = self.clock.now()
            status = {"job.progress": "running"}.get(event_type, event_type.removeprefix("job."))
            payload = job_payload({"id": "job_example", "status": status}, event_type, now)
            payload["data"]["example"] = True
            return self._insert(
                tx, "msg_" + secrets.token_urlsafe(18), endpoint_id, endpoint["url"], owner, None,
                event_type, canonical_json(payload), now,
            )

    # -- batching ------------------------------------------------------------------------------

    def form_batches(self) -> int:
        """Buffered events -> batch messages: N events, or fewer once the oldest waited T ms."""
        now = self.clock.now()
        formed = 0
        if not self.db.exists("SELECT 1 FROM webhook_batch_buffer LIMIT 1"):
            return 0
        with self.db.transaction() as tx:
            pending = tx.execute(
                "SELECT b.endpoint_id, COUNT(*) AS n, MIN(b.created_at) AS oldest, e.url, e.owner, "
                "e.batch_max_events, e.batch_max_wait_ms, e.disabled "
                "FROM webhook_batch_buffer b JOIN webhook_endpoints e ON e.id = b.endpoint_id "
                "GROUP BY b.endpoint_id"
            ).fetchall()
            for row in pending:
                if row["disabled"]:
                    continue
                max_events = int(row["batch_max_events"] or 1)
                max_wait_s = (row["batch_max_wait_ms"] or 0) / 1000.0
                count = int(row["n"])
                while count >= max_events or (count > 0 and now - row["oldest"] >= max_wait_s):
                    events = tx.execute(
                        "SELECT id, payload FROM webhook_batch_buffer WHERE endpoint_id = ? "
                        "ORDER BY id LIMIT ?",
                        (row["endpoint_id"], max_events),
                    ).fetchall()
                    if not events:
                        break
                    body = '{"events":[' + ",".join(self.cipher.open_text(e["payload"]) for e in events) + "]}"
                    self._insert(
                        tx, "msg_" + secrets.token_urlsafe(18), row["endpoint_id"], row["url"],
                        row["owner"], None, "batch", body, now, event_count=len(events),
                    )
                    tx.execute(
                        "DELETE FROM webhook_batch_buffer WHERE endpoint_id = ? AND id <= ?",
                        (row["endpoint_id"], events[-1]["id"]),
                    )
                    count -= len(events)
                    formed += 1
        return formed

    # -- sending -------------------------------------------------------------------------------

    def claim_due(
        self,
        owner: str,
        limit: int,
        lease_s: float,
        busy: Mapping[str, int] | None = None,
        per_destination: int | None = None,
        busy_tenants: Mapping[str, int] | None = None,
        per_tenant: int | None = None,
    ) -> list[Claimed]:
        """Lease up to ``limit`` due messages, at most ``per_destination`` in flight per endpoint
        and ``per_tenant`` per tenant, so one slow receiver cannot hold every sender thread
        while the others wait. In flight is what every process on this file has leased, or
        what this sender says it holds (``busy``, ``busy_tenants``) where that is more."""
        now = self.clock.now()
        cap = per_destination or limit
        tenant_cap = per_tenant or limit
        in_flight = dict(busy or {})
        by_tenant = dict(busy_tenants or {})
        if not self.db.exists("SELECT 1 " + _DUE + " LIMIT 1", now, now):
            return []
        with self.db.transaction() as tx:
            leased_to: dict[str, int] = {}
            leased_by: dict[str, int] = {}
            for held in tx.execute(
                "SELECT endpoint_id, url, owner, COUNT(*) AS n FROM webhook_messages "
                "WHERE lease_until >= ? AND status = 'pending' GROUP BY endpoint_id, url, owner",
                (now,),
            ):
                key = destination_key(held["endpoint_id"], held["url"])
                leased_to[key] = leased_to.get(key, 0) + held["n"]
                leased_by[held["owner"]] = leased_by.get(held["owner"], 0) + held["n"]
            for key, n in leased_to.items():
                in_flight[key] = max(in_flight.get(key, 0), n)
            for owner_of, n in leased_by.items():
                by_tenant[owner_of] = max(by_tenant.get(owner_of, 0), n)
            rows = tx.execute(
                "SELECT m.id, m.endpoint_id, m.url AS message_url, m.tries, m.requeued_by, m.owner, "
                "e.url AS endpoint_url, e.secret, e.old_secret, e.old_secret_expires_at "
                + _DUE
                + " ORDER BY m.next_attempt_at LIMIT ?",
                (now, now, limit * 50),
            ).fetchall()
            claimed: list[Claimed] = []
            for row in rows:
                if len(claimed) >= limit:
                    break
                key = destination_key(row["endpoint_id"], row["message_url"])
                if in_flight.get(key, 0) >= cap or by_tenant.get(row["owner"], 0) >= tenant_cap:
                    continue
                in_flight[key] = in_flight.get(key, 0) + 1
                by_tenant[row["owner"]] = by_tenant.get(row["owner"], 0) + 1
                tx.execute(
                    "UPDATE webhook_messages SET lease_until = ?, lease_owner = ? WHERE id = ?",
                    (now + lease_s, owner, row["id"]),
                )
                (sealed,) = tx.execute(
                    "SELECT body FROM webhook_messages WHERE id = ?", (row["id"],)
                ).fetchone()
                body = self.cipher.open_text(sealed)
                if row["endpoint_id"] is None:
                    in_force: tuple[str, ...] = (tenant_secret(self.callback_secret, row["owner"]),)
                    url = row["message_url"]
                else:
                    in_force = (row["secret"],)
                    if row["old_secret"] and (row["old_secret_expires_at"] or 0) > now:
                        in_force += (row["old_secret"],)
                    url = row["endpoint_url"]
                claimed.append(
                    Claimed(
                        row["id"],
                        row["endpoint_id"],
                        url,
                        body,
                        row["tries"],
                        in_force,
                        row["requeued_by"] or "scheduled",
                        row["owner"],
                    )
                )
        return claimed

    def record_attempt(
        self,
        message: Claimed,
        lease_owner: str,
        outcome: Outcome,
        attempted_at: float,
        retry_in: float | None = None,
    ) -> str:
        """Store the attempt and move the message on (due again in ``retry_in`` seconds, or a
        dead letter when None); returns its new status."""
        now = self.clock.now()
        with self.db.transaction() as tx:
            current = tx.execute(
                "SELECT status, lease_owner FROM webhook_messages WHERE id = ?", (message.id,)
            ).fetchone()
            if current is None:
                return "deleted"
            tx.execute(
                "INSERT INTO webhook_attempts (message_id, attempted_at, status_code, latency_ms, "
                "error, trigger) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    message.id,
                    attempted_at,
                    outcome.status_code,
                    round(outcome.latency_ms, 1),
                    outcome.error,
                    message.trigger,
                ),
            )
            if current["lease_owner"] != lease_owner or current["status"] != "pending":
                return str(current["status"])  # someone else took it over; keep their state
            tries = message.tries + 1
            if outcome.success:
                tx.execute(
                    "UPDATE webhook_messages SET status = 'succeeded', tries = ?, lease_until = NULL, "
                    "lease_owner = NULL, requeued_by = NULL, last_error = NULL, updated_at = ? "
                    "WHERE id = ?",
                    (tries, now, message.id),
                )
                if message.endpoint_id:
                    tx.execute(
                        "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ?",
                        (message.endpoint_id,),
                    )
                return "succeeded"
            status = "pending" if retry_in is not None else "failed"
            tx.execute(
                "UPDATE webhook_messages SET status = ?, tries = ?, next_attempt_at = ?, "
                "lease_until = NULL, lease_owner = NULL, requeued_by = NULL, last_error = ?, "
                "updated_at = ? WHERE id = ?",
                (status, tries, now + (retry_in or 0.0), outcome.error, now, message.id),
            )
            if message.endpoint_id:
                self._note_endpoint_failure(tx, message.endpoint_id, outcome, now)
            return status

    def _note_endpoint_failure(
        self, tx: sqlite3.Connection, endpoint_id: str, outcome: Outcome, now: float
    ) -> None:
        if outcome.gone:
            self._disable(tx, endpoint_id, "the endpoint answered 410 Gone", now)
            return
        tx.execute(
            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?) WHERE id = ?",
            (now, endpoint_id),
        )
        row = tx.execute(
            "SELECT failing_since FROM webhook_endpoints WHERE id = ?", (endpoint_id,)
        ).fetchone()
        if row and row[0] is not None and now - row[0] >= self.disable_after_s:
            since = iso_time(row[0])
            self._disable(tx, endpoint_id, f"every delivery has failed since {since}", now)

    @staticmethod
    def _disable(tx: sqlite3.Connection, endpoint_id: str, reason: str, now: float) -> None:
        tx.execute(
            "UPDATE webhook_endpoints SET disabled = 1, disabled_reason = ?, version = version + 1, "
            "updated_at = ? WHERE id = ? AND disabled = 0",
            (reason, now, endpoint_id),
        )

    # -- dead letters and recovery -------------------------------------------------------------

    def resend(self, message_id: str, owner: str, endpoint_id: str | None = None) -> dict[str, Any]:
        """Queue one message again, now, with a fresh retry budget (its attempts are kept)."""
        now = self.clock.now()
        with self.db.transaction() as tx:
            row = self._message_row(tx, message_id, owner, endpoint_id)
            if (
                row["status"] == "pending"
                and row["lease_until"] is not None
                and row["lease_until"] >= now  # held to its last instant, as claims see it
            ):
                raise Conflict("the message is being delivered right now")
            tx.execute(
                "UPDATE webhook_messages SET status = 'pending', tries = 0, next_attempt_at = ?, "
                "lease_until = NULL, lease_owner = NULL, requeued_by = 'resend', updated_at = ? "
                "WHERE id = ?",
                (now, now, message_id),
            )
        return self.get_message(message_id, owner)

    def recover(self, endpoint_id: str, owner: str, since: float, until: float | None) -> int:
        """Queue again every failed message of an endpoint created in [since, until)."""
        now = self.clock.now()
        with self.db.transaction() as tx:
            endpoint_row(tx, endpoint_id, owner)
            cur = tx.execute(
                "UPDATE webhook_messages SET status = 'pending', tries = 0, next_attempt_at = ?, "
                "lease_until = NULL, lease_owner = NULL, requeued_by = 'recover', updated_at = ? "
                "WHERE endpoint_id = ? AND status = 'failed' AND created_at >= ? AND created_at < ?",
                (now, now, endpoint_id, since, until if until is not None else now + 1.0),
            )
            return cur.rowcount

    # -- reading -------------------------------------------------------------------------------

    def list_messages(
        self,
        owner: str,
        *,
        endpoint_id: str | None,
        callbacks_only: bool = False,
        status: str | None = None,
        job_id: str | None = None,
        limit: int = 50,
        cursor: tuple[float, str] | None = None,
    ) -> tuple[list[dict[str, Any]], tuple[float, str] | None]:
        """Newest first; returns a page and the cursor of the next one (None at the end)."""
        clauses = ["m.owner = ?"]
        params: list[Any] = [owner]
        if job_id is not None:
            clauses.append("m.job_id = ?")
            params.append(job_id)
        if endpoint_id is not None:
            clauses.append("m.endpoint_id = ?")
            params.append(endpoint_id)
        elif callbacks_only:
            clauses.append("m.endpoint_id IS NULL")
        if status is not None:
            clauses.append("m.status = ?")
            params.append(status)
        if cursor is not None:
            clauses.append("(m.created_at < ? OR (m.created_at = ? AND m.id < ?))")
            params.extend([cursor[0], cursor[0], cursor[1]])
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT m.* FROM webhook_messages m WHERE "
                + " AND ".join(clauses)
                + " ORDER BY m.created_at DESC, m.id DESC LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
            page = [self._as_dict(conn, row) for row in rows[:limit]]
        if len(rows) > limit:
            last = rows[limit - 1]
            return page, (float(last["created_at"]), str(last["id"]))
        return page, None

    def get_message(
        self, message_id: str, owner: str, endpoint_id: str | None = None
    ) -> dict[str, Any]:
        with self.db.read() as conn:
            return self._as_dict(conn, self._message_row(conn, message_id, owner, endpoint_id))

    @staticmethod
    def _message_row(
        conn: sqlite3.Connection, message_id: str, owner: str, endpoint_id: str | None
    ) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM webhook_messages WHERE id = ? AND owner = ?", (message_id, owner)
        ).fetchone()
        if row is None or (endpoint_id is not None and row["endpoint_id"] != endpoint_id):
            raise NotFound(f"no webhook message {message_id!r}")
        return row

    def _as_dict(self, conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
        attempts = conn.execute(
            "SELECT attempted_at, status_code, latency_ms, error, trigger FROM webhook_attempts "
            "WHERE message_id = ? ORDER BY id",
            (row["id"],),
        ).fetchall()
        return {
            "id": row["id"],
            "endpoint_id": row["endpoint_id"],
            "url": row["url"] if row["endpoint_id"] is None else None,
            "job_id": row["job_id"],
            "event_type": row["event_type"],
            "event_count": row["event_count"],
            "status": row["status"],
            "created_at": iso_time(row["created_at"]),
            "next_attempt_at": (
                iso_time(row["next_attempt_at"]) if row["status"] == "pending" else None
            ),
            "last_error": row["last_error"],
            "payload": json.loads(self.cipher.open_text(row["body"])),
            "attempts": [
                {
                    "at": iso_time(a["attempted_at"]),
                    "status_code": a["status_code"],
                    "latency_ms": a["latency_ms"],
                    "error": a["error"],
                    "trigger": a["trigger"],
                }
                for a in attempts
            ],
        }

    # -- housekeeping --------------------------------------------------------------------------

    def purge(self) -> int:
        """Forget finished messages past the retention and old secrets past their overlap."""
        now = self.clock.now()
        cutoff = now - self.retention_s
        with self.db.transaction() as tx:
            tx.execute(
                "DELETE FROM webhook_attempts WHERE message_id IN (SELECT id FROM webhook_messages "
                "WHERE status IN ('succeeded', 'failed') AND updated_at < ?)",
                (cutoff,),
            )
            removed = tx.execute(
                "DELETE FROM webhook_messages WHERE status IN ('succeeded', 'failed') "
                "AND updated_at < ?",
                (cutoff,),
            ).rowcount
            tx.execute(
                "UPDATE webhook_endpoints SET old_secret = NULL, old_secret_expires_at = NULL "
                "WHERE old_secret_expires_at IS NOT NULL AND old_secret_expires_at <= ?",
                (now,),
            )
            tx.execute("DELETE FROM webhook_relayed WHERE at < ?", (now - _RELAYED_KEEP_SECONDS,))
        return removed

"""The webhook outbox: endpoints, messages, attempts and the batching buffer, in SQLite.

The tables live in the same database file as the jobs, so a job's state change and the messages
it causes are written in one transaction (``enqueue_job_event`` runs on the job store's
transaction). A message is the unit of delivery: it has the ``webhook-id`` that stays the same on
every retry, the exact body that is signed, and a due time. Senders claim due messages with a lease,
so a crash (kill -9) mid-send only delays the message until the lease runs out.
"""

from __future__ import annotations

import json
import random
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from service.webhooks.settings import WebhookSettings
from service.webhooks.signing import generate_secret, new_message_id

Clock = Callable[[], float]

JOB_EVENTS = ("job.succeeded", "job.failed", "job.canceled", "job.progress")
# "*" subscribes to every event except the chatty job.progress, which is opt-in by name.
WILDCARD_EVENTS = ("job.succeeded", "job.failed", "job.canceled")
CALLBACK_EVENTS = WILDCARD_EVENTS
TEST_EVENT = "webhook.test"
MAX_PAYLOAD_BYTES = 20_000

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
"""


# Messages a sender may claim now (both parameters: the current time). Shared by the cheap
# read-only "anything to do?" check and the claiming query, so the two cannot drift apart.
_DUE = (
    "FROM webhook_messages m LEFT JOIN webhook_endpoints e ON e.id = m.endpoint_id "
    "WHERE m.status = 'pending' AND m.next_attempt_at <= ? "
    "AND (m.lease_until IS NULL OR m.lease_until < ?) "
    "AND (m.endpoint_id IS NULL OR e.disabled = 0)"
)


class Executor(Protocol):
    """What the job store's transaction gives the hook: ``sqlite3.Connection`` or ``Cursor``."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> sqlite3.Cursor: ...


class NotFound(Exception):
    pass


class PreconditionFailed(Exception):
    def __init__(self, current_etag: str) -> None:
        super().__init__("If-Match does not match the current ETag")
        self.current_etag = current_etag


class Conflict(Exception):
    pass


@dataclass(frozen=True)
class Claimed:
    """A message leased to this sender for one attempt."""

    id: str
    endpoint_id: str | None
    url: str
    body: str
    tries: int
    secrets: tuple[str, ...]
    trigger: str = "scheduled"  # or "resend" / "recover": the first try after a manual requeue


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced."""

    status_code: int | None
    latency_ms: float
    error: str | None
    success: bool
    gone: bool = False  # 410: stop and disable the endpoint
    retry_after_s: float | None = None


def new_endpoint_id() -> str:
    return "ep_" + secrets.token_urlsafe(12)


def job_payload(
    job: dict[str, Any], event_type: str, now: float, base_url: str = ""
) -> dict[str, Any]:
    """The thin event body: no image data, only the job's id, state and where to fetch more."""
    job_id = str(job.get("id") or job.get("job_id") or "")
    data: dict[str, Any] = {"job_id": job_id, "status": job.get("status")}
    progress = job.get("progress")
    if isinstance(progress, dict):
        data["progress"] = {
            k: v
            for k, v in progress.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
    error = job.get("error")
    if isinstance(error, dict) and error.get("code"):
        data["error"] = {"code": str(error["code"])[:100]}
    data["links"] = {
        "self": f"{base_url}/v1/jobs/{job_id}",
        "results": f"{base_url}/v1/jobs/{job_id}/results",
    }
    return {"type": event_type, "timestamp": _iso(now), "data": data}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def destination_key(endpoint_id: str | None, url: str) -> str:
    """What per-destination limits count by: the endpoint, or a callback's URL."""
    return endpoint_id if endpoint_id is not None else "callback:" + url


def subscribed(event_types: Sequence[str], event_type: str) -> bool:
    if event_type in event_types:
        return True
    return "*" in event_types and event_type in WILDCARD_EVENTS


class WebhookStore:
    """All reads and writes of the webhook tables. Each call opens a short-lived connection."""

    def __init__(
        self,
        db_path: str | Path,
        settings: WebhookSettings,
        clock: Clock = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.db_path = str(db_path)
        self.settings = settings
        self.clock = clock
        self._rng = rng or random.Random()

    # -- plumbing -------------------------------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

    def _exists(self, sql: str, *params: Any) -> bool:
        """A read that lets the sender poll without taking SQLite's write lock when idle."""
        with self.reading() as conn:
            return conn.execute(sql, params).fetchone() is not None

    def create_schema(self) -> None:
        Path(self.db_path).parent.mkdir(parents=True, exist_ok=True)
        conn = self.connect()
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(SCHEMA)
            # CREATE TABLE IF NOT EXISTS leaves a table made by an older version as it was.
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(webhook_messages)")}
            if "requeued_by" not in columns:
                conn.execute("ALTER TABLE webhook_messages ADD COLUMN requeued_by TEXT")
        finally:
            conn.close()

    # -- enqueue (runs inside the job store's transaction) --------------------------------------

    def enqueue_job_event(
        self, tx: Executor, job: dict[str, Any], event_type: str, base_url: str = ""
    ) -> int:
        """Write the messages that a job's change causes; returns how many were written/updated."""
        now = self.clock()
        payload = job_payload(job, event_type, now, base_url)
        body = _dumps(payload)
        job_id = payload["data"]["job_id"]
        owner = str(job.get("tenant") or "")
        written = 0
        rows = tx.execute(
            "SELECT id, url, event_types, batch_max_events FROM webhook_endpoints "
            "WHERE disabled = 0 AND owner = ?",
            (owner,),
        ).fetchall()
        for row in rows:
            endpoint_id, url, event_types_json, batch_max = row[0], row[1], row[2], row[3]
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
                    (endpoint_id, job_id, event_type, body, now),
                )
            else:
                self._insert_or_coalesce(tx, endpoint_id, url, owner, job_id, event_type, body, now)
            written += 1
        callback_url = job.get("callback_url")
        if callback_url and event_type in CALLBACK_EVENTS:
            self._insert_message(tx, None, str(callback_url), owner, job_id, event_type, body, now)
            written += 1
        return written

    def _insert_or_coalesce(
        self,
        tx: Executor,
        endpoint_id: str,
        url: str,
        owner: str,
        job_id: str,
        event_type: str,
        body: str,
        now: float,
    ) -> None:
        if event_type == "job.progress":
            # A progress message not yet tried is replaced by the newer one, so a 1,000-image job
            # does not queue 1,000 callbacks; its webhook-id was never sent, so nothing is lost.
            updated = tx.execute(
                "UPDATE webhook_messages SET body = ?, updated_at = ? WHERE endpoint_id = ? "
                "AND job_id = ? AND event_type = 'job.progress' AND status = 'pending' "
                "AND tries = 0 AND lease_until IS NULL",
                (body, now, endpoint_id, job_id),
            )
            if updated.rowcount:
                return
        self._insert_message(tx, endpoint_id, url, owner, job_id, event_type, body, now)

    def _insert_message(
        self,
        tx: Executor,
        endpoint_id: str | None,
        url: str,
        owner: str,
        job_id: str | None,
        event_type: str,
        body: str,
        now: float,
        event_count: int = 1,
    ) -> str:
        msg_id = new_message_id()
        tx.execute(
            "INSERT INTO webhook_messages (id, endpoint_id, url, owner, job_id, event_type, body, "
            "event_count, status, tries, next_attempt_at, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            (msg_id, endpoint_id, url, owner, job_id, event_type, body, event_count, now, now, now),
        )
        return msg_id

    def enqueue_test(self, endpoint_id: str, owner: str, event_type: str) -> str:
        """An example event to one endpoint (never batched, so it shows up at once)."""
        with self.transaction() as tx:
            endpoint = self._endpoint_row(tx, endpoint_id, owner)
            now = self.clock()
            status = {"job.progress": "running"}.get(event_type, event_type.removeprefix("job."))
            example = {"id": "job_example", "status": status}
            payload = job_payload(example, event_type, now)
            payload["data"]["example"] = True
            return self._insert_message(
                tx, endpoint_id, endpoint["url"], owner, None, event_type, _dumps(payload), now
            )

    # -- batching -------------------------------------------------------------------------------

    def form_batches(self) -> int:
        """Turn buffered events into batch messages: N events, or fewer once the oldest waited T ms."""
        now = self.clock()
        formed = 0
        if not self._exists("SELECT 1 FROM webhook_batch_buffer LIMIT 1"):
            return 0
        with self.transaction() as tx:
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
                    body = '{"events":[' + ",".join(e["payload"] for e in events) + "]}"
                    self._insert_message(
                        tx,
                        row["endpoint_id"],
                        row["url"],
                        row["owner"],
                        None,
                        "batch",
                        body,
                        now,
                        event_count=len(events),
                    )
                    tx.execute(
                        "DELETE FROM webhook_batch_buffer WHERE endpoint_id = ? AND id <= ?",
                        (row["endpoint_id"], events[-1]["id"]),
                    )
                    count -= len(events)
                    formed += 1
        return formed

    # -- sending --------------------------------------------------------------------------------

    def claim_due(
        self,
        owner: str,
        limit: int,
        lease_s: float,
        busy: Mapping[str, int] | None = None,
        per_destination: int | None = None,
    ) -> list[Claimed]:
        """Lease up to ``limit`` due messages, at most ``per_destination`` in flight per endpoint
        (counting ``busy``, what this sender already has in flight), so one slow receiver cannot
        hold every sender thread while the others wait."""
        now = self.clock()
        cap = per_destination or limit
        in_flight = dict(busy or {})
        if not self._exists("SELECT 1 " + _DUE + " LIMIT 1", now, now):
            return []
        with self.transaction() as tx:
            rows = tx.execute(
                "SELECT m.id, m.endpoint_id, m.url AS message_url, m.tries, m.requeued_by, "
                "e.url AS endpoint_url, e.secret, e.old_secret, e.old_secret_expires_at "
                + _DUE
                + " ORDER BY m.next_attempt_at LIMIT ?",
                (now, now, limit * 50),
            ).fetchall()
            claimed: list[Claimed] = []
            callback_secret = self.callback_secret()
            for row in rows:
                if len(claimed) >= limit:
                    break
                key = destination_key(row["endpoint_id"], row["message_url"])
                if in_flight.get(key, 0) >= cap:
                    continue
                in_flight[key] = in_flight.get(key, 0) + 1
                tx.execute(
                    "UPDATE webhook_messages SET lease_until = ?, lease_owner = ? WHERE id = ?",
                    (now + lease_s, owner, row["id"]),
                )
                body = tx.execute(
                    "SELECT body FROM webhook_messages WHERE id = ?", (row["id"],)
                ).fetchone()[0]
                if row["endpoint_id"] is None:
                    in_force: tuple[str, ...] = (callback_secret,)
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
                    )
                )
        return claimed

    def retry_delay(self, tries_done: int) -> float | None:
        """Seconds until the next try after ``tries_done`` failed tries, or None when exhausted."""
        schedule = self.settings.retry_schedule
        if tries_done > len(schedule):
            return None
        base = schedule[tries_done - 1]
        j = self.settings.jitter
        return max(0.0, base * self._rng.uniform(1.0 - j, 1.0 + j))

    def record_attempt(
        self,
        message: Claimed,
        lease_owner: str,
        outcome: Outcome,
        attempted_at: float,
    ) -> str:
        """Store the attempt and move the message on; returns its new status."""
        now = self.clock()
        with self.transaction() as tx:
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
            delay = None if outcome.gone else self.retry_delay(tries)
            if delay is not None and outcome.retry_after_s is not None:
                delay = min(max(outcome.retry_after_s, 0.0), self.settings.retry_after_cap_s)
            status = "pending" if delay is not None else "failed"
            tx.execute(
                "UPDATE webhook_messages SET status = ?, tries = ?, next_attempt_at = ?, "
                "lease_until = NULL, lease_owner = NULL, requeued_by = NULL, last_error = ?, "
                "updated_at = ? WHERE id = ?",
                (status, tries, now + (delay or 0.0), outcome.error, now, message.id),
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
        if row and row[0] is not None and now - row[0] >= self.settings.disable_after_s:
            since = _iso(row[0])
            self._disable(tx, endpoint_id, f"every delivery has failed since {since}", now)

    def _disable(self, tx: sqlite3.Connection, endpoint_id: str, reason: str, now: float) -> None:
        tx.execute(
            "UPDATE webhook_endpoints SET disabled = 1, disabled_reason = ?, version = version + 1, "
            "updated_at = ? WHERE id = ? AND disabled = 0",
            (reason, now, endpoint_id),
        )

    # -- dead letters and recovery --------------------------------------------------------------

    def resend(self, message_id: str, owner: str, endpoint_id: str | None = None) -> dict[str, Any]:
        """Queue one message again, now, with a fresh retry budget (its attempts are kept)."""
        now = self.clock()
        with self.transaction() as tx:
            row = self._message_row(tx, message_id, owner, endpoint_id)
            if (
                row["status"] == "pending"
                and row["lease_until"] is not None
                and row["lease_until"] > now
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
        now = self.clock()
        with self.transaction() as tx:
            self._endpoint_row(tx, endpoint_id, owner)
            cur = tx.execute(
                "UPDATE webhook_messages SET status = 'pending', tries = 0, next_attempt_at = ?, "
                "lease_until = NULL, lease_owner = NULL, requeued_by = 'recover', updated_at = ? "
                "WHERE endpoint_id = ? AND status = 'failed' AND created_at >= ? AND created_at < ?",
                (now, now, endpoint_id, since, until if until is not None else now + 1.0),
            )
            return cur.rowcount

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
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT m.* FROM webhook_messages m WHERE "
                + " AND ".join(clauses)
                + " ORDER BY m.created_at DESC, m.id DESC LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
            page = [self._message_dict(conn, row) for row in rows[:limit]]
        if len(rows) > limit:
            last = rows[limit - 1]
            return page, (float(last["created_at"]), str(last["id"]))
        return page, None

    def get_message(
        self, message_id: str, owner: str, endpoint_id: str | None = None
    ) -> dict[str, Any]:
        with self.reading() as conn:
            return self._message_dict(conn, self._message_row(conn, message_id, owner, endpoint_id))

    def _message_row(
        self, conn: sqlite3.Connection, message_id: str, owner: str, endpoint_id: str | None
    ) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM webhook_messages WHERE id = ? AND owner = ?", (message_id, owner)
        ).fetchone()
        if row is None or (endpoint_id is not None and row["endpoint_id"] != endpoint_id):
            raise NotFound(f"no webhook message {message_id!r}")
        return row

    def _message_dict(self, conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
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
            "created_at": _iso(row["created_at"]),
            "next_attempt_at": _iso(row["next_attempt_at"]) if row["status"] == "pending" else None,
            "last_error": row["last_error"],
            "payload": json.loads(row["body"]),
            "attempts": [
                {
                    "at": _iso(a["attempted_at"]),
                    "status_code": a["status_code"],
                    "latency_ms": a["latency_ms"],
                    "error": a["error"],
                    "trigger": a["trigger"],
                }
                for a in attempts
            ],
        }

    # -- endpoints ------------------------------------------------------------------------------

    def create_endpoint(self, owner: str, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Returns the endpoint and its secret (shown once)."""
        now = self.clock()
        secret = generate_secret()
        endpoint_id = new_endpoint_id()
        batch = fields.get("batch") or {}
        with self.transaction() as tx:
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
                    _dumps(fields.get("metadata", {})),
                    secret,
                    now,
                    now,
                ),
            )
            return self._endpoint_dict(self._endpoint_row(tx, endpoint_id, owner)), secret

    def get_endpoint(self, endpoint_id: str, owner: str) -> dict[str, Any]:
        with self.reading() as conn:
            return self._endpoint_dict(self._endpoint_row(conn, endpoint_id, owner))

    def list_endpoints(
        self, owner: str, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """By id; returns a page and the cursor of the next one (None at the end)."""
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT * FROM webhook_endpoints WHERE owner = ? AND (? IS NULL OR id > ?) "
                "ORDER BY id LIMIT ?",
                (owner, after, after, limit + 1),
            ).fetchall()
        page = [self._endpoint_dict(r) for r in rows[:limit]]
        return page, (page[-1]["id"] if len(rows) > limit else None)

    def update_endpoint(
        self, endpoint_id: str, owner: str, changes: dict[str, Any], if_match: str | None
    ) -> dict[str, Any]:
        now = self.clock()
        with self.transaction() as tx:
            current = self._endpoint_dict(self._endpoint_row(tx, endpoint_id, owner))
            if if_match is not None and not etag_matches(if_match, current["etag"]):
                raise PreconditionFailed(current["etag"])
            sets: list[str] = []
            params: list[Any] = []
            simple = {"url": "url", "description": "description"}
            for key, column in simple.items():
                if key in changes:
                    sets.append(f"{column} = ?")
                    params.append(changes[key])
            if "event_types" in changes:
                sets.append("event_types = ?")
                params.append(json.dumps(changes["event_types"]))
            if "metadata" in changes:
                sets.append("metadata = ?")
                params.append(_dumps(changes["metadata"]))
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
            return self._endpoint_dict(self._endpoint_row(tx, endpoint_id, owner))

    def delete_endpoint(self, endpoint_id: str, owner: str, if_match: str | None) -> None:
        with self.transaction() as tx:
            current = self._endpoint_dict(self._endpoint_row(tx, endpoint_id, owner))
            if if_match is not None and not etag_matches(if_match, current["etag"]):
                raise PreconditionFailed(current["etag"])
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
        now = self.clock()
        secret = generate_secret()
        with self.transaction() as tx:
            self._endpoint_row(tx, endpoint_id, owner)
            tx.execute(
                "UPDATE webhook_endpoints SET old_secret = secret, old_secret_expires_at = ?, "
                "secret = ?, version = version + 1, updated_at = ? WHERE id = ?",
                (now + self.settings.rotation_overlap_s, secret, now, endpoint_id),
            )
            return self._endpoint_dict(self._endpoint_row(tx, endpoint_id, owner)), secret

    def _endpoint_row(self, conn: sqlite3.Connection, endpoint_id: str, owner: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM webhook_endpoints WHERE id = ? AND owner = ?", (endpoint_id, owner)
        ).fetchone()
        if row is None:
            raise NotFound(f"no webhook endpoint {endpoint_id!r}")
        return row

    def _endpoint_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        now = self.clock()
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
            "failing_since": _iso(row["failing_since"]) if row["failing_since"] else None,
            "previous_secret_expires_at": (
                _iso(previous_until) if previous_until and previous_until > now else None
            ),
            "created_at": _iso(row["created_at"]),
            "updated_at": _iso(row["updated_at"]),
            "etag": f'"{row["id"]}-v{row["version"]}"',
        }

    # -- housekeeping ---------------------------------------------------------------------------

    def callback_secret(self) -> str:
        return self.settings.callback_secret

    def purge(self) -> int:
        """Forget finished messages past the retention and old secrets past their overlap."""
        now = self.clock()
        cutoff = now - self.settings.retention_s
        with self.transaction() as tx:
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
            removed += self._purge_orphans(tx)
            tx.execute(
                "UPDATE webhook_endpoints SET old_secret = NULL, old_secret_expires_at = NULL "
                "WHERE old_secret_expires_at IS NOT NULL AND old_secret_expires_at <= ?",
                (now,),
            )
        return removed

    @staticmethod
    def _purge_orphans(tx: sqlite3.Connection) -> int:
        """Finished messages about jobs that retention (or a delete) removed: their links are dead.

        The job store's ``jobs`` table shares this database; without it (the webhook tables used
        on their own) there is nothing to compare with.
        """
        has_jobs = tx.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
        ).fetchone()
        if has_jobs is None:
            return 0
        orphans = (
            "SELECT m.id FROM webhook_messages m WHERE m.job_id IS NOT NULL "
            "AND m.status != 'pending' AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = m.job_id)"
        )
        tx.execute(f"DELETE FROM webhook_attempts WHERE message_id IN ({orphans})")
        return tx.execute(f"DELETE FROM webhook_messages WHERE id IN ({orphans})").rowcount


def etag_matches(header: str, etag: str) -> bool:
    """``If-Match``: strong comparison, a list, or ``*``."""
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or any(c == etag and not c.startswith("W/") for c in candidates)

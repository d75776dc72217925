"""The embedded backend: jobs, items, leases, idempotency keys and the palette cache in SQLite.

One file in WAL mode, one connection per thread, every write in a ``BEGIN IMMEDIATE``
transaction. Lease writes carry an owner check (``lease_owner`` + ``lease_token``), so a worker
whose lease expired can never write over the worker that took the job after it.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from .interfaces import (
    Clock,
    IdempotencyOutcome,
    ItemResult,
    Job,
    JobConflict,
    JobInput,
    JobNotFound,
    Lease,
    LeaseState,
    NewJob,
    Progress,
    ResultInfo,
    SystemClock,
    TransitionHook,
)

__all__ = ["SqliteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    status TEXT NOT NULL,
    options TEXT NOT NULL,
    callback_url TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    expires_at REAL,
    total INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_token INTEGER NOT NULL DEFAULT 0,
    lease_expires REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result_key TEXT,
    result_digest TEXT,
    result_size INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant, seq);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS job_inputs (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    blob_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_items (
    job_id TEXT NOT NULL,
    input_seq INTEGER NOT NULL,
    entry_index INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    palette TEXT,
    error TEXT,
    PRIMARY KEY (job_id, input_seq, entry_index)
) WITHOUT ROWID;
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
CREATE TABLE IF NOT EXISTS palette_cache (
    key TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    used_at REAL NOT NULL
) WITHOUT ROWID;
"""

# An in-flight idempotency reservation older than this belongs to a request that died.
_STALE_RESERVATION_SECONDS = 3600.0


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Raise ValueError on anything that is not a cursor this store produced."""
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (ValueError, UnicodeError):
        raise ValueError("malformed cursor") from None
    if not raw.startswith("s") or not raw[1:].isdigit() or len(raw) > 20:
        raise ValueError("malformed cursor")
    return int(raw[1:])


class SqliteStore:
    """Implements JobStore, JobQueue, IdempotencyStore and PaletteCache on one SQLite file."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock | None = None,
        retention_seconds: float = 7 * 24 * 3600.0,
        idempotency_seconds: float = 24 * 3600.0,
        cache_entries: int = 10_000,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock: Clock = clock or SystemClock()
        self.retention_seconds = retention_seconds
        self.idempotency_seconds = idempotency_seconds
        self.cache_entries = cache_entries
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._hooks: list[TransitionHook] = []
        conn = self._conn()
        conn.executescript(_SCHEMA)

    # -- plumbing --------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a killed process (kill -9); only an OS crash
            # can lose the last transactions.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``); also the seam other components use."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass
            self._all.clear()
        self._local = threading.local()

    def ping(self) -> None:
        self._conn().execute("SELECT 1").fetchone()

    def add_transition_hook(self, hook: TransitionHook) -> None:
        self._hooks.append(hook)

    def _emit(self, conn: sqlite3.Connection, job_id: str, event_type: str) -> None:
        if not self._hooks:
            return
        job = self._load(conn, job_id)
        if job is None:
            return
        payload = job.to_public()
        payload["tenant"] = job.tenant
        for hook in self._hooks:
            hook(conn, payload, event_type)

    @staticmethod
    def _row_to_job(row: sqlite3.Row) -> Job:
        return Job(
            id=row["id"],
            tenant=row["tenant"],
            status=row["status"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            expires_at=row["expires_at"],
            options=json.loads(row["options"]),
            progress=Progress(row["total"], row["done"], row["failed"], row["skipped"]),
            error=json.loads(row["error"]) if row["error"] else None,
            callback_url=row["callback_url"],
            cancel_requested=bool(row["cancel_requested"]),
            result_key=row["result_key"],
            result_digest=row["result_digest"],
            result_size=row["result_size"],
            attempts=row["attempts"],
        )

    def _load(self, conn: sqlite3.Connection, job_id: str) -> Job | None:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else self._row_to_job(row)

    def _visible(self, conn: sqlite3.Connection, job_id: str, tenant: str | None) -> Job:
        job = self._load(conn, job_id)
        now = self.clock.now()
        if (
            job is None
            or (tenant is not None and job.tenant != tenant)
            or (job.expires_at is not None and job.expires_at <= now)
        ):
            raise JobNotFound(job_id)
        return job

    # -- JobStore --------------------------------------------------------------------------
    def submit(self, job: NewJob, idempotency: IdempotencyOutcome | None = None) -> Job:
        now = self.clock.now()
        total = job.total
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (id, tenant, status, options, callback_url, created_at,"
                " updated_at, total) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                (job.id, job.tenant, json.dumps(job.options), job.callback_url, now, now, total),
            )
            conn.executemany(
                "INSERT INTO job_inputs (job_id, seq, name, blob_key, kind, size)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(job.id, i.seq, i.name, i.blob_key, i.kind, i.size) for i in job.inputs],
            )
            created = self._load(conn, job.id)
            assert created is not None
            if idempotency is not None:
                conn.execute(
                    "UPDATE idempotency SET state = 'done', fingerprint = ?, status_code = ?,"
                    " body = ?, location = ?, job_id = ? WHERE tenant = ? AND method = ?"
                    " AND path = ? AND key = ?",
                    (
                        idempotency.fingerprint,
                        idempotency.status_code,
                        json.dumps(created.to_public()),
                        idempotency.location,
                        job.id,
                        idempotency.tenant,
                        idempotency.method,
                        idempotency.path,
                        idempotency.key,
                    ),
                )
        return created

    def get(self, job_id: str, tenant: str | None = None) -> Job:
        return self._visible(self._conn(), job_id, tenant)

    def list_jobs(
        self, tenant: str, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        sql = "SELECT * FROM jobs WHERE tenant = ? AND (expires_at IS NULL OR expires_at > ?)"
        args: list[Any] = [tenant, self.clock.now()]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if cursor is not None:
            sql += " AND seq < ?"
            args.append(decode_cursor(cursor))
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit + 1)
        rows = self._conn().execute(sql, args).fetchall()
        jobs = [self._row_to_job(r) for r in rows[:limit]]
        next_cursor = _encode_cursor(rows[limit - 1]["seq"]) if len(rows) > limit else None
        return jobs, next_cursor

    def cancel(self, job_id: str, tenant: str) -> Job:
        now = self.clock.now()
        with self.transaction() as conn:
            job = self._visible(conn, job_id, tenant)
            if job.status in {"succeeded", "failed"}:
                raise JobConflict(f"job {job_id} already {job.status}", job.status)
            if job.status == "queued":
                conn.execute(
                    "UPDATE jobs SET status = 'canceled', cancel_requested = 1, updated_at = ?,"
                    " finished_at = ?, expires_at = ? WHERE id = ?",
                    (now, now, now + self.retention_seconds, job_id),
                )
                self._emit(conn, job_id, "job.canceled")
            elif job.status == "running" and not job.cancel_requested:
                conn.execute(
                    "UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                    (now, job_id),
                )
            updated = self._load(conn, job_id)
        assert updated is not None
        return updated

    def delete(self, job_id: str, tenant: str) -> Job:
        with self.transaction() as conn:
            job = self._visible(conn, job_id, tenant)
            if job.status == "running":
                raise JobConflict(f"job {job_id} is running; cancel it first", job.status)
            self._delete_rows(conn, job_id)
        return job

    @staticmethod
    def _delete_rows(conn: sqlite3.Connection, job_id: str) -> None:
        # A key whose job is gone starts afresh rather than replaying a dangling response.
        conn.execute("DELETE FROM idempotency WHERE job_id = ?", (job_id,))
        conn.execute("DELETE FROM job_items WHERE job_id = ?", (job_id,))
        conn.execute("DELETE FROM job_inputs WHERE job_id = ?", (job_id,))
        conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def inputs(self, job_id: str) -> list[JobInput]:
        rows = (
            self._conn()
            .execute("SELECT * FROM job_inputs WHERE job_id = ? ORDER BY seq", (job_id,))
            .fetchall()
        )
        return [JobInput(r["seq"], r["name"], r["blob_key"], r["kind"], r["size"]) for r in rows]

    def iter_items(self, job_id: str) -> Iterator[ItemResult]:
        # A dedicated connection: the caller may write other rows while this cursor is open.
        conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            cur = conn.execute(
                "SELECT input_seq, entry_index, name, status, palette, error FROM job_items"
                " WHERE job_id = ? ORDER BY input_seq, entry_index",
                (job_id,),
            )
            for seq, index, name, status, palette, error in cur:
                yield ItemResult(
                    seq,
                    index,
                    name,
                    status,
                    json.loads(palette) if palette else None,
                    json.loads(error) if error else None,
                )
        finally:
            conn.close()

    def expire(self, limit: int = 500) -> list[Job]:
        now = self.clock.now()
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ?"
                " ORDER BY expires_at LIMIT ?",
                (now, limit),
            ).fetchall()
            jobs = [self._row_to_job(r) for r in rows]
            for job in jobs:
                self._delete_rows(conn, job.id)
            conn.execute(
                "DELETE FROM idempotency WHERE created_at <= ?", (now - self.idempotency_seconds,)
            )
            conn.execute(
                "DELETE FROM palette_cache WHERE key IN (SELECT key FROM palette_cache"
                " ORDER BY used_at DESC LIMIT -1 OFFSET ?)",
                (self.cache_entries,),
            )
            conn.execute(
                "DELETE FROM palette_cache WHERE used_at <= ?", (now - self.retention_seconds,)
            )
        return jobs

    def counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {r[0]: r[1] for r in rows}

    # -- JobQueue --------------------------------------------------------------------------
    _CLAIMABLE = (
        "SELECT id FROM jobs WHERE status = 'queued'"
        " OR (status = 'running' AND lease_expires < ?) ORDER BY seq LIMIT 1"
    )

    def claim(self, owner: str, lease_seconds: float) -> Lease | None:
        now = self.clock.now()
        # Idle workers ask often: a plain read first, so an empty queue costs no write lock.
        if self._conn().execute(self._CLAIMABLE, (now,)).fetchone() is None:
            return None
        with self.transaction() as conn:
            row = conn.execute(self._CLAIMABLE, (now,)).fetchone()
            if row is None:
                return None
            job_id = row["id"]
            was_queued = conn.execute(
                "SELECT status = 'queued' FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()[0]
            conn.execute(
                "UPDATE jobs SET status = 'running', lease_owner = ?,"
                " lease_token = lease_token + 1, lease_expires = ?, attempts = attempts + 1,"
                " started_at = COALESCE(started_at, ?), updated_at = ? WHERE id = ?",
                (owner, now + lease_seconds, now, now, job_id),
            )
            token = conn.execute("SELECT lease_token FROM jobs WHERE id = ?", (job_id,)).fetchone()[
                0
            ]
            if was_queued:
                self._emit(conn, job_id, "job.progress")
        return Lease(job_id, owner, token, now + lease_seconds)

    _OWNED = "id = ? AND lease_owner = ? AND lease_token = ? AND status = 'running'"

    def renew(self, lease: Lease, lease_seconds: float) -> LeaseState:
        now = self.clock.now()
        with self.transaction() as conn:
            cur = conn.execute(
                f"UPDATE jobs SET lease_expires = ? WHERE {self._OWNED}",
                (now + lease_seconds, lease.job_id, lease.owner, lease.token),
            )
            if cur.rowcount == 0:
                return LeaseState(alive=False, cancel_requested=False)
            flag = conn.execute(
                "SELECT cancel_requested FROM jobs WHERE id = ?", (lease.job_id,)
            ).fetchone()[0]
        return LeaseState(alive=True, cancel_requested=bool(flag))

    def cancel_requested(self, job_ids: Sequence[str]) -> set[str]:
        if not job_ids:
            return set()
        marks = ",".join("?" * len(job_ids))
        rows = (
            self._conn()
            .execute(
                f"SELECT id FROM jobs WHERE id IN ({marks})"
                " AND (cancel_requested = 1 OR status != 'running')",
                list(job_ids),
            )
            .fetchall()
        )
        return {r[0] for r in rows}

    def done_items(self, job_id: str) -> set[tuple[int, int]]:
        rows = (
            self._conn()
            .execute("SELECT input_seq, entry_index FROM job_items WHERE job_id = ?", (job_id,))
            .fetchall()
        )
        return {(r[0], r[1]) for r in rows}

    def progress(
        self,
        lease: Lease,
        items: Sequence[ItemResult],
        total: int | None,
        *,
        notify: bool = False,
        lease_seconds: float | None = None,
    ) -> bool:
        now = self.clock.now()
        with self.transaction() as conn:
            owned = conn.execute(
                f"SELECT 1 FROM jobs WHERE {self._OWNED}", (lease.job_id, lease.owner, lease.token)
            ).fetchone()
            if owned is None:
                return False
            added = {"succeeded": 0, "failed": 0, "skipped": 0}
            for item in items:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO job_items (job_id, input_seq, entry_index, name,"
                    " status, palette, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        lease.job_id,
                        item.input_seq,
                        item.entry_index,
                        item.name,
                        item.status,
                        json.dumps(item.palette) if item.palette is not None else None,
                        json.dumps(item.error) if item.error is not None else None,
                    ),
                )
                if cur.rowcount:
                    added[item.status] += 1
            conn.execute(
                "UPDATE jobs SET done = done + ?, failed = failed + ?, skipped = skipped + ?,"
                " total = COALESCE(?, total), updated_at = ?,"
                " lease_expires = COALESCE(?, lease_expires) WHERE id = ?",
                (
                    added["succeeded"],
                    added["failed"],
                    added["skipped"],
                    total,
                    now,
                    None if lease_seconds is None else now + lease_seconds,
                    lease.job_id,
                ),
            )
            if notify:
                self._emit(conn, lease.job_id, "job.progress")
        return True

    def _finish(
        self,
        lease: Lease,
        status: Literal["succeeded", "failed", "canceled"],
        *,
        result: ResultInfo | None = None,
        error: dict[str, Any] | None = None,
        unless_cancel_requested: bool = False,
    ) -> bool:
        now = self.clock.now()
        with self.transaction() as conn:
            sql = (
                "UPDATE jobs SET status = ?, finished_at = ?, updated_at = ?, expires_at = ?,"
                " lease_owner = NULL, lease_expires = NULL, result_key = ?, result_digest = ?,"
                f" result_size = ?, error = ? WHERE {self._OWNED}"
            )
            if unless_cancel_requested:
                sql += " AND cancel_requested = 0"
            cur = conn.execute(
                sql,
                (
                    status,
                    now,
                    now,
                    now + self.retention_seconds,
                    result.key if result else None,
                    result.digest if result else None,
                    result.size if result else None,
                    json.dumps(error) if error is not None else None,
                    lease.job_id,
                    lease.owner,
                    lease.token,
                ),
            )
            if cur.rowcount == 0:
                return False
            if status == "succeeded":
                conn.execute(
                    "UPDATE jobs SET total = done + failed + skipped WHERE id = ?",
                    (lease.job_id,),
                )
            if status == "canceled":
                # Canceled work keeps nothing: its partial results go with it.
                conn.execute("DELETE FROM job_items WHERE job_id = ?", (lease.job_id,))
                conn.execute(
                    "UPDATE jobs SET done = 0, failed = 0, skipped = 0 WHERE id = ?",
                    (lease.job_id,),
                )
            self._emit(conn, lease.job_id, f"job.{status}")
        return True

    def complete(self, lease: Lease, result: ResultInfo) -> bool:
        return self._finish(lease, "succeeded", result=result, unless_cancel_requested=True)

    def fail(self, lease: Lease, error: dict[str, Any], result: ResultInfo | None) -> bool:
        return self._finish(
            lease, "failed", result=result, error=error, unless_cancel_requested=True
        )

    def acknowledge_cancel(self, lease: Lease) -> bool:
        return self._finish(lease, "canceled")

    def release(self, lease: Lease) -> bool:
        now = self.clock.now()
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires = NULL,"
                f" updated_at = ? WHERE {self._OWNED}",
                (now, lease.job_id, lease.owner, lease.token),
            )
        return cur.rowcount > 0

    def reap_expired(self) -> int:
        """Jobs whose worker vanished go back to the queue (or end canceled if asked to)."""
        now = self.clock.now()
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT id, cancel_requested FROM jobs WHERE status = 'running'"
                " AND lease_expires < ?",
                (now,),
            ).fetchall()
            for row in rows:
                if row["cancel_requested"]:
                    conn.execute(
                        "UPDATE jobs SET status = 'canceled', lease_owner = NULL,"
                        " lease_expires = NULL, finished_at = ?, updated_at = ?, expires_at = ?,"
                        " done = 0, failed = 0, skipped = 0 WHERE id = ?",
                        (now, now, now + self.retention_seconds, row["id"]),
                    )
                    conn.execute("DELETE FROM job_items WHERE job_id = ?", (row["id"],))
                    self._emit(conn, row["id"], "job.canceled")
                else:
                    conn.execute(
                        "UPDATE jobs SET status = 'queued', lease_owner = NULL,"
                        " lease_expires = NULL, updated_at = ? WHERE id = ?",
                        (now, row["id"]),
                    )
        return len(rows)

    def queue_depth(self) -> int:
        row = self._conn().execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()
        return int(row[0])

    # -- IdempotencyStore ------------------------------------------------------------------
    def idempotency_begin(
        self, tenant: str, key: str, method: str, path: str
    ) -> Literal["new", "in_flight"] | IdempotencyOutcome:
        now = self.clock.now()
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM idempotency WHERE tenant = ? AND method = ? AND path = ?"
                " AND key = ?",
                (tenant, method, path, key),
            ).fetchone()
            expired = row is not None and (
                row["created_at"] <= now - self.idempotency_seconds
                or (
                    row["state"] == "in_flight"
                    and row["created_at"] <= now - _STALE_RESERVATION_SECONDS
                )
            )
            if row is None or expired:
                conn.execute(
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
        with self.transaction() as conn:
            conn.execute(
                "DELETE FROM idempotency WHERE tenant = ? AND method = ? AND path = ? AND key = ?"
                " AND state = 'in_flight'",
                (tenant, method, path, key),
            )

    # -- PaletteCache ----------------------------------------------------------------------
    def cache_get(self, key: str) -> bytes | None:
        conn = self._conn()
        row = conn.execute("SELECT body FROM palette_cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def cache_keys(self) -> list[str]:
        conn = self._conn()
        return [row[0] for row in conn.execute("SELECT key FROM palette_cache")]

    def cache_put(self, entries: Mapping[str, bytes]) -> None:
        if self.cache_entries <= 0 or not entries:
            return
        now = self.clock.now()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO palette_cache (key, body, used_at) VALUES (?, ?, ?)",
                [(key, body, now) for key, body in entries.items()],
            )

"""Jobs, their inputs and images, leases and crash accounting, in SQLite.

Every write is one ``BEGIN IMMEDIATE`` transaction. Lease writes carry an owner check
(``lease_owner`` + ``lease_token``), so a worker whose lease expired can never write over the
worker that took the job after it. Every state change appends its event to ``job_events`` in
the same transaction.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from ..clock import Clock
from ..crypto.fields import Plain
from ..jobs.cursors import decode_cursor, encode_cursor
from ..jobs.interfaces import (
    IdempotencyOutcome,
    ItemKey,
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
)
from ..jobs.wakeup import ClaimWaiter
from . import events
from .idempotency import SCHEMA as IDEMPOTENCY_SCHEMA
from .idempotency import forget_job, record_outcome
from .database import Database

__all__ = ["SqliteJobStore"]

SCHEMA = """
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
    claim_progress INTEGER NOT NULL DEFAULT 0,
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
CREATE TABLE IF NOT EXISTS job_inflight (
    job_id TEXT NOT NULL,
    input_seq INTEGER NOT NULL,
    entry_index INTEGER NOT NULL,
    name TEXT NOT NULL,
    crashes INTEGER NOT NULL DEFAULT 0,
    lease_token INTEGER NOT NULL,
    PRIMARY KEY (job_id, input_seq, entry_index)
) WITHOUT ROWID;
"""

_OWNED = "id = ? AND lease_owner = ? AND lease_token = ? AND status = 'running'"
_EXPIRED = "status = 'running' AND lease_expires < ?"
# How often a waiting claim looks for work other processes queued (this process's submits
# wake it at once).
_POLL_SECONDS = 0.5


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


class SqliteJobStore:
    """The embedded ``JobStore`` + ``JobQueue``."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        retention_seconds: float,
        max_crashes: int = 3,
        cipher: Plain | None = None,
    ) -> None:
        self.db = db
        self.cipher = cipher or Plain()
        """Seals each image's palette (encryption at rest)."""
        self.clock = clock
        self.retention_seconds = retention_seconds
        self.max_crashes = max_crashes
        db.create(SCHEMA)
        db.add_column("jobs", "claim_progress", "INTEGER NOT NULL DEFAULT 0")
        db.create(events.SCHEMA)
        db.create(IDEMPOTENCY_SCHEMA)
        # Claims waiting in this process wake when this process queues work.
        self._waiter = ClaimWaiter(_POLL_SECONDS)

    # -- plumbing ------------------------------------------------------------------------------
    def _load(self, conn: sqlite3.Connection, job_id: str) -> Job | None:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _row_to_job(row)

    def _visible(self, conn: sqlite3.Connection, job_id: str, tenant: str | None) -> Job:
        job = self._load(conn, job_id)
        if (
            job is None
            or (tenant is not None and job.tenant != tenant)
            or (job.expires_at is not None and job.expires_at <= self.clock.now())
        ):
            raise JobNotFound(job_id)
        return job

    def _emit(self, tx: sqlite3.Connection, job_id: str, event_type: str, now: float) -> None:
        job = self._load(tx, job_id)
        if job is not None:
            events.append_event(tx, event_type, {**job.to_public(), "tenant": job.tenant}, now)

    def _wake_claims(self) -> None:
        self._waiter.wake()

    def ping(self) -> None:
        self.db.conn().execute("SELECT 1").fetchone()

    # -- JobStore ------------------------------------------------------------------------------
    def new_job_id(self, tenant: str = "") -> str:
        return uuid.uuid4().hex

    def submit(self, job: NewJob, idempotency: IdempotencyOutcome | None = None) -> Job:
        now = self.clock.now()
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO jobs (id, tenant, status, options, callback_url, created_at,"
                " updated_at, total) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                (job.id, job.tenant, json.dumps(job.options), job.callback_url, now, now, job.total),
            )
            tx.executemany(
                "INSERT INTO job_inputs (job_id, seq, name, blob_key, kind, size)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(job.id, i.seq, i.name, i.blob_key, i.kind, i.size) for i in job.inputs],
            )
            created = self._load(tx, job.id)
            assert created is not None
            if idempotency is not None:
                record_outcome(tx, idempotency, created.to_public(), job.id)
        self._wake_claims()
        return created

    def get(self, job_id: str, tenant: str | None = None) -> Job:
        return self._visible(self.db.conn(), job_id, tenant)

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
        rows = self.db.conn().execute(sql, args).fetchall()
        jobs = [_row_to_job(r) for r in rows[:limit]]
        next_cursor = encode_cursor(rows[limit - 1]["seq"]) if len(rows) > limit else None
        return jobs, next_cursor

    def cancel(self, job_id: str, tenant: str) -> Job:
        now = self.clock.now()
        with self.db.transaction() as tx:
            job = self._visible(tx, job_id, tenant)
            if job.status in {"succeeded", "failed"}:
                raise JobConflict(f"job {job_id} already {job.status}", job.status)
            if job.status == "queued":
                tx.execute(
                    "UPDATE jobs SET status = 'canceled', cancel_requested = 1, updated_at = ?,"
                    " finished_at = ?, expires_at = ? WHERE id = ?",
                    (now, now, now + self.retention_seconds, job_id),
                )
                tx.execute("DELETE FROM job_inflight WHERE job_id = ?", (job_id,))
                self._emit(tx, job_id, "job.canceled", now)
            elif job.status == "running" and not job.cancel_requested:
                tx.execute(
                    "UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                    (now, job_id),
                )
            updated = self._load(tx, job_id)
        assert updated is not None
        return updated

    def delete(self, job_id: str, tenant: str) -> Job:
        now = self.clock.now()
        with self.db.transaction() as tx:
            job = self._visible(tx, job_id, tenant)
            if job.status == "running":
                raise JobConflict(f"job {job_id} is running; cancel it first", job.status)
            self._delete_rows(tx, job, now)
        return job

    @staticmethod
    def _delete_rows(tx: sqlite3.Connection, job: Job, now: float) -> None:
        forget_job(tx, job.id)
        for table in ("job_items", "job_inflight", "job_inputs"):
            tx.execute(f"DELETE FROM {table} WHERE job_id = ?", (job.id,))
        tx.execute("DELETE FROM jobs WHERE id = ?", (job.id,))
        events.append_event(tx, "job.deleted", {"id": job.id, "tenant": job.tenant}, now)

    def inputs(self, job_id: str) -> list[JobInput]:
        rows = (
            self.db.conn()
            .execute("SELECT * FROM job_inputs WHERE job_id = ? ORDER BY seq", (job_id,))
            .fetchall()
        )
        return [JobInput(r["seq"], r["name"], r["blob_key"], r["kind"], r["size"]) for r in rows]

    def iter_items(self, job_id: str) -> Iterator[ItemResult]:
        # A connection of its own: the caller may write other rows while this cursor is open.
        with self.db.snapshot() as conn:
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
                    json.loads(self.cipher.open_text(palette)) if palette else None,
                    json.loads(error) if error else None,
                )

    def expire(self, limit: int = 500) -> list[Job]:
        now = self.clock.now()
        with self.db.transaction() as tx:
            rows = tx.execute(
                "SELECT * FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ?"
                " ORDER BY expires_at LIMIT ?",
                (now, limit),
            ).fetchall()
            jobs = [_row_to_job(r) for r in rows]
            for job in jobs:
                self._delete_rows(tx, job, now)
        return jobs

    def backlog(self, tenant: str) -> tuple[int, int]:
        rows = self.db.conn().execute(
            "SELECT tenant = ?, SUM(MAX(total - done - failed - skipped, 0)) FROM jobs"
            " WHERE status IN ('queued', 'running') GROUP BY tenant = ?",
            (tenant, tenant),
        )
        sums = {bool(mine): int(total or 0) for mine, total in rows.fetchall()}
        return sums.get(True, 0), sum(sums.values())

    def counts(self) -> dict[str, int]:
        rows = self.db.conn().execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        return {r[0]: r[1] for r in rows.fetchall()}

    def count_active(self, tenant: str) -> int:
        (count,) = (
            self.db.conn()
            .execute(
                "SELECT COUNT(*) FROM jobs WHERE tenant = ? AND status IN ('queued', 'running')",
                (tenant,),
            )
            .fetchone()
        )
        return int(count)

    # -- JobQueue ------------------------------------------------------------------------------
    def claim(self, owner: str, lease_seconds: float, wait: float = 0.0) -> Lease | None:
        return self._waiter.claim(lambda: self._claim_once(owner, lease_seconds), wait)

    def _claim_once(self, owner: str, lease_seconds: float) -> Lease | None:
        now = self.clock.now()
        # Idle workers ask often: a plain read first, so an empty queue costs no write lock.
        if not self.db.exists(
            f"SELECT 1 FROM jobs WHERE status = 'queued' OR ({_EXPIRED}) LIMIT 1", now
        ):
            return None
        with self.db.transaction() as tx:
            self._reap(tx, now)
            row = tx.execute(
                "SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            job_id = row["id"]
            tx.execute(
                "UPDATE jobs SET status = 'running', lease_owner = ?,"
                " lease_token = lease_token + 1, lease_expires = ?,"
                " claim_progress = done + failed + skipped,"
                " started_at = COALESCE(started_at, ?), updated_at = ? WHERE id = ?",
                (owner, now + lease_seconds, now, now, job_id),
            )
            token, attempts = tx.execute(
                "SELECT lease_token, attempts FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            suspects = tx.execute(
                "SELECT input_seq, entry_index FROM job_inflight WHERE job_id = ? AND crashes > 0",
                (job_id,),
            ).fetchall()
            self._emit(tx, job_id, "job.progress", now)
        return Lease(
            job_id,
            owner,
            token,
            now + lease_seconds,
            attempts=attempts,
            suspects=frozenset((r[0], r[1]) for r in suspects),
        )

    def renew(self, lease: Lease, lease_seconds: float) -> LeaseState:
        now = self.clock.now()
        with self.db.transaction() as tx:
            cur = tx.execute(
                f"UPDATE jobs SET lease_expires = ? WHERE {_OWNED}",
                (now + lease_seconds, lease.job_id, lease.owner, lease.token),
            )
            if cur.rowcount == 0:
                return LeaseState(alive=False, cancel_requested=False)
            (flag,) = tx.execute(
                "SELECT cancel_requested FROM jobs WHERE id = ?", (lease.job_id,)
            ).fetchone()
        return LeaseState(alive=True, cancel_requested=bool(flag))

    def cancel_requested(self, job_ids: Sequence[str]) -> set[str]:
        if not job_ids:
            return set()
        marks = ",".join("?" * len(job_ids))
        rows = self.db.conn().execute(
            f"SELECT id FROM jobs WHERE id IN ({marks})"
            " AND (cancel_requested = 1 OR status != 'running')",
            list(job_ids),
        )
        return {r[0] for r in rows.fetchall()}

    def done_items(self, job_id: str) -> set[ItemKey]:
        rows = self.db.conn().execute(
            "SELECT input_seq, entry_index FROM job_items WHERE job_id = ?", (job_id,)
        )
        return {(r[0], r[1]) for r in rows.fetchall()}

    def start_items(self, lease: Lease, items: Mapping[ItemKey, str]) -> bool:
        with self.db.transaction() as tx:
            if not self._owns(tx, lease):
                return False
            self._start(tx, lease, items)
        return True

    @staticmethod
    def _start(tx: sqlite3.Connection, lease: Lease, items: Mapping[ItemKey, str]) -> None:
        # A crash counts against the images of the claim that crashed: the token says which.
        tx.executemany(
            "INSERT INTO job_inflight (job_id, input_seq, entry_index, name, lease_token)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT DO UPDATE SET lease_token = excluded.lease_token",
            [(lease.job_id, seq, index, name, lease.token) for (seq, index), name in items.items()],
        )

    @staticmethod
    def _owns(tx: sqlite3.Connection, lease: Lease) -> bool:
        found = tx.execute(
            f"SELECT 1 FROM jobs WHERE {_OWNED}", (lease.job_id, lease.owner, lease.token)
        ).fetchone()
        return found is not None

    def progress(
        self,
        lease: Lease,
        items: Sequence[ItemResult],
        total: int | None,
        *,
        notify: bool = False,
        lease_seconds: float | None = None,
        started: Mapping[ItemKey, str] | None = None,
    ) -> bool:
        now = self.clock.now()
        with self.db.transaction() as tx:
            if not self._owns(tx, lease):
                return False
            added = self._add_items(tx, lease.job_id, items)
            if started:
                self._start(tx, lease, started)
            tx.execute(
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
                self._emit(tx, lease.job_id, "job.progress", now)
        return True

    def _add_items(
        self, tx: sqlite3.Connection, job_id: str, items: Sequence[ItemResult]
    ) -> dict[str, int]:
        """Insert finished images (a second report of one is ignored); count the new ones."""
        added = {"succeeded": 0, "failed": 0, "skipped": 0}
        for item in items:
            cur = tx.execute(
                "INSERT OR IGNORE INTO job_items (job_id, input_seq, entry_index, name,"
                " status, palette, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    item.input_seq,
                    item.entry_index,
                    item.name,
                    item.status,
                    self.cipher.seal_text(json.dumps(item.palette))
                    if item.palette is not None
                    else None,
                    json.dumps(item.error) if item.error is not None else None,
                ),
            )
            tx.execute(
                "DELETE FROM job_inflight WHERE job_id = ? AND input_seq = ? AND entry_index = ?",
                (job_id, item.input_seq, item.entry_index),
            )
            if cur.rowcount:
                added[item.status] += 1
        return added

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
        with self.db.transaction() as tx:
            sql = (
                "UPDATE jobs SET status = ?, finished_at = ?, updated_at = ?, expires_at = ?,"
                " lease_owner = NULL, lease_expires = NULL, result_key = ?, result_digest = ?,"
                f" result_size = ?, error = ? WHERE {_OWNED}"
            )
            if unless_cancel_requested:
                sql += " AND cancel_requested = 0"
            cur = tx.execute(
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
            tx.execute("DELETE FROM job_inflight WHERE job_id = ?", (lease.job_id,))
            if status == "succeeded":
                tx.execute(
                    "UPDATE jobs SET total = done + failed + skipped WHERE id = ?", (lease.job_id,)
                )
            if status == "canceled":
                # Canceled work keeps nothing: its partial results go with it.
                tx.execute("DELETE FROM job_items WHERE job_id = ?", (lease.job_id,))
                tx.execute(
                    "UPDATE jobs SET done = 0, failed = 0, skipped = 0 WHERE id = ?",
                    (lease.job_id,),
                )
            self._emit(tx, lease.job_id, f"job.{status}", now)
        return True

    def finish_chunk(self, lease: Lease, lease_seconds: float) -> Lease | bool:
        # Every lease this backend hands out covers the whole job.
        raise ValueError("the embedded backend leases whole jobs; there is no chunk to finish")

    def complete(self, lease: Lease, result: ResultInfo) -> bool:
        return self._finish(lease, "succeeded", result=result, unless_cancel_requested=True)

    def fail(self, lease: Lease, error: dict[str, Any], result: ResultInfo | None) -> bool:
        return self._finish(
            lease, "failed", result=result, error=error, unless_cancel_requested=True
        )

    def acknowledge_cancel(self, lease: Lease) -> bool:
        return self._finish(lease, "canceled")

    def release(self, lease: Lease, *, crashed: bool = False) -> bool:
        now = self.clock.now()
        with self.db.transaction() as tx:
            cur = tx.execute(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires = NULL,"
                f" updated_at = ? WHERE {_OWNED}",
                (now, lease.job_id, lease.owner, lease.token),
            )
            if cur.rowcount and crashed:
                self._count_crash(tx, lease.job_id)
        if cur.rowcount:
            self._wake_claims()
        return cur.rowcount > 0

    def reap_expired(self) -> int:
        now = self.clock.now()
        if not self.db.exists(f"SELECT 1 FROM jobs WHERE {_EXPIRED} LIMIT 1", now):
            return 0
        with self.db.transaction() as tx:
            reaped = self._reap(tx, now)
        if reaped:
            self._wake_claims()
        return reaped

    def _reap(self, tx: sqlite3.Connection, now: float) -> int:
        """Jobs whose worker vanished: back to the queue, the crash counted (or canceled, when
        that was asked for)."""
        rows = tx.execute(
            f"SELECT id, cancel_requested FROM jobs WHERE {_EXPIRED}", (now,)
        ).fetchall()
        for row in rows:
            job_id = row["id"]
            if row["cancel_requested"]:
                tx.execute(
                    "UPDATE jobs SET status = 'canceled', lease_owner = NULL,"
                    " lease_expires = NULL, finished_at = ?, updated_at = ?, expires_at = ?,"
                    " done = 0, failed = 0, skipped = 0 WHERE id = ?",
                    (now, now, now + self.retention_seconds, job_id),
                )
                tx.execute("DELETE FROM job_items WHERE job_id = ?", (job_id,))
                tx.execute("DELETE FROM job_inflight WHERE job_id = ?", (job_id,))
                self._emit(tx, job_id, "job.canceled", now)
                continue
            tx.execute(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires = NULL,"
                " updated_at = ? WHERE id = ?",
                (now, job_id),
            )
            self._count_crash(tx, job_id)
        return len(rows)

    def _count_crash(self, tx: sqlite3.Connection, job_id: str) -> None:
        """A claim of ``job_id`` ended without its worker: each image in flight gets a crash;
        one at the limit is given up, and a claim that moved nothing forward is an attempt."""
        tx.execute(
            "UPDATE job_inflight SET crashes = crashes + 1 WHERE job_id = ? AND lease_token ="
            " (SELECT lease_token FROM jobs WHERE id = ?)",
            (job_id, job_id),
        )
        doomed = tx.execute(
            "SELECT input_seq, entry_index, name, crashes FROM job_inflight"
            " WHERE job_id = ? AND crashes >= ?",
            (job_id, self.max_crashes),
        ).fetchall()
        given_up = [
            ItemResult(
                r["input_seq"],
                r["entry_index"],
                r["name"],
                "failed",
                error={
                    "code": "internal_error",
                    "detail": f"the image stopped its worker {r['crashes']} times"
                    " (a crash, out of memory or a kill); it was given up",
                    "crashes": r["crashes"],
                },
            )
            for r in doomed
        ]
        added = self._add_items(tx, job_id, given_up)
        tx.execute(
            "UPDATE jobs SET failed = failed + ?, attempts = CASE"
            " WHEN done + failed + skipped + ? > claim_progress THEN 0 ELSE attempts + 1 END"
            " WHERE id = ?",
            (added["failed"], added["failed"], job_id),
        )

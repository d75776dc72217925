"""The one SQLite helper: a connection per thread, write transactions, schema set-up."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["Database"]


def _owner_only(path: Path) -> None:
    """The database holds secrets (webhook secrets, key hashes): readable by its owner only.

    The file is created 0600 before SQLite opens it, and SQLite gives its ``-wal`` and ``-shm``
    files the database file's permissions; files an older version created are narrowed too.
    """
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.chmod(f"{path}{suffix}", 0o600)
        except FileNotFoundError:
            continue


class Database:
    """One SQLite file shared by every component of the embedded backend.

    Each thread keeps its own connection (autocommit; writes in ``BEGIN IMMEDIATE``), so
    transactions of different components on the same file never share a connection.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _owner_only(self.path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a killed process (kill -9); only an OS crash can
        # lose the last transactions.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (reads outside a transaction see the last commit)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed at the end, rolled back on any exception."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same committed state, so a row and
        the rows that belong to it (a message and its attempts) cannot come from two commits."""
        conn = self.conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own, for a long read while this thread writes elsewhere."""
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    def exists(self, sql: str, *params: object) -> bool:
        """A read that lets pollers find out there is nothing to do without the write lock."""
        return self.conn().execute(sql, params).fetchone() is not None

    def create(self, schema: str) -> None:
        self.conn().executescript(schema)

    def add_column(self, table: str, column: str, definition: str) -> None:
        """Bring a table made by an older version up to date (CREATE ... IF NOT EXISTS
        leaves it as it was)."""
        columns = {row["name"] for row in self.conn().execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            self.conn().execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass
            self._all.clear()
        self._local = threading.local()

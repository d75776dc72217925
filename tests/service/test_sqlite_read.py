"""Reads that span several queries see one commit (a message and its attempts, a job and its
items), whatever other threads write in between."""

from __future__ import annotations

import threading
from pathlib import Path

from service.sqlite.database import Database


def test_a_read_transaction_sees_one_commit(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.sqlite3")
    db.create("CREATE TABLE t (n INTEGER)")
    with db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (1)")

    def write() -> None:
        with db.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (2)")

    with db.read() as conn:
        before = conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]
        writer = threading.Thread(target=write)
        writer.start()
        writer.join(10)
        assert not writer.is_alive()
        inside = conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]
    after = db.conn().execute("SELECT COUNT(*) FROM t").fetchone()[0]
    assert (before, inside, after) == (1, 1, 2)

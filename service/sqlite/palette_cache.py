"""Rendered sync palettes by key, the least recently stored dropped first."""

from __future__ import annotations

from collections.abc import Mapping

from ..clock import Clock
from ..crypto.fields import Plain
from .database import Database

__all__ = ["SqlitePaletteCache"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS palette_cache (
    key TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    used_at REAL NOT NULL
) WITHOUT ROWID;
"""


class SqlitePaletteCache:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        entries: int,
        keep_seconds: float,
        cipher: Plain | None = None,
    ) -> None:
        self.db = db
        self.cipher = cipher or Plain()
        self.clock = clock
        self.entries = entries
        self.keep_seconds = keep_seconds
        db.create(SCHEMA)

    def cache_get(self, key: str) -> bytes | None:
        row = self.db.conn().execute("SELECT body FROM palette_cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else self.cipher.open_bytes(bytes(row[0]))

    def cache_keys(self) -> list[str]:
        return [row[0] for row in self.db.conn().execute("SELECT key FROM palette_cache")]

    def cache_put(self, entries: Mapping[str, bytes]) -> None:
        if self.entries <= 0 or not entries:
            return
        now = self.clock.now()
        with self.db.transaction() as tx:
            tx.executemany(
                "INSERT OR REPLACE INTO palette_cache (key, body, used_at) VALUES (?, ?, ?)",
                [(key, self.cipher.seal_bytes(body), now) for key, body in entries.items()],
            )

    def expire(self) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "DELETE FROM palette_cache WHERE key IN (SELECT key FROM palette_cache"
                " ORDER BY used_at DESC LIMIT -1 OFFSET ?)",
                (self.entries,),
            )
            tx.execute(
                "DELETE FROM palette_cache WHERE used_at <= ?",
                (self.clock.now() - self.keep_seconds,),
            )

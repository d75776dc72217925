"""Generated secrets every node of the deployment shares (the database is what they share)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .database import Database

__all__ = ["SqliteSecretStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""

# Earlier versions kept generated secrets in files in the data directory; a secret found there
# is adopted, so links and callback signatures handed out before keep working.
_LEGACY_FILES = {"url_signing_keys": "url_signing_keys", "webhook_callback_secret": "webhook_callback_secret"}


class SqliteSecretStore:
    def __init__(self, db: Database, legacy_dir: Path | None = None) -> None:
        self.db = db
        self.legacy_dir = legacy_dir
        db.create(SCHEMA)

    def get_or_create(self, name: str, make: Callable[[], str]) -> str:
        row = self.db.conn().execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return str(row[0])
        value = self._legacy(name) or make()
        with self.db.transaction() as tx:
            # The first node to get here wins; every other one reads its value.
            tx.execute("INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)", (name, value))
            (stored,) = tx.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        return str(stored)

    def set(self, name: str, value: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO secrets (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def _legacy(self, name: str) -> str | None:
        file = _LEGACY_FILES.get(name)
        if self.legacy_dir is None or file is None:
            return None
        path = self.legacy_dir / file
        return path.read_text(encoding="utf-8").strip() or None if path.is_file() else None

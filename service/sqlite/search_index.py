"""The search index in SQLite: one row per palette color, under its coarse Oklab cell.

A query reads the cells around its color (``search/cells.py``: one range of cell numbers per
(L, a) column, each an index seek on (tenant, cell)), keeps the colors inside the box and not
expired, measures the exact distance, keeps each palette's nearest color and takes the next
``limit`` palettes after the cursor in (distance, palette id) order, all from the index; only
then are those palettes' rows read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ..clock import Clock
from ..jobs.interfaces import InvalidCursor
from ..search.cells import cell_of, cell_ranges
from ..search.cursor import decode_cursor, encode_cursor
from ..search.interfaces import IndexedColor, IndexedPalette, Oklab, SearchHit
from .database import Database

__all__ = ["SqlitePaletteIndex"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS search_palettes (
    id INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    ref TEXT NOT NULL,
    job_id TEXT,
    item INTEGER,
    expires_at REAL NOT NULL,
    UNIQUE (tenant, ref)
);
CREATE INDEX IF NOT EXISTS search_palettes_job ON search_palettes (tenant, job_id);
CREATE INDEX IF NOT EXISTS search_palettes_expiry ON search_palettes (expires_at);
CREATE TABLE IF NOT EXISTS search_colors (
    palette INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    cell INTEGER NOT NULL,
    l REAL NOT NULL,
    a REAL NOT NULL,
    b REAL NOT NULL,
    expires_at REAL NOT NULL,
    hex TEXT NOT NULL,
    fraction REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS search_colors_cell
    ON search_colors (tenant, cell, l, a, b, expires_at, palette);
CREATE INDEX IF NOT EXISTS search_colors_palette ON search_colors (palette);
"""

_D2 = "(c.l - :l) * (c.l - :l) + (c.a - :a) * (c.a - :a) + (c.b - :b) * (c.b - :b)"

# Two steps: the page of palettes from the index alone (it covers every column the first step
# reads), then the nearest color's details for those palettes only.
# {ranges}: ``VALUES (lo, hi), ...`` of cell numbers (integers only, never client text).
_SEARCH = f"""
WITH ranges (lo, hi) AS ({{ranges}}),
near AS (
    SELECT c.palette AS id, MIN({_D2}) AS d2
    FROM ranges CROSS JOIN search_colors c
        ON c.tenant = :tenant AND c.cell BETWEEN ranges.lo AND ranges.hi
    WHERE c.l BETWEEN :l - :r AND :l + :r
      AND c.a BETWEEN :a - :r AND :a + :r
      AND c.b BETWEEN :b - :r AND :b + :r
      AND c.expires_at > :now
    GROUP BY c.palette
    HAVING d2 <= :r * :r AND (d2 > :after_d2 OR (d2 = :after_d2 AND c.palette > :after_id))
    ORDER BY d2, c.palette
    LIMIT :limit
)
SELECT near.id, near.d2, c.l, c.a, c.b, c.hex, c.fraction, p.ref, p.job_id, p.item
FROM near
JOIN search_palettes p ON p.id = near.id
JOIN search_colors c ON c.palette = near.id AND {_D2} = near.d2
GROUP BY near.id
ORDER BY near.d2, near.id
"""


class SqlitePaletteIndex:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        db.create(SCHEMA)

    def add(self, palettes: Sequence[IndexedPalette]) -> None:
        if not palettes:
            return
        with self.db.transaction() as tx:
            for p in palettes:
                old = tx.execute(
                    "SELECT id FROM search_palettes WHERE tenant = ? AND ref = ?", (p.tenant, p.ref)
                ).fetchone()
                if old is not None:
                    tx.execute("DELETE FROM search_colors WHERE palette = ?", (old[0],))
                    tx.execute("DELETE FROM search_palettes WHERE id = ?", (old[0],))
                row = tx.execute(
                    "INSERT INTO search_palettes (tenant, ref, job_id, item, expires_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (p.tenant, p.ref, p.job_id, p.item, p.expires_at),
                )
                tx.executemany(
                    "INSERT INTO search_colors"
                    " (palette, tenant, cell, l, a, b, expires_at, hex, fraction)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            row.lastrowid,
                            p.tenant,
                            cell_of(c.oklab),
                            *c.oklab,
                            p.expires_at,
                            c.hex,
                            c.fraction,
                        )
                        for c in p.colors
                    ],
                )

    def search(
        self,
        tenant: str,
        oklab: Oklab,
        radius: float,
        *,
        limit: int,
        cursor: str | None = None,
    ) -> tuple[list[SearchHit], str | None]:
        after_d2, after_id = -1.0, 0
        if cursor is not None:
            after_d2, tie = decode_cursor(cursor)
            if not tie.isdigit():
                raise InvalidCursor(cursor)
            after_id = int(tie)
        l, a, b = oklab
        ranges = ", ".join(f"({lo:d}, {hi:d})" for lo, hi in cell_ranges(oklab, radius))
        rows = (
            self.db.conn()
            .execute(
                _SEARCH.format(ranges=f"VALUES {ranges}"),
                {
                    "tenant": tenant,
                    "l": l,
                    "a": a,
                    "b": b,
                    "r": radius,
                    "now": self.clock.now(),
                    "after_d2": after_d2,
                    "after_id": after_id,
                    "limit": limit + 1,
                },
            )
            .fetchall()
        )
        hits = [
            SearchHit(
                ref=row["ref"],
                job_id=row["job_id"],
                item=row["item"],
                distance=float(row["d2"]) ** 0.5,
                color=IndexedColor((row["l"], row["a"], row["b"]), row["hex"], row["fraction"]),
            )
            for row in rows[:limit]
        ]
        more = len(rows) > limit
        last = rows[limit - 1] if more else None
        return hits, None if last is None else encode_cursor(float(last["d2"]), str(last["id"]))

    def remove_job(self, tenant: str, job_id: str) -> None:
        with self.db.transaction() as tx:
            self._delete(tx, "tenant = ? AND job_id = ?", (tenant, job_id))

    def expire(self) -> None:
        with self.db.transaction() as tx:
            self._delete(tx, "expires_at <= ?", (self.clock.now(),))

    @staticmethod
    def _delete(tx: sqlite3.Connection, where: str, params: tuple[object, ...]) -> None:
        tx.execute(
            f"DELETE FROM search_colors WHERE palette IN (SELECT id FROM search_palettes"
            f" WHERE {where})",
            params,
        )
        tx.execute(f"DELETE FROM search_palettes WHERE {where}", params)

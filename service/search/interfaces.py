"""The search index seam: each processed palette's colors in Oklab, found by distance.

Every backend keeps one (``Backends.search``): SQLite answers a bounded box query over an
index on (tenant, L, a, b), Redis a per-tenant sorted set by L scanned by one Lua script. Both
then measure the exact distance, so they return the same hits in the same order.
Distances here are plain Oklab (the route multiplies by 100 for the engine's ΔE).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["IndexedColor", "IndexedPalette", "PaletteIndex", "SearchHit"]

Oklab = tuple[float, float, float]


@dataclass(frozen=True)
class IndexedColor:
    oklab: Oklab
    hex: str
    fraction: float


@dataclass(frozen=True)
class IndexedPalette:
    """One processed image's palette, where a client can read it again.

    ``ref`` names it within its tenant (a sync palette's ``Content-Location``, or its place
    in a job's results); adding a palette with a ref already indexed replaces it."""

    tenant: str
    ref: str
    colors: tuple[IndexedColor, ...]
    expires_at: float
    """Not found from then on, and removed by the backend's housekeeping."""
    job_id: str | None = None
    item: int | None = None
    """The item's index in the job's results document."""


@dataclass(frozen=True)
class SearchHit:
    """A palette within reach of the query, by its nearest color."""

    ref: str
    job_id: str | None
    item: int | None
    distance: float
    """Oklab distance from the query to ``color``."""
    color: IndexedColor


class PaletteIndex(Protocol):
    def add(self, palettes: Sequence[IndexedPalette]) -> None:
        """Index these palettes (one transaction where the backend has them)."""
        ...

    def search(
        self,
        tenant: str,
        oklab: Oklab,
        radius: float,
        *,
        limit: int,
        cursor: str | None = None,
    ) -> tuple[list[SearchHit], str | None]:
        """The tenant's palettes with a color within ``radius`` of ``oklab``, nearest first
        (ties by an order the backend keeps stable), ``limit`` at a time, with the cursor of
        the next page (None: the last). Raises ``InvalidCursor`` for a cursor it did not
        issue."""
        ...

    def remove_job(self, tenant: str, job_id: str) -> None:
        """Forget a deleted job's palettes."""
        ...

    def expire(self) -> None:
        """Housekeeping: drop palettes past their ``expires_at``."""
        ...

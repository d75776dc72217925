"""Search by color (``GET /v1/search``): what goes into the index, and how a query is answered.

Palettes enter the index when they are computed: a synchronous palette (``POST /v1/palette``)
by its ``Content-Location``, written behind in batches so the request never waits on the store;
a job's palettes when its results document is written, by job id and item index. Entries
expire with the retention of what they point to, and a deleted job's are removed with it.

Distances are the engine's ΔE: Oklab distance x 100, the measure of ``metrics.delta_e_mean``
and of the brand check (about 1 is a just-noticeable difference).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from palette_native import Color

from ..clock import Clock
from .interfaces import IndexedColor, IndexedPalette, Oklab, PaletteIndex, SearchHit

__all__ = ["PaletteSearch", "SearchQuery", "indexed_palette", "oklab_of_hex"]

logger = logging.getLogger("service.search")


def oklab_of_hex(hex_color: str) -> Oklab:
    """``#rrggbb`` in Oklab, exactly as the engine converts a palette color."""
    rgb = (int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16))
    return Color(rgb, 0, 0.0).oklab


def indexed_palette(
    tenant: str,
    ref: str,
    palette: dict[str, Any],
    expires_at: float,
    job_id: str | None = None,
    item: int | None = None,
) -> IndexedPalette:
    """A rendered palette (``Palette.to_dict()``) as an index entry.

    Each color is placed by its hex, as the brand check measures it: the color the client
    sees, so asking for a palette's own hex finds it at ΔE 0."""
    colors = tuple(
        IndexedColor(oklab_of_hex(str(c["hex"])), str(c["hex"]), float(c["fraction"]))
        for c in palette.get("colors", ())
    )
    return IndexedPalette(tenant, ref, colors, expires_at, job_id, item)


@dataclass(frozen=True)
class SearchQuery:
    color: str
    """``#rrggbb``."""
    max_delta_e: float
    limit: int
    cursor: str | None = None


class PaletteSearch:
    """The index's one user: records palettes as they are computed and answers queries.

    Blocking methods (``find``, ``record_job``, ``forget_job``) run on worker threads.
    """

    BATCH_SECONDS = 0.2
    _RECENT = 4096

    def __init__(
        self, index: PaletteIndex, clock: Clock, retention_seconds: float, *, enabled: bool = True
    ) -> None:
        self.index = index
        self.enabled = enabled
        """False when encryption at rest is on: the index would hold every palette's colors in
        plain form (a range query cannot read sealed values), so nothing is written to it and
        queries are refused (``GET /v1/search`` answers 501)."""
        self.clock = clock
        self.retention_seconds = retention_seconds
        # Sync palettes recorded lately: a repeated image (answered from the cache) is not
        # written again.
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[str, str, bytes] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None

    # -- writing ------------------------------------------------------------------------------
    def record_sync(self, tenant: str, location: str, body: bytes) -> None:
        """A synchronous palette was answered (safe on the event loop: never blocks)."""
        if not self.enabled:
            return
        with self._lock:
            if (tenant, location) in self._recent:
                self._recent.move_to_end((tenant, location))
                return
            self._recent[(tenant, location)] = None
            if len(self._recent) > self._RECENT:
                self._recent.popitem(last=False)
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="palette-search-writer", daemon=True
                )
                self._writer.start()
        self._queue.put((tenant, location, body))

    def record_job(
        self,
        tenant: str,
        job_id: str,
        items: Sequence[tuple[int, dict[str, Any]]],
        expires_at: float | None = None,
    ) -> None:
        """A job's results document was written: index its palettes by item index, until the
        job expires."""
        if not self.enabled:
            return
        if expires_at is None:
            expires_at = self.clock.now() + self.retention_seconds
        self.index.add(
            [
                indexed_palette(
                    tenant, f"/v1/jobs/{job_id}/results#{n}", palette, expires_at, job_id, n
                )
                for n, palette in items
            ]
        )

    def forget_job(self, tenant: str, job_id: str) -> None:
        if self.enabled:
            self.index.remove_job(tenant, job_id)

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(None)
            writer.join()

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            # Let a few more arrive: one transaction for several palettes.
            time.sleep(self.BATCH_SECONDS)
            batch = [first]
            while not self._queue.empty():
                entry = self._queue.get()
                if entry is None:
                    stop = True
                    break
                batch.append(entry)
            expires_at = self.clock.now() + self.retention_seconds
            try:
                self.index.add(
                    [
                        indexed_palette(tenant, location, orjson.loads(body), expires_at)
                        for tenant, location, body in batch
                    ]
                )
            except Exception:  # a failed index write must not stop the writer
                logger.exception("search index write failed; %d palettes not indexed", len(batch))

    # -- reading ------------------------------------------------------------------------------
    def find(self, tenant: str, query: SearchQuery) -> tuple[list[dict[str, Any]], str | None]:
        """The page of hits as JSON items, and the next cursor."""
        hits, next_cursor = self.index.search(
            tenant,
            oklab_of_hex(query.color),
            query.max_delta_e / 100.0,
            limit=query.limit,
            cursor=query.cursor,
        )
        return [_item(hit) for hit in hits], next_cursor


def _item(hit: SearchHit) -> dict[str, Any]:
    where: dict[str, Any]
    if hit.job_id is None:
        where = {"content_location": hit.ref}
    else:
        where = {
            "job_id": hit.job_id,
            "item": hit.item,
            "results_url": f"/v1/jobs/{hit.job_id}/results",
        }
    return {
        "delta_e": round(100.0 * hit.distance, 4),
        "color": {
            "hex": hit.color.hex,
            "oklab": list(hit.color.oklab),
            "fraction": hit.color.fraction,
        },
        **where,
    }

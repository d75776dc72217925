"""Retention: finished jobs and their blobs go away after ``retention_seconds``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from .interfaces import BlobStore, JobStore

__all__ = ["Sweeper", "sweep_once"]

logger = logging.getLogger("service.retention")

_PARTIAL_WRITE_MAX_AGE = 3600.0


def sweep_once(
    store: JobStore, blobs: BlobStore, housekeeping: Sequence[Callable[[], object]] = ()
) -> int:
    """Delete expired jobs (records, uploads, results), stale partial writes, and whatever the
    backend's other clean-ups remove (idempotency keys, cached palettes, old events)."""
    removed = 0
    while True:
        jobs = store.expire(limit=500)
        for job in jobs:
            blobs.delete_prefix(f"uploads/{job.id}")
            blobs.delete_prefix(f"results/{job.id}")
        removed += len(jobs)
        if len(jobs) < 500:
            break
    blobs.expire(_PARTIAL_WRITE_MAX_AGE)
    for tidy in housekeeping:
        tidy()
    if removed:
        logger.info("retention: removed %d expired jobs", removed)
    return removed


class Sweeper:
    """Runs :func:`sweep_once` every ``interval`` seconds on a daemon thread."""

    def __init__(
        self,
        store: JobStore,
        blobs: BlobStore,
        housekeeping: Sequence[Callable[[], object]],
        interval: float,
    ) -> None:
        self._args = (store, blobs, housekeeping)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="palette-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _loop(self) -> None:
        while True:
            try:
                sweep_once(*self._args)
            except Exception:
                logger.exception("retention sweep failed")
            if self._stop.wait(self._interval):
                return

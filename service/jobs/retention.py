"""Retention: finished jobs and their blobs go away after ``retention_seconds``.

Every process runs a :class:`Sweeper`, but one sweep per interval is enough for the whole
deployment: the sweepers take the ``retention`` lock (``Locks``, shared through the store) for
one interval, and the others skip their turn while it is held. Expiring a job is one atomic
step in the store, so even two sweeps at once would each remove a job only once; the lock
saves the duplicate listing of every blob and key, which grows with the number of nodes.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence

from .interfaces import BlobStore, JobStore, LockLease, Locks

__all__ = ["LOCK_NAME", "Sweeper", "sweep_once"]

logger = logging.getLogger("service.retention")

_PARTIAL_WRITE_MAX_AGE = 3600.0
LOCK_NAME = "retention"


def sweep_once(
    store: JobStore,
    blobs: BlobStore,
    housekeeping: Sequence[Callable[[], object]] = (),
    still_held: Callable[[], bool] = lambda: True,
) -> int:
    """Delete expired jobs (records, uploads, results), stale partial writes, and whatever the
    backend's other clean-ups remove (idempotency keys, cached palettes, old events).

    ``still_held`` is asked before each batch after the first (the caller has just taken the
    lock): a sweeper that lost its lock stops there."""
    removed = 0
    while True:
        jobs = store.expire(limit=500)
        for job in jobs:
            blobs.delete_prefix(f"uploads/{job.id}")
            blobs.delete_prefix(f"results/{job.id}")
        removed += len(jobs)
        if len(jobs) < 500:
            break
        if not still_held():
            logger.warning("retention: the sweep lock was lost; stopping after %d jobs", removed)
            return removed
    blobs.expire(_PARTIAL_WRITE_MAX_AGE)
    for tidy in housekeeping:
        tidy()
    if removed:
        logger.info("retention: removed %d expired jobs", removed)
    return removed


class Sweeper:
    """Runs :func:`sweep_once` every ``interval`` seconds on a daemon thread, when this process
    holds the deployment's retention lock."""

    def __init__(
        self,
        store: JobStore,
        blobs: BlobStore,
        housekeeping: Sequence[Callable[[], object]],
        interval: float,
        locks: Locks,
    ) -> None:
        self._args = (store, blobs, housekeeping)
        self._interval = interval
        self._locks = locks
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._lease: LockLease | None = None
        self.sweeps = 0
        """Sweeps this process ran (the others found the lock held)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="palette-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(5.0)
        lease, self._lease = self._lease, None
        if lease is not None:
            try:  # another process may sweep at once instead of waiting out this lease
                self._locks.release(lease)
            except Exception:
                logger.exception("retention: could not release the sweep lock")

    def _still_held(self) -> bool:
        lease = self._lease
        self._lease = None if lease is None else self._locks.renew(lease, self._interval)
        return self._lease is not None

    def run_once(self) -> int | None:
        """One turn: the number of jobs removed, or None when another process holds the lock.

        The lease lasts one interval and is not released after the sweep, so the next sweep
        anywhere in the deployment comes an interval later."""
        lease = self._lease
        renewed = None if lease is None else self._locks.renew(lease, self._interval)
        self._lease = renewed or self._locks.acquire(LOCK_NAME, self.owner, self._interval)
        if self._lease is None:
            return None
        self.sweeps += 1
        return sweep_once(*self._args, still_held=self._still_held)

    def _loop(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception:
                logger.exception("retention sweep failed")
            if self._stop.wait(self._interval):
                return

"""The embedded rate-limit counters: ``limits``' in-memory storage with one sweeper thread.

``limits.storage.MemoryStorage`` forgets expired entries from a ``threading.Timer`` that lives
10 ms and is started again by the next counter update once it has finished. Under steady load
that is a new thread for almost every request (measured: about 4 % of the server's CPU in the
service benchmark). Expiry only frees memory (every read compares timestamps itself), so here
one daemon thread sweeps once per ``interval`` for as long as the storage lives, and counter
updates start nothing.
"""

from __future__ import annotations

import threading
import time
import weakref

from limits.storage import MemoryStorage

__all__ = ["SweptMemoryStorage"]


class SweptMemoryStorage(MemoryStorage):
    def __init__(self, interval: float = 1.0) -> None:
        super().__init__()
        self.timer.cancel()  # the base class starts its first Timer in __init__
        sweeper = threading.Thread(
            target=_sweep, args=(weakref.ref(self), interval), name="palette-ratelimit-sweep",
            daemon=True,
        )
        sweeper.start()

    # limits calls this (a name-mangled private method) after every counter update.
    def _MemoryStorage__schedule_expiry(self) -> None:
        return None

    def sweep(self) -> None:
        """Forget every entry whose window has passed."""
        self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


def _sweep(ref: weakref.ReferenceType[SweptMemoryStorage], interval: float) -> None:
    while True:
        time.sleep(interval)
        storage = ref()
        if storage is None:  # the storage is gone: so is its sweeper
            return
        storage.sweep()
        del storage

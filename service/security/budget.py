"""A cap on request bytes held in memory at once, across all requests (sync bodies)."""

from __future__ import annotations

import threading

__all__ = ["ByteBudget"]


class ByteBudget:
    """``take`` reserves bytes (False when the cap would be passed), ``give`` returns them.

    Thread-safe: multipart parts are written from worker threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.limit:
                return False
            self.used += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self.used -= n

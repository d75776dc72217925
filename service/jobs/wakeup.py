"""Claims that wait for work: woken at once when this process queues a job, polling otherwise.

Both job backends use it; another process's jobs are found on the next poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["ClaimWaiter"]

T = TypeVar("T")


class ClaimWaiter:
    def __init__(self, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self._queued = threading.Condition()
        self._generation = 0

    def wake(self) -> None:
        """This process queued work: every waiting claim tries again now."""
        with self._queued:
            self._generation += 1
            self._queued.notify_all()

    def claim(self, claim_once: Callable[[], T | None], wait: float) -> T | None:
        """``claim_once()`` until it returns something or ``wait`` seconds have passed."""
        deadline = time.monotonic() + wait
        while True:
            with self._queued:
                generation = self._generation
            found = claim_once()
            left = deadline - time.monotonic()
            if found is not None or left <= 0:
                return found
            with self._queued:
                if self._generation == generation:  # no wake-up since the attempt
                    self._queued.wait(min(left, self.poll_seconds))

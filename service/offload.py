"""The one way async code leaves the event loop for blocking calls (store, blobs, DNS, parsing).

A sized limiter, so a burst of requests queues for threads instead of starting one each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

__all__ = ["Offload"]

T = TypeVar("T")


class Offload:
    def __init__(self, threads: int) -> None:
        self.limiter = anyio.CapacityLimiter(threads)

    async def __call__(self, fn: Callable[..., T], *args: object) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

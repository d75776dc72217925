"""The one time source of the service, and the one way it writes a time for clients."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock", "iso_time"]


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (timestamps, leases, expiry, backoff)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


def iso_time(ts: float) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-11-25T20:00:00.000Z``."""
    millis = int(ts * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000)) + f".{millis % 1000:03d}Z"

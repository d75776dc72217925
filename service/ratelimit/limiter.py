"""Per-client limits in the ``limits`` package's notation, with IETF RateLimit fields.

Every configured limit (``20/second;600/minute``) is a moving window per client. While the
service is saturated each limit's amount is multiplied by the tightening factor (counted
separately, so the normal counts are untouched when it recovers).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.storage import Storage
from limits.strategies import MovingWindowRateLimiter

__all__ = ["Decision", "RateLimiter"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    policy: str
    """``RateLimit-Policy``: every limit in force, e.g. ``"20-per-1-second";q=20;w=1, ...``."""
    state: str
    """``RateLimit``: the limit nearest exhaustion, e.g. ``"20-per-1-second";r=3;t=1``."""
    retry_after: int
    """Seconds until a request would be accepted (0 when allowed)."""


def _name(item: RateLimitItem) -> str:
    return f"{item.amount}-per-{item.multiples}-{item.GRANULARITY.name}"


def _scaled(item: RateLimitItem, factor: float) -> RateLimitItem:
    if factor >= 1.0:
        return item
    return type(item)(max(1, int(item.amount * factor)), item.multiples, namespace="TIGHT")


class RateLimiter:
    def __init__(
        self,
        limits_text: str,
        storage: Storage,
        on_refused: Callable[[], None] = lambda: None,
    ) -> None:
        self.items = parse_many(limits_text) if limits_text.strip() else []
        self.strategy = MovingWindowRateLimiter(storage)
        self.factor = 1.0
        self.refused = on_refused
        """Called for every request refused with 429 (a metrics counter)."""

    @property
    def enabled(self) -> bool:
        return bool(self.items)

    def hit(self, client: str) -> Decision:
        items = [_scaled(item, self.factor) for item in self.items]
        allowed = True
        nearest: tuple[int, str] | None = None
        retry_after = 0
        for item in items:
            if allowed and not self.strategy.hit(item, client):
                allowed = False
            reset_at, remaining = self.strategy.get_window_stats(item, client)
            # The storages count in time.time(); read it after the hit, as they did.
            reset_in = max(0, math.ceil(reset_at - time.time()))
            if remaining <= 0:
                retry_after = max(retry_after, reset_in, 1)
            entry = f'"{_name(item)}";r={max(0, remaining)};t={reset_in}'
            if nearest is None or remaining < nearest[0]:
                nearest = (remaining, entry)
        policy = ", ".join(
            f'"{_name(item)}";q={item.amount};w={item.get_expiry()}' for item in items
        )
        assert nearest is not None
        return Decision(allowed, policy, nearest[1], 0 if allowed else retry_after)

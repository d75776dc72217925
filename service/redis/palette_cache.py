"""Rendered sync palettes on Redis, shared by every API node: bodies in one hash, the time each
was stored in a sorted set (one slot: the ``cache`` tag), the oldest dropped past the bound."""

from __future__ import annotations

from collections.abc import Mapping

from ..clock import Clock
from ..crypto.fields import Plain
from .connection import RedisConnection
from .keys import key

__all__ = ["RedisPaletteCache"]

_TRIM = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[1])
if over > 0 then
  for _, name in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do stale[#stale + 1] = name end
end
for _, name in ipairs(stale) do
  redis.call('HDEL', KEYS[1], name)
  redis.call('ZREM', KEYS[2], name)
end
return #stale
"""


class RedisPaletteCache:
    def __init__(
        self,
        conn: RedisConnection,
        clock: Clock,
        entries: int,
        keep_seconds: float,
        cipher: Plain | None = None,
    ) -> None:
        self.cipher = cipher or Plain()
        self.raw = conn.raw
        self.clock = clock
        self.entries = entries
        self.keep_seconds = keep_seconds
        self.bodies = key("cache", "bodies")
        self.stored = key("cache", "stored")
        self._trim = conn.text.register_script(_TRIM)

    def cache_get(self, name: str) -> bytes | None:
        body: bytes | None = self.raw.hget(self.bodies, name)
        return None if body is None else self.cipher.open_bytes(body)

    def cache_put(self, entries: Mapping[str, bytes]) -> None:
        if self.entries <= 0 or not entries:
            return
        now = self.clock.now()
        pipe = self.raw.pipeline(transaction=True)
        sealed = {name: self.cipher.seal_bytes(body) for name, body in entries.items()}
        pipe.hset(self.bodies, mapping=sealed)
        pipe.zadd(self.stored, {name: now for name in entries})
        pipe.execute()

    def cache_keys(self) -> None:
        return None  # other nodes add keys too: every lookup asks

    def expire(self) -> None:
        before = repr(self.clock.now() - self.keep_seconds)
        self._trim(keys=[self.bodies, self.stored], args=[self.entries, before])

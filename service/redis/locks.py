"""Locks shared by every node on Redis: one hash per lock, changed by one script each.

The lease's end is kept in the hash as a time of the injected clock (the Redis server's own by
default), not as a key TTL, so a fake clock in tests moves leases as it moves everything else;
the hash is never deleted, so its fencing token only grows.
"""

from __future__ import annotations

from ..clock import Clock
from ..jobs.interfaces import LockLease
from .connection import RedisConnection
from .keys import key

__all__ = ["RedisLocks"]

_ACQUIRE = """
local ends = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if ends > tonumber(ARGV[1]) then return 0 end
local token = redis.call('HINCRBY', KEYS[1], 'token', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'until', ARGV[3])
return token
"""

# ARGV: now, token, new until (0 to release). 1 when the grant still held the lock.
_RENEW = """
local held = redis.call('HMGET', KEYS[1], 'token', 'until')
if tonumber(held[1] or '-1') ~= tonumber(ARGV[2]) or tonumber(held[2] or '0') <= tonumber(ARGV[1])
then return 0 end
redis.call('HSET', KEYS[1], 'until', ARGV[3])
if ARGV[3] == '0' then redis.call('HDEL', KEYS[1], 'owner') end
return 1
"""


class RedisLocks:
    def __init__(self, conn: RedisConnection, clock: Clock) -> None:
        self.clock = clock
        self._acquire = conn.text.register_script(_ACQUIRE)
        self._renew = conn.text.register_script(_RENEW)

    def acquire(self, name: str, owner: str, ttl: float) -> LockLease | None:
        now = self.clock.now()
        until = now + ttl
        token = int(self._acquire(keys=[key("locks", name)], args=[repr(now), owner, repr(until)]))
        return LockLease(name, owner, token, until) if token else None

    def renew(self, lease: LockLease, ttl: float) -> LockLease | None:
        now = self.clock.now()
        until = now + ttl
        held = self._renew(
            keys=[key("locks", lease.name)], args=[repr(now), lease.token, repr(until)]
        )
        return LockLease(lease.name, lease.owner, lease.token, until) if int(held) else None

    def release(self, lease: LockLease) -> bool:
        now = self.clock.now()
        released = self._renew(keys=[key("locks", lease.name)], args=[repr(now), lease.token, "0"])
        return bool(int(released))

"""The audit log on Redis: one chain for the deployment, whichever node writes.

Entries live in one slot (the ``audit`` tag): a hash of entries by ``seq``, the head (last
``seq`` and MAC) and one sorted set per tenant for queries. The MAC is computed here, with a
key Redis never sees; the append script writes an entry only if the head is still the one the
MAC was computed on, so two nodes appending at once retry instead of forking the chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict

from ..audit.chain import GENESIS, mac
from ..audit.interfaces import AuditEntry, AuditQuery, StoredEntry
from .connection import RedisConnection
from .keys import key

__all__ = ["RedisAuditLog"]

_TAG = "audit"

# KEYS: head, entries, tenant index. ARGV: expected previous seq, seq, body, mac, tenant.
_APPEND = """
local head = redis.call('HGET', KEYS[1], 'seq') or '0'
if head ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'mac', ARGV[4])
redis.call('ZADD', KEYS[3], tonumber(ARGV[2]), ARGV[2])
return 1
"""

_PAGE = 500


def _stored(seq: int, body: str) -> StoredEntry:
    data = json.loads(body)
    return StoredEntry(seq, AuditEntry(**data["entry"]), data["prev"], data["mac"])


class RedisAuditLog:
    def __init__(self, conn: RedisConnection, audit_key: bytes) -> None:
        self.redis = conn.text
        self.key = audit_key
        self.head = key(_TAG, "head")
        self.entries = key(_TAG, "entries")
        self._append = self.redis.register_script(_APPEND)

    def _tenant(self, tenant: str) -> str:
        return key(_TAG, "tenant", tenant)

    def append(self, entry: AuditEntry) -> StoredEntry:
        while True:
            head: dict[str, str] = self.redis.hgetall(self.head)
            last = int(head.get("seq", 0))
            seq, prev = last + 1, head.get("mac", GENESIS)
            signed = mac(self.key, seq, entry, prev)
            body = json.dumps({"entry": asdict(entry), "prev": prev, "mac": signed})
            written = self._append(
                keys=[self.head, self.entries, self._tenant(entry.tenant)],
                args=[str(last), str(seq), body, signed, entry.tenant],
            )
            if written:
                return StoredEntry(seq, entry, prev, signed)

    def query(self, q: AuditQuery) -> list[StoredEntry]:
        found: list[StoredEntry] = []
        top = f"({q.before}" if q.before is not None else "+inf"
        while len(found) < q.limit:
            seqs: list[str] = self.redis.zrevrangebyscore(
                self._tenant(q.tenant), top, "-inf", start=0, num=_PAGE
            )
            if not seqs:
                break
            for seq, body in zip(seqs, self.redis.hmget(self.entries, seqs)):
                if body is None:
                    continue
                row = _stored(int(seq), body)
                e = row.entry
                if (
                    (q.action is None or e.action == q.action)
                    and (q.actor is None or e.actor == q.actor)
                    and (q.since is None or e.at >= q.since)
                    and (q.until is None or e.at < q.until)
                ):
                    found.append(row)
                    if len(found) == q.limit:
                        break
            top = f"({seqs[-1]}"
        return found

    def all_entries(self) -> Iterator[StoredEntry]:
        last = int(self.redis.hget(self.head, "seq") or 0)
        for start in range(1, last + 1, _PAGE):
            seqs = [str(n) for n in range(start, min(last, start + _PAGE - 1) + 1)]
            for seq, body in zip(seqs, self.redis.hmget(self.entries, seqs)):
                if body is not None:
                    yield _stored(int(seq), body)

"""API keys on Redis, shared by every node: a key minted on one node authenticates on all,
and a revocation takes effect everywhere at once. All keys share one slot (the ``keys`` tag),
so the scripts below change a record and its tenant's index together, in a cluster too."""

from __future__ import annotations

from typing import Any

from ..auth.interfaces import ApiKeyNotFound, ApiKeyRecord
from .connection import RedisConnection
from .keys import key

__all__ = ["RedisApiKeyStore"]

_TAG = "keys"

# KEYS: record, tenant index, "any key was made" flag. ARGV: key id, then field/value pairs.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('key id exists') end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('SET', KEYS[3], '1')
return 1
"""

# KEYS: record. ARGV: tenant, time. Nothing for a key of another tenant (or none).
_REVOKE = """
if redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return nil end
redis.call('HSETNX', KEYS[1], 'revoked_at', ARGV[2])
return redis.call('HGETALL', KEYS[1])
"""

_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1]) end
return 1
"""

_OPTIONAL = ("expires_at", "last_used_at", "revoked_at")


def _record(fields: dict[str, str]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=fields["key_id"],
        tenant=fields["tenant"],
        role=fields["role"],
        name=fields["name"],
        digest=fields["digest"],
        created_at=float(fields["created_at"]),
        **{name: float(fields[name]) if fields.get(name) else None for name in _OPTIONAL},
    )


class RedisApiKeyStore:
    def __init__(self, conn: RedisConnection) -> None:
        self.redis = conn.text
        self._create = self.redis.register_script(_CREATE)
        self._revoke = self.redis.register_script(_REVOKE)
        self._touch = self.redis.register_script(_TOUCH)
        self.any_key = key(_TAG, "any")

    @staticmethod
    def _key(key_id: str) -> str:
        return key(_TAG, "key", key_id)

    @staticmethod
    def _tenant(tenant: str) -> str:
        return key(_TAG, "tenant", tenant)

    def create(self, record: ApiKeyRecord) -> None:
        fields: list[Any] = []
        for name in ("key_id", "tenant", "role", "name", "digest", "created_at", *_OPTIONAL):
            value = getattr(record, name)
            if value is not None:
                fields += [name, repr(value) if isinstance(value, float) else value]
        self._create(
            keys=[self._key(record.key_id), self._tenant(record.tenant), self.any_key],
            args=[record.key_id, *fields],
        )

    def get(self, key_id: str) -> ApiKeyRecord | None:
        fields: dict[str, str] = self.redis.hgetall(self._key(key_id))
        return _record(fields) if fields else None

    def list_keys(
        self, tenant: str, limit: int, after: str | None
    ) -> tuple[list[ApiKeyRecord], str | None]:
        start = f"({after}" if after else "-"
        ids: list[str] = self.redis.zrangebylex(self._tenant(tenant), start, "+", 0, limit + 1)
        pipe = self.redis.pipeline(transaction=False)
        for key_id in ids[:limit]:
            pipe.hgetall(self._key(key_id))
        records = [_record(fields) for fields in pipe.execute() if fields]
        return records, records[-1].key_id if len(ids) > limit and records else None

    def revoke(self, key_id: str, tenant: str, at: float) -> ApiKeyRecord:
        reply = self._revoke(keys=[self._key(key_id)], args=[tenant, repr(at)])
        if not reply:
            raise ApiKeyNotFound(key_id)
        return _record(dict(zip(reply[::2], reply[1::2])))

    def touch(self, key_id: str, at: float) -> None:
        self._touch(keys=[self._key(key_id)], args=[repr(at)])

    def has_keys(self) -> bool:
        return bool(self.redis.exists(self.any_key))

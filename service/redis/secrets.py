"""Generated secrets on Redis: the first node to ask makes one, every node reads the same."""

from __future__ import annotations

from collections.abc import Callable

from .connection import RedisConnection
from .keys import key

__all__ = ["RedisSecretStore"]


class RedisSecretStore:
    def __init__(self, conn: RedisConnection) -> None:
        self.redis = conn.text

    def get_or_create(self, name: str, make: Callable[[], str]) -> str:
        name_key = key("secrets", name)
        value: str | None = self.redis.get(name_key)
        if value is None:
            self.redis.set(name_key, make(), nx=True)  # two nodes at once: the first one wins
            value = self.redis.get(name_key)
        assert value is not None
        return value

    def set(self, name: str, value: str) -> None:
        self.redis.set(key("secrets", name), value)

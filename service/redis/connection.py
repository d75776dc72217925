"""Opening Redis from ``PALETTE_STORE``, and the Redis server's clock."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster

from .keys import key

__all__ = ["RedisConnection", "ServerClock", "open_redis", "operation_source"]


@dataclass(frozen=True)
class RedisConnection:
    text: Any
    """Replies decoded as UTF-8 (everything but cached bodies)."""
    raw: Any
    """Replies as bytes."""
    cluster: bool

    def close(self) -> None:
        self.text.close()
        self.raw.close()


@cache
def operation_source(name: str) -> str:
    """The text of one of this package's operation scripts (``engine.lua``, ``webhooks.lua``)
    with ``prelude.lua`` in front: the reading of KEYS and ARGV and the helpers both share."""
    folder = resources.files(__package__)
    return "".join(folder.joinpath(part).read_text(encoding="utf-8")
                   for part in ("prelude.lua", name))


def open_redis(url: str) -> RedisConnection:
    """``redis://host:port/db`` (also ``rediss://``, ``unix://``) or
    ``redis+cluster://host:7000,host:7001`` (any reachable nodes; the rest are discovered)."""
    parts = urlsplit(url)
    if parts.scheme == "redis+cluster":
        nodes = []
        for hostport in parts.netloc.rsplit("@", 1)[-1].split(","):
            host, _, port = hostport.rpartition(":")
            nodes.append(ClusterNode(host.strip("[]") or "127.0.0.1", int(port or 6379)))  # type: ignore[no-untyped-call]
        extra: dict[str, Any] = {}
        if parts.password:
            extra["password"] = parts.password
        if parts.username:
            extra["username"] = parts.username

        def cluster(decode: bool) -> RedisCluster:
            return RedisCluster(startup_nodes=nodes, decode_responses=decode, **extra)

        return RedisConnection(cluster(True), cluster(False), cluster=True)
    return RedisConnection(
        redis.Redis.from_url(url, decode_responses=True),
        redis.Redis.from_url(url, decode_responses=False),
        cluster=False,
    )


class ServerClock:
    """The time of one Redis server, the one clock every node of a deployment shares.

    Leases written by one node and checked by another then never compare two machines' wall
    clocks. The server is asked once every ``resync`` seconds; in between, the local monotonic
    clock measures the time since (it never jumps).
    """

    def __init__(self, conn: RedisConnection, resync: float = 5.0) -> None:
        # In a cluster, one fixed node answers: the one holding this key's slot.
        self._script = conn.text.register_script("return redis.call('TIME')")
        self._key = key("clock")
        self._resync = resync
        self._lock = threading.Lock()
        self._base: tuple[float, float] | None = None

    def now(self) -> float:
        with self._lock:
            local = time.monotonic()
            if self._base is None or local - self._base[1] >= self._resync:
                before = time.monotonic()
                seconds, micros = self._script(keys=[self._key])
                after = time.monotonic()
                server = int(seconds) + int(micros) / 1e6
                self._base = (server, (before + after) / 2)
            server, at = self._base
            return server + (local - at)

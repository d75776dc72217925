"""Every Redis key of the backend, built here and nowhere else.

A key is ``pe:{<tag>}:<parts>``. The braces are a Redis Cluster hash tag: only the tag picks
the slot, so every key of one partition (``p0``, ``p1``, ...) lives in one slot and one Lua
script can change all of them atomically. A tenant's jobs, tasks, queue, listing, idempotency
keys and event stream share its partition.
"""

from __future__ import annotations

import zlib

__all__ = ["key", "partition_of", "partition_tag", "prefix"]


def partition_tag(partition: int) -> str:
    return f"p{partition}"


def prefix(tag: str) -> str:
    """The part every key with this tag starts with (the engine script extends it)."""
    return f"pe:{{{tag}}}"


def key(tag: str, *parts: str) -> str:
    return ":".join([prefix(tag), *parts])


def partition_of(tenant: str, partitions: int) -> int:
    """The tenant's partition: stable across processes (CRC-32, not Python's salted hash)."""
    return zlib.crc32(tenant.encode("utf-8")) % partitions

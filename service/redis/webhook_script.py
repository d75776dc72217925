"""``webhooks.lua``, the one script behind the Redis webhook endpoints and outbox, and the layout
they share: every key under one hash tag (``hooks``), so each script call stays in one Redis
Cluster slot.

One tag rather than the jobs' per-tenant partitions: a claim must see every tenant's due
messages and count what every sender holds, per endpoint, per callback URL (which tenants may
share) and per tenant, in one atomic step. Partitioned, those caps could only be kept per
partition. Webhook traffic is one small message per event and endpoint, far below what one
Redis node serves.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..crypto.fields import Plain
from .connection import RedisConnection, operation_source
from .keys import key, prefix

__all__ = ["TAG", "WebhookScript", "open_body", "seal_body", "stamp"]

TAG = "hooks"


class WebhookScript:
    """``webhooks.lua`` run as one operation on the webhook tag."""

    def __init__(self, conn: RedisConnection) -> None:
        self.redis = conn.text
        self._script = conn.text.register_script(operation_source("webhooks.lua"))

    def __call__(self, op: str, **args: Any) -> Any:
        return self._script(keys=[prefix(TAG)], args=[op, json.dumps(args)])

    @staticmethod
    def key(*parts: str) -> str:
        return key(TAG, *parts)


def stamp(t: float) -> str:
    """A time as the script takes it: Python's shortest round-tripping decimal."""
    return repr(float(t))


def seal_body(cipher: Plain, text: str) -> str:
    """A JSON body as stored: itself, or under encryption at rest the sealed bytes in base64
    (which never starts with ``{``, as every body does)."""
    sealed = cipher.seal_text(text)
    return base64.b64encode(sealed).decode("ascii") if isinstance(sealed, bytes) else sealed


def open_body(cipher: Plain, stored: str) -> str:
    if stored.startswith("{"):
        return stored
    return cipher.open_bytes(base64.b64decode(stored)).decode()

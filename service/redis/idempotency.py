"""Idempotency keys on Redis, in the tenant's partition: the job's submit script records the
outcome in the same step that creates the job."""

from __future__ import annotations

import json
from typing import Literal

from ..clock import Clock
from ..jobs.interfaces import IdempotencyOutcome
from .jobs import EngineScript, RedisJobStore
from .keys import partition_tag

__all__ = ["RedisIdempotencyStore"]

# A reservation older than this belongs to a request that died.
_STALE_RESERVATION_SECONDS = 3600.0


class RedisIdempotencyStore:
    def __init__(self, jobs: RedisJobStore, clock: Clock, keep_seconds: float) -> None:
        self.jobs = jobs
        self.run: EngineScript = jobs.run
        self.clock = clock
        self.keep_seconds = keep_seconds

    def idempotency_begin(
        self, tenant: str, key: str, method: str, path: str
    ) -> Literal["new", "in_flight"] | IdempotencyOutcome:
        reply = self.run(
            self.jobs.tag_of_tenant(tenant),
            "idempotency_begin",
            key=self.jobs.idempotency_key(tenant, method, path, key),
            now=repr(self.clock.now()),
            keep=self.keep_seconds,
            stale=_STALE_RESERVATION_SECONDS,
        )
        if reply in ("new", "in_flight"):
            return reply  # type: ignore[no-any-return]
        record = json.loads(reply)
        return IdempotencyOutcome(
            tenant,
            key,
            method,
            path,
            fingerprint=record["fingerprint"],
            status_code=int(record["status_code"]),
            body=json.loads(record["body"]),
            location=record.get("location") or None,
        )

    def idempotency_abort(self, tenant: str, key: str, method: str, path: str) -> None:
        self.run(
            self.jobs.tag_of_tenant(tenant),
            "idempotency_abort",
            key=self.jobs.idempotency_key(tenant, method, path, key),
        )

    def expire(self) -> None:
        before = repr(self.clock.now() - self.keep_seconds)
        for partition in range(self.jobs.partitions):
            self.run(partition_tag(partition), "idempotency_expire", before=before)

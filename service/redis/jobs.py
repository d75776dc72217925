"""Jobs and their dispatch on Redis: sorted sets for the queues, Lua for every transition.

Why sorted sets and one Lua script rather than Streams with consumer groups: dispatch here is
not first-in-first-out. A claim must pick the next tenant round-robin, skip a tenant at its
in-flight cap, take that tenant's oldest task (a whole job or one chunk of it), give up a task
whose claims keep dying (the attempt cap: a dead letter), and fence every later write with a
token, all atomically. A stream hands out entries in order and leaves the rest to the
consumer: skipping a capped tenant means reading past its entries, a canceled job's entries
stay in the stream, and the pending-entries list measures idleness with the server's clock
while leases here use the caller's. With sorted sets (per-tenant queues scored by submit
order, one lease set scored by expiry) and a list of tenants as the ring, one script
(``engine.lua``) reads and changes everything a transition touches, and appends the job's
event to the partition's stream in the same step. Streams are used where they fit: the event
log, read by position.

Every key of a partition shares one Cluster hash tag (``keys.py``); a tenant belongs to one
partition and its job ids carry it. Times come from the injected :class:`~service.clock.Clock`
(in production the Redis server's, :class:`~service.redis.connection.ServerClock`), computed
here and passed into the script as arguments; the script never reads a clock itself.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..clock import Clock
from ..crypto.fields import Plain
from ..jobs.chunks import plan_chunks
from ..jobs.cursors import decode_cursor, encode_cursor
from ..jobs.interfaces import (
    Chunk,
    IdempotencyOutcome,
    ItemKey,
    ItemResult,
    Job,
    JobConflict,
    JobInput,
    JobNotFound,
    Lease,
    LeaseState,
    NewJob,
    Progress,
    ResultInfo,
)
from ..jobs.wakeup import ClaimWaiter
from .connection import RedisConnection, operation_source
from .keys import key, partition_of, partition_tag, prefix

__all__ = ["EngineScript", "RedisJobStore", "job_from_fields"]

# How often a waiting claim looks again for work queued by other processes (this process's own
# submits wake it at once).
_POLL_SECONDS = 0.1
MAX_ATTEMPTS = 5
"""Claims of one task that end without progress before it becomes a dead letter (the same
number the worker pool gives up at)."""


class EngineScript:
    """``engine.lua``, run against one partition's prefix."""

    def __init__(self, conn: RedisConnection) -> None:
        self._script = conn.text.register_script(operation_source("engine.lua"))

    def __call__(self, tag: str, op: str, **args: Any) -> Any:
        return self._script(keys=[prefix(tag)], args=[op, json.dumps(args)])


def _time(value: str | None) -> float | None:
    return float(value) if value else None


def job_from_fields(f: Mapping[str, str]) -> Job:
    """A job hash (or an event's snapshot of one) as a :class:`Job`."""
    created = float(f["created_at"])
    return Job(
        id=f["id"],
        tenant=f["tenant"],
        status=f["status"],
        created_at=created,
        updated_at=_time(f.get("updated_at")) or created,
        started_at=_time(f.get("started_at")),
        finished_at=_time(f.get("finished_at")),
        expires_at=_time(f.get("expires_at")),
        options=json.loads(f["options"]),
        progress=Progress(
            int(f.get("total", 0)),
            int(f.get("done", 0)),
            int(f.get("failed", 0)),
            int(f.get("skipped", 0)),
        ),
        error=json.loads(f["error"]) if f.get("error") else None,
        callback_url=f.get("callback_url") or None,
        cancel_requested=f.get("cancel_requested") == "1",
        result_key=f.get("result_key") or None,
        result_digest=f.get("result_digest") or None,
        result_size=int(f["result_size"]) if f.get("result_size") else None,
        attempts=int(f.get("attempts", 0)),
    )


def _item_field(seq: int, index: int) -> str:
    return f"{seq}:{index}"


def _started_rows(items: Mapping[ItemKey, str]) -> list[list[str]]:
    return [[_item_field(seq, index), name] for (seq, index), name in items.items()]


def _item_body(item: ItemResult, cipher: Plain) -> str:
    body: dict[str, Any] = {"name": item.name, "status": item.status, "error": item.error}
    sealed = None if item.palette is None else cipher.seal_text(json.dumps(item.palette))
    if isinstance(sealed, bytes):  # encryption at rest: the palette is sealed
        body["sealed"] = base64.b64encode(sealed).decode()
    else:
        body["palette"] = item.palette
    return json.dumps(body)


def _item_palette(data: dict[str, Any], cipher: Plain) -> Any:
    if "sealed" in data:
        return json.loads(cipher.open_bytes(base64.b64decode(data["sealed"])))
    return data.get("palette")


class RedisJobStore:
    """The distributed ``JobStore`` + ``JobQueue``: tasks (whole jobs, or chunks of large ones)
    dispatched round-robin across tenants, with a per-tenant cap on tasks running at once."""

    def __init__(
        self,
        conn: RedisConnection,
        clock: Clock,
        *,
        partitions: int,
        retention_seconds: float,
        max_crashes: int = 3,
        chunk_images: int = 64,
        tenant_max_running: int = 0,
        max_attempts: int = MAX_ATTEMPTS,
        cipher: Plain | None = None,
    ) -> None:
        if not 1 <= partitions <= 256:
            raise ValueError("partitions must be 1 to 256")
        self.redis = conn.text
        self.clock = clock
        self.partitions = partitions
        self.retention_seconds = retention_seconds
        self.max_crashes = max_crashes
        self.chunk_images = chunk_images
        self.tenant_max_running = tenant_max_running
        self.max_attempts = max_attempts
        self.cipher = cipher or Plain()
        """Seals each image's palette (encryption at rest)."""
        self.run = EngineScript(conn)
        # Claims waiting in this process wake when this process queues work.
        self._waiter = ClaimWaiter(_POLL_SECONDS)
        self._next_partition = 0

    # -- plumbing ------------------------------------------------------------------------------
    def tag_of_job(self, job_id: str) -> str:
        """The partition tag a job id carries in its first two hex digits."""
        if len(job_id) != 32 or any(c not in "0123456789abcdef" for c in job_id):
            raise JobNotFound(job_id)
        partition = int(job_id[:2], 16)
        if partition >= self.partitions:
            raise JobNotFound(job_id)
        return partition_tag(partition)

    def tag_of_tenant(self, tenant: str) -> str:
        return partition_tag(partition_of(tenant, self.partitions))

    def _fields(self, job_id: str) -> dict[str, str]:
        fields: dict[str, str] = self.redis.hgetall(key(self.tag_of_job(job_id), "job", job_id))
        return fields

    def _visible(self, job_id: str, tenant: str | None) -> Job:
        fields = self._fields(job_id)
        if not fields:
            raise JobNotFound(job_id)
        job = job_from_fields(fields)
        if (tenant is not None and job.tenant != tenant) or (
            job.expires_at is not None and job.expires_at <= self.clock.now()
        ):
            raise JobNotFound(job_id)
        return job

    def _wake_claims(self) -> None:
        self._waiter.wake()

    def _final_expiry(self, now: float) -> str:
        return repr(now + self.retention_seconds)

    def ping(self) -> None:
        self.redis.ping()

    # -- JobStore ------------------------------------------------------------------------------
    def new_job_id(self, tenant: str = "") -> str:
        return f"{partition_of(tenant, self.partitions):02x}{uuid.uuid4().hex[2:]}"

    def submit(self, job: NewJob, idempotency: IdempotencyOutcome | None = None) -> Job:
        tag = self.tag_of_job(job.id)
        if tag != self.tag_of_tenant(job.tenant):
            raise ValueError("the job id was not minted for this tenant (new_job_id(tenant))")
        now = self.clock.now()
        created = Job(
            id=job.id,
            tenant=job.tenant,
            status="queued",
            created_at=now,
            updated_at=now,
            started_at=None,
            finished_at=None,
            expires_at=None,
            options=job.options,
            progress=Progress(job.total),
            callback_url=job.callback_url,
        )
        idem: dict[str, Any] | None = None
        if idempotency is not None:
            idem = {
                "key": self.idempotency_key(
                    idempotency.tenant, idempotency.method, idempotency.path, idempotency.key
                ),
                "fingerprint": idempotency.fingerprint,
                "status_code": idempotency.status_code,
                "body": json.dumps(created.to_public()),
                "location": idempotency.location or "",
            }
        inputs = [
            [i.seq, i.name, i.blob_key, i.kind, i.size, i.images]
            + [i.directory_entries, i.directory_bytes]
            for i in job.inputs
        ]
        chunks = plan_chunks(job.inputs, self.chunk_images)
        self.run(
            tag,
            "submit",
            id=job.id,
            tenant=job.tenant,
            options=json.dumps(job.options),
            callback_url=job.callback_url,
            now=repr(now),
            total=job.total,
            inputs=json.dumps(inputs),
            chunks=[json.dumps(spans) for spans in chunks],
            idem=idem,
        )
        self._wake_claims()
        return created

    def idempotency_key(self, tenant: str, method: str, path: str, idem_key: str) -> str:
        return key(self.tag_of_tenant(tenant), "idem", tenant, method, path, idem_key)

    def get(self, job_id: str, tenant: str | None = None) -> Job:
        return self._visible(job_id, tenant)

    def list_jobs(
        self, tenant: str, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        tag = self.tag_of_tenant(tenant)
        below = "+inf" if cursor is None else f"({decode_cursor(cursor)}"
        now = self.clock.now()
        found: list[tuple[Job, int]] = []
        batch = max(limit + 1, 50)
        while len(found) <= limit:
            rows = self.redis.zrevrangebyscore(
                key(tag, "jobs", tenant), below, "-inf", start=0, num=batch, withscores=True
            )
            if not rows:
                break
            pipe = self.redis.pipeline(transaction=False)
            for job_id, _ in rows:
                pipe.hgetall(key(tag, "job", job_id))
            for (job_id, seq), fields in zip(rows, pipe.execute()):
                if not fields:
                    continue
                job = job_from_fields(fields)
                if (job.expires_at is not None and job.expires_at <= now) or (
                    status is not None and job.status != status
                ):
                    continue
                found.append((job, int(seq)))
            below = f"({int(rows[-1][1])}"
        jobs = [job for job, _ in found[:limit]]
        next_cursor = encode_cursor(found[limit - 1][1]) if len(found) > limit else None
        return jobs, next_cursor

    def _change(self, op: str, job_id: str, tenant: str) -> Job:
        reply = json.loads(
            self.run(
                self.tag_of_job(job_id),
                op,
                id=job_id,
                tenant=tenant,
                now=repr(self.clock.now()),
                final_expires=self._final_expiry(self.clock.now()),
            )
        )
        if reply.get("missing"):
            raise JobNotFound(job_id)
        if "conflict" in reply:
            what = "cancel" if op == "cancel" else "delete"
            raise JobConflict(f"job {job_id}: cannot {what} it now", reply["conflict"])
        return job_from_fields(reply["job"])

    def cancel(self, job_id: str, tenant: str) -> Job:
        return self._change("cancel", job_id, tenant)

    def delete(self, job_id: str, tenant: str) -> Job:
        return self._change("delete", job_id, tenant)

    def inputs(self, job_id: str) -> list[JobInput]:
        try:
            raw = self.redis.hget(key(self.tag_of_job(job_id), "job", job_id), "inputs")
        except JobNotFound:
            return []
        if raw is None:
            return []
        return [JobInput(*row) for row in json.loads(raw)]

    def iter_items(self, job_id: str) -> Iterator[ItemResult]:
        """In input order, read in pages (a job of 10,000 images is never one reply)."""
        items_key = key(self.tag_of_job(job_id), "items", job_id)
        fields = sorted(
            (tuple(map(int, f.split(":"))) for f in self.redis.hkeys(items_key)),
        )
        for start in range(0, len(fields), 500):
            page = fields[start : start + 500]
            bodies = self.redis.hmget(items_key, [_item_field(s, i) for s, i in page])
            for (seq, index), body in zip(page, bodies):
                if body is None:
                    continue
                data = json.loads(body)
                yield ItemResult(
                    seq,
                    index,
                    data["name"],
                    data["status"],
                    _item_palette(data, self.cipher),
                    data.get("error"),
                )

    def expire(self, limit: int = 500) -> list[Job]:
        gone: list[Job] = []
        now = repr(self.clock.now())
        for partition in range(self.partitions):
            if len(gone) >= limit:
                break
            reply = self.run(
                partition_tag(partition), "expire", now=now, limit=limit - len(gone)
            )
            gone.extend(job_from_fields(f) for f in json.loads(reply) or [])
        return gone

    def counts(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for partition in range(self.partitions):
            pipe.hgetall(key(partition_tag(partition), "counts"))
        totals: dict[str, int] = {}
        for counts in pipe.execute():
            for status, n in counts.items():
                totals[status] = totals.get(status, 0) + int(n)
        return {status: n for status, n in totals.items() if n}

    def backlog(self, tenant: str) -> tuple[int, int]:
        pipe = self.redis.pipeline(transaction=False)
        for partition in range(self.partitions):
            pipe.hgetall(key(partition_tag(partition), "depth"))
        mine = everyone = 0
        for partition, depths in enumerate(pipe.execute()):
            for name, n in depths.items():
                everyone += int(n)
                if name == tenant and partition_tag(partition) == self.tag_of_tenant(tenant):
                    mine += int(n)
        return mine, everyone

    def count_active(self, tenant: str) -> int:
        value = self.redis.hget(key(self.tag_of_tenant(tenant), "active"), tenant)
        return int(value or 0)

    # -- JobQueue ------------------------------------------------------------------------------
    def claim(self, owner: str, lease_seconds: float, wait: float = 0.0) -> Lease | None:
        return self._waiter.claim(lambda: self._claim_once(owner, lease_seconds), wait)

    def _claim_once(self, owner: str, lease_seconds: float) -> Lease | None:
        # Partitions are served in turn: the next claim starts after the partition this one
        # served, so a tenant of another partition waits at most one claim of this process.
        # (Moving the start on by one per claim was not enough: the partition right after a
        # busy one was reached first by 1 start in 8, and its tenants waited up to 7 claims.)
        start = self._next_partition
        self._next_partition = (start + 1) % self.partitions
        order = [(start + step) % self.partitions for step in range(self.partitions)]
        for partition in self._claimable(order):
            tag = partition_tag(partition)
            now = self.clock.now()
            reply = self.run(
                tag,
                "claim",
                owner=owner,
                now=repr(now),
                expires=repr(now + lease_seconds),
                final_expires=self._final_expiry(now),
                retention=repr(self.retention_seconds),
                cap=self.tenant_max_running,
                max_crashes=self.max_crashes,
                max_attempts=self.max_attempts,
            )
            if reply:
                self._next_partition = (partition + 1) % self.partitions
                return self._lease(owner, reply)
        return None

    def _claimable(self, order: list[int]) -> list[int]:
        """The partitions of ``order`` where a claim can find anything: a tenant in the ring
        (queued work) or a lease already expired (the claim reaps it first). One pipelined
        round trip instead of a script call per partition: a worker whose work sits in one
        partition otherwise ran the claim script in every other one first, each a round trip
        and a reap (with 8 partitions, 8 scripts a claim). What the probe misses (work queued
        just after it) is found by the next claim, as with work queued just after a claim."""
        if len(order) == 1:
            return order
        now = repr(self.clock.now())
        pipe = self.redis.pipeline(transaction=False)
        for partition in order:
            tag = partition_tag(partition)
            pipe.llen(key(tag, "ring"))
            pipe.zcount(key(tag, "leases"), "-inf", f"({now}")
        counts = pipe.execute()
        return [p for n, p in enumerate(order) if counts[2 * n] or counts[2 * n + 1]]

    @staticmethod
    def _lease(owner: str, reply: str) -> Lease:
        data = json.loads(reply)
        suspects = data["suspects"] or []
        chunk: Chunk | None = None
        assemble = data["chunk"] == "a"
        if data["chunks"] > 1 and not assemble:
            spans = tuple(tuple(span) for span in json.loads(data["spans"]))
            chunk = Chunk(int(data["chunk"]), data["chunks"], spans)
        return Lease(
            data["id"],
            owner,
            int(data["token"]),
            float(data["expires"]),
            attempts=data["attempts"],
            suspects=frozenset(
                (int(s), int(i)) for s, i in (field.split(":") for field in suspects)
            ),
            chunk=chunk,
            assemble=assemble,
        )

    def _owned(self, op: str, lease: Lease, **args: Any) -> Any:
        return self.run(
            self.tag_of_job(lease.job_id),
            op,
            id=lease.job_id,
            owner=lease.owner,
            token=str(lease.token),
            **args,
        )

    def renew(self, lease: Lease, lease_seconds: float) -> LeaseState:
        alive, cancel = self._owned(
            "renew", lease, expires=repr(self.clock.now() + lease_seconds)
        )
        return LeaseState(alive=bool(alive), cancel_requested=bool(alive and cancel))

    def cancel_requested(self, job_ids: Sequence[str]) -> set[str]:
        pipe = self.redis.pipeline(transaction=False)
        asked: list[str] = []
        for job_id in job_ids:
            try:
                tag = self.tag_of_job(job_id)
            except JobNotFound:
                continue
            asked.append(job_id)
            pipe.hmget(key(tag, "job", job_id), ["status", "cancel_requested"])
        flagged = set()
        for job_id, (status, flag) in zip(asked, pipe.execute()):
            if status is not None and (flag == "1" or status != "running"):
                flagged.add(job_id)
        return flagged

    def done_items(self, job_id: str) -> set[ItemKey]:
        fields = self.redis.hkeys(key(self.tag_of_job(job_id), "items", job_id))
        return {(int(s), int(i)) for s, i in (f.split(":") for f in fields)}

    def start_items(self, lease: Lease, items: Mapping[ItemKey, str]) -> bool:
        return bool(self._owned("start_items", lease, items=_started_rows(items)))

    def progress(
        self,
        lease: Lease,
        items: Sequence[ItemResult],
        total: int | None,
        *,
        notify: bool = False,
        lease_seconds: float | None = None,
        started: Mapping[ItemKey, str] | None = None,
    ) -> bool:
        now = self.clock.now()
        rows = [
            [_item_field(i.input_seq, i.entry_index), _item_body(i, self.cipher), i.status]
            for i in items
        ]
        return bool(
            self._owned(
                "progress",
                lease,
                items=rows,
                started=_started_rows(started or {}),
                total=total,
                notify=notify,
                now=repr(now),
                expires=None if lease_seconds is None else repr(now + lease_seconds),
            )
        )

    def finish_chunk(self, lease: Lease, lease_seconds: float) -> Lease | bool:
        now = self.clock.now()
        reply = self._owned("finish_chunk", lease, now=repr(now), expires=repr(now + lease_seconds))
        if reply is None:
            return False
        if reply == "":
            return True
        return self._lease(lease.owner, reply)

    def _finish(
        self,
        lease: Lease,
        status: str,
        result: ResultInfo | None = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        now = self.clock.now()
        return bool(
            self._owned(
                "finish",
                lease,
                status=status,
                now=repr(now),
                final_expires=self._final_expiry(now),
                error=None if error is None else json.dumps(error),
                result_key=result.key if result else None,
                result_digest=result.digest if result else None,
                result_size=result.size if result else None,
            )
        )

    def complete(self, lease: Lease, result: ResultInfo) -> bool:
        return self._finish(lease, "succeeded", result=result)

    def fail(self, lease: Lease, error: dict[str, Any], result: ResultInfo | None) -> bool:
        return self._finish(lease, "failed", result=result, error=error)

    def acknowledge_cancel(self, lease: Lease) -> bool:
        return self._finish(lease, "canceled")

    def release(self, lease: Lease, *, crashed: bool = False) -> bool:
        released = bool(
            self._owned(
                "release",
                lease,
                now=repr(self.clock.now()),
                crashed=crashed,
                max_crashes=self.max_crashes,
            )
        )
        if released:
            self._wake_claims()
        return released

    def reap_expired(self) -> int:
        reaped = 0
        now = repr(self.clock.now())
        for partition in range(self.partitions):
            reaped += int(
                self.run(
                    partition_tag(partition),
                    "reap",
                    now=now,
                    max_crashes=self.max_crashes,
                    retention=repr(self.retention_seconds),
                )
            )
        if reaped:
            self._wake_claims()
        return reaped

"""The webhook outbox on Redis, shared by every node: any process relays job events into it,
and any sender claims, delivers and records its messages.

Why one Lua script per change (``webhooks.lua``) and not a sequence of commands: each change
reads state and writes several keys that must agree, and several nodes do them at once.

* Relay is once per event id: the script checks and marks the id in the same step as it writes
  the messages, so two nodes relaying one event write its messages once.
* A claim counts the leases every sender holds (per endpoint or callback URL, and per tenant)
  and leases messages up to the caps in one step, so two nodes claiming together cannot both
  take the last free place. An expired lease is returned to the due set by the next claim.
* Recording an attempt checks that this sender still holds the lease, moves the message on, and
  updates its endpoint's failure state, disabling it after a 410 or after failing too long, all
  at once: two senders failing together cannot both decide, and a success on one node cannot
  be lost between another node's read and write.
* A batch takes the oldest buffered entries only if they are still the oldest, so two nodes
  never send the same events twice; resend, recover and purge change each message together
  with every index that lists it.

Bodies are built and sealed (encryption at rest) in Python; the script moves them as opaque
text. Times come from the injected :class:`~service.clock.Clock` and reach the script as
arguments.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

from ..clock import Clock, iso_time
from ..crypto.fields import Plain
from ..jobs.interfaces import JobEvent
from ..webhooks.events import CALLBACK_EVENTS, canonical_json, job_payload, message_id
from ..webhooks.interfaces import Claimed, Conflict, NotFound, Outcome
from ..webhooks.signing import tenant_secret
from .connection import RedisConnection
from .webhook_script import WebhookScript, open_body, seal_body, stamp

__all__ = ["RedisWebhookOutbox"]

# Relayed event ids are remembered this long: far longer than any event waits to be relayed.
_RELAYED_KEEP_SECONDS = 7 * 24 * 3600.0
# Finished messages one purge step removes; a larger backlog goes over the following steps.
_PURGE_BATCH = 5000
# Reads of the owner's endpoints a relay makes before giving up on a list that keeps changing.
_RELAY_RETRIES = 50
# Index entries read per round trip while listing messages.
_SCAN = 200


class RedisWebhookOutbox:
    def __init__(
        self,
        conn: RedisConnection,
        clock: Clock,
        *,
        callback_secret: str,
        disable_after_s: float,
        retention_s: float,
        cipher: Plain | None = None,
    ) -> None:
        self.run = WebhookScript(conn)
        self.redis = conn.text
        self.cipher = cipher or Plain()
        """Seals message bodies and buffered payloads (encryption at rest)."""
        self.clock = clock
        self.callback_secret = callback_secret
        self.disable_after_s = disable_after_s
        self.retention_s = retention_s

    # -- enqueue -------------------------------------------------------------------------------

    def relay(self, event: JobEvent) -> int:
        now = self.clock.now()
        owner = str(event.job.get("tenant") or "")
        if event.type == "job.deleted":
            removed: int = self.run(
                "forget_job",
                event_id=event.id,
                owner=str(event.job.get("tenant")),
                job_id=str(event.job["id"]),
                now=stamp(now),
            )
            return removed
        payload = job_payload(event.job, event.type, event.at)
        job_id = payload["data"]["job_id"]
        body = seal_body(self.cipher, canonical_json(payload))
        callback_url = event.job.get("callback_url")
        callback = None
        if callback_url and event.type in CALLBACK_EVENTS:
            callback = {"id": message_id(event.id, "callback"), "url": str(callback_url)}
        for _ in range(_RELAY_RETRIES):
            endpoint_ids: list[str] = self.redis.zrange(self.run.key("eps", owner), 0, -1)
            written: int = self.run(
                "relay",
                event_id=event.id,
                owner=owner,
                job_id=job_id,
                event_type=event.type,
                body=body,
                now=stamp(now),
                endpoints={ep: message_id(event.id, ep) for ep in endpoint_ids},
                callback=callback,
            )
            if written >= 0:
                return written
        raise RuntimeError(f"the endpoints of {owner!r} kept changing while relaying {event.id}")

    def enqueue_test(self, endpoint_id: str, owner: str, event_type: str) -> str:
        """An example event to one endpoint (never batched, so it shows up at once)."""
        now = self.clock.now()
        status = {"job.progress": "running"}.get(event_type, event_type.removeprefix("job."))
        payload = job_payload({"id": "job_example", "status": status}, event_type, now)
        payload["data"]["example"] = True
        msg_id: str | None = self.run(
            "enqueue_test",
            id="msg_" + secrets.token_urlsafe(18),
            endpoint_id=endpoint_id,
            owner=owner,
            event_type=event_type,
            body=seal_body(self.cipher, canonical_json(payload)),
            now=stamp(now),
        )
        if msg_id is None:
            raise NotFound(f"no webhook endpoint {endpoint_id!r}")
        return msg_id

    # -- batching ------------------------------------------------------------------------------

    def form_batches(self) -> int:
        """Buffered events -> batch messages: N events, or fewer once the oldest waited T ms."""
        endpoint_ids: set[str] = self.redis.smembers(self.run.key("buffered"))
        if not endpoint_ids:
            return 0
        now = self.clock.now()
        formed = 0
        for endpoint_id in sorted(endpoint_ids):
            endpoint = self.redis.hmget(
                self.run.key("ep", endpoint_id),
                ["disabled", "batch_max_events", "batch_max_wait_ms"],
            )
            if endpoint[0] != "0":
                continue
            max_events = int(endpoint[1] or 1)
            max_wait_s = int(endpoint[2] or 0) / 1000.0
            seqs: list[str] = self.redis.zrange(self.run.key("buf", endpoint_id), 0, -1)
            if not seqs:
                continue
            stored = self.redis.hmget(self.run.key("bufdata", endpoint_id), seqs)
            entries = [(s, json.loads(e)) for s, e in zip(seqs, stored) if e is not None]
            if not entries:
                continue
            oldest = min(float(entry["created_at"]) for _, entry in entries)
            while len(entries) >= max_events or (entries and now - oldest >= max_wait_s):
                batch, entries = entries[:max_events], entries[max_events:]
                events = ",".join(open_body(self.cipher, entry["payload"]) for _, entry in batch)
                formed += self.run(
                    "form_batch",
                    endpoint_id=endpoint_id,
                    seqs=[seq for seq, _ in batch],
                    id="msg_" + secrets.token_urlsafe(18),
                    body=seal_body(self.cipher, '{"events":[' + events + "]}"),
                    now=stamp(now),
                )
        return formed

    # -- sending -------------------------------------------------------------------------------

    def claim_due(
        self,
        owner: str,
        limit: int,
        lease_s: float,
        busy: Mapping[str, int] | None = None,
        per_destination: int | None = None,
        busy_tenants: Mapping[str, int] | None = None,
        per_tenant: int | None = None,
    ) -> list[Claimed]:
        """Lease up to ``limit`` due messages, at most ``per_destination`` in flight per endpoint
        and ``per_tenant`` per tenant, counting every sender's leases in Redis (and ``busy``:
        this sender's own count, which may run ahead of Redis)."""
        if limit <= 0:
            return []
        now = self.clock.now()
        # Every process polls: a cheap look first, the script only when something is due or a
        # lease has run out.
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcount(self.run.key("due"), "-inf", stamp(now))
        pipe.zcount(self.run.key("leases"), "-inf", f"({stamp(now)}")
        if not any(pipe.execute()):
            return []
        rows = self.run(
            "claim",
            owner=owner,
            limit=limit,
            lease_s=lease_s,
            now=stamp(now),
            cap=per_destination or limit,
            tenant_cap=per_tenant or limit,
            busy=dict(busy or {}),
            busy_tenants=dict(busy_tenants or {}),
        )
        claimed: list[Claimed] = []
        for row in rows:
            msg_id, endpoint_id, url, body, tries, requeued_by, tenant = row[:7]
            secret, old_secret, old_until = row[7:10]
            if not endpoint_id:
                in_force: tuple[str, ...] = (tenant_secret(self.callback_secret, tenant),)
            else:
                in_force = (secret,)
                if old_secret and old_until and float(old_until) > now:
                    in_force += (old_secret,)
            claimed.append(
                Claimed(
                    msg_id,
                    endpoint_id or None,
                    url,
                    open_body(self.cipher, body),
                    int(tries),
                    in_force,
                    requeued_by or "scheduled",
                    tenant,
                )
            )
        return claimed

    def record_attempt(
        self,
        message: Claimed,
        lease_owner: str,
        outcome: Outcome,
        attempted_at: float,
        retry_in: float | None = None,
    ) -> str:
        """Store the attempt and move the message on (due again in ``retry_in`` seconds, or a
        dead letter when None); returns its new status."""
        now = self.clock.now()
        attempt = {
            "at": attempted_at,
            "status_code": outcome.status_code,
            "latency_ms": round(outcome.latency_ms, 1),
            "error": outcome.error,
            "trigger": message.trigger,
        }
        status: str = self.run(
            "record_attempt",
            id=message.id,
            lease_owner=lease_owner,
            attempt=json.dumps(attempt),
            success=outcome.success,
            gone=outcome.gone,
            error=outcome.error,
            tries=message.tries + 1,
            retry_in=retry_in,
            now=stamp(now),
            now_iso=iso_time(now),
            disable_after_s=self.disable_after_s,
        )
        return status

    # -- dead letters and recovery -------------------------------------------------------------

    def resend(self, message_id: str, owner: str, endpoint_id: str | None = None) -> dict[str, Any]:
        """Queue one message again, now, with a fresh retry budget (its attempts are kept)."""
        reply = self.run(
            "resend",
            id=message_id,
            owner=owner,
            endpoint_id=endpoint_id,
            now=stamp(self.clock.now()),
        )
        if reply == "missing":
            raise NotFound(f"no webhook message {message_id!r}")
        if reply == "busy":
            raise Conflict("the message is being delivered right now")
        return self.get_message(message_id, owner)

    def recover(self, endpoint_id: str, owner: str, since: float, until: float | None) -> int:
        """Queue again every failed message of an endpoint created in [since, until)."""
        now = self.clock.now()
        count: int = self.run(
            "recover",
            endpoint_id=endpoint_id,
            owner=owner,
            since=stamp(since),
            until_at=stamp(until if until is not None else now + 1.0),
            now=stamp(now),
        )
        if count < 0:
            raise NotFound(f"no webhook endpoint {endpoint_id!r}")
        return count

    # -- reading -------------------------------------------------------------------------------

    def list_messages(
        self,
        owner: str,
        *,
        endpoint_id: str | None,
        callbacks_only: bool = False,
        status: str | None = None,
        job_id: str | None = None,
        limit: int = 50,
        cursor: tuple[float, str] | None = None,
    ) -> tuple[list[dict[str, Any]], tuple[float, str] | None]:
        """Newest first; returns a page and the cursor of the next one (None at the end)."""

        def wanted(f: dict[str, str]) -> bool:
            if not f or f["owner"] != owner:
                return False
            if job_id is not None and f["job_id"] != job_id:
                return False
            if endpoint_id is not None and f["endpoint_id"] != endpoint_id:
                return False
            if endpoint_id is None and callbacks_only and f["endpoint_id"]:
                return False
            if status is not None and f["status"] != status:
                return False
            if cursor is not None:
                created = float(f["created_at"])
                return created < cursor[0] or (created == cursor[0] and f["id"] < cursor[1])
            return True

        found: list[dict[str, str]] = []
        for chunk in self._newest_first(owner, endpoint_id, job_id, cursor):
            found += [f for f in chunk if wanted(f)]
            if len(found) > limit:
                break
        page = [self._as_dict(f) for f in found[:limit]]
        if len(found) > limit:
            last = found[limit - 1]
            return page, (float(last["created_at"]), last["id"])
        return page, None

    def _newest_first(
        self,
        owner: str,
        endpoint_id: str | None,
        job_id: str | None,
        cursor: tuple[float, str] | None,
    ) -> Iterator[list[dict[str, str]]]:
        """Message hashes from the narrowest index, newest first, in chunks."""
        if job_id is not None:
            ids: list[str] = list(self.redis.smembers(self.run.key("byjob", owner, job_id)))
            rows = [f for f in self._hashes(ids) if f]
            rows.sort(key=lambda f: (float(f["created_at"]), f["id"]), reverse=True)
            yield rows
            return
        if endpoint_id is not None:
            index = self.run.key("byep", endpoint_id)
        else:
            index = self.run.key("own", owner)
        top = stamp(cursor[0]) if cursor is not None else "+inf"
        offset = 0
        while True:
            ids = self.redis.zrevrangebyscore(index, top, "-inf", start=offset, num=_SCAN)
            if not ids:
                return
            yield self._hashes(ids)
            offset += len(ids)

    def _hashes(self, ids: list[str]) -> list[dict[str, str]]:
        pipe = self.redis.pipeline(transaction=False)
        for msg_id in ids:
            pipe.hgetall(self.run.key("msg", msg_id))
        rows: list[dict[str, str]] = pipe.execute()
        return rows

    def get_message(
        self, message_id: str, owner: str, endpoint_id: str | None = None
    ) -> dict[str, Any]:
        f: dict[str, str] = self.redis.hgetall(self.run.key("msg", message_id))
        if not f or f["owner"] != owner or (
            endpoint_id is not None and f["endpoint_id"] != endpoint_id
        ):
            raise NotFound(f"no webhook message {message_id!r}")
        return self._as_dict(f)

    def _as_dict(self, f: dict[str, str]) -> dict[str, Any]:
        attempts = [
            json.loads(a) for a in self.redis.lrange(self.run.key("att", f["id"]), 0, -1)
        ]
        return {
            "id": f["id"],
            "endpoint_id": f["endpoint_id"] or None,
            "url": f["url"] if not f["endpoint_id"] else None,
            "job_id": f["job_id"] or None,
            "event_type": f["event_type"],
            "event_count": int(f["event_count"]),
            "status": f["status"],
            "created_at": iso_time(float(f["created_at"])),
            "next_attempt_at": (
                iso_time(float(f["next_attempt_at"])) if f["status"] == "pending" else None
            ),
            "last_error": f.get("last_error"),
            "payload": json.loads(open_body(self.cipher, f["body"])),
            "attempts": [{**a, "at": iso_time(float(a["at"]))} for a in attempts],
        }

    # -- housekeeping --------------------------------------------------------------------------

    def purge(self) -> int:
        """Forget finished messages past the retention and old secrets past their overlap."""
        now = self.clock.now()
        removed: int = self.run(
            "purge",
            now=stamp(now),
            cutoff=stamp(now - self.retention_s),
            relayed_cutoff=stamp(now - _RELAYED_KEEP_SECONDS),
            batch=_PURGE_BATCH,
        )
        return removed

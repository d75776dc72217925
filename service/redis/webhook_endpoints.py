"""Webhook endpoints on Redis, shared by every node: an endpoint created through one API node
is listed, updated and delivered to by all of them.

An endpoint is one hash; an owner's endpoint ids sit in a sorted set read by id for paging.
Changes that must agree with a precondition (``If-Match``) are check-and-set: the caller's
precondition is judged against the version it read, and the script applies the change only if
that version is still current, else the caller reads again. Deleting an endpoint removes its
messages and batching buffer in the same script (``webhooks.lua``). Secrets are stored as the
SQLite store keeps them: as they are, for the sender to sign with.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from ..clock import Clock, iso_time
from ..webhooks.events import canonical_json
from ..webhooks.interfaces import NotFound, Precondition, PreconditionFailed
from ..webhooks.signing import generate_secret
from .connection import RedisConnection
from .webhook_script import WebhookScript, stamp

__all__ = ["RedisWebhookEndpoints"]

# How often a check-and-set change reads again after losing a race before it gives up.
_RETRIES = 50


class RedisWebhookEndpoints:
    def __init__(self, conn: RedisConnection, clock: Clock, rotation_overlap_s: float) -> None:
        self.run = WebhookScript(conn)
        self.redis = conn.text
        self.clock = clock
        self.rotation_overlap_s = rotation_overlap_s

    def _fields(self, endpoint_id: str, owner: str) -> dict[str, str]:
        fields: dict[str, str] = self.redis.hgetall(self.run.key("ep", endpoint_id))
        if not fields or fields["owner"] != owner:
            raise NotFound(f"no webhook endpoint {endpoint_id!r}")
        return fields

    def create_endpoint(self, owner: str, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
        now = stamp(self.clock.now())
        secret = generate_secret()
        endpoint_id = "ep_" + secrets.token_urlsafe(12)
        record = {
            "id": endpoint_id,
            "owner": owner,
            "url": fields["url"],
            "description": fields.get("description", ""),
            "event_types": json.dumps(fields.get("event_types", ["*"])),
            "disabled": "1" if fields.get("disabled") else "0",
            "metadata": canonical_json(fields.get("metadata", {})),
            "secret": secret,
            "version": "1",
            "created_at": now,
            "updated_at": now,
            **_batch_fields(fields.get("batch")),
        }
        if fields.get("disabled_reason") is not None:
            record["disabled_reason"] = str(fields["disabled_reason"])
        flat = [part for item in record.items() for part in item]
        self.run("create_endpoint", id=endpoint_id, owner=owner, fields=flat)
        return self._as_dict(record), secret

    def get_endpoint(self, endpoint_id: str, owner: str) -> dict[str, Any]:
        return self._as_dict(self._fields(endpoint_id, owner))

    def list_endpoints(
        self, owner: str, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """By id; returns a page and the cursor of the next one (None at the end)."""
        start = f"({after}" if after else "-"
        ids: list[str] = self.redis.zrangebylex(
            self.run.key("eps", owner), start, "+", 0, limit + 1
        )
        pipe = self.redis.pipeline(transaction=False)
        for endpoint_id in ids[:limit]:
            pipe.hgetall(self.run.key("ep", endpoint_id))
        page = [self._as_dict(fields) for fields in pipe.execute() if fields]
        return page, (page[-1]["id"] if len(ids) > limit and page else None)

    def _checked_change(
        self,
        op: str,
        endpoint_id: str,
        owner: str,
        precondition: Precondition | None,
        **args: Any,
    ) -> None:
        for _ in range(_RETRIES):
            fields = self._fields(endpoint_id, owner)
            etag = self._as_dict(fields)["etag"]
            if precondition is not None and not precondition(etag):
                raise PreconditionFailed(etag)
            reply = self.run(op, id=endpoint_id, owner=owner, version=fields["version"], **args)
            if reply == "ok":
                return
            if reply == "missing":
                raise NotFound(f"no webhook endpoint {endpoint_id!r}")
        raise RuntimeError(f"webhook endpoint {endpoint_id!r} kept changing under {op}")

    def update_endpoint(
        self,
        endpoint_id: str,
        owner: str,
        changes: dict[str, Any],
        precondition: Precondition | None = None,
    ) -> dict[str, Any]:
        sets: dict[str, str] = {}
        clear: list[str] = []
        for name in ("url", "description"):
            if name in changes:
                sets[name] = str(changes[name])
        if "event_types" in changes:
            sets["event_types"] = json.dumps(changes["event_types"])
        if "metadata" in changes:
            sets["metadata"] = canonical_json(changes["metadata"])
        if "batch" in changes:
            batch = _batch_fields(changes["batch"])
            sets.update(batch)
            clear += [n for n in ("batch_max_events", "batch_max_wait_ms") if n not in batch]
        if "disabled" in changes:
            disabled = bool(changes["disabled"])
            sets["disabled"] = "1" if disabled else "0"
            reason = changes.get("disabled_reason") if disabled else None
            if reason is not None:
                sets["disabled_reason"] = str(reason)
            else:
                clear.append("disabled_reason")
            if not disabled:
                clear += ["failing_since", "failing_since_iso"]
        self._checked_change(
            "update_endpoint",
            endpoint_id,
            owner,
            precondition,
            set=[part for item in sets.items() for part in item],
            clear=clear,
            now=stamp(self.clock.now()),
        )
        return self.get_endpoint(endpoint_id, owner)

    def delete_endpoint(
        self, endpoint_id: str, owner: str, precondition: Precondition | None = None
    ) -> None:
        self._checked_change("delete_endpoint", endpoint_id, owner, precondition)

    def rotate_secret(self, endpoint_id: str, owner: str) -> tuple[dict[str, Any], str]:
        """A new secret signs from now on; the previous one keeps signing for the overlap."""
        now = self.clock.now()
        secret = generate_secret()
        reply = self.run(
            "rotate_secret",
            id=endpoint_id,
            owner=owner,
            secret=secret,
            now=stamp(now),
            until_at=stamp(now + self.rotation_overlap_s),
        )
        if reply != "ok":
            raise NotFound(f"no webhook endpoint {endpoint_id!r}")
        return self.get_endpoint(endpoint_id, owner), secret

    def _as_dict(self, f: dict[str, str]) -> dict[str, Any]:
        now = self.clock.now()
        batch = None
        if f.get("batch_max_events"):
            wait = f.get("batch_max_wait_ms")
            batch = {
                "max_events": int(f["batch_max_events"]),
                "max_wait_ms": int(wait) if wait else None,
            }
        old_until = f.get("old_secret_expires_at")
        previous_until = float(old_until) if old_until else None
        return {
            "id": f["id"],
            "url": f["url"],
            "description": f.get("description", ""),
            "event_types": json.loads(f["event_types"]),
            "disabled": f.get("disabled") == "1",
            "disabled_reason": f.get("disabled_reason"),
            "batch": batch,
            "metadata": json.loads(f.get("metadata") or "{}"),
            "failing_since": (
                iso_time(float(f["failing_since"])) if f.get("failing_since") else None
            ),
            "previous_secret_expires_at": (
                iso_time(previous_until) if previous_until and previous_until > now else None
            ),
            "created_at": iso_time(float(f["created_at"])),
            "updated_at": iso_time(float(f["updated_at"])),
            "etag": f'"{f["id"]}-v{f["version"]}"',
        }


def _batch_fields(batch: dict[str, Any] | None) -> dict[str, str]:
    """The batching settings as stored: none unless ``max_events`` is set (as in SQLite, where
    a batch without it reads back as no batching)."""
    batch = batch or {}
    fields: dict[str, str] = {}
    if batch.get("max_events"):
        fields["batch_max_events"] = str(int(batch["max_events"]))
        if batch.get("max_wait_ms") is not None:
            fields["batch_max_wait_ms"] = str(int(batch["max_wait_ms"]))
    return fields

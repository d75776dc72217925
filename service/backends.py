"""The composition root's one factory: every backend the service uses, opened from settings.

``create_app`` (and with it ``palette serve``) and ``palette worker`` reach the backends only
through :func:`open_backends` and the Protocols it returns; nothing else names SQLite or the
local blob directory. A second backend (Redis + S3) adds a branch here and nothing elsewhere.
"""

from __future__ import annotations

import secrets as token_source
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from limits.storage import MemoryStorage, Storage

from .audit.interfaces import AuditLog
from .auth.interfaces import ApiKeyStore
from .clock import Clock, SystemClock
from .crypto.rotation import Rotation, at_rest
from .jobs.blobs import LocalBlobStore
from .jobs.interfaces import (
    BlobStore,
    EventLog,
    IdempotencyStore,
    JobBackend,
    PaletteCache,
    SecretStore,
)
from .settings import Settings
from .sqlite.api_keys import SqliteApiKeyStore
from .sqlite.audit import SqliteAuditLog
from .sqlite.database import Database
from .sqlite.events import SqliteEventLog
from .sqlite.idempotency import SqliteIdempotencyStore
from .sqlite.jobs import SqliteJobStore
from .sqlite.palette_cache import SqlitePaletteCache
from .sqlite.secrets import SqliteSecretStore
from .sqlite.webhook_endpoints import SqliteWebhookEndpoints
from .sqlite.webhook_outbox import SqliteWebhookOutbox
from .webhooks.interfaces import WebhookEndpoints, WebhookOutbox
from .webhooks.signing import generate_secret

__all__ = ["Backends", "open_backends"]

CALLBACK_SECRET = "webhook_callback_secret"
AUDIT_KEY_SECRET = "audit_chain_key"


@dataclass(frozen=True)
class Backends:
    """What one process works with; only :func:`open_backends` knows what is behind it."""

    clock: Clock
    jobs: JobBackend
    events: EventLog
    idempotency: IdempotencyStore
    palette_cache: PaletteCache
    blobs: BlobStore
    secrets: SecretStore
    webhook_endpoints: WebhookEndpoints
    webhook_outbox: WebhookOutbox
    api_keys: ApiKeyStore
    audit: AuditLog
    rate_limits: Storage
    """Rate-limit counters (``limits`` storage): in memory when embedded, shared when not."""
    encryption: Rotation | None
    """Set when encryption at rest is on: re-wraps data keys (``palette keys rotate``)."""
    housekeeping: Sequence[Callable[[], object]]
    """Periodic clean-ups beside job retention (run by the sweeper)."""
    close: Callable[[], None]


def open_backends(settings: Settings, clock: Clock | None = None) -> Backends:
    """The embedded backend: one SQLite file (WAL) and a blob directory in the data dir."""
    clock = clock or SystemClock()
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    db = Database(data / "jobs.sqlite3")
    blobs: BlobStore = LocalBlobStore(data / "blobs")
    try:
        secrets = SqliteSecretStore(db, legacy_dir=data)
        blobs, cipher, encryption = at_rest(settings.security, blobs, secrets)
        jobs = SqliteJobStore(
            db,
            clock,
            retention_seconds=settings.retention_seconds,
            max_crashes=settings.max_worker_crashes,
            cipher=cipher,
        )
        events = SqliteEventLog(db, clock, keep_seconds=settings.retention_seconds)
        idempotency = SqliteIdempotencyStore(db, clock, keep_seconds=settings.idempotency_seconds)
        cache = SqlitePaletteCache(
            db,
            clock,
            entries=settings.palette_cache_entries,
            keep_seconds=settings.retention_seconds,
            cipher=cipher,
        )
        hooks = settings.webhooks
        callback_secret = callback_master(settings, secrets)
        outbox = SqliteWebhookOutbox(
            db,
            clock,
            callback_secret=callback_secret,
            disable_after_s=hooks.disable_after_s,
            retention_s=hooks.retention_s,
            cipher=cipher,
        )
        endpoints = SqliteWebhookEndpoints(db, clock, rotation_overlap_s=hooks.rotation_overlap_s)
        audit = SqliteAuditLog(db, audit_key(settings, secrets))
        api_keys = SqliteApiKeyStore(db)
    except BaseException:
        db.close()
        raise
    return Backends(
        clock=clock,
        jobs=jobs,
        events=events,
        idempotency=idempotency,
        palette_cache=cache,
        blobs=blobs,
        secrets=secrets,
        webhook_endpoints=endpoints,
        webhook_outbox=outbox,
        api_keys=api_keys,
        audit=audit,
        rate_limits=MemoryStorage(),
        encryption=encryption,
        housekeeping=(idempotency.expire, cache.expire, events.trim),
        close=db.close,
    )


def audit_key(settings: Settings, secrets: SecretStore) -> bytes:
    """``PALETTE_AUDIT_KEY``, or a key generated once and kept in the backend's secrets."""
    configured = settings.security.audit_key
    return (
        configured or secrets.get_or_create(AUDIT_KEY_SECRET, token_source.token_urlsafe)
    ).encode()


def callback_master(settings: Settings, secrets: SecretStore) -> str:
    """The secret per-tenant callback secrets derive from (``webhooks.signing.tenant_secret``):
    ``PALETTE_WEBHOOK_CALLBACK_SECRET``, or one generated once and kept in the backend."""
    return settings.webhooks.callback_secret or secrets.get_or_create(
        CALLBACK_SECRET, generate_secret
    )

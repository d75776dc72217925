"""The composition root's one factory: every backend the service uses, opened from settings.

``create_app`` (and with it ``palette serve``) and ``palette worker`` reach the backends only
through :func:`open_backends` and the Protocols it returns; nothing else names SQLite or the
local blob directory. ``PALETTE_STORE=redis://...`` and ``PALETTE_BLOBS=s3://...`` choose the
distributed parts (``service/redis``, ``service/s3``), each on its own.
"""

from __future__ import annotations

import secrets as token_source
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from limits.storage import Storage

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
    Locks,
    PaletteCache,
    SecretStore,
)
from .ratelimit.storage import SweptMemoryStorage
from .search.interfaces import PaletteIndex
from .settings import Settings
from .sqlite.api_keys import SqliteApiKeyStore
from .sqlite.audit import SqliteAuditLog
from .sqlite.database import Database
from .sqlite.events import SqliteEventLog
from .sqlite.idempotency import SqliteIdempotencyStore
from .sqlite.jobs import SqliteJobStore
from .sqlite.locks import SqliteLocks
from .sqlite.palette_cache import SqlitePaletteCache
from .sqlite.search_index import SqlitePaletteIndex
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
    locks: Locks
    """Mutual exclusion between the processes of the deployment (the retention sweep)."""
    webhook_endpoints: WebhookEndpoints
    webhook_outbox: WebhookOutbox
    api_keys: ApiKeyStore
    audit: AuditLog
    search: PaletteIndex
    """Every processed palette's colors, for search by color (``search/``)."""
    rate_limits: Storage
    """Rate-limit counters (``limits`` storage): in memory when embedded, shared when not."""
    encryption: Rotation | None
    """Set when encryption at rest is on: re-wraps data keys (``palette keys rotate``)."""
    housekeeping: Sequence[Callable[[], object]]
    """Periodic clean-ups beside job retention (run by the sweeper)."""
    close: Callable[[], None]


def open_blobs(settings: Settings) -> BlobStore:
    if settings.blobs.startswith("s3://"):
        from .s3.blobs import open_s3

        return open_s3(settings.blobs)
    if settings.blobs:
        raise ValueError(f"PALETTE_BLOBS: expected s3://bucket/prefix or nothing, got {settings.blobs!r}")
    return LocalBlobStore(settings.data_dir / "blobs")


def open_backends(settings: Settings, clock: Clock | None = None) -> Backends:
    """The embedded backend (one SQLite file in WAL mode in the data dir), or Redis when
    ``settings.store`` names it; blobs in the data dir, or S3 when ``settings.blobs`` names it."""
    if settings.store.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        return _open_redis(settings, clock)
    if settings.store:
        raise ValueError(f"PALETTE_STORE: expected redis://... or nothing, got {settings.store!r}")
    clock = clock or SystemClock()
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    db = Database(data / "jobs.sqlite3")
    blobs = open_blobs(settings)
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
        search = SqlitePaletteIndex(db, clock)
        locks = SqliteLocks(db, clock)
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
        locks=locks,
        webhook_endpoints=endpoints,
        webhook_outbox=outbox,
        api_keys=api_keys,
        audit=audit,
        search=search,
        rate_limits=SweptMemoryStorage(),
        encryption=encryption,
        housekeeping=(idempotency.expire, cache.expire, events.trim, search.expire),
        close=db.close,
    )


SHARED_SECRETS = ("PALETTE_URL_SIGNING_KEYS", "PALETTE_WEBHOOK_CALLBACK_SECRET")


def _open_redis(settings: Settings, clock: Clock | None) -> Backends:
    """Jobs, events, keys, cache and secrets on Redis; every node of the deployment shares them.

    Refuses to open without the secrets every node must agree on: a link signed by one API
    node must verify on the others, and a callback signature must not depend on which node sent
    it. Generating them on first use (as the embedded mode does) would race between nodes.
    Webhook endpoints and the outbox live in Redis too, so a node keeps no state on its disk.
    """
    missing = [
        name
        for name, value in zip(
            SHARED_SECRETS, (settings.url_signing_keys, settings.webhooks.callback_secret)
        )
        if not value
    ]
    if missing:
        raise ValueError(
            f"PALETTE_STORE is Redis: set {' and '.join(missing)} (the same on every node)"
        )
    from .redis.api_keys import RedisApiKeyStore
    from .redis.audit import RedisAuditLog
    from .redis.connection import ServerClock, open_redis
    from .redis.events import RedisEventLog
    from .redis.idempotency import RedisIdempotencyStore
    from .redis.jobs import RedisJobStore
    from .redis.locks import RedisLocks
    from .redis.palette_cache import RedisPaletteCache
    from .redis.search_index import RedisPaletteIndex
    from .redis.secrets import RedisSecretStore
    from .redis.webhook_endpoints import RedisWebhookEndpoints
    from .redis.webhook_outbox import RedisWebhookOutbox

    conn = open_redis(settings.store)
    closers: list[Callable[[], None]] = [conn.close]
    try:
        # The default clock of a Redis deployment is the Redis server's: every node reads
        # the same time, so a lease one node writes expires when another node thinks it does.
        if clock is None or isinstance(clock, SystemClock):
            clock = ServerClock(conn)
        secrets = RedisSecretStore(conn)
        # Encryption at rest as in the embedded mode: S3 objects each under their own data
        # key, palettes and webhook bodies in Redis under the shared database key.
        blobs, cipher, encryption = at_rest(settings.security, open_blobs(settings), secrets)
        partitions = settings.redis_partitions
        jobs = RedisJobStore(
            conn,
            clock,
            partitions=partitions,
            retention_seconds=settings.retention_seconds,
            max_crashes=settings.max_worker_crashes,
            chunk_images=settings.chunk_images,
            tenant_max_running=settings.tenant_max_running,
            cipher=cipher,
        )
        events = RedisEventLog(conn, partitions, keep_seconds=settings.retention_seconds)
        idempotency = RedisIdempotencyStore(jobs, clock, keep_seconds=settings.idempotency_seconds)
        cache = RedisPaletteCache(
            conn,
            clock,
            settings.palette_cache_entries,
            keep_seconds=settings.retention_seconds,
            cipher=cipher,
        )
        hooks = settings.webhooks
        outbox = RedisWebhookOutbox(
            conn,
            clock,
            callback_secret=callback_master(settings, secrets),
            disable_after_s=hooks.disable_after_s,
            retention_s=hooks.retention_s,
            cipher=cipher,
        )
        endpoints = RedisWebhookEndpoints(conn, clock, rotation_overlap_s=hooks.rotation_overlap_s)
        # API keys, the audit chain and rate-limit counters are shared by every node: a key
        # revoked on one node is refused on all, and a client's limit is one budget.
        api_keys = RedisApiKeyStore(conn)
        audit = RedisAuditLog(conn, audit_key(settings, secrets))
        search = RedisPaletteIndex(conn, clock)
        locks = RedisLocks(conn, clock)
        rate_limits = _redis_rate_limits(settings.store)
        closers.append(getattr(rate_limits, "storage").close)
    except BaseException:
        for close in closers:
            close()
        raise

    def close_all() -> None:
        for close_one in closers:
            close_one()

    return Backends(
        clock=clock,
        jobs=jobs,
        events=events,
        idempotency=idempotency,
        palette_cache=cache,
        blobs=blobs,
        secrets=secrets,
        locks=locks,
        webhook_endpoints=endpoints,
        webhook_outbox=outbox,
        api_keys=api_keys,
        audit=audit,
        search=search,
        rate_limits=rate_limits,
        encryption=encryption,
        housekeeping=(idempotency.expire, cache.expire, events.trim, search.expire),
        close=close_all,
    )


def _redis_rate_limits(store: str) -> Storage:
    """The ``limits`` package's storage on the same Redis (its keys start ``LIMITS``)."""
    from limits.storage import storage_from_string

    url = "redis+unix://" + store.removeprefix("unix://") if store.startswith("unix://") else store
    storage = storage_from_string(url)
    assert isinstance(storage, Storage)  # the synchronous kind (no "async+" scheme)
    return storage

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

"""The security seams every backend passes: API keys, the audit log, the active-job count,
replacing a shared secret, rate-limit counters, and stores sealed under encryption at rest."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

import pytest
from conformancetools import FakeClock, item, new_job

from service.audit.chain import verify
from service.audit.interfaces import AuditEntry, AuditQuery
from service.auth.interfaces import ApiKeyNotFound, ApiKeyRecord
from service.backends import Backends, audit_key
from service.crypto.keyring import UnknownKey
from service.ratelimit.limiter import RateLimiter
from service.security.settings import SecuritySettings
from service.settings import Settings


def record(key_id: str, tenant: str = "t1", **extra: object) -> ApiKeyRecord:
    return ApiKeyRecord(key_id, tenant, "member", "ci", "d" * 64, 1000.0, **extra)  # type: ignore[arg-type]


def test_api_keys_create_get_list_revoke_touch(backend: Backends, clock: FakeClock) -> None:
    keys = backend.api_keys
    assert not keys.has_keys()
    for n in range(5):
        keys.create(record(f"key{n:08d}", tenant="t1" if n < 4 else "t2"))
    assert keys.has_keys()
    assert keys.get("key00000001") == record("key00000001")
    assert keys.get("nope") is None
    first, cursor = keys.list_keys("t1", 3, None)
    rest, end = keys.list_keys("t1", 3, cursor)
    assert [r.key_id for r in first + rest] == [f"key{n:08d}" for n in range(4)]
    assert cursor is not None and end is None
    with pytest.raises(ApiKeyNotFound):
        keys.revoke("key00000004", "t1", 2000.0)  # another tenant's key
    revoked = keys.revoke("key00000001", "t1", 2000.0)
    assert revoked.revoked_at == 2000.0 and not revoked.usable(2001.0)
    assert keys.revoke("key00000001", "t1", 3000.0).revoked_at == 2000.0  # first time kept
    keys.touch("key00000002", 2500.0)
    assert keys.get("key00000002").last_used_at == 2500.0  # type: ignore[union-attr]
    assert not record("x", expires_at=1500.0).usable(1500.0)


def test_the_audit_log_chains_every_append_and_filters_per_tenant(
    open_backend: Callable[..., Backends],
) -> None:
    backend = open_backend()
    log = backend.audit
    for n in range(6):
        log.append(
            AuditEntry(
                100.0 + n,
                f"actor{n % 2}",
                "t1" if n < 5 else "t2",
                f"act{n % 3}",
                f"target{n}",
                "allowed 200",
                f"req{n}",
                "127.0.0.1",
            )
        )
    stored = list(log.all_entries())
    assert [e.seq for e in stored] == [1, 2, 3, 4, 5, 6]
    key = audit_key(Settings(), backend.secrets)
    assert verify(key, stored) == []
    assert [e.seq for e in log.query(AuditQuery("t1"))] == [5, 4, 3, 2, 1]
    assert [e.seq for e in log.query(AuditQuery("t1", action="act0"))] == [4, 1]
    assert [e.seq for e in log.query(AuditQuery("t1", actor="actor1"))] == [4, 2]
    assert [e.seq for e in log.query(AuditQuery("t1", since=102.0, until=104.0))] == [4, 3]
    assert [e.seq for e in log.query(AuditQuery("t1", limit=2, before=4))] == [3, 2]
    assert [e.seq for e in log.query(AuditQuery("t2"))] == [6]
    # A second node appends to the same chain.
    other = open_backend()
    other.audit.append(AuditEntry(200.0, "a", "t1", "x", "y", "allowed 200", "r", "c"))
    assert verify(key, list(backend.audit.all_entries())) == []


def test_active_jobs_are_counted_per_tenant(backend: Backends) -> None:
    jobs = backend.jobs
    made = [jobs.submit(new_job(backend, tenant)) for tenant in ("t1", "t1", "t2")]
    assert jobs.count_active("t1") == 2 and jobs.count_active("t2") == 1
    lease = jobs.claim("w", 10.0)
    assert lease is not None
    assert jobs.count_active("t1") == 2 and jobs.count_active("t2") == 1  # running counts
    queued = next(j for j in made[:2] if j.id != lease.job_id)
    assert jobs.cancel(queued.id, "t1").status == "canceled"
    assert jobs.count_active("t1") == 1
    assert jobs.count_active("nobody") == 0


def test_a_shared_secret_can_be_replaced(open_backend: Callable[..., Backends]) -> None:
    first, second = open_backend(), open_backend()
    assert first.secrets.get_or_create("s", lambda: "one") == "one"
    second.secrets.set("s", "two")
    assert first.secrets.get_or_create("s", lambda: "three") == "two"


def test_rate_limit_counters_come_from_the_backend(backend: Backends) -> None:
    limiter = RateLimiter("2/minute", backend.rate_limits)
    assert [limiter.hit("client").allowed for _ in range(3)] == [True, True, False]
    assert limiter.hit("another").allowed


def test_sealed_stores_read_back_what_they_were_given(
    open_backend: Callable[..., Backends], clock: FakeClock
) -> None:
    keys = "k1:" + base64.b64encode(os.urandom(32)).decode()
    backend = open_backend(security=SecuritySettings(encryption_keys=keys))
    assert backend.encryption is not None
    made = backend.jobs.submit(new_job(backend))
    lease = backend.jobs.claim("w", 10.0)
    assert lease is not None and lease.job_id == made.id
    backend.jobs.progress(lease, [item(0)], None)
    [stored] = list(backend.jobs.iter_items(made.id))
    assert stored.palette == {"colors": []}
    backend.palette_cache.cache_put({"k": b'{"colors": ["#abcdef"]}'})
    assert backend.palette_cache.cache_get("k") == b'{"colors": ["#abcdef"]}'
    # Without the key the same data cannot be opened.
    with pytest.raises(UnknownKey):
        open_backend(
            security=SecuritySettings(
                encryption_keys="k2:" + base64.b64encode(os.urandom(32)).decode()
            )
        )

"""The security seams across the nodes of one deployment, once per backend (what each seam does
on its own is test_security_stores.py): two opens of one backend are two nodes, and what one
writes the other reads. A key revoked on one node is refused on all, the audit log is one
chain whichever node appends, and encrypted data written by one node opens on another and
after a rotation of the key-encryption keys."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable

import pytest

from conformancetools import item, new_job

from service.audit.chain import verify
from service.audit.interfaces import AuditEntry, AuditQuery
from service.auth.interfaces import ApiKeyNotFound, ApiKeyRecord
from service.backends import Backends, audit_key
from service.jobs.interfaces import ResultInfo
from service.security.settings import SecuritySettings
from service.settings import Settings


def _key(key_id: str, tenant: str = "t1", expires_at: float | None = None) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id, tenant, "member", f"name {key_id}", "d" * 64, 100.0, expires_at=expires_at
    )


def test_api_keys_are_shared_and_scoped_by_tenant(open_backend: Callable[..., Backends]) -> None:
    one, two = open_backend(), open_backend()
    assert not one.api_keys.has_keys()
    one.api_keys.create(_key("k2", expires_at=500.0))
    for key_id in ("k1", "k3", "k4"):
        two.api_keys.create(_key(key_id))
    two.api_keys.create(_key("x1", tenant="t2"))
    assert one.api_keys.has_keys() and two.api_keys.has_keys()
    assert two.api_keys.get("k2") == _key("k2", expires_at=500.0)
    assert one.api_keys.get("nope") is None
    page, cursor = one.api_keys.list_keys("t1", 3, None)
    assert [r.key_id for r in page] == ["k1", "k2", "k3"] and cursor == "k3"
    page, cursor = two.api_keys.list_keys("t1", 3, cursor)
    assert [r.key_id for r in page] == ["k4"] and cursor is None
    assert [r.key_id for r in one.api_keys.list_keys("t2", 10, None)[0]] == ["x1"]

    with pytest.raises(ApiKeyNotFound):
        one.api_keys.revoke("x1", "t1", 200.0)  # another tenant's key
    with pytest.raises(ApiKeyNotFound):
        one.api_keys.revoke("nope", "t1", 200.0)
    revoked = one.api_keys.revoke("k1", "t1", 200.0)
    assert revoked.revoked_at == 200.0 and not revoked.usable(201.0)
    assert two.api_keys.revoke("k1", "t1", 300.0).revoked_at == 200.0  # the first time stays
    fetched = two.api_keys.get("k1")
    assert fetched is not None and not fetched.usable(201.0)  # refused on the other node too
    two.api_keys.touch("k3", 250.0)
    two.api_keys.touch("nope", 250.0)  # a key that is not there stays not there
    assert one.api_keys.get("nope") is None
    touched = one.api_keys.get("k3")
    assert touched is not None and touched.last_used_at == 250.0


def _entry(n: int, tenant: str = "t1", action: str = "jobs.create") -> AuditEntry:
    return AuditEntry(
        1000.0 + n, f"key:k{n % 2}", tenant, action, f"job-{n}", "allowed 201", f"r{n}", "c"
    )


def test_the_audit_log_is_one_chain_for_every_node(
    open_backend: Callable[..., Backends],
) -> None:
    one, two = open_backend(), open_backend()
    for n in range(6):
        (one if n % 2 else two).audit.append(_entry(n, action="keys.create" if n == 3 else "x"))
    one.audit.append(_entry(6, tenant="t2"))
    stored = list(two.audit.all_entries())
    assert [row.seq for row in stored] == list(range(1, 8))
    assert [row.prev for row in stored[1:]] == [row.mac for row in stored[:-1]]
    assert verify(_audit_key(one), stored) == []

    newest = one.audit.query(AuditQuery("t1", limit=4))
    assert [row.seq for row in newest] == [6, 5, 4, 3]
    older = two.audit.query(AuditQuery("t1", limit=4, before=newest[-1].seq))
    assert [row.seq for row in older] == [2, 1]
    assert [row.seq for row in one.audit.query(AuditQuery("t1", action="keys.create"))] == [4]
    assert [row.seq for row in one.audit.query(AuditQuery("t1", actor="key:k1"))] == [6, 4, 2]
    window = AuditQuery("t1", since=1001.0, until=1003.0)
    assert [row.seq for row in two.audit.query(window)] == [3, 2]
    assert [row.entry.tenant for row in one.audit.query(AuditQuery("t2"))] == ["t2"]


def _audit_key(backend: Backends) -> bytes:
    return audit_key(Settings(), backend.secrets)


_NEW, _OLD = (f"{k}:" + base64.b64encode(k[:1].encode() * 32).decode() for k in ("new", "old"))
_KEKS = f"{_NEW},{_OLD}"


def test_encryption_at_rest_round_trips_and_hides_the_plaintext(
    open_backend: Callable[..., Backends],
) -> None:
    secure = SecuritySettings(encryption_keys=_KEKS)
    backend = open_backend(security=secure)
    assert backend.encryption is not None
    secret_bytes = b"the plaintext of an upload " * 1000
    info = backend.blobs.put("uploads/j1/0", [secret_bytes])
    assert info.size == len(secret_bytes)
    with backend.blobs.open("uploads/j1/0") as f:
        assert f.read() == secret_bytes
    assert b"".join(backend.blobs.read_range("uploads/j1/0", 4, 12)) == secret_bytes[4:13]
    assert backend.blobs.size("uploads/j1/0") == len(secret_bytes)
    inner = backend.blobs.inner  # type: ignore[attr-defined]
    with inner.open("uploads/j1/0") as raw:
        assert b"plaintext" not in raw.read()

    jobs = backend.jobs
    job_id = jobs.submit(new_job(backend)).id
    lease = jobs.claim("w", 10)
    assert lease is not None
    palette = {"colors": [{"hex": "#123456"}]}
    done = dataclasses.replace(item(0), palette=palette)
    assert jobs.progress(lease, [done], None)
    assert [i.palette for i in jobs.iter_items(job_id)] == [palette]
    backend.palette_cache.cache_put({"p": b'{"colors": ["#abcdef"]}'})
    assert backend.palette_cache.cache_get("p") == b'{"colors": ["#abcdef"]}'

    # A second node with the same keys reads it all; a rotation keeps it readable.
    other = open_backend(security=secure)
    assert [i.palette for i in other.jobs.iter_items(job_id)] == [palette]
    assert other.palette_cache.cache_get("p") == b'{"colors": ["#abcdef"]}'
    rotated = open_backend(security=SecuritySettings(encryption_keys=f"{_OLD},{_NEW}"))
    assert rotated.encryption is not None
    report = rotated.encryption.run()
    assert report.kid == "old" and report.rewrapped >= 2
    with rotated.blobs.open("uploads/j1/0") as f:
        assert f.read() == secret_bytes
    assert [i.palette for i in rotated.jobs.iter_items(job_id)] == [palette]
    assert json.loads(rotated.palette_cache.cache_get("p") or b"") == {"colors": ["#abcdef"]}


def test_a_job_stops_counting_as_active_when_it_ends_or_is_deleted(
    open_backend: Callable[..., Backends],
) -> None:
    """The per-tenant quota reads what another node's submits and workers changed."""
    api, worker = open_backend(), open_backend()
    ids = [api.jobs.submit(new_job(api, "t1")).id for _ in range(3)]
    lease = worker.jobs.claim("w", 10)
    assert lease is not None and lease.job_id == ids[0]
    assert api.jobs.count_active("t1") == 3
    assert worker.jobs.progress(lease, [item(0), item(1)], None)
    assert worker.jobs.complete(lease, ResultInfo("results/x", "d", 1))
    assert api.jobs.count_active("t1") == 2
    api.jobs.delete(ids[2], "t1")
    assert worker.jobs.count_active("t1") == 1

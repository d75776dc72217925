"""The SQLite job store + queue, driven directly with a fake clock."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from service.jobs.interfaces import (
    IdempotencyOutcome,
    ItemResult,
    JobConflict,
    JobInput,
    JobNotFound,
    NewJob,
    ResultInfo,
)
from service.jobs.sqlite_store import SqliteStore


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> SqliteStore:
    s = SqliteStore(
        tmp_path / "jobs.sqlite3",
        clock=clock,
        retention_seconds=100.0,
        idempotency_seconds=50.0,
        cache_entries=3,
    )
    yield s  # type: ignore[misc]
    s.close()


def new_job(job_id: str, tenant: str = "t1", images: int = 2) -> NewJob:
    inputs = [
        JobInput(n, f"img{n}.jpg", f"uploads/{job_id}/{n}", "image", 10) for n in range(images)
    ]
    return NewJob(job_id, tenant, {"colors": 4}, inputs, None, images)


def item(seq: int, status: str = "succeeded") -> ItemResult:
    return ItemResult(
        seq,
        0,
        f"img{seq}.jpg",
        status,  # type: ignore[arg-type]
        palette={"colors": []} if status == "succeeded" else None,
        error=None if status == "succeeded" else {"code": "decode_error"},
    )


def test_submit_get_and_tenant_scope(store: SqliteStore) -> None:
    job = store.submit(new_job("a"))
    assert job.status == "queued" and job.progress.total == 2
    assert store.get("a", "t1").id == "a"
    with pytest.raises(JobNotFound):
        store.get("a", "someone-else")
    assert [i.name for i in store.inputs("a")] == ["img0.jpg", "img1.jpg"]


def test_list_is_newest_first_with_cursor_and_status_filter(store: SqliteStore) -> None:
    for n in range(5):
        store.submit(new_job(f"j{n}"))
    store.submit(new_job("other", tenant="t2"))
    page1, cursor = store.list_jobs("t1", limit=2)
    assert [j.id for j in page1] == ["j4", "j3"] and cursor
    page2, cursor2 = store.list_jobs("t1", limit=2, cursor=cursor)
    assert [j.id for j in page2] == ["j2", "j1"]
    page3, cursor3 = store.list_jobs("t1", limit=2, cursor=cursor2)
    assert [j.id for j in page3] == ["j0"] and cursor3 is None
    store.cancel("j2", "t1")
    assert [j.id for j in store.list_jobs("t1", status="canceled")[0]] == ["j2"]


def test_claim_is_exclusive_and_fenced(store: SqliteStore, clock: FakeClock) -> None:
    store.submit(new_job("a"))
    lease = store.claim("w1", 10)
    assert lease is not None and store.claim("w2", 10) is None
    assert store.get("a").status == "running"
    clock.advance(11)  # w1 stalls past its lease; w2 takes over
    lease2 = store.claim("w2", 10)
    assert lease2 is not None and lease2.token > lease.token
    # The late worker's writes are refused, the new owner's accepted.
    assert not store.renew(lease, 10).alive
    assert not store.progress(lease, [item(0)], None)
    assert not store.complete(lease, ResultInfo("k", "d", 1))
    assert store.progress(lease2, [item(0)], None)
    assert store.get("a").progress.done == 1


def test_progress_is_idempotent_per_item(store: SqliteStore) -> None:
    store.submit(new_job("a"))
    lease = store.claim("w", 10)
    assert lease is not None
    assert store.progress(lease, [item(0), item(1, "failed")], None)
    assert store.progress(lease, [item(0)], None)  # replayed after a crash: not counted twice
    p = store.get("a").progress
    assert (p.done, p.failed) == (1, 1)
    assert store.done_items("a") == {(0, 0), (1, 0)}


def test_reap_expired_requeues_or_finishes_canceled(store: SqliteStore, clock: FakeClock) -> None:
    store.submit(new_job("a"))
    store.submit(new_job("b"))
    la, lb = store.claim("w", 5), store.claim("w", 5)
    assert la is not None and lb is not None
    store.progress(la, [item(0)], None)
    store.cancel("b", "t1")
    assert store.get("b").status == "running" and store.get("b").cancel_requested
    clock.advance(6)
    assert store.reap_expired() == 2
    a, b = store.get("a"), store.get("b")
    assert a.status == "queued" and a.progress.done == 1  # finished images are kept
    assert b.status == "canceled" and b.progress.done == 0


def test_cancel_rules(store: SqliteStore) -> None:
    store.submit(new_job("q"))
    assert store.cancel("q", "t1").status == "canceled"
    assert store.cancel("q", "t1").status == "canceled"  # again: still fine
    store.submit(new_job("done"))
    lease = store.claim("w", 10)
    assert lease is not None and lease.job_id == "done"
    assert store.complete(lease, ResultInfo("results/done/1.json", "abc", 3))
    with pytest.raises(JobConflict):
        store.cancel("done", "t1")


def test_complete_refused_after_cancel_request(store: SqliteStore) -> None:
    store.submit(new_job("a"))
    lease = store.claim("w", 10)
    assert lease is not None
    store.cancel("a", "t1")
    assert store.renew(lease, 10).cancel_requested
    assert not store.complete(lease, ResultInfo("k", "d", 1))
    assert store.acknowledge_cancel(lease)
    assert store.get("a").status == "canceled"


def test_release_keeps_items_and_requeues(store: SqliteStore) -> None:
    store.submit(new_job("a"))
    lease = store.claim("w", 10)
    assert lease is not None
    store.progress(lease, [item(0)], None)
    assert store.release(lease)
    job = store.get("a")
    assert job.status == "queued" and job.progress.done == 1
    assert store.claim("w2", 10) is not None


def test_delete_refused_while_running(store: SqliteStore) -> None:
    store.submit(new_job("a"))
    assert store.claim("w", 10) is not None
    with pytest.raises(JobConflict):
        store.delete("a", "t1")
    store.submit(new_job("b"))
    store.delete("b", "t1")
    with pytest.raises(JobNotFound):
        store.get("b")


def test_expiry_after_retention(store: SqliteStore, clock: FakeClock) -> None:
    store.submit(new_job("a"))
    lease = store.claim("w", 10)
    assert lease is not None
    store.complete(lease, ResultInfo("results/a/1.json", "abc", 3))
    clock.advance(99)
    assert store.expire() == []
    clock.advance(2)
    with pytest.raises(JobNotFound):  # invisible as soon as it expires...
        store.get("a")
    assert [j.id for j in store.expire()] == ["a"]  # ...and then removed
    assert store.inputs("a") == []


def test_hooks_run_inside_the_transaction(store: SqliteStore) -> None:
    seen: list[tuple[str, str, str]] = []

    def hook(tx: Any, job: dict[str, Any], event: str) -> None:
        assert isinstance(tx, sqlite3.Connection) and tx.in_transaction
        # The hook sees the new state through the same transaction.
        status = tx.execute("SELECT status FROM jobs WHERE id = ?", (job["id"],)).fetchone()[0]
        seen.append((job["id"], event, status))

    store.add_transition_hook(hook)
    store.submit(new_job("a"))
    lease = store.claim("w", 10)
    assert lease is not None
    store.progress(lease, [item(0)], None, notify=True)
    store.complete(lease, ResultInfo("k", "d", 1))
    store.submit(new_job("b"))
    store.cancel("b", "t1")
    assert seen == [
        ("a", "job.progress", "running"),
        ("a", "job.progress", "running"),
        ("a", "job.succeeded", "succeeded"),
        ("b", "job.canceled", "canceled"),
    ]


def test_a_failing_hook_rolls_the_transition_back(store: SqliteStore) -> None:
    def hook(tx: Any, job: dict[str, Any], event: str) -> None:
        if event == "job.canceled":
            raise RuntimeError("outbox full")

    store.add_transition_hook(hook)
    store.submit(new_job("a"))
    with pytest.raises(RuntimeError):
        store.cancel("a", "t1")
    assert store.get("a").status == "queued"


def test_idempotency_reservation_and_replay(store: SqliteStore, clock: FakeClock) -> None:
    assert store.idempotency_begin("t1", "k", "POST", "/v1/jobs") == "new"
    assert store.idempotency_begin("t1", "k", "POST", "/v1/jobs") == "in_flight"
    assert store.idempotency_begin("t2", "k", "POST", "/v1/jobs") == "new"  # scoped per tenant
    outcome = IdempotencyOutcome("t1", "k", "POST", "/v1/jobs", "fp", 202, location="/v1/jobs/a")
    store.submit(new_job("a"), outcome)
    replay = store.idempotency_begin("t1", "k", "POST", "/v1/jobs")
    assert isinstance(replay, IdempotencyOutcome)
    assert replay.fingerprint == "fp" and replay.body["id"] == "a" and replay.status_code == 202
    clock.advance(51)
    store.expire()
    assert store.idempotency_begin("t1", "k", "POST", "/v1/jobs") == "new"


def test_concurrent_claims_never_share_a_job(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.sqlite3")
    for n in range(40):
        store.submit(new_job(f"j{n}"))
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (lease := store.claim(name, 30)) is not None:
            with lock:
                claimed.append(lease.job_id)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert sorted(claimed) == sorted(f"j{n}" for n in range(40))


def test_palette_cache_is_bounded(store: SqliteStore, clock: FakeClock) -> None:
    for n in range(5):
        store.cache_put({f"k{n}": b"x%d" % n})
        clock.advance(1)
    store.expire()
    assert store.cache_get("k0") is None and store.cache_get("k4") == b"x4"

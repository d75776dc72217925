"""JobStore: submit, read, list with cursors, cancel, delete, expiry, idempotency keys."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conformancetools import FakeClock, new_job

from service.backends import Backends
from service.jobs.interfaces import (
    IdempotencyOutcome,
    InvalidCursor,
    JobConflict,
    JobNotFound,
    ResultInfo,
)


def test_ids_are_minted_by_the_backend_and_unique(backend: Backends) -> None:
    ids = {backend.jobs.new_job_id() for _ in range(200)}
    assert len(ids) == 200 and all(isinstance(i, str) and i for i in ids)


def test_submit_get_and_tenant_scope(backend: Backends) -> None:
    jobs = backend.jobs
    made = new_job(backend)
    job = jobs.submit(made)
    assert job.id == made.id and job.status == "queued" and job.progress.total == 2
    assert jobs.get(made.id, "t1").id == made.id
    assert jobs.get(made.id).tenant == "t1"  # no tenant: whoever owns it
    with pytest.raises(JobNotFound):
        jobs.get(made.id, "someone-else")
    with pytest.raises(JobNotFound):
        jobs.get(jobs.new_job_id())
    assert [i.name for i in jobs.inputs(made.id)] == ["img0.jpg", "img1.jpg"]
    assert job.to_public()["status"] == "queued"


def test_list_is_newest_first_with_cursor_and_status_filter(backend: Backends) -> None:
    jobs = backend.jobs
    ids = [jobs.submit(new_job(backend)).id for _ in range(5)]
    jobs.submit(new_job(backend, tenant="t2"))
    page1, cursor = jobs.list_jobs("t1", limit=2)
    assert [j.id for j in page1] == ids[::-1][:2] and cursor
    page2, cursor2 = jobs.list_jobs("t1", limit=2, cursor=cursor)
    assert [j.id for j in page2] == ids[::-1][2:4]
    page3, cursor3 = jobs.list_jobs("t1", limit=2, cursor=cursor2)
    assert [j.id for j in page3] == ids[:1] and cursor3 is None
    jobs.cancel(ids[2], "t1")
    assert [j.id for j in jobs.list_jobs("t1", status="canceled")[0]] == [ids[2]]
    assert [j.id for j in jobs.list_jobs("t2")[0]] != []
    for bad in ("%%%", "bm90LWEtY3Vyc29y", ""):
        with pytest.raises(InvalidCursor):
            jobs.list_jobs("t1", cursor=bad)


def test_cancel_rules(backend: Backends) -> None:
    jobs = backend.jobs
    queued = jobs.submit(new_job(backend)).id
    assert jobs.cancel(queued, "t1").status == "canceled"
    assert jobs.cancel(queued, "t1").status == "canceled"  # again: still fine
    with pytest.raises(JobNotFound):
        jobs.cancel(queued, "t2")
    done = jobs.submit(new_job(backend)).id
    lease = jobs.claim("w", 10)
    assert lease is not None and lease.job_id == done
    assert jobs.complete(lease, ResultInfo(f"results/{done}/1.json", "abc", 3))
    with pytest.raises(JobConflict):
        jobs.cancel(done, "t1")


def test_delete_refused_while_running(backend: Backends) -> None:
    jobs = backend.jobs
    running = jobs.submit(new_job(backend)).id
    assert jobs.claim("w", 10) is not None
    with pytest.raises(JobConflict):
        jobs.delete(running, "t1")
    queued = jobs.submit(new_job(backend)).id
    with pytest.raises(JobNotFound):
        jobs.delete(queued, "t2")
    assert jobs.delete(queued, "t1").id == queued
    with pytest.raises(JobNotFound):
        jobs.get(queued)


def test_expiry_after_retention(backend: Backends, clock: FakeClock) -> None:
    jobs = backend.jobs
    job_id = jobs.submit(new_job(backend)).id
    lease = jobs.claim("w", 10)
    assert lease is not None
    assert jobs.complete(lease, ResultInfo(f"results/{job_id}/1.json", "abc", 3))
    clock.advance(99)
    assert jobs.expire() == []
    clock.advance(2)
    with pytest.raises(JobNotFound):  # invisible as soon as it expires...
        jobs.get(job_id)
    assert [j.id for j in jobs.expire()] == [job_id]  # ...and then removed
    assert jobs.inputs(job_id) == [] and jobs.expire() == []


def test_counts_and_ping(backend: Backends) -> None:
    backend.jobs.ping()
    for _ in range(3):
        backend.jobs.submit(new_job(backend))
    assert backend.jobs.claim("w", 10) is not None
    assert backend.jobs.counts() == {"queued": 2, "running": 1}


def test_idempotency_reservation_replay_and_expiry(backend: Backends, clock: FakeClock) -> None:
    keys, jobs = backend.idempotency, backend.jobs
    assert keys.idempotency_begin("t1", "k", "POST", "/v1/jobs") == "new"
    assert keys.idempotency_begin("t1", "k", "POST", "/v1/jobs") == "in_flight"
    assert keys.idempotency_begin("t2", "k", "POST", "/v1/jobs") == "new"  # scoped per tenant
    made = new_job(backend)
    outcome = IdempotencyOutcome("t1", "k", "POST", "/v1/jobs", "fp", 202, location="/v1/jobs/a")
    jobs.submit(made, outcome)  # the outcome is stored with the job, in one step
    replay = keys.idempotency_begin("t1", "k", "POST", "/v1/jobs")
    assert isinstance(replay, IdempotencyOutcome)
    assert replay.fingerprint == "fp" and replay.body["id"] == made.id
    assert replay.status_code == 202 and replay.location == "/v1/jobs/a"
    keys.idempotency_abort("t2", "k", "POST", "/v1/jobs")
    assert keys.idempotency_begin("t2", "k", "POST", "/v1/jobs") == "new"
    clock.advance(51)  # past the key's lifetime: it starts afresh
    assert keys.idempotency_begin("t1", "k", "POST", "/v1/jobs") == "new"


def test_a_deleted_jobs_key_starts_afresh(backend: Backends) -> None:
    keys, jobs = backend.idempotency, backend.jobs
    assert keys.idempotency_begin("t1", "k", "POST", "/v1/jobs") == "new"
    made = new_job(backend)
    jobs.submit(made, IdempotencyOutcome("t1", "k", "POST", "/v1/jobs", "fp", 202))
    jobs.delete(made.id, "t1")
    assert keys.idempotency_begin("t1", "k", "POST", "/v1/jobs") == "new"


def test_a_dead_requests_key_is_freed_after_an_hour(
    open_backend: Callable[..., Backends], clock: FakeClock
) -> None:
    keys = open_backend(idempotency_seconds=24 * 3600.0).idempotency
    assert keys.idempotency_begin("t1", "k", "POST", "/v1/jobs") == "new"
    clock.advance(3599)
    assert keys.idempotency_begin("t1", "k", "POST", "/v1/jobs") == "in_flight"
    clock.advance(1)
    assert keys.idempotency_begin("t1", "k", "POST", "/v1/jobs") == "new"

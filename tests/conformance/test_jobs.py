"""JobStore: submit, read, list with cursors, cancel, delete, expiry, idempotency keys."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

import pytest
from conformancetools import FakeClock, new_job

from service.backends import Backends
from service.jobs.interfaces import (
    IdempotencyOutcome,
    InvalidCursor,
    JobConflict,
    JobInput,
    JobNotFound,
    LeaseState,
    NewJob,
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


def cursor_at(seq: int) -> str:
    """The cursor a store issues after the job numbered ``seq`` (both stores write
    ``s<seq>``, base64url without padding): it reaches numbers a test could never submit
    enough jobs to see."""
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def raw_cursor(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def all_pages(backend: Backends, limit: int, **filters: str) -> list[tuple[list[str], str | None]]:
    """Every page of t1's listing, following each cursor to the end."""
    pages: list[tuple[list[str], str | None]] = []
    cursor: str | None = None
    while True:
        page, cursor = backend.jobs.list_jobs("t1", limit=limit, cursor=cursor, **filters)
        pages.append(([j.id for j in page], cursor))
        if cursor is None or len(pages) > 20:
            return pages


@pytest.mark.parametrize(("count", "limit"), [(1, 1), (4, 2), (3, 3), (5, 2), (2, 5), (0, 3)])
def test_paging_ends_with_the_last_job(backend: Backends, count: int, limit: int) -> None:
    """Pages are full until the last; the last one says so (no cursor), so a client never
    asks for an empty page, even when the jobs fill the pages exactly."""
    ids = [backend.jobs.submit(new_job(backend)).id for _ in range(count)]
    pages = all_pages(backend, limit)
    assert [ids for ids, _ in pages] == [
        ids[::-1][start : start + limit] for start in range(0, max(count, 1), limit)
    ]
    assert [cursor is None for _, cursor in pages] == [False] * (len(pages) - 1) + [True]


def test_paging_a_status_skips_the_others(backend: Backends) -> None:
    jobs = backend.jobs
    ids = [jobs.submit(new_job(backend)).id for _ in range(6)]
    for job_id in ids[1::2]:
        jobs.cancel(job_id, "t1")
    assert [page for page, _ in all_pages(backend, 2, status="queued")] == [
        [ids[4], ids[2]],
        [ids[0]],
    ]
    assert [page for page, _ in all_pages(backend, 3, status="canceled")] == [ids[5::-2]]
    assert all_pages(backend, 3, status="running") == [([], None)]


def test_a_page_holds_fifty_jobs_unless_asked(backend: Backends) -> None:
    jobs = backend.jobs
    ids = [jobs.submit(new_job(backend, images=1)).id for _ in range(51)]
    page, cursor = jobs.list_jobs("t1")
    assert [j.id for j in page] == ids[:0:-1] and cursor is not None
    rest, end = jobs.list_jobs("t1", cursor=cursor)
    assert [j.id for j in rest] == ids[:1] and end is None


def test_cursors_are_url_safe_tokens(backend: Backends) -> None:
    """A cursor goes into a query string as it is: letters, digits, ``-`` and ``_``, no
    padding to escape."""
    for _ in range(12):
        backend.jobs.submit(new_job(backend, images=1))
    cursors = [cursor for _, cursor in all_pages(backend, 1)[:-1]]
    assert len(cursors) == 11
    for cursor in cursors:
        assert cursor is not None and re.fullmatch(r"[A-Za-z0-9_-]+", cursor), cursor


@pytest.mark.parametrize(
    "seq", [10**5, 10**8, 10**11, 2**63 - 1], ids=lambda seq: f"{len(str(seq))}-digits"
)
def test_a_cursor_past_the_newest_job_pages_from_the_newest(backend: Backends, seq: int) -> None:
    """Job numbers only grow: a cursor from further on (a long-lived store's) still reads the
    jobs before it, newest first."""
    ids = [backend.jobs.submit(new_job(backend)).id for _ in range(3)]
    page, cursor = backend.jobs.list_jobs("t1", limit=2, cursor=cursor_at(seq))
    assert [j.id for j in page] == ids[:0:-1] and cursor is not None
    rest, end = backend.jobs.list_jobs("t1", limit=2, cursor=cursor)
    assert [j.id for j in rest] == ids[:1] and end is None


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("%%%", id="not-base64"),
        pytest.param("", id="empty"),
        pytest.param("bm90LWEtY3Vyc29y", id="other-text"),  # "not-a-cursor"
        pytest.param(raw_cursor(b"s"), id="no-number"),
        pytest.param(raw_cursor(b"sabc"), id="letters"),
        pytest.param(raw_cursor(b"s12x"), id="trailing-letter"),
        pytest.param(raw_cursor(b"s-1"), id="negative"),
        pytest.param(raw_cursor(b"s1.5"), id="fraction"),
        pytest.param(raw_cursor(b"x12"), id="wrong-letter"),
        pytest.param(raw_cursor(b"12"), id="no-letter"),
        pytest.param(raw_cursor(b"S12"), id="capital-letter"),
        pytest.param(raw_cursor(b"s\xc3\xa91"), id="not-ascii"),
        pytest.param(raw_cursor(b"s\xff"), id="not-utf8"),
        pytest.param(cursor_at(2**63), id="past-64-bits"),  # past what SQLite's INTEGER holds
        pytest.param(cursor_at(10**19 - 1), id="19-nines"),
        pytest.param(cursor_at(10**19), id="20-digits"),  # past any job number
        pytest.param(raw_cursor(b"s010"), id="leading-zero"),
        pytest.param(cursor_at(10) + "=", id="padded"),
        pytest.param(cursor_at(10) + "!", id="stray-character"),
        pytest.param(cursor_at(10)[:2] + " " + cursor_at(10)[2:], id="inner-space"),
        pytest.param(cursor_at(10).upper(), id="other-case"),
        pytest.param(cursor_at(10**30), id="31-digits"),
    ],
)
def test_a_cursor_the_store_did_not_issue_is_refused(backend: Backends, cursor: str) -> None:
    backend.jobs.submit(new_job(backend))
    with pytest.raises(InvalidCursor):
        backend.jobs.list_jobs("t1", cursor=cursor)


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
    assert jobs.expire() == [] and jobs.get(job_id).id == job_id
    clock.advance(1)
    with pytest.raises(JobNotFound):  # invisible from the instant it expires...
        jobs.get(job_id)
    clock.advance(1)
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


def empty_zip_job(backend: Backends, tenant: str) -> NewJob:
    """A ZIP with no entries: a job of no images."""
    job_id = backend.jobs.new_job_id(tenant)
    inputs = [JobInput(0, "empty.zip", f"uploads/{job_id}/0", "zip", 22, images=0)]
    return NewJob(job_id, tenant, {"colors": 4}, inputs, None, 0)


def test_backlog_counts_the_images_of_unfinished_jobs(backend: Backends) -> None:
    """(this tenant's, everyone's): what the queue-depth limits compare with."""
    jobs = backend.jobs
    assert [jobs.backlog(t) for t in ("t1", "t2")] == [(0, 0), (0, 0)]
    first = jobs.submit(new_job(backend, "t1", images=2)).id
    assert [jobs.backlog(t) for t in ("t1", "t2")] == [(2, 2), (0, 2)]
    lease = jobs.claim("w", 10)  # running still counts
    assert lease is not None and lease.job_id == first
    assert [jobs.backlog(t) for t in ("t1", "t2")] == [(2, 2), (0, 2)]
    second = jobs.submit(new_job(backend, "t1", images=3)).id
    jobs.submit(new_job(backend, "t2", images=4))
    assert [jobs.backlog(t) for t in ("t1", "t2", "t3")] == [(5, 9), (4, 9), (0, 9)]
    assert jobs.complete(lease, ResultInfo(f"results/{first}/1.json", "abc", 3))
    assert [jobs.backlog(t) for t in ("t1", "t2")] == [(3, 7), (4, 7)]
    jobs.cancel(second, "t1")
    assert [jobs.backlog(t) for t in ("t1", "t2")] == [(0, 4), (4, 4)]


def test_a_job_of_no_images_adds_nothing_to_the_backlog(backend: Backends) -> None:
    jobs = backend.jobs
    jobs.submit(empty_zip_job(backend, "t1"))
    assert [jobs.backlog(t) for t in ("t1", "t2")] == [(0, 0), (0, 0)]
    jobs.submit(new_job(backend, "t2", images=2))
    assert [jobs.backlog(t) for t in ("t1", "t2")] == [(0, 2), (2, 2)]


def test_ping_answers_and_counts_are_by_status(backend: Backends) -> None:
    jobs = backend.jobs
    jobs.ping()
    assert jobs.counts() == {}
    ids = [jobs.submit(new_job(backend)).id for _ in range(4)]
    lease = jobs.claim("w", 10)
    assert lease is not None
    assert jobs.complete(lease, ResultInfo(f"results/{ids[0]}/1.json", "abc", 3))
    jobs.cancel(ids[1], "t1")
    assert jobs.claim("w", 10) is not None
    assert jobs.counts() == {"succeeded": 1, "canceled": 1, "running": 1, "queued": 1}


@pytest.mark.parametrize(
    "ending", ["taken-over", "canceled-while-stalled", "cancel-acknowledged", "deleted"]
)
def test_a_lost_lease_renews_as_dead_and_nothing_more(
    backend: Backends, clock: FakeClock, ending: str
) -> None:
    """A worker told its lease is dead stops; a cancel asked for meanwhile is no longer its
    business, so the answer does not carry it."""
    jobs = backend.jobs
    job_id = jobs.submit(new_job(backend)).id
    lease = jobs.claim("w1", 10)
    assert lease is not None
    assert jobs.renew(lease, 10) == LeaseState(alive=True, cancel_requested=False)
    if ending == "taken-over":
        clock.advance(11)
        assert jobs.claim("w2", 10) is not None
    else:
        jobs.cancel(job_id, "t1")
        assert jobs.renew(lease, 10) == LeaseState(alive=True, cancel_requested=True)
        if ending == "canceled-while-stalled":
            clock.advance(11)
            assert jobs.reap_expired() == 1 and jobs.get(job_id).status == "canceled"
        else:
            assert jobs.acknowledge_cancel(lease)
            if ending == "deleted":
                jobs.delete(job_id, "t1")
    assert jobs.renew(lease, 10) == LeaseState(alive=False, cancel_requested=False)

"""The event log: every state change appends an event in the same step, with a stable id;
each consumer reads at least once, in order, until it acknowledges."""

from __future__ import annotations

import pytest
from conformancetools import FakeClock, item, new_job

from service.backends import Backends
from service.jobs.interfaces import JobConflict, ResultInfo


def kinds(backend: Backends, consumer: str = "test") -> list[tuple[str, str, str]]:
    return [(e.type, e.job["id"], e.job.get("status", "")) for e in backend.events.read(consumer)]


def test_every_transition_appends_its_event_in_order(backend: Backends) -> None:
    jobs = backend.jobs
    a = jobs.submit(new_job(backend)).id
    lease = jobs.claim("w", 10)
    assert lease is not None
    assert jobs.progress(lease, [item(0)], None)  # not announced
    assert jobs.progress(lease, [item(1)], None, notify=True)
    assert jobs.complete(lease, ResultInfo("k", "d", 1))
    b = jobs.submit(new_job(backend)).id
    jobs.cancel(b, "t1")
    assert kinds(backend) == [
        ("job.progress", a, "running"),
        ("job.progress", a, "running"),
        ("job.succeeded", a, "succeeded"),
        ("job.canceled", b, "canceled"),
    ]
    succeeded = backend.events.read("test")[2]
    assert succeeded.job["tenant"] == "t1" and succeeded.job["progress"]["done"] == 2
    assert succeeded.job["results_url"] == f"/v1/jobs/{a}/results"


def test_a_refused_change_appends_nothing(backend: Backends) -> None:
    jobs = backend.jobs
    job_id = jobs.submit(new_job(backend)).id
    lease = jobs.claim("w", 10)
    assert lease is not None
    assert jobs.complete(lease, ResultInfo("k", "d", 1))
    before = kinds(backend)
    with pytest.raises(JobConflict):
        jobs.cancel(job_id, "t1")
    assert not jobs.fail(lease, {"code": "late"}, None)  # fenced: no change, no event
    assert kinds(backend) == before


def test_ids_are_stable_and_reading_is_at_least_once(backend: Backends) -> None:
    jobs = backend.jobs
    for _ in range(3):
        jobs.cancel(jobs.submit(new_job(backend)).id, "t1")
    first = backend.events.read("relay")
    assert len(first) == 3 and len({e.id for e in first}) == 3
    again = backend.events.read("relay")  # not acknowledged (a crash): the same events
    assert [e.id for e in again] == [e.id for e in first]
    backend.events.ack("relay", first[:2])
    assert [e.id for e in backend.events.read("relay")] == [first[2].id]
    assert [e.id for e in backend.events.read("other", limit=2)] == [e.id for e in first[:2]]
    backend.events.ack("relay", first[:1])  # an older acknowledgement does not move it back
    assert [e.id for e in backend.events.read("relay")] == [first[2].id]
    backend.events.ack("relay", first)
    assert backend.events.read("relay") == []


def test_every_node_reads_the_same_log(open_backend: object) -> None:
    one, two = open_backend(), open_backend()  # type: ignore[operator]
    job_id = one.jobs.submit(new_job(one)).id
    one.jobs.cancel(job_id, "t1")
    [seen] = two.events.read("relay")
    assert seen.type == "job.canceled" and seen.job["id"] == job_id
    two.events.ack("relay", [seen])
    assert one.events.read("relay") == []


def test_deleted_and_expired_jobs_are_announced(backend: Backends, clock: FakeClock) -> None:
    jobs = backend.jobs
    deleted = jobs.submit(new_job(backend, tenant="t2")).id
    jobs.delete(deleted, "t2")
    expired = jobs.submit(new_job(backend)).id
    lease = jobs.claim("w", 10)
    assert lease is not None and jobs.complete(lease, ResultInfo("k", "d", 1))
    clock.advance(101)
    assert [j.id for j in jobs.expire()] == [expired]
    gone = [(e.type, e.job["id"], e.job["tenant"]) for e in backend.events.read("t")]
    assert ("job.deleted", deleted, "t2") in gone and ("job.deleted", expired, "t1") in gone

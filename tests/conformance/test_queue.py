"""JobQueue: claims with leases and fencing, renewals, progress, finishing, hand-backs, reaping
and crash accounting."""

from __future__ import annotations

import threading
import time

import pytest
from conformancetools import FakeClock, item, new_job

from service.backends import Backends
from service.jobs.interfaces import ResultInfo


def test_claim_is_exclusive_and_fenced(backend: Backends, clock: FakeClock) -> None:
    jobs = backend.jobs
    job_id = jobs.submit(new_job(backend)).id
    lease = jobs.claim("w1", 10)
    assert lease is not None and lease.job_id == job_id and jobs.claim("w2", 10) is None
    assert lease.expires_at == clock.t + 10
    assert jobs.get(job_id).status == "running" and jobs.get(job_id).started_at is not None
    clock.advance(11)  # w1 stalls past its lease; w2 takes over
    lease2 = jobs.claim("w2", 10)
    assert lease2 is not None and lease2.job_id == job_id and lease2.token > lease.token
    # The late worker's writes are refused, the new owner's accepted.
    assert not jobs.renew(lease, 10).alive
    assert not jobs.start_items(lease, {(0, 0): "img0.jpg"})
    assert not jobs.progress(lease, [item(0)], None)
    assert not jobs.progress(lease, [item(0)], None, started={(1, 0): "img1.jpg"})
    assert not jobs.complete(lease, ResultInfo("k", "d", 1))
    assert not jobs.fail(lease, {"code": "x"}, None)
    assert not jobs.release(lease)
    assert jobs.progress(lease2, [item(0)], None)
    assert jobs.get(job_id).progress.done == 1


def test_progress_extends_the_lease_only_when_asked(backend: Backends, clock: FakeClock) -> None:
    """``progress(..., lease_seconds=s)`` is also a renewal; without it the lease keeps its end."""
    jobs = backend.jobs
    jobs.submit(new_job(backend, images=3))
    lease = jobs.claim("w1", 10)
    assert lease is not None
    clock.advance(8)
    assert jobs.progress(lease, [item(0)], None, lease_seconds=10)  # now ends at 18
    clock.advance(8)  # 16: past the claim's 10, inside the renewal's 18
    assert jobs.claim("w2", 10) is None
    assert jobs.progress(lease, [item(1)], None)  # no renewal: still ends at 18
    clock.advance(3)  # 19
    taken = jobs.claim("w2", 10)
    assert taken is not None and taken.token > lease.token


def test_a_succeeded_job_counts_what_it_did_and_a_failed_one_what_it_had(
    backend: Backends,
) -> None:
    """On success the total becomes the images handled (an estimate made at submit time gives
    way to what the archives held); a failed job keeps its total, so its progress shows what
    was left undone."""
    jobs = backend.jobs
    done = jobs.submit(new_job(backend, images=3)).id
    lease = jobs.claim("w1", 10)
    assert lease is not None and jobs.progress(lease, [item(0), item(1, "failed")], None)
    assert jobs.complete(lease, ResultInfo(f"results/{done}/1.json", "abc", 2))
    progress = jobs.get(done).progress
    assert (progress.total, progress.done, progress.failed) == (2, 1, 1)
    failed = jobs.submit(new_job(backend, images=3)).id
    lease = jobs.claim("w1", 10)
    assert lease is not None and jobs.progress(lease, [item(0)], None)
    assert jobs.fail(lease, {"code": "internal_error"}, None)
    progress = jobs.get(failed).progress
    assert (progress.total, progress.done) == (3, 1)


def test_reaping_cancels_a_stalled_job_asked_to_cancel_and_requeues_the_next(
    backend: Backends, clock: FakeClock
) -> None:
    """One pass handles every expired lease: a job whose cancel was asked for ends canceled
    (with its event), and the one after it goes back to the queue."""
    jobs = backend.jobs
    canceled = jobs.submit(new_job(backend)).id
    requeued = jobs.submit(new_job(backend)).id
    assert jobs.claim("w1", 10) is not None and jobs.claim("w2", 10) is not None
    jobs.cancel(canceled, "t1")
    clock.advance(11)
    assert jobs.reap_expired() == 2
    assert jobs.get(canceled).status == "canceled"
    assert jobs.get(requeued).status == "queued"
    events = backend.events.read("test_queue", 100)
    assert [e.type for e in events if e.job["id"] == canceled][-1] == "job.canceled"


def test_claims_are_oldest_first(backend: Backends) -> None:
    ids = [backend.jobs.submit(new_job(backend)).id for _ in range(3)]
    claimed = [backend.jobs.claim("w", 10) for _ in range(3)]
    assert [lease.job_id for lease in claimed if lease] == ids


def test_claim_waits_for_work(backend: Backends) -> None:
    jobs = backend.jobs
    started = time.monotonic()
    assert jobs.claim("w", 10) is None
    assert time.monotonic() - started < 0.8  # no wait asked: the answer comes at once
    started = time.monotonic()
    assert jobs.claim("w", 10, wait=0.3) is None
    assert time.monotonic() - started >= 0.25  # it waited
    made = new_job(backend)
    threading.Timer(0.2, lambda: jobs.submit(made)).start()
    started = time.monotonic()
    lease = jobs.claim("w", 10, wait=5.0)
    assert lease is not None and lease.job_id == made.id
    assert time.monotonic() - started < 2.0  # woken by the new job, not the end of the wait


def test_renew_extends_and_carries_the_cancel_flag(backend: Backends, clock: FakeClock) -> None:
    jobs = backend.jobs
    job_id = jobs.submit(new_job(backend)).id
    lease = jobs.claim("w", 10)
    assert lease is not None
    clock.advance(8)
    state = jobs.renew(lease, 10)
    assert state.alive and not state.cancel_requested
    clock.advance(8)  # past the first expiry, within the renewed one
    assert jobs.reap_expired() == 0 and jobs.claim("w2", 10) is None
    assert jobs.cancel_requested([job_id]) == set()
    jobs.cancel(job_id, "t1")
    assert jobs.renew(lease, 10).cancel_requested
    assert jobs.cancel_requested([job_id, "unknown"]) == {job_id}


def test_progress_is_idempotent_per_item(backend: Backends) -> None:
    jobs = backend.jobs
    job_id = jobs.submit(new_job(backend)).id
    lease = jobs.claim("w", 10)
    assert lease is not None
    assert jobs.progress(lease, [item(0), item(1, "failed")], None)
    assert jobs.progress(lease, [item(0)], None)  # replayed after a crash: not counted twice
    assert jobs.progress(lease, [item(1, "skipped", index=3)], 5)
    p = jobs.get(job_id).progress
    assert (p.done, p.failed, p.skipped, p.total) == (1, 1, 1, 5)
    assert jobs.done_items(job_id) == {(0, 0), (1, 0), (1, 3)}
    assert [(i.input_seq, i.entry_index, i.status) for i in jobs.iter_items(job_id)] == [
        (0, 0, "succeeded"),
        (1, 0, "failed"),
        (1, 3, "skipped"),
    ]


def test_complete_and_fail_are_final(backend: Backends, clock: FakeClock) -> None:
    jobs = backend.jobs
    ok = jobs.submit(new_job(backend)).id
    bad = jobs.submit(new_job(backend)).id
    first, second = jobs.claim("w", 10), jobs.claim("w", 10)
    assert first is not None and second is not None
    assert jobs.progress(first, [item(0), item(1)], None)
    assert jobs.complete(first, ResultInfo(f"results/{ok}/1.json", "digest", 42))
    job = jobs.get(ok)
    assert job.status == "succeeded" and job.result_digest == "digest" and job.result_size == 42
    assert job.finished_at == clock.t and job.expires_at == clock.t + 100
    assert job.progress.total == 2
    assert jobs.fail(second, {"code": "archive_corrupt"}, None)
    failed = jobs.get(bad)
    assert failed.status == "failed" and failed.error == {"code": "archive_corrupt"}
    assert not jobs.complete(first, ResultInfo("k", "d", 1))  # final is final


@pytest.mark.parametrize("ending", ["complete", "fail"])
def test_a_cancel_request_wins_over_the_end_the_worker_reaches(
    backend: Backends, ending: str
) -> None:
    jobs = backend.jobs
    job_id = jobs.submit(new_job(backend)).id
    lease = jobs.claim("w", 10)
    assert lease is not None
    assert jobs.progress(lease, [item(0)], None)
    jobs.cancel(job_id, "t1")
    if ending == "complete":
        assert not jobs.complete(lease, ResultInfo("k", "d", 1))
    else:
        assert not jobs.fail(lease, {"code": "archive_corrupt"}, ResultInfo("k", "d", 1))
    assert jobs.get(job_id).status == "running"
    assert jobs.acknowledge_cancel(lease)
    job = jobs.get(job_id)
    assert job.status == "canceled" and job.progress.done == 0  # nothing partial is kept
    assert list(jobs.iter_items(job_id)) == []


def test_release_keeps_items_and_requeues_without_an_attempt(backend: Backends) -> None:
    """A drain hands the job back: finished images are kept and no attempt is used."""
    jobs = backend.jobs
    job_id = jobs.submit(new_job(backend)).id
    lease = jobs.claim("w", 10)
    assert lease is not None
    assert jobs.start_items(lease, {(1, 0): "img1.jpg"})
    assert jobs.progress(lease, [item(0)], None)
    assert jobs.release(lease)
    job = jobs.get(job_id)
    assert job.status == "queued" and job.progress.done == 1 and job.attempts == 0
    again = jobs.claim("w2", 10)
    assert again is not None and again.attempts == 0 and again.suspects == frozenset()


def test_reap_requeues_or_finishes_canceled(backend: Backends, clock: FakeClock) -> None:
    jobs = backend.jobs
    a = jobs.submit(new_job(backend)).id
    b = jobs.submit(new_job(backend)).id
    la, lb = jobs.claim("w", 5), jobs.claim("w", 5)
    assert la is not None and lb is not None
    assert jobs.progress(la, [item(0)], None)
    jobs.cancel(b, "t1")
    assert jobs.get(b).status == "running" and jobs.get(b).cancel_requested
    clock.advance(6)
    assert jobs.reap_expired() == 2
    job_a, job_b = jobs.get(a), jobs.get(b)
    assert job_a.status == "queued" and job_a.progress.done == 1  # finished images are kept
    assert job_b.status == "canceled" and job_b.progress.done == 0
    assert jobs.reap_expired() == 0


def test_a_crash_counts_against_the_images_in_flight(backend: Backends, clock: FakeClock) -> None:
    """max_worker_crashes is 3: the third crash with an image in flight gives it up."""
    jobs = backend.jobs
    job_id = jobs.submit(new_job(backend, images=3)).id
    lease = jobs.claim("w", 5)
    assert lease is not None and lease.suspects == frozenset()
    assert jobs.start_items(lease, {(0, 0): "img0.jpg"})
    assert jobs.progress(lease, [item(0)], None)  # finished: no longer in flight
    assert jobs.start_items(lease, {(1, 0): "img1.jpg", (2, 0): "img2.jpg"})
    clock.advance(6)  # the worker died with two images in flight
    assert jobs.reap_expired() == 1
    lease = jobs.claim("w", 5)
    assert lease is not None and lease.suspects == {(1, 0), (2, 0)}
    assert lease.attempts == 0  # image 0 finished during that claim: it made progress
    assert jobs.start_items(lease, {(1, 0): "img1.jpg"})  # now alone: it dies again
    clock.advance(6)
    lease = jobs.claim("w", 5)  # the claim reaps the expired lease itself
    assert lease is not None and lease.suspects == {(1, 0), (2, 0)}
    assert lease.attempts == 1  # nothing moved forward
    assert jobs.start_items(lease, {(1, 0): "img1.jpg"})
    clock.advance(6)
    lease = jobs.claim("w", 5)  # image 1 was in flight for 3 crashes: given up
    assert lease is not None and lease.suspects == {(2, 0)}
    assert lease.attempts == 0  # giving an image up is progress
    failed = {i.name: i for i in jobs.iter_items(job_id)}["img1.jpg"]
    assert failed.status == "failed" and failed.error is not None
    assert failed.error["code"] == "internal_error"
    assert "stopped its worker 3 times" in failed.error["detail"]
    assert jobs.done_items(job_id) == {(0, 0), (1, 0)}
    assert jobs.start_items(lease, {(2, 0): "img2.jpg"})
    assert jobs.progress(lease, [item(2)], None)  # the other suspect was innocent
    assert jobs.complete(lease, ResultInfo("k", "d", 1))
    p = jobs.get(job_id).progress
    assert (p.done, p.failed, p.total) == (2, 1, 3)


def test_progress_that_starts_the_next_image_counts_a_crash_against_it(
    backend: Backends, clock: FakeClock
) -> None:
    """``progress(..., started=...)``, one write for an image done and the next one begun,
    leaves the store as ``progress`` then ``start_items`` would."""
    jobs = backend.jobs
    job_id = jobs.submit(new_job(backend, images=3)).id
    lease = jobs.claim("w", 5)
    assert lease is not None
    assert jobs.start_items(lease, {(0, 0): "img0.jpg"})
    assert jobs.progress(lease, [item(0)], None, started={(1, 0): "img1.jpg"})
    assert jobs.progress(lease, [item(1)], None, started={(2, 0): "img2.jpg"})
    assert jobs.done_items(job_id) == {(0, 0), (1, 0)}
    clock.advance(6)  # the worker died with image 2 in flight
    assert jobs.reap_expired() == 1
    again = jobs.claim("w", 5)
    assert again is not None and again.suspects == {(2, 0)} and again.attempts == 0
    assert jobs.get(job_id).progress.done == 2


def test_crashed_claims_without_progress_are_attempts(backend: Backends, clock: FakeClock) -> None:
    jobs = backend.jobs
    job_id = jobs.submit(new_job(backend)).id
    for expected in range(4):
        lease = jobs.claim("w", 5)
        assert lease is not None and lease.attempts == expected
        clock.advance(6)  # died before any image: nothing in flight, no progress
    assert jobs.reap_expired() == 1
    assert jobs.get(job_id).attempts == 4
    lease = jobs.claim("w", 5)
    assert lease is not None
    assert jobs.progress(lease, [item(0)], None)
    clock.advance(6)
    lease = jobs.claim("w", 5)
    assert lease is not None and lease.attempts == 0  # that claim made progress


def test_a_worker_error_counts_like_a_crash(backend: Backends) -> None:
    jobs = backend.jobs
    job_id = jobs.submit(new_job(backend)).id
    lease = jobs.claim("w", 5)
    assert lease is not None
    assert jobs.start_items(lease, {(0, 0): "img0.jpg"})
    assert jobs.release(lease, crashed=True)
    assert jobs.get(job_id).attempts == 1
    again = jobs.claim("w", 5)
    assert again is not None and again.attempts == 1 and again.suspects == {(0, 0)}


def test_concurrent_claims_never_share_a_job(backend: Backends) -> None:
    jobs = backend.jobs
    ids = [jobs.submit(new_job(backend)).id for _ in range(40)]
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (lease := jobs.claim(name, 30)) is not None:
            with lock:
                claimed.append(lease.job_id)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)

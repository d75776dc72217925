"""Locks: one holder at a time across every process of a deployment, leases that run out,
fencing tokens that only grow; and the retention sweep that runs under one."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest

from conformancetools import FakeClock, new_job

from service.backends import Backends
from service.jobs.interfaces import JobNotFound, ResultInfo
from service.jobs.retention import LOCK_NAME, Sweeper


def test_one_holder_until_the_lease_runs_out(
    open_backend: Callable[..., Backends], clock: FakeClock
) -> None:
    one, two = open_backend().locks, open_backend().locks
    first = one.acquire("sweep", "node-1", 10.0)
    assert first is not None and first.owner == "node-1" and first.until == clock.now() + 10.0
    assert two.acquire("sweep", "node-2", 10.0) is None
    assert one.acquire("sweep", "node-1", 10.0) is None  # not re-entrant: renew instead
    clock.advance(9.5)
    assert two.acquire("sweep", "node-2", 10.0) is None
    clock.advance(0.5)  # the lease's last instant has passed
    second = two.acquire("sweep", "node-2", 10.0)
    assert second is not None and second.token > first.token
    # The first holder stalled past its lease: it can neither extend nor free the new grant.
    assert one.renew(first, 10.0) is None
    assert one.release(first) is False
    assert one.acquire("sweep", "node-1", 10.0) is None
    assert two.renew(second, 10.0) is not None


def test_renewal_extends_the_same_grant(
    open_backend: Callable[..., Backends], clock: FakeClock
) -> None:
    one, two = open_backend().locks, open_backend().locks
    lease = one.acquire("sweep", "node-1", 10.0)
    assert lease is not None
    clock.advance(8)
    renewed = one.renew(lease, 10.0)
    assert renewed is not None
    assert renewed.token == lease.token and renewed.until == clock.now() + 10.0
    clock.advance(8)  # 16 s after the grant, 8 s after the renewal
    assert two.acquire("sweep", "node-2", 10.0) is None
    clock.advance(2)
    assert one.renew(renewed, 10.0) is None  # ran out: renewing does not bring it back
    assert two.acquire("sweep", "node-2", 10.0) is not None


def test_release_frees_the_lock_and_tokens_keep_growing(
    open_backend: Callable[..., Backends], clock: FakeClock
) -> None:
    one, two = open_backend().locks, open_backend().locks
    tokens = []
    for owner, locks in [("a", one), ("b", two), ("a", one)]:
        lease = locks.acquire("sweep", owner, 60.0)
        assert lease is not None
        tokens.append(lease.token)
        assert locks.release(lease) is True
        assert locks.release(lease) is False  # once
        assert locks.renew(lease, 60.0) is None
    assert tokens == sorted(set(tokens))
    other = one.acquire("other", "a", 60.0)  # names are independent
    assert other is not None and one.acquire("sweep", "b", 60.0) is not None


def test_one_retention_sweep_per_interval_for_the_deployment(
    open_backend: Callable[..., Backends], clock: FakeClock
) -> None:
    one, two = open_backend(), open_backend()
    job_id = one.jobs.submit(new_job(one)).id
    one.blobs.put(f"uploads/{job_id}/0", [b"image bytes"])
    one.blobs.put(f"results/{job_id}/1.json", [b"{}"])
    lease = one.jobs.claim("w", 10)
    assert lease is not None
    assert one.jobs.complete(lease, ResultInfo(f"results/{job_id}/1.json", "abc", 2))
    clock.advance(101)  # past retention (100 s)

    sweepers = [Sweeper(b.jobs, b.blobs, b.housekeeping, 30.0, b.locks) for b in (one, two)]
    assert sweepers[0].run_once() == 1
    assert sweepers[1].run_once() is None  # held for the interval by the first
    with pytest.raises(JobNotFound):
        two.jobs.get(job_id)
    assert list(two.blobs.keys(f"uploads/{job_id}")) == []
    assert list(two.blobs.keys(f"results/{job_id}")) == []
    clock.advance(29)
    assert sweepers[1].run_once() is None
    assert sweepers[0].run_once() == 0  # the holder renews and sweeps on its next turn
    clock.advance(31)  # the holder is gone (it stopped renewing): another process takes over
    assert sweepers[1].run_once() == 0
    assert [s.sweeps for s in sweepers] == [2, 1]


def test_a_stopped_sweeper_frees_the_lock_at_once(
    open_backend: Callable[..., Backends], clock: FakeClock
) -> None:
    one, two = open_backend(), open_backend()
    first = Sweeper(one.jobs, one.blobs, (), 300.0, one.locks)
    assert first.run_once() == 0
    assert two.locks.acquire(LOCK_NAME, "someone", 1.0) is None
    first.stop()  # never started: stop only releases
    assert two.locks.acquire(LOCK_NAME, "someone", 1.0) is not None


def test_a_sweeper_that_loses_its_lock_stops_after_the_batch_in_hand(
    open_backend: Callable[..., Backends], clock: FakeClock
) -> None:
    one, two = open_backend(), open_backend()
    taken: list[str] = []

    class SlowStore:
        """Full batches of expired jobs without end; the first batch takes longer than the
        sweep's lease, and another process takes the lock meanwhile."""

        def expire(self, limit: int) -> list[SimpleNamespace]:
            if not taken:
                clock.advance(31)
                assert two.locks.acquire(LOCK_NAME, "node-2", 30.0) is not None
            batch = [SimpleNamespace(id=f"job-{len(taken) + i}") for i in range(limit)]
            taken.extend(job.id for job in batch)
            return batch

    sweeper = Sweeper(SlowStore(), one.blobs, (), 30.0, one.locks)  # type: ignore[arg-type]
    assert sweeper.run_once() == 500
    assert len(taken) == 500
    assert sweeper.run_once() is None  # the other process holds it now

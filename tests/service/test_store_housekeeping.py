"""The embedded backend's clean-ups: the idempotency sweep removes what is past its window and
keeps the rest, and a crashed claim is counted against the images it had in flight. Checked
through the backend's interfaces, with the clock moved by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.backends import Backends, open_backends
from service.jobs.interfaces import JobInput, NewJob
from service.settings import Settings


class Clock:
    def __init__(self, start: float = 1_900_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend(tmp_path: Path, clock: Clock) -> Iterator[Backends]:
    b = open_backends(Settings(data_dir=tmp_path, idempotency_seconds=100), clock)
    yield b
    b.close()


def test_the_idempotency_sweep_keeps_keys_inside_their_window(
    backend: Backends, clock: Clock
) -> None:
    keys = backend.idempotency
    assert keys.idempotency_begin("t1", "old", "POST", "/v1/jobs") == "new"
    clock.t += 50
    assert keys.idempotency_begin("t1", "young", "POST", "/v1/jobs") == "new"
    clock.t += 50  # "old" is 100 s old (its window is over), "young" 50 s
    keys.expire()
    assert keys.idempotency_begin("t1", "young", "POST", "/v1/jobs") == "in_flight"
    assert keys.idempotency_begin("t1", "old", "POST", "/v1/jobs") == "new"


def test_an_image_in_flight_for_three_crashes_is_given_up_with_the_reason(
    backend: Backends,
) -> None:
    jobs = backend.jobs
    job_id = jobs.new_job_id("t1")
    inputs = [JobInput(0, "a.jpg", f"uploads/{job_id}/0", "image", 10)]
    jobs.submit(NewJob(job_id, "t1", {"colors": 4}, inputs, None, 1))
    for _ in range(3):  # max_worker_crashes: 3
        lease = jobs.claim("w", 5)
        assert lease is not None and jobs.start_items(lease, {(0, 0): "a.jpg"})
        assert jobs.release(lease, crashed=True)  # the worker died with the image in flight
    [given_up] = list(jobs.iter_items(job_id))
    assert given_up.status == "failed" and given_up.error == {
        "code": "internal_error",
        "detail": "the image stopped its worker 3 times (a crash, out of memory or a kill);"
        " it was given up",
        "crashes": 3,
    }
    assert jobs.get(job_id).progress.failed == 1

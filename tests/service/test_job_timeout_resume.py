"""The per-job wall-clock limit counts from the job's first start, across claims: a job
resumed after its worker died does not get a fresh limit."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import palette_native
from palette_native import CanceledError
from starlette.testclient import TestClient

from service.app import create_app
from service.backends import open_backends
from service.security.settings import SecuritySettings
from service.settings import Settings


class ShiftedClock:
    """Real time, moved by ``offset`` seconds (the store's only time source here)."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset


class HoldAll:
    """``extract`` that holds every image until the worker asks it to stop."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, source: Any, *, should_cancel: Any = None, **kwargs: Any) -> Any:
        with self.lock:
            self.calls += 1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if should_cancel is not None and should_cancel():
                raise CanceledError("stopped while held")
            time.sleep(0.01)
        return palette_native.extract(source, **kwargs)


def test_a_resumed_job_keeps_the_limit_of_its_first_start(tmp_path: Path, h: Any) -> None:
    security = SecuritySettings(job_timeout_seconds=30.0)
    api_only = Settings(data_dir=tmp_path, lease_seconds=2.0, security=security)
    clock = ShiftedClock(-100.0)  # the first start was 100 s ago
    with TestClient(create_app(api_only, clock=clock, run_workers=False)) as c:
        images = {f"img{n}.jpg": h.make_jpeg(700 + n) for n in range(3)}
        location = h.submit(c, [("three.zip", h.make_zip(images))]).headers["location"]
    first = open_backends(api_only, clock)
    try:
        lease = first.jobs.claim("a worker that then died", 2.0)
        assert lease is not None and location.endswith(lease.job_id)
    finally:
        first.close()
    clock.offset = 0.0  # now: that worker's lease ran out long ago

    hold = HoldAll()
    workers = Settings(data_dir=tmp_path, workers=1, lease_seconds=2.0, security=security)
    with TestClient(create_app(workers, clock=clock, extract=hold)) as c:
        job = h.wait_job(c, location)
    # 100 s since the first start, against a 30 s limit: over at once, nothing more processed.
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "job_timeout" and job["error"]["limit_seconds"] == 30.0
    assert job["progress"]["done"] == 0

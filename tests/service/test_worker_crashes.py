"""Worker processes that die mid-image (kill -9, OOM, a segfault in a decoder).

The crash is counted against the images that were in flight: an image that stopped its worker
``PALETTE_MAX_WORKER_CRASHES`` times is given up (``internal_error``) and the job goes on with
the rest, instead of being claimed again forever.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from service.app import create_app
from service.settings import Settings

CHILD = Path(__file__).with_name("crashing_worker.py")
MARKER = b"KILL-MY-WORKER"


@pytest.mark.e2e  # a worker process of its own; the other tests run in this one
def test_an_image_that_kills_its_worker_is_given_up_and_the_job_goes_on(
    tmp_path: Path, h: Any, guard_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    env = h.guarded_env(
        guard_dir,
        {
            "PALETTE_DATA_DIR": str(data_dir),
            "PALETTE_WORKERS": "1",
            "PALETTE_LEASE_SECONDS": "1",
            "PALETTE_LOG_LEVEL": "warning",
        },
    )
    poison = h.make_jpeg(2) + MARKER  # still a valid JPEG: the marker follows the end marker
    files = [("first.jpg", h.make_jpeg(1)), ("poison.jpg", poison), ("last.jpg", h.make_jpeg(3))]
    settings = Settings(data_dir=data_dir, lease_seconds=1.0)
    with TestClient(create_app(settings, run_workers=False)) as c:  # the API only
        location = h.submit(c, files).headers["location"]
        crashes = 0
        deadline = time.monotonic() + 120
        job = c.get(location).json()
        while job["status"] in ("queued", "running"):
            assert crashes <= 6, f"the job is still claimed after {crashes} crashed workers"
            assert time.monotonic() < deadline, "the job did not finish"
            worker = subprocess.Popen([sys.executable, str(CHILD)], env=env)
            try:
                h.wait_for(
                    lambda: worker.poll() is not None
                    or c.get(location).json()["status"] not in ("queued", "running"),
                    60,
                )
            finally:
                if worker.poll() is None:
                    worker.terminate()
                    worker.wait(30)
            if worker.returncode == 70:
                crashes += 1
            job = c.get(location).json()
        assert crashes == 3  # PALETTE_MAX_WORKER_CRASHES, default 3
        assert job["status"] == "succeeded", job
        assert job["progress"] == {"total": 3, "done": 2, "failed": 1, "skipped": 0}
        items = {i["name"]: i for i in c.get(location + "/results").json()["items"]}
    assert items["first.jpg"]["status"] == "succeeded"
    assert items["last.jpg"]["status"] == "succeeded"
    error = items["poison.jpg"]["error"]
    assert items["poison.jpg"]["status"] == "failed" and error["code"] == "internal_error"
    assert "stopped its worker 3 times" in error["detail"]


SLOW = b"TAKE-YOUR-TIME"


def test_an_image_longer_than_the_lease_keeps_its_lease_and_runs_once(
    tmp_path: Path, h: Any
) -> None:
    """The worker renews a running job's lease every third of it, so an image that takes
    several leases to decode is neither reaped nor claimed by another worker thread: it runs
    once and the job succeeds."""
    import threading

    import palette_native

    runs: list[bytes] = []
    lock = threading.Lock()

    def slow_extract(source: Any, **kwargs: Any) -> Any:
        data = _bytes_of(source)
        if SLOW in data:
            with lock:
                runs.append(data[-40:])
            time.sleep(6.5)  # over three leases
        return palette_native.extract(source, **kwargs)

    settings = Settings(data_dir=tmp_path / "data", lease_seconds=2.0, workers=2)
    files = [("slow.jpg", h.make_jpeg(5) + SLOW), ("quick.jpg", h.make_jpeg(6))]
    with TestClient(create_app(settings, extract=slow_extract)) as c:
        location = h.submit(c, files).headers["location"]
        h.wait_for(lambda: c.get(location).json()["status"] not in ("queued", "running"), 60)
        job = c.get(location).json()
        items = {i["name"]: i for i in c.get(location + "/results").json()["items"]}
    assert job["status"] == "succeeded", job
    assert {name: item["status"] for name, item in items.items()} == {
        "slow.jpg": "succeeded",
        "quick.jpg": "succeeded",
    }
    assert len(runs) == 1, f"the slow image ran {len(runs)} times"


def test_a_cancel_that_arrives_while_the_last_image_finishes_ends_the_job_canceled(
    tmp_path: Path, h: Any
) -> None:
    """The cancel lands while the job's only image is still being decoded (the decoder here does
    not poll for it), so the image finishes and completion is refused: the worker must take
    the refusal as the cancel and end the job ``canceled`` now, not hold it until its lease
    runs out."""
    import threading

    import palette_native

    started = threading.Event()

    def slow_extract(source: Any, should_cancel: Any = None, **kwargs: Any) -> Any:
        if SLOW in _bytes_of(source):
            started.set()
            time.sleep(1.5)
        return palette_native.extract(source, **kwargs)

    settings = Settings(data_dir=tmp_path / "data", lease_seconds=20.0, workers=1)
    with TestClient(create_app(settings, extract=slow_extract)) as c:
        location = h.submit(c, [("slow.jpg", h.make_jpeg(7) + SLOW)]).headers["location"]
        assert started.wait(30), "the image never started"
        assert c.post(location + "/cancel").status_code == 202
        h.wait_for(lambda: c.get(location).json()["status"] == "canceled", 8)


def _bytes_of(source: Any) -> bytes:
    """What the worker hands ``extract``: bytes, or the path of the stored upload."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    with open(source, "rb") as f:
        return f.read()

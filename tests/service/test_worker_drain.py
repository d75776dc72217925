"""The worker's ways out of a job other than finishing it: a drain lets the images already
running finish and keeps them, even when one of them was stopped (the next run does only the
images never finished); a cancel stops its own job and no other running beside it; a results
store that keeps failing leaves the job retried, never dropped, until it recovers."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any

import palette_native
import pytest
from palette_native import CanceledError
from starlette.testclient import TestClient

from service.app import create_app
from service.backends import open_backends
from service.jobs.blobs import LocalBlobStore
from service.settings import Settings


class Script:
    """``extract`` with a part for some images: ``held`` ones wait until ``release`` is set,
    ``stopped_by_drain`` stops (as the library does when told to cancel) once the pool
    drains; every other image runs at once. Records every image it is given, in order."""

    def __init__(
        self, names: dict[bytes, str], held: Collection[str] = (), stopped_by_drain: str = ""
    ) -> None:
        self.names = names
        self.held = held
        self.stopped_by_drain = stopped_by_drain
        self.release = threading.Event()
        self.draining: threading.Event | None = None
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, source: Any, *, should_cancel: Any = None, **kwargs: Any) -> Any:
        name = self.names[bytes(source)]
        with self.lock:
            self.calls.append(name)
        while name in self.held and not self.release.wait(0.01):
            if should_cancel is not None and should_cancel():
                raise CanceledError("stopped while held")
        while name == self.stopped_by_drain:
            if self.draining is not None and self.draining.wait(0.01):
                raise CanceledError("stopped by the drain")
        return palette_native.extract(source, should_cancel=should_cancel, **kwargs)


def test_a_drain_keeps_every_image_that_finishes_after_one_was_stopped(
    tmp_path: Path, h: Any
) -> None:
    images = {f"img{n}.jpg": h.make_jpeg(5100 + n) for n in range(6)}
    names = {data: name for name, data in images.items()}
    # Two images at a time: img1 and img2 run while img3 waits for a thread. One crashed claim
    # would give up the images in flight: a drain must not count as one.
    settings = Settings(
        data_dir=tmp_path, workers=2, drain_grace_seconds=30.0, max_worker_crashes=1
    )
    first = Script(names, held={"img1.jpg"}, stopped_by_drain="img2.jpg")
    with TestClient(create_app(settings, extract=first)) as c:
        pool = c.app.state.runtime.pool  # type: ignore[attr-defined]
        first.draining = pool.draining
        location = h.submit(c, [("six.zip", h.make_zip(images))]).headers["location"]
        h.wait_job(c, location, done=1)
        h.wait_for(lambda: first.calls[:3] == ["img0.jpg", "img1.jpg", "img2.jpg"])
        drain = threading.Thread(target=pool.drain, args=(30.0,))
        drain.start()
        # The drain stops img2; img3 then gets its thread and finishes; img1 finishes last.
        h.wait_for(lambda: "img3.jpg" in first.calls)
        first.release.set()
        drain.join(30.0)
        assert not drain.is_alive()
        job = c.get(location).json()
    assert job["status"] == "queued" and job["progress"]["done"] == 3, job
    assert first.calls == ["img0.jpg", "img1.jpg", "img2.jpg", "img3.jpg"]

    second = Script(names)
    with TestClient(create_app(settings, extract=second)) as c:
        job = h.wait_job(c, location)
        assert job["status"] == "succeeded" and job["progress"]["done"] == 6, job
        items = c.get(job["results_url"]).json()["items"]
    assert [i["name"] for i in items] == list(images)
    assert all(i["status"] == "succeeded" for i in items), items
    # Only the stopped image and the ones never started are computed again.
    assert sorted(second.calls) == ["img2.jpg", "img4.jpg", "img5.jpg"]


def test_a_cancel_stops_its_own_job_and_not_the_one_running_beside_it(
    tmp_path: Path, h: Any
) -> None:
    images = {
        f"{job}{n}.jpg": h.make_jpeg(5400 + 10 * ord(job) + n) for job in "ab" for n in range(2)
    }
    names = {data: name for name, data in images.items()}
    # Two job threads: each job has its first image held, so both are running at the cancel.
    script = Script(names, held={"a0.jpg", "b0.jpg"})
    settings = Settings(data_dir=tmp_path, workers=2)
    with TestClient(create_app(settings, extract=script)) as c:
        locations = {
            job: h.submit(
                c, [(f"{job}.zip", h.make_zip({n: d for n, d in images.items() if n[0] == job}))]
            ).headers["location"]
            for job in "ab"
        }
        h.wait_for(lambda: {"a0.jpg", "b0.jpg"} <= set(script.calls))
        canceled = c.post(locations["a"] + "/cancel")
        assert canceled.status_code == 202 and canceled.json()["cancel_requested"] is True
        job_a = h.wait_job(c, locations["a"], timeout=10)
        assert job_a["status"] == "canceled" and job_a["progress"]["done"] == 0, job_a
        script.release.set()
        job_b = h.wait_job(c, locations["b"])
        assert job_b["status"] == "succeeded" and job_b["progress"]["done"] == 2, job_b
        items = c.get(job_b["results_url"]).json()["items"]
    assert [(i["name"], i["status"]) for i in items] == [
        ("b0.jpg", "succeeded"), ("b1.jpg", "succeeded")
    ]
    # b's held image ran once, to the end: nothing of it was stopped and computed again.
    assert script.calls.count("b0.jpg") == 1


class FailingResults(LocalBlobStore):
    """Blobs on disk that refuse the first ``limit`` results documents."""

    def __init__(self, root: Path, limit: int) -> None:
        super().__init__(root)
        self.limit = limit
        self.refused = 0

    def create(self, key: str) -> Any:
        if key.startswith("results/") and self.refused < self.limit:
            self.refused += 1
            raise OSError("the results store is down")
        return super().create(key)


def with_blobs(blobs: LocalBlobStore) -> Any:
    def backends(settings: Settings, clock: Any) -> Any:
        return dataclasses.replace(open_backends(settings, clock), blobs=blobs)

    return backends


@pytest.mark.parametrize("refusals", [12, 13])
def test_a_job_whose_results_cannot_be_written_is_retried_until_the_store_recovers(
    tmp_path: Path, h: Any, refusals: int
) -> None:
    # Past the attempt cap (5 claims without progress) the job keeps being retried, giving up
    # each time without being able to record it; the first write that works records the
    # failure. Two outage lengths, so that a claim count that wobbled between giving up and
    # trying again would end one of them succeeded.
    blobs = FailingResults(tmp_path / "blobs", limit=refusals)
    # One job thread: if it died on the way, nothing else would ever pick the job up.
    settings = Settings(data_dir=tmp_path, workers=1)
    images = {f"img{n}.jpg": h.make_jpeg(5200 + n) for n in range(3)}
    with TestClient(create_app(settings, backends=with_blobs(blobs))) as c:
        location = h.submit(c, [("three.zip", h.make_zip(images))]).headers["location"]
        job = h.wait_job(c, location)
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "internal_error", job
        assert job["error"]["detail"].startswith("processing failed"), job
        assert job["progress"]["done"] == 3  # what was computed before the outage is kept
        items = c.get(job["results_url"]).json()["items"]
    assert [i["status"] for i in items] == ["succeeded"] * 3
    assert blobs.refused == refusals


@pytest.mark.parametrize(("refusals", "status"), [(5, "succeeded"), (6, "failed")])
def test_a_job_gets_five_claims_without_progress_before_it_is_given_up(
    tmp_path: Path, h: Any, refusals: int, status: str
) -> None:
    # The first claim computes every image and cannot write the results; the next claims find
    # nothing left to compute (claims without progress). Four of them are under the cap of
    # five, and the claim after them writes the results; a fifth gives the job up.
    blobs = FailingResults(tmp_path / "blobs", limit=refusals)
    settings = Settings(data_dir=tmp_path, workers=1)
    images = {f"img{n}.jpg": h.make_jpeg(5300 + n) for n in range(2)}
    with TestClient(create_app(settings, backends=with_blobs(blobs))) as c:
        location = h.submit(c, [("two.zip", h.make_zip(images))]).headers["location"]
        job = h.wait_job(c, location)
        assert job["status"] == status and job["progress"]["done"] == 2, job
    assert blobs.refused == refusals
    if status == "failed":
        assert job["error"]["detail"] == "processing failed 5 times (OSError)", job

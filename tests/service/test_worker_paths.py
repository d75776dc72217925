"""The in-process worker's paths through one job, each seen from outside (job states, item
results, events, how often an image runs): a job whose claims all ended without progress is
failed at once; the per-job time limit, counted from the job's start, fails a job between
images and keeps only the images recorded before it ran out; images in flight during a crashed
claim run on their own; ``job.progress`` events come at most once a second; every recorded
image extends the lease; jobs with ``analyze`` keep each image's analysis; a chunk with nothing
in the first input still runs its own images."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import palette_native
import redis
from conformancetools import SERVERS
from palette_native import CanceledError
from starlette.testclient import TestClient

from service.app import create_app
from service.backends import open_backends
from service.runtime import Runtime
from service.security.settings import SecuritySettings
from service.settings import Settings


def _names(images: dict[str, bytes]) -> dict[bytes, str]:
    return {data: name for name, data in images.items()}


def test_a_job_whose_claims_all_ended_without_progress_is_failed_without_running(
    tmp_path: Path, h: Any
) -> None:
    """Five claims (the pool's limit) that each crashed: the next claim gives the job up."""
    settings = Settings(data_dir=tmp_path, lease_seconds=2.0, workers=1)
    with TestClient(create_app(settings, run_workers=False)) as c:
        location = h.submit(c, [("one.jpg", h.make_jpeg(8100))]).headers["location"]
    b = open_backends(settings)
    try:
        for _ in range(5):
            lease = b.jobs.claim("a worker that crashed", 2.0)
            assert lease is not None and location.endswith(lease.job_id)
            assert b.jobs.release(lease, crashed=True)
    finally:
        b.close()
    calls: list[int] = []

    def extract(source: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return palette_native.extract(source, **kwargs)

    with TestClient(create_app(settings, extract=extract)) as c:
        job = h.wait_job(c, location)
    assert job["status"] == "failed", job
    assert job["error"] == {
        "code": "internal_error",
        "detail": "processing failed 5 times (its worker stopped)",
        "attempts": 5,
    }
    assert calls == []


class UntilStopped:
    """``extract`` that holds each image after the first ``free`` until the worker says stop,
    then returns its palette anyway (as a decoder that does not poll would)."""

    def __init__(self, free: int = 0) -> None:
        self.calls = 0
        self.free = free

    def __call__(self, source: Any, *, should_cancel: Any = None, **kwargs: Any) -> Any:
        self.calls += 1
        deadline = time.monotonic() + 30
        while self.calls > self.free and time.monotonic() < deadline and not should_cancel():
            time.sleep(0.01)
        return palette_native.extract(source, **kwargs)


def test_a_job_out_of_time_between_images_fails_with_only_the_images_recorded_before(
    tmp_path: Path, h: Any
) -> None:
    """One image at a time: img0 finishes at once, img1 runs until the limit and finishes
    after it (its decoder does not stop when asked), so it is thrown away, as is img2 if it
    started; the job fails ``job_timeout`` with img0 alone recorded."""
    security = SecuritySettings(job_timeout_seconds=2.0)
    settings = Settings(data_dir=tmp_path, workers=1, lease_seconds=5.0, security=security)
    images = {f"img{n}.jpg": h.make_jpeg(8200 + n) for n in range(3)}
    extract = UntilStopped(free=1)
    with TestClient(create_app(settings, extract=extract)) as c:
        location = h.submit(c, [("three.zip", h.make_zip(images))]).headers["location"]
        job = h.wait_job(c, location)
        items = c.get(location + "/results").json()["items"]
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "job_timeout" and job["error"]["limit_seconds"] == 2.0
    assert job["progress"]["done"] == 1, job
    assert [(i["name"], i["status"]) for i in items] == [("img0.jpg", "succeeded")]
    assert extract.calls >= 2  # img1 ran into the limit


def test_the_time_limit_counts_from_the_jobs_start_not_a_second_earlier(
    tmp_path: Path, h: Any
) -> None:
    """A 3 s limit and an image of 2.1 s (stopped if the worker asks): it finishes. The 0.9 s
    left covers the work around the image on a loaded machine; a limit counted a second short
    would stop it."""
    security = SecuritySettings(job_timeout_seconds=3.0)
    settings = Settings(data_dir=tmp_path, workers=1, lease_seconds=5.0, security=security)
    stopped: list[bool] = []

    def extract(source: Any, *, should_cancel: Any = None, **kwargs: Any) -> Any:
        until = time.monotonic() + 2.1
        while time.monotonic() < until:
            if should_cancel():
                stopped.append(True)
                raise CanceledError("stopped")
            time.sleep(0.01)
        return palette_native.extract(source, **kwargs)

    with TestClient(create_app(settings, extract=extract)) as c:
        location = h.submit(c, [("slow.jpg", h.make_jpeg(8300))]).headers["location"]
        job = h.wait_job(c, location)
    assert job["status"] == "succeeded", job
    assert stopped == []


class Overlaps:
    """``extract`` that holds each image for its time (``hold``, by name) and records which
    images were running at the same moment."""

    def __init__(self, names: dict[bytes, str], hold: dict[str, float]) -> None:
        self.names = names
        self.hold = hold
        self.running: set[str] = set()
        self.pairs: set[frozenset[str]] = set()
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, source: Any, **kwargs: Any) -> Any:
        name = self.names[bytes(source)]
        with self.lock:
            self.calls.append(name)
            self.pairs.update(frozenset((name, other)) for other in self.running)
            self.running.add(name)
        time.sleep(self.hold.get(name, 0.1))
        with self.lock:
            self.running.discard(name)
        return palette_native.extract(source, **kwargs)


def test_an_image_in_flight_during_a_crashed_claim_runs_on_its_own(
    tmp_path: Path, h: Any
) -> None:
    settings = Settings(data_dir=tmp_path, workers=2, lease_seconds=5.0)
    order = ["a.jpg", "b.jpg", "suspect.jpg", "c.jpg", "d.jpg"]
    images = {name: h.make_jpeg(8400 + n) for n, name in enumerate(order)}
    with TestClient(create_app(settings, run_workers=False)) as c:
        location = h.submit(c, [("five.zip", h.make_zip(images))]).headers["location"]
    b = open_backends(settings)
    try:
        lease = b.jobs.claim("a worker that crashed", 5.0)
        assert lease is not None and location.endswith(lease.job_id)
        assert b.jobs.start_items(lease, {(0, 2): "suspect.jpg"})
        assert b.jobs.release(lease, crashed=True)
    finally:
        b.close()
    # b.jpg is still running when a.jpg is done, and suspect.jpg runs long enough that the
    # next image would start beside it if the pool did not wait.
    extract = Overlaps(_names(images), {"a.jpg": 0.5, "b.jpg": 1.0, "suspect.jpg": 0.6})
    with TestClient(create_app(settings, extract=extract)) as c:
        job = h.wait_job(c, location)
    assert job["status"] == "succeeded" and job["progress"]["done"] == 5, job
    assert sorted(extract.calls) == sorted(order)
    assert frozenset(("a.jpg", "b.jpg")) in extract.pairs  # two at a time otherwise
    assert not [p for p in extract.pairs if "suspect.jpg" in p], extract.pairs


def test_progress_events_come_at_most_once_a_second(tmp_path: Path, h: Any) -> None:
    """Images recorded at about 0 s, 1.5 s, 3 s, then two more at once: the first three each
    notify (a second or more apart), the last two do not."""
    settings = Settings(data_dir=tmp_path, workers=1, lease_seconds=10.0)
    order = ["q0.jpg", "s1.jpg", "s2.jpg", "q3.jpg", "q4.jpg"]
    images = {name: h.make_jpeg(8500 + n) for n, name in enumerate(order)}
    hold = {"q0.jpg": 0.0, "s1.jpg": 1.5, "s2.jpg": 1.5, "q3.jpg": 0.0, "q4.jpg": 0.0}
    extract = Overlaps(_names(images), hold)
    with TestClient(create_app(settings, extract=extract)) as c:
        location = h.submit(c, [("five.zip", h.make_zip(images))]).headers["location"]
        job = h.wait_job(c, location)
    assert job["status"] == "succeeded" and job["progress"]["done"] == 5, job
    b = open_backends(settings)
    try:
        events = b.events.read("test_worker_paths", 1000)
    finally:
        b.close()
    done = [
        e.job["progress"]["done"]
        for e in events
        if e.type == "job.progress"
        and location.endswith(e.job["id"])
        and e.job["progress"]["done"]
    ]
    assert done == [1, 2, 3], [(e.type, e.job.get("progress")) for e in events]


def test_each_recorded_image_extends_the_lease(tmp_path: Path, h: Any) -> None:
    """Images recorded every 0.2 s on a 1 s lease: the monitor has nothing to renew (the
    worker just moved forward), so only the progress writes keep the lease; it never runs out,
    and no image runs twice."""
    settings = Settings(data_dir=tmp_path, workers=1, lease_seconds=1.0)
    images = {f"img{n:02d}.jpg": h.make_jpeg(8600 + n) for n in range(15)}
    extract = Overlaps(_names(images), {name: 0.2 for name in images})
    with TestClient(create_app(settings, extract=extract)) as c:
        location = h.submit(c, [("many.zip", h.make_zip(images))]).headers["location"]
        job = h.wait_job(c, location)
    assert job["status"] == "succeeded" and job["progress"]["done"] == 15, job
    assert sorted(extract.calls) == sorted(images), extract.calls


def test_a_job_with_analyze_keeps_each_images_analysis(tmp_path: Path, h: Any) -> None:
    settings = Settings(data_dir=tmp_path, workers=1, lease_seconds=5.0)
    images = {"one.jpg": h.make_jpeg(8700), "two.jpg": h.make_jpeg(8701)}
    with TestClient(create_app(settings)) as c:
        r = h.submit(c, [("two.zip", h.make_zip(images))], analyze="true", colors="4")
        assert r.status_code == 202, r.text
        job = h.wait_job(c, r.headers["location"], 60)
        items = c.get(r.headers["location"] + "/results").json()["items"]
    assert job["status"] == "succeeded", job
    assert [i["name"] for i in items] == ["one.jpg", "two.jpg"]
    for item in items:
        assert item["status"] == "succeeded" and "analysis" not in item["palette"]
        assert 0 < item["analysis"]["quality"]["score"] <= 100
        assert len(item["analysis"]["subject_palette"]["colors"]) == 4


def test_a_chunk_that_starts_past_the_first_input_runs_its_own_images(
    tmp_path: Path, h: Any
) -> None:
    """Two archives of two images, chunks of two on the Redis engine: the second chunk has
    nothing in the first archive and must still run the second archive's images."""
    server = SERVERS.get("redis")
    redis.Redis(port=server.port).flushall()
    base = Settings(data_dir=tmp_path, lease_seconds=60.0, sweep_interval_seconds=3600)
    settings = dataclasses.replace(
        base,
        store=server.url,
        url_signing_keys="k1:" + "a" * 43,
        webhooks=dataclasses.replace(base.webhooks, callback_secret="whsec_" + "b" * 32),
        chunk_images=2,
        workers=1,
    )
    first = {"a0.jpg": h.make_jpeg(8800), "a1.jpg": h.make_jpeg(8801)}
    second = {"b0.jpg": h.make_jpeg(8802), "b1.jpg": h.make_jpeg(8803)}
    extract = Overlaps(_names({**first, **second}), {})
    with TestClient(create_app(settings, extract=extract)) as c:
        files = [("a.zip", h.make_zip(first)), ("b.zip", h.make_zip(second))]
        r = h.submit(c, files)
        assert r.status_code == 202, r.text
        job = h.wait_job(c, r.headers["location"], timeout=20.0)
        items = c.get(r.headers["location"] + "/results").json()["items"]
    assert job["status"] == "succeeded" and job["progress"]["done"] == 4, job
    assert [(i["name"], i["status"]) for i in items] == [
        (name, "succeeded") for name in [*first, *second]
    ]
    assert sorted(extract.calls) == sorted([*first, *second])


def test_the_pools_threads_are_named_and_never_hold_the_process_open(
    tmp_path: Path, h: Any
) -> None:
    """A thread dump (py-spy, faulthandler) tells the pool's threads apart by name, and none of
    them keeps the interpreter alive should the process end without a drain."""
    seen: list[threading.Thread] = []

    def extract(source: Any, **kwargs: Any) -> Any:
        seen.append(threading.current_thread())
        return palette_native.extract(source, **kwargs)

    settings = Settings(data_dir=tmp_path, workers=2)
    runtime = Runtime(settings)
    runtime.start()  # from this thread, which is not a daemon, as `palette serve` starts it
    try:
        pool = {t.name: t for t in threading.enumerate() if t.name.startswith("palette-")}
    finally:
        runtime.stop()
    assert {"palette-worker-0", "palette-worker-1", "palette-monitor"} <= set(pool)
    assert all(t.daemon for t in pool.values())
    with TestClient(create_app(settings, extract=extract)) as c:
        job = h.wait_job(c, h.submit(c, [("a.jpg", h.make_jpeg(8200))]).headers["location"])
    assert job["status"] == "succeeded", job
    (decoder,) = seen
    assert decoder.name.startswith("palette-cpu") and decoder.daemon


def test_workers_keep_taking_jobs_after_a_failed_claim_and_after_idling(
    tmp_path: Path, h: Any
) -> None:
    """A claim that fails (the store briefly unreachable) and claims that find nothing (an idle
    spell longer than a claim's 0.5 s wait) leave the one worker thread taking jobs; idle, it
    waits in its claims instead of spinning."""
    failures = [RuntimeError("the store is unreachable")]
    claims: list[float] = []

    def backends(settings: Settings, clock: Any) -> Any:
        opened = open_backends(settings, clock)
        claim = opened.jobs.claim

        def failing_once(*args: Any, **kwargs: Any) -> Any:
            claims.append(time.monotonic())
            if failures:
                raise failures.pop()
            return claim(*args, **kwargs)

        opened.jobs.claim = failing_once  # type: ignore[method-assign]
        return opened

    settings = Settings(data_dir=tmp_path, workers=1)
    with TestClient(create_app(settings, backends=backends)) as c:
        h.wait_for(lambda: not failures)
        idle_from = len(claims)
        time.sleep(1.2)  # idle: two claims' waits and more, with nothing queued
        assert 1 <= len(claims) - idle_from <= 6, "an idle worker should wait in its claims"
        job = h.wait_job(c, h.submit(c, [("a.jpg", h.make_jpeg(8300))]).headers["location"], 20)
    assert job["status"] == "succeeded", job

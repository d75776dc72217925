"""A job larger than one chunk on the Redis engine, run by this process's worker pool (two job
threads, so two chunks run at once): every image is processed once, the results come in input
order, and the job is assembled once, by whoever finishes the last chunk."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import palette_native
import redis
from conformancetools import SERVERS
from starlette.testclient import TestClient

from service.app import create_app
from service.settings import Settings


class Counting:
    """``extract`` that counts the images it is given, by their bytes."""

    def __init__(self) -> None:
        self.calls: Counter[bytes] = Counter()
        self.lock = threading.Lock()

    def __call__(self, source: Any, **kwargs: Any) -> Any:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        with self.lock:
            self.calls[data] += 1
        return palette_native.extract(data, **kwargs)


def redis_settings(tmp_path: Path, **changes: Any) -> Settings:
    server = SERVERS.get("redis")
    redis.Redis(port=server.port).flushall()
    # Leases far longer than the test waits: a chunk or an assembly that this process drops is
    # not rescued by another claim after its lease runs out, so dropping one fails the test.
    base = Settings(data_dir=tmp_path, lease_seconds=60.0, sweep_interval_seconds=3600)
    return dataclasses.replace(
        base,
        store=server.url,
        url_signing_keys="k1:" + "a" * 43,
        webhooks=dataclasses.replace(base.webhooks, callback_secret="whsec_" + "b" * 32),
        **changes,
    )


def test_a_job_of_several_chunks_runs_each_image_once_in_input_order(
    tmp_path: Path, h: Any
) -> None:
    settings = redis_settings(tmp_path, chunk_images=2, workers=2)
    counting = Counting()
    images = {f"img{n}.jpg": h.make_jpeg(4200 + n) for n in range(7)}  # chunks of 2, 2, 2, 1
    with TestClient(create_app(settings, extract=counting)) as c:
        response = h.submit(c, [("seven.zip", h.make_zip(images)), ("extra.jpg", h.make_jpeg(99))])
        assert response.status_code == 202, response.text
        job = h.wait_job(c, response.headers["location"], timeout=20.0)
        assert job["status"] == "succeeded", job
        assert job["progress"]["done"] == 8
        items = c.get(job["results_url"]).json()["items"]
        # Nothing is left held: every chunk and the assembly are let go (just after the job
        # is seen finished, hence the bounded wait).
        h.wait_for(lambda: "\npalette_worker_tasks_running 0.0\n" in c.get("/metrics").text, 10)
    assert [i["name"] for i in items] == [*images, "extra.jpg"]
    assert all(i["status"] == "succeeded" for i in items)
    # Every image once: no chunk ran twice, none was skipped.
    assert sorted(counting.calls.values()) == [1] * 8
    assert set(counting.calls) == {*images.values(), h.make_jpeg(99)}


def test_a_worker_thread_loads_each_archive_once_for_all_of_its_chunks(
    tmp_path: Path, h: Any, monkeypatch: Any
) -> None:
    from palette_native import archive

    opened: list[int] = []
    closed: list[int] = []

    class CountingReader(archive.ArchiveReader):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            opened.append(1)

        def close(self) -> None:
            closed.append(1)
            super().close()

    monkeypatch.setattr(archive, "ArchiveReader", CountingReader)
    settings = redis_settings(tmp_path, chunk_images=2, workers=1)
    first = {f"a{n}.jpg": h.make_jpeg(4300 + n) for n in range(7)}  # 4 chunks
    second = {f"b{n}.jpg": h.make_jpeg(4400 + n) for n in range(3)}  # 2 chunks
    with TestClient(create_app(settings)) as c:
        response = h.submit(c, [("a.zip", h.make_zip(first)), ("b.zip", h.make_zip(second))])
        assert response.status_code == 202, response.text
        job = h.wait_job(c, response.headers["location"], timeout=30.0)
        assert job["status"] == "succeeded" and job["progress"]["done"] == 10, job
        items = c.get(job["results_url"]).json()["items"]
        assert [i["name"] for i in items] == [*first, *second]
        # One reader per archive for its six chunks; the idle worker lets the last one go.
        assert len(opened) == 2
        h.wait_for(lambda: len(closed) == 2, 10)

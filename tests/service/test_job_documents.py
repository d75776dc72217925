"""The results document of a job, worked by the in-process app's own worker threads (which the
mutation tests can reach, unlike a server subprocess): item order, input names, skipped
entries, analyses read from encrypted streams, and file handles given back."""

from __future__ import annotations

import base64
import os
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import palette_native
import pytest
from palette_native import CanceledError
from starlette.testclient import TestClient

from palette_native.archive import SKIP_NOT_IMAGE
from service.app import create_app
from service.backends import open_backends
from service.jobs.interfaces import ItemResult
from service.security.settings import SecuritySettings
from service.settings import Settings

KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture(params=["plain", "encrypted"])
def app_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    security = SecuritySettings(
        encryption_keys=f"k1:{KEY}" if request.param == "encrypted" else ""
    )
    settings = Settings(
        data_dir=tmp_path / "data", sweep_interval_seconds=3600, security=security
    )
    with TestClient(create_app(settings)) as c:
        yield c


def test_the_document_lists_every_item_in_order_with_its_input(
    app_client: TestClient, h: Any
) -> None:
    archive = h.make_zip(
        {"inside.png": h.make_png(2), "notes.txt": b"not an image", "deeper/": b""}
    )
    files = [("photo.jpg", h.make_jpeg(1)), ("set.zip", archive), ("last.png", h.make_png(3))]
    r = h.submit(app_client, files, analyze="true", colors="3")
    assert r.status_code == 202, r.text
    job = h.wait_job(app_client, r.headers["location"], 60)
    assert job["status"] == "succeeded", job
    document = app_client.get(r.headers["location"] + "/results").json()
    items = document["items"]
    assert [(i["index"], i["input"], i["name"], i["status"]) for i in items] == [
        (0, "photo.jpg", "photo.jpg", "succeeded"),
        (1, "set.zip", "inside.png", "succeeded"),
        (2, "set.zip", "notes.txt", "skipped"),
        (3, "last.png", "last.png", "succeeded"),
    ]
    assert items[2]["error"] == {"code": "skipped", "detail": SKIP_NOT_IMAGE}
    assert items[2]["palette"] is None and "analysis" not in items[2]
    for item in (items[0], items[1], items[3]):
        # Each image's analysis, read after its palette (from a decrypting stream when
        # encrypted, rewound for the second read).
        assert len(item["palette"]["colors"]) == 3 and item["error"] is None
        assert (item["analysis"]["width"], item["analysis"]["height"]) in ((96, 64), (40, 30))
    assert document["count"] == 4


def test_a_job_gives_back_every_file_it_opened(app_client: TestClient, h: Any) -> None:
    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    warm = h.submit(app_client, [("warm.png", h.make_png(0))])
    h.wait_job(app_client, warm.headers["location"], 60)
    before = open_files()
    files = [(f"img{n}.png", h.make_png(n)) for n in range(24)]
    r = h.submit(app_client, files)
    assert h.wait_job(app_client, r.headers["location"], 60)["status"] == "succeeded"
    assert open_files() <= before + 4  # 24 left open would show


def _raises(source: Any, **kwargs: Any) -> Any:
    raise RuntimeError("a decoder bug, not the image's fault")


def test_an_unexpected_error_fails_the_image_with_a_plain_detail(tmp_path: Path, h: Any) -> None:
    settings = Settings(data_dir=tmp_path / "data", sweep_interval_seconds=3600)
    with TestClient(create_app(settings, extract=_raises)) as c:
        r = h.submit(c, [("a.png", h.make_png(1))])
        assert h.wait_job(c, r.headers["location"], 60)["status"] == "succeeded"
        (item,) = c.get(r.headers["location"] + "/results").json()["items"]
    assert item["status"] == "failed" and item["palette"] is None
    assert item["error"] == {"code": "internal_error", "detail": "RuntimeError while decoding"}


class FirstThenHold:
    """``extract`` that does the first image at once and holds the rest until told to stop."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, source: Any, *, should_cancel: Any = None, **kwargs: Any) -> Any:
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if not first:
            deadline = time.monotonic() + 30
            while not (should_cancel is not None and should_cancel()):
                assert time.monotonic() < deadline, "the worker never stopped the image"
                time.sleep(0.01)
            raise CanceledError("stopped while held")
        return palette_native.extract(source, **kwargs)


def test_a_job_over_its_time_limit_keeps_what_it_did_and_says_why(
    tmp_path: Path, h: Any
) -> None:
    security = SecuritySettings(job_timeout_seconds=1.0)
    settings = Settings(
        data_dir=tmp_path / "data", workers=1, sweep_interval_seconds=3600, security=security
    )
    with TestClient(create_app(settings, extract=FirstThenHold())) as c:
        files = [(f"img{n}.png", h.make_png(n)) for n in range(3)]
        r = h.submit(c, files)
        job = h.wait_job(c, r.headers["location"], 60)
        assert job["status"] == "failed" and job["error"]["code"] == "job_timeout"
        document = c.get(r.headers["location"] + "/results").json()
        metrics = c.get("/metrics").text
    assert document["error"] == job["error"]
    assert [i["status"] for i in document["items"]] == ["succeeded"]
    assert 'palette_jobs_finished_total{status="failed"} 1.0' in metrics
    assert 'palette_jobs_finished_total{status="succeeded"}' not in metrics


class Calls:
    """``extract`` that counts calls by the size of the image it is given."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, source: Any, **kwargs: Any) -> Any:
        size = os.path.getsize(source) if isinstance(source, str) else len(source)
        with self.lock:
            self.sizes.append(size)
        return palette_native.extract(source, **kwargs)


def test_a_resumed_job_skips_the_images_it_recorded_and_records_each_once(
    tmp_path: Path, h: Any
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", sweep_interval_seconds=3600, lease_seconds=5.0
    )
    first, second = h.make_png(1, size=(40, 30)), h.make_png(2, size=(80, 60))
    with TestClient(create_app(settings, run_workers=False)) as c:
        location = h.submit(c, [("first.png", first), ("second.png", second)]).headers["location"]
    job_id = location.rsplit("/", 1)[1]
    b = open_backends(settings)
    try:  # a worker that recorded the first image, then died
        lease = b.jobs.claim("a worker that died", 5.0)
        assert lease is not None and lease.job_id == job_id
        done = ItemResult(0, 0, "first.png", "succeeded", palette={"colors": []})
        assert b.jobs.progress(lease, [done], None)
        assert b.jobs.release(lease, crashed=True)
    finally:
        b.close()
    calls = Calls()
    with TestClient(create_app(settings, extract=calls)) as c:
        assert h.wait_job(c, location)["status"] == "succeeded"
    assert calls.sizes == [len(second)]  # the first image was not done again
    b = open_backends(settings)
    try:
        assert b.jobs.done_items(job_id) == {(0, 0), (1, 0)}  # one entry per plain image
    finally:
        b.close()


def test_an_archive_that_fails_part_way_keeps_the_images_done_before(
    tmp_path: Path, h: Any
) -> None:
    settings = Settings(data_dir=tmp_path / "data", sweep_interval_seconds=3600)
    bomb = b"\x89PNG\r\n\x1a\n" + bytes(4 * 2**20)  # 4 MiB of zeros: over the 100:1 ratio
    archive = h.make_zip(
        {"fine.png": h.make_png(5), "bomb.png": bomb}, compression=zipfile.ZIP_DEFLATED
    )
    with TestClient(create_app(settings)) as c:
        r = h.submit(c, [("set.zip", archive)])
        job = h.wait_job(c, r.headers["location"], 60)
        document = c.get(r.headers["location"] + "/results").json()
    assert job["status"] == "failed" and job["error"]["code"] == "archive_ratio_exceeded", job
    assert job["progress"]["done"] == 1
    assert [(i["name"], i["status"]) for i in document["items"]] == [("fine.png", "succeeded")]

"""The results document of a job, worked by the in-process app's own worker threads (which the
mutation tests can reach, unlike a server subprocess): item order, input names, skipped
entries, analyses read from encrypted streams, and file handles given back."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from palette_native.archive import SKIP_NOT_IMAGE
from service.app import create_app
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

"""Admission of new jobs, in-process: the per-tenant and global queued-image limits, the
active-jobs quota, the drain refusal, the images-per-job limit, a ZIP whose directory is refused,
and what a ZIP's stored input records (Redis). Boundaries are checked exactly at each limit."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from conformancetools import SERVERS
from starlette.testclient import TestClient

from service.app import create_app
from service.backends import open_backends
from service.security.settings import SecuritySettings
from service.settings import Settings

KEYS = {"key-a": "tenant-a", "key-b": "tenant-b"}
A = {"Authorization": "Bearer key-a"}
B = {"Authorization": "Bearer key-b"}


def settings_for(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        api_keys=dict(KEYS),
        retry_after_seconds=7,
        sweep_interval_seconds=3600,
        **changes,
    )


@contextmanager
def queued_client(settings: Settings) -> Iterator[TestClient]:
    """No workers: every accepted job stays queued, so its images count against the limits."""
    with TestClient(create_app(settings, run_workers=False)) as c:
        yield c


def images(h: Any, n: int, seed: int) -> list[tuple[str, bytes]]:
    return [(f"img{seed + i}.jpg", h.make_jpeg(seed + i)) for i in range(n)]


def accepted(r: Any) -> str:
    assert r.status_code == 202, r.text
    location: str = r.headers["location"]
    return location


def test_a_tenant_past_its_queued_images_gets_429_with_the_counts(tmp_path: Path, h: Any) -> None:
    with queued_client(settings_for(tmp_path, tenant_max_queued_images=3)) as c:
        accepted(h.submit(c, images(h, 2, 10), headers=A))
        # 2 queued + 2 more is past 3: refused at submit, with what was being added.
        body = h.problem(h.submit(c, images(h, 2, 20), headers=A), 429, "tenant_queue_full")
        assert body["limit_images"] == 3
        assert body["queued_images"] == 2
        assert body["adding_images"] == 2
        assert body["detail"] == (
            "Your unfinished jobs hold 2 images; the limit is 3. Retry when some have finished."
        )
        r = h.submit(c, images(h, 2, 20), headers=A)
        assert r.status_code == 429 and r.headers["retry-after"] == "7"
        # 2 + 1 reaches the limit exactly: accepted.
        accepted(h.submit(c, images(h, 1, 30), headers=A))
        # At the limit: refused before the body is read (nothing being added yet).
        r = h.submit(c, images(h, 1, 40), headers=A)
        body = h.problem(r, 429, "tenant_queue_full")
        assert r.headers["retry-after"] == "7"
        assert (body["limit_images"], body["queued_images"], body["adding_images"]) == (3, 3, 0)
        # Another tenant is not held back by this one's queue.
        accepted(h.submit(c, images(h, 3, 50), headers=B))
        assert [j["status"] for j in c.get("/v1/jobs", headers=A).json()["jobs"]] == ["queued"] * 2


def test_everyone_past_the_global_queued_images_gets_503(tmp_path: Path, h: Any) -> None:
    detail = "The service has too much queued work; retry later."
    with queued_client(settings_for(tmp_path, max_queued_images=3)) as c:
        accepted(h.submit(c, images(h, 2, 10), headers=A))
        # Tenant b has nothing queued, but 2 + 2 is past the global 3: refused at submit.
        r = h.submit(c, images(h, 2, 20), headers=B)
        body = h.problem(r, 503, "overloaded")
        assert body["detail"] == detail and r.headers["retry-after"] == "7"
        # 2 + 1 reaches the limit exactly: accepted.
        accepted(h.submit(c, images(h, 1, 30), headers=B))
        # At the limit: refused before the body is read, for every tenant.
        for headers in (A, B):
            r = h.submit(c, images(h, 1, 40), headers=headers)
            body = h.problem(r, 503, "overloaded")
            assert body["detail"] == detail and r.headers["retry-after"] == "7"
        # Even a job that adds no images (a ZIP holding only a folder) is refused at the limit.
        empty = h.make_zip({"dir/": b""})
        h.problem(h.submit(c, [("empty.zip", empty)], headers=B), 503, "overloaded")


def test_the_tenant_limit_is_checked_before_the_global_one(tmp_path: Path, h: Any) -> None:
    settings = settings_for(tmp_path, tenant_max_queued_images=2, max_queued_images=2)
    with queued_client(settings) as c:
        accepted(h.submit(c, images(h, 2, 10), headers=A))
        h.problem(h.submit(c, images(h, 1, 20), headers=A), 429, "tenant_queue_full")
        h.problem(h.submit(c, images(h, 1, 20), headers=B), 503, "overloaded")


def test_without_queue_limits_the_backlog_is_not_limited(tmp_path: Path, h: Any) -> None:
    with queued_client(settings_for(tmp_path)) as c:
        for seed in (10, 20, 30):
            accepted(h.submit(c, images(h, 3, seed), headers=A))
        # A ZIP holding only a folder is a job of no images.
        accepted(h.submit(c, [("empty.zip", h.make_zip({"dir/": b""}))], headers=A))


def test_a_tenant_at_its_active_jobs_quota_gets_429(tmp_path: Path, h: Any) -> None:
    security = SecuritySettings(max_active_jobs_per_tenant=2)
    with queued_client(settings_for(tmp_path, security=security)) as c:
        accepted(h.submit(c, images(h, 1, 10), headers=A))
        accepted(h.submit(c, images(h, 1, 20), headers=A))  # 1 active: under the quota
        r = h.submit(c, images(h, 1, 30), headers=A)
        body = h.problem(r, 429, "too_many_active_jobs")
        assert r.headers["retry-after"] == "7"
        assert body["limit_active_jobs"] == 2 and body["actual_active_jobs"] == 2
        assert body["detail"] == (
            "The tenant has 2 jobs queued or running; the limit is 2. Wait for some to finish."
        )
        accepted(h.submit(c, images(h, 1, 40), headers=B))


def test_a_draining_server_refuses_new_jobs_with_503(tmp_path: Path, h: Any) -> None:
    with queued_client(settings_for(tmp_path)) as c:
        c.app.state.runtime.draining.set()  # type: ignore[attr-defined]
        r = h.submit(c, images(h, 1, 10), headers=A)
        body = h.problem(r, 503, "draining")
        assert body["detail"] == "The server is shutting down; retry on another instance."
        assert r.headers["retry-after"] == "5"


def test_a_request_without_file_parts_is_refused(tmp_path: Path, h: Any) -> None:
    with queued_client(settings_for(tmp_path)) as c:
        form = (
            b"--b0\r\nContent-Disposition: form-data; name=\"colors\"\r\n\r\n5\r\n--b0--\r\n"
        )
        headers = {**A, "content-type": "multipart/form-data; boundary=b0"}
        r = c.post("/v1/jobs", content=form, headers=headers)
        body = h.problem(r, 400, "no_files")
        assert body["detail"] == "Send one or more 'file' parts (images or ZIPs)."


def test_the_images_per_job_limit_counts_zip_entries(tmp_path: Path, h: Any) -> None:
    with queued_client(settings_for(tmp_path, max_images_per_job=3)) as c:
        three = h.make_zip({f"i{n}.jpg": h.make_jpeg(60 + n) for n in range(3)})
        accepted(h.submit(c, [("three.zip", three)], headers=A))
        four = h.make_zip({f"i{n}.jpg": h.make_jpeg(60 + n) for n in range(4)})
        body = h.problem(h.submit(c, [("four.zip", four)], headers=A), 422, "too_many_images")
        assert body["limit_images"] == 3 and body["actual_images"] == 4


def test_a_refused_zip_directory_names_its_part(tmp_path: Path, h: Any) -> None:
    with queued_client(settings_for(tmp_path, zip_max_entries=2)) as c:
        big = h.make_zip({f"i{n}.jpg": h.make_jpeg(70 + n) for n in range(3)})
        r = h.submit(c, [("ok.jpg", h.make_jpeg(1)), ("big.zip", big)], headers=A)
        assert r.status_code >= 400, r.text
        body = r.json()
        assert body["part"] == "big.zip"
        assert body["detail"].startswith("'big.zip': ")


def test_a_zip_with_a_folder_counts_only_its_files(tmp_path: Path, h: Any) -> None:
    with queued_client(settings_for(tmp_path)) as c:
        archive = h.make_zip({"dir/": b"", "dir/a.jpg": h.make_jpeg(1), "b.jpg": h.make_jpeg(2)})
        job = c.get(accepted(h.submit(c, [("f.zip", archive)], headers=A)), headers=A).json()
        assert job["progress"]["total"] == 2, job


def test_a_zips_stored_input_carries_its_checked_directory(tmp_path: Path, h: Any) -> None:
    server = SERVERS.get("redis")
    redis.Redis(port=server.port).flushall()
    base = settings_for(tmp_path)
    settings = dataclasses.replace(
        base,
        store=server.url,
        url_signing_keys="k1:" + "a" * 43,
        webhooks=dataclasses.replace(base.webhooks, callback_secret="whsec_" + "b" * 32),
    )
    archive = h.make_zip({"dir/": b"", "dir/a.jpg": h.make_jpeg(1), "b.jpg": h.make_jpeg(2)})
    with queued_client(settings) as c:
        location = accepted(
            h.submit(c, [("f.zip", archive), ("c.jpg", h.make_jpeg(3))], headers=A)
        )
    job_id = location.rsplit("/", 1)[1]
    backends = open_backends(settings)
    try:
        zip_input, image_input = backends.jobs.inputs(job_id)
    finally:
        backends.close()
    assert (zip_input.kind, zip_input.images, zip_input.directory_entries) == ("zip", 2, 3)
    assert zip_input.directory_bytes > 0
    assert (image_input.kind, image_input.images) == ("image", 1)
    assert (image_input.directory_entries, image_input.directory_bytes) == (0, 0)

"""The app through its factory (TestClient as a context manager, so the lifespan runs)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import pytest
from PIL import Image
from starlette.routing import Route
from starlette.testclient import TestClient

from service.app import create_app
from service.jobs.retention import sweep_once
from service.settings import Settings


# -- sync palette ---------------------------------------------------------------------------
def test_sync_palette_has_strong_etag_content_location_and_cache(
    client: TestClient, h: Any
) -> None:
    image = h.make_jpeg(1)
    r = client.post("/v1/palette?colors=5", content=image, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["colors"]) == 5 and body["width"] == 96 and body["height"] == 64
    etag = r.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{40}"', etag)
    digest = blake3.blake3(image).hexdigest()
    location = r.headers["content-location"]
    assert location.startswith(f"/v1/palettes/{digest}?") and "colors=5" in location
    again = client.get(location)
    assert again.status_code == 200 and again.content == r.content
    assert again.headers["etag"] == etag
    revalidated = client.get(location, headers={"If-None-Match": f'"nope", W/{etag}'})
    assert revalidated.status_code == 304 and revalidated.headers["etag"] == etag
    assert revalidated.content == b""
    # Multipart upload of the same bytes: same resource, served from the cache.
    r2 = client.post("/v1/palette?colors=5", files={"file": ("x.jpg", image, "image/jpeg")})
    assert r2.status_code == 200 and r2.headers["etag"] == etag and r2.content == r.content
    metrics = client.get("/metrics").text
    assert 'palette_palette_cache_total{result="hit"} 1.0' in metrics
    assert 'palette_images_processed_total{outcome="succeeded",path="sync"} 1.0' in metrics
    # Other options are another resource.
    r3 = client.post("/v1/palette?colors=3", content=image)
    assert r3.headers["etag"] != etag and len(r3.json()["colors"]) == 3


def test_unknown_palette_address_is_404(client: TestClient, h: Any) -> None:
    h.problem(client.get("/v1/palettes/" + "0" * 64), 404, "palette_not_found")
    h.problem(client.get("/v1/palettes/not-a-digest"), 404, "palette_not_found")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("colors=0", "colors"),
        ("colors=65", "colors"),
        ("colors=abc", "colors"),
        ("exact=maybe", "exact"),
        ("alpha_threshold=300", "alpha_threshold"),
        ("max_color_fraction=nan", "max_color_fraction"),
        ("pixel_budget=5", "pixel_budget"),
    ],
    ids=lambda v: str(v),
)
def test_sync_bad_options(client: TestClient, h: Any, query: str, parameter: str) -> None:
    body = h.problem(
        client.post(f"/v1/palette?{query}", content=h.make_jpeg(1)), 400, "bad_parameter"
    )
    assert body["parameter"] == parameter


def test_sync_bad_inputs(client: TestClient, h: Any) -> None:
    h.problem(client.post("/v1/palette", content=b""), 400, "empty_body")
    body = h.problem(
        client.post("/v1/palette", content=b"hello, not an image" * 10), 415, "unsupported_format"
    )
    assert body["detail"] == "'body' is not an image; types are detected from the bytes."
    assert body["part"] == "body"
    zipped = h.make_zip({"a.jpg": h.make_jpeg(1)})
    body = h.problem(client.post("/v1/palette", content=zipped), 415, "unsupported_format")
    assert body["detail"] == (
        "'body' is not an image (found zip); types are detected from the bytes; "
        "send archives to POST /v1/jobs."
    )
    notes = [("file", ("notes.txt", b"plain text " * 60))]
    body = h.problem(client.post("/v1/palette", files=notes), 415, "unsupported_format")
    assert body["part"] == "notes.txt"
    truncated = h.make_jpeg(2, size=(400, 300))[:600]
    h.problem(client.post("/v1/palette", content=truncated), 422, "decode_error")
    body = h.problem(
        client.post(
            "/v1/palette", files=[("file", ("a", h.make_jpeg(1))), ("file", ("b", h.make_jpeg(2)))]
        ),
        400,
        "too_many_files",
    )
    assert body["detail"] == "Send exactly one 'file' part."


def test_sync_limits_name_the_limit(tmp_path: Path, h: Any) -> None:
    settings = Settings(data_dir=tmp_path, max_sync_bytes=2000, max_pixels=5000)
    with TestClient(create_app(settings)) as c:
        big = h.make_jpeg(3, size=(400, 300))
        body = h.problem(c.post("/v1/palette", content=big), 413, "request_too_large")
        assert body["limit_bytes"] == 2000 and body["actual_bytes"] == len(big)
        body = h.problem(
            c.post("/v1/palette", content=h.make_jpeg(4, size=(100, 60))), 422, "image_too_large"
        )
        assert body["limit_pixels"] == 5000 and body["actual_pixels"] == 6000


# -- jobs -----------------------------------------------------------------------------------
def test_job_with_images_and_zip(client: TestClient, h: Any) -> None:
    archive = h.make_zip(
        {
            "dir/one.jpg": h.make_jpeg(10),
            "two.png": h.make_png(11),
            "notes.txt": b"not an image",
            "bad.jpg": h.make_jpeg(12)[:300],
        }
    )
    r = h.submit(client, [("solo.jpg", h.make_jpeg(13)), ("photos.zip", archive)], colors="4")
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}" and r.headers["retry-after"] == "1"
    assert job["status"] in ("queued", "running") and job["progress"]["total"] == 5
    final = h.wait_job(client, r.headers["location"])
    assert final["status"] == "succeeded", final
    assert final["progress"] == {"total": 5, "done": 3, "failed": 1, "skipped": 1}
    results = client.get(final["results_url"])
    assert results.status_code == 200
    doc = results.json()
    assert doc["count"] == 5
    by_name = {i["name"]: i for i in doc["items"]}
    assert by_name["solo.jpg"]["input"] == "solo.jpg"
    assert by_name["dir/one.jpg"]["input"] == "photos.zip"
    assert len(by_name["two.png"]["palette"]["colors"]) == 4
    assert by_name["notes.txt"]["status"] == "skipped"
    assert by_name["bad.jpg"]["status"] == "failed"
    assert by_name["bad.jpg"]["error"]["code"] == "decode_error"
    # The results ETag is the SHA-256 of the stored bytes.
    assert results.headers["etag"] == '"' + hashlib.sha256(results.content).hexdigest() + '"'


def test_job_etags_ranges_and_conditionals(client: TestClient, h: Any) -> None:
    r = h.submit(client, [("a.jpg", h.make_jpeg(1))])
    location = r.headers["location"]
    job = h.wait_job(client, location)
    got = client.get(location)
    assert got.json() == job and "retry-after" not in got.headers
    assert client.get(location, headers={"If-None-Match": got.headers["etag"]}).status_code == 304
    results_url = location + "/results"
    full = client.get(results_url)
    size, etag = len(full.content), full.headers["etag"]
    assert full.headers["accept-ranges"] == "bytes"
    part = client.get(results_url, headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == full.content[5:15]
    assert part.headers["content-range"] == f"bytes 5-14/{size}"
    tail = client.get(results_url, headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == full.content[-7:]
    stale = client.get(results_url, headers={"Range": "bytes=0-3", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == full.content
    body = h.problem(
        client.get(results_url, headers={"Range": f"bytes={size}-"}), 416, "range_not_satisfiable"
    )
    assert body["size"] == size
    not_modified = client.get(results_url, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.headers["etag"] == etag
    listing = client.get("/v1/jobs")
    again = client.get("/v1/jobs", headers={"If-None-Match": listing.headers["etag"]})
    assert again.status_code == 304


def test_job_etag_changes_while_it_runs_and_has_retry_after(tmp_path: Path, h: Any) -> None:
    app = create_app(Settings(data_dir=tmp_path), run_workers=False)
    with TestClient(app) as c:
        r = h.submit(c, [("a.jpg", h.make_jpeg(1)), ("b.jpg", h.make_jpeg(2))])
        location = r.headers["location"]
        first = c.get(location)
        assert first.headers["retry-after"] == "1"
        store = app.state.runtime.backends.jobs
        lease = store.claim("test-worker", 30)
        assert lease is not None
        second = c.get(location, headers={"If-None-Match": first.headers["etag"]})
        assert second.status_code == 200 and second.json()["status"] == "running"
        assert second.headers["etag"] != first.headers["etag"]
        busy = c.get(location + "/results")
        problem = h.problem(busy, 409, "job_not_finished")
        assert problem["detail"] == "The job is running; results come when it finishes."
        assert problem["status_now"] == "running" and busy.headers["retry-after"] == "1"
        problem = h.problem(c.delete(location), 409, "job_running")
        assert problem["detail"] == "The job is running; cancel it first."
        assert problem["status_now"] == "running"
        assert store.release(lease)


def test_list_jobs_pagination_and_filter(client: TestClient, h: Any) -> None:
    ids = [h.submit(client, [(f"{n}.jpg", h.make_jpeg(n))]).json()["id"] for n in range(5)]
    for job_id in ids:
        h.wait_job(client, f"/v1/jobs/{job_id}")
    page = client.get("/v1/jobs?limit=2")
    assert [j["id"] for j in page.json()["jobs"]] == ids[::-1][:2]
    assert page.headers["link"].startswith("</v1/jobs?limit=2&cursor=")
    seen = []
    url: str | None = "/v1/jobs?limit=2"
    while url:
        doc = client.get(url).json()
        seen += [j["id"] for j in doc["jobs"]]
        url = doc["next"]
    assert seen == ids[::-1]
    assert len(client.get("/v1/jobs?status=succeeded").json()["jobs"]) == 5
    assert client.get("/v1/jobs?status=queued").json()["jobs"] == []
    h.problem(client.get("/v1/jobs?status=done"), 400, "bad_parameter")
    h.problem(client.get("/v1/jobs?limit=0"), 400, "bad_parameter")
    problem = h.problem(client.get("/v1/jobs?cursor=%%%"), 400, "bad_cursor")
    assert problem["detail"] == "The cursor is not one this server issued."
    assert problem["parameter"] == "cursor"


def test_cancel_and_delete_rules(tmp_path: Path, h: Any) -> None:
    app = create_app(Settings(data_dir=tmp_path), run_workers=False)
    with TestClient(app) as c:
        r = h.submit(c, [("a.jpg", h.make_jpeg(1))])
        job_id = r.json()["id"]
        blobs = app.state.runtime.backends.blobs
        assert list(blobs.keys(f"uploads/{job_id}")) == [f"uploads/{job_id}/0"]
        canceled = c.post(f"/v1/jobs/{job_id}/cancel")
        assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
        assert list(blobs.keys(f"uploads/{job_id}")) == []  # a canceled job frees them at once
        assert c.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        problem = h.problem(c.get(f"/v1/jobs/{job_id}/results"), 409, "no_results")
        assert problem["detail"] == "The job was canceled; it has no results."
        assert c.delete(f"/v1/jobs/{job_id}").status_code == 204
        gone = h.problem(c.get(f"/v1/jobs/{job_id}"), 404, "job_not_found")
        assert gone["detail"] == f"No job {job_id!r} (it may have expired)."
        gone = h.problem(c.delete(f"/v1/jobs/{job_id}"), 404, "job_not_found")
        assert gone["detail"] == f"No job {job_id!r} (it may have expired)."
        nope = h.problem(c.post("/v1/jobs/nope/cancel"), 404, "job_not_found")
        assert nope["detail"] == "No job 'nope' (it may have expired)."


def test_cancel_finished_job_is_409_and_delete_removes_results(
    client: TestClient, settings: Settings, h: Any
) -> None:
    r = h.submit(client, [("a.jpg", h.make_jpeg(1))])
    job = h.wait_job(client, r.headers["location"])
    body = h.problem(client.post(f"/v1/jobs/{job['id']}/cancel"), 409, "job_finished")
    assert body["status_now"] == "succeeded"
    assert body["detail"] == "The job already succeeded; nothing to cancel."
    blobs = client.app.state.runtime.backends.blobs  # type: ignore[attr-defined]
    assert len(list(blobs.keys(f"results/{job['id']}"))) == 1
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert list(blobs.keys(f"results/{job['id']}")) == []


def test_idempotency_key(client: TestClient, h: Any) -> None:
    files = [("a.jpg", h.make_jpeg(1))]
    key1 = {"Idempotency-Key": "key-1"}
    first = h.submit(client, files, headers=key1)
    assert first.status_code == 202
    replay = h.submit(client, files, headers=key1)
    assert replay.status_code == 202 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert replay.headers["location"] == first.headers["location"]
    other = h.submit(client, [("a.jpg", h.make_jpeg(2))], headers=key1)
    problem = h.problem(other, 422, "idempotency_key_reused")
    assert problem["detail"] == "This Idempotency-Key was used with a different request body."
    assert len(client.get("/v1/jobs").json()["jobs"]) == 1
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    idempotency = runtime.backends.idempotency
    assert idempotency.idempotency_begin("public", "key-2", "POST", "/v1/jobs") == "new"
    busy = h.submit(client, [("a.jpg", h.make_jpeg(3))], headers={"Idempotency-Key": "key-2"})
    problem = h.problem(busy, 409, "idempotency_key_in_use")
    assert problem["detail"] == "A request with this Idempotency-Key is still being processed."
    assert busy.headers["retry-after"] == "1"
    # Deleting the job frees its key: a retry makes a new job instead of a dangling replay.
    h.wait_job(client, first.headers["location"])
    assert client.delete(first.headers["location"]).status_code == 204
    fresh = h.submit(client, files, headers=key1)
    assert fresh.status_code == 202 and "idempotent-replayed" not in fresh.headers
    assert fresh.json()["id"] != first.json()["id"]
    # A failed request frees its key: the client can fix the body and retry.
    key3 = {"Idempotency-Key": "key-3"}
    h.problem(h.submit(client, [("a.txt", b"text" * 200)], headers=key3), 415, "unsupported_format")
    assert h.submit(client, [("a.jpg", h.make_jpeg(4))], headers=key3).status_code == 202


def test_job_upload_limits_and_bad_requests(tmp_path: Path, h: Any) -> None:
    settings = Settings(
        data_dir=tmp_path, max_images_per_job=3, zip_max_entries=4, max_request_bytes=60_000
    )
    app = create_app(settings)
    with TestClient(app) as c:
        body = h.problem(
            h.submit(c, [(f"{n}.jpg", h.make_jpeg(n)) for n in range(4)]), 422, "too_many_images"
        )
        assert body["limit_images"] == 3 and body["actual_images_at_least"] == 4
        archive = h.make_zip({f"{n}.jpg": h.make_jpeg(n) for n in range(3)})
        body = h.problem(
            h.submit(c, [("x.jpg", h.make_jpeg(9)), ("a.zip", archive)]), 422, "too_many_images"
        )
        assert body["limit_images"] == 3 and body["actual_images"] == 4
        many = h.make_zip({f"{n}.txt": b"x" for n in range(5)})
        body = h.problem(h.submit(c, [("many.zip", many)]), 422, "archive_too_many_entries")
        assert body["limit_entries"] == 4 and body["actual_entries"] == 5
        broken = h.make_zip({"a.jpg": h.make_jpeg(1)})[:-30]
        h.problem(h.submit(c, [("broken.zip", broken)]), 422, "archive_corrupt")
        big = h.make_jpeg(5, size=(600, 400), quality=95)
        body = h.problem(h.submit(c, [("big.jpg", big)]), 413, "request_too_large")
        assert body["limit_bytes"] == 60_000
        assert body["actual_bytes"] > len(big)  # the declared length of the whole body
        body = h.problem(
            h.submit(c, [("a.txt", b"plain text, not an image" * 30)]), 415, "unsupported_format"
        )
        assert body["part"] == "a.txt" and body["detail"] == (
            "'a.txt' is not an image or a ZIP archive; types are detected from the bytes."
        )
        body = h.problem(
            h.submit(c, [("a.tar.gz", b"\x1f\x8b\x08" + b"\x00" * 600)]), 415, "unsupported_format"
        )
        assert body["detail"] == (  # no hint to use POST /v1/jobs: this is POST /v1/jobs
            "'a.tar.gz' is not an image or a ZIP archive (found gzip); types are detected from "
            "the bytes."
        )
        body = h.problem(
            c.post("/v1/jobs", content=b"{}", headers={"content-type": "application/json"}),
            415,
            "unsupported_media_type",
        )
        assert body["detail"] == "Send multipart/form-data with one or more 'file' parts."
        h.problem(c.post("/v1/jobs", data={"colors": "4"}, files=[]), 415, "unsupported_media_type")
        h.problem(c.post("/v1/jobs", files=[("colors", (None, "4"))]), 400, "no_files")
        h.problem(h.submit(c, [("a.jpg", h.make_jpeg(1))], colors="999"), 400, "bad_parameter")
        h.problem(
            h.submit(c, [("a.jpg", h.make_jpeg(1))], callback_url="ftp://x"), 400, "bad_parameter"
        )
        body = h.problem(h.submit(c, [("empty.jpg", b"")]), 400, "empty_file")
        assert body["part"] == "empty.jpg" and body["detail"] == "File part 'empty.jpg' is empty."
        not_this_boundary = c.post(
            "/v1/jobs",
            content=b"--yy\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--yy--",
            headers={"content-type": "multipart/form-data; boundary=xx"},
        )
        body = h.problem(not_this_boundary, 400, "malformed_multipart")
        assert body["detail"].startswith("The multipart body is malformed: ")
        malformed = c.post(
            "/v1/jobs",
            content=b"--xx\r\nContent-Disposition: form-data; "
            b'name="file"; filename="a.jpg"\r\n\r\n' + h.make_jpeg(1),
            headers={"content-type": "multipart/form-data; boundary=xx"},
        )
        h.problem(malformed, 400, "malformed_multipart")
        # Cut off after a whole first part: between parts, inside the next part's headers, and
        # in the first bytes of the next file. None of these bodies is complete.
        whole = (
            b"--xx\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n"
            + h.make_jpeg(1)
            + b"\r\n--xx"
        )
        for cut in (
            whole,
            whole + b"\r\nContent-Disposition: form-da",
            whole + b'\r\nContent-Disposition: form-data; name="file"; filename="b.jpg"\r\n\r\n'
            + h.make_jpeg(2)[:100],
        ):
            truncated = c.post(
                "/v1/jobs",
                content=cut,
                headers={"content-type": "multipart/form-data; boundary=xx"},
            )
            body = h.problem(truncated, 400, "malformed_multipart")
            assert body["detail"] == "The multipart body ended inside a part."
        assert c.get("/v1/jobs").json()["jobs"] == []
        # Nothing from the refused uploads is left behind.
        assert list(app.state.runtime.backends.blobs.keys("uploads")) == []


def test_names_that_are_not_utf8_are_kept_with_replacement_characters(
    client: TestClient, h: Any
) -> None:
    """Old clients send file and field names in Latin-1: the upload goes through, each byte
    that is not UTF-8 shown as U+FFFD."""
    body = b"".join(
        b"--nn\r\nContent-Disposition: form-data; " + disposition + b"\r\n\r\n" + data + b"\r\n"
        for disposition, data in (
            (b'name="file"; filename="caf\xe9.jpg"', h.make_jpeg(1)),
            (b'name="\xff"; filename="b.jpg"', h.make_jpeg(2)),
            (b'name="n\xe4me"', b"ign\xf6red"),
        )
    )
    r = client.post(
        "/v1/jobs",
        content=body + b"--nn--\r\n",
        headers={"content-type": "multipart/form-data; boundary=nn"},
    )
    assert r.status_code == 202, r.text
    job = h.wait_job(client, r.headers["location"])
    assert job["status"] == "succeeded", job
    names = [item["name"] for item in client.get(job["results_url"]).json()["items"]]
    assert names == ["caf\ufffd.jpg", "b.jpg"]


def test_per_image_and_archive_limits_inside_jobs(tmp_path: Path, h: Any) -> None:
    settings = Settings(data_dir=tmp_path, max_pixels=10_000, zip_max_ratio=5.0)
    with TestClient(create_app(settings)) as c:
        r = h.submit(c, [("small.jpg", h.make_jpeg(1)), ("huge.jpg", h.make_jpeg(2, (200, 100)))])
        job = h.wait_job(c, r.headers["location"])
        assert job["status"] == "succeeded" and job["progress"]["failed"] == 1
        items = c.get(job["results_url"]).json()["items"]
        error = items[1]["error"]
        assert error["code"] == "image_too_large"
        assert error["limit_pixels"] == 10_000 and error["actual_pixels"] == 20_000
        flat = io.BytesIO()
        Image.fromarray(np.full((800, 800, 3), 200, np.uint8)).save(flat, "BMP")  # ~1.9 MB
        bomb = h.make_zip({"flat.bmp": flat.getvalue()}, compression=zipfile.ZIP_DEFLATED)
        r = h.submit(c, [("bomb.zip", bomb)])
        job = h.wait_job(c, r.headers["location"])
        assert job["status"] == "failed"
        assert job["error"]["code"] == "archive_ratio_exceeded", job["error"]
        assert job["error"]["limit_ratio"] == 5.0


def test_api_keys_scope_jobs_per_tenant(tmp_path: Path, h: Any) -> None:
    settings = Settings(data_dir=tmp_path, api_keys={"alice-key": "alice", "bob-key": "bob"})
    with TestClient(create_app(settings)) as c:
        h.problem(c.get("/v1/jobs"), 401, "unauthorized")
        assert c.get("/v1/jobs").headers["www-authenticate"].startswith("Bearer")
        h.problem(c.get("/v1/jobs", headers={"X-API-Key": "nope"}), 401, "invalid_api_key")
        alice = {"Authorization": "Bearer alice-key"}
        bob = {"X-API-Key": "bob-key"}
        r = h.submit(c, [("a.jpg", h.make_jpeg(1))], headers=alice)
        assert r.status_code == 202
        assert r.headers["vary"] == "Authorization, X-API-Key"
        location = r.headers["location"]
        h.wait_job(c, location, headers=alice)
        h.problem(c.get(location, headers=bob), 404, "job_not_found")
        h.problem(c.get(location + "/results", headers=bob), 404, "job_not_found")
        h.problem(c.post(location + "/cancel", headers=bob), 404, "job_not_found")
        h.problem(c.delete(location, headers=bob), 404, "job_not_found")
        assert c.get("/v1/jobs", headers=bob).json()["jobs"] == []
        assert len(c.get("/v1/jobs", headers=alice).json()["jobs"]) == 1
        assert c.get("/healthz").status_code == 200  # operations stay open
        # The sync cache is per tenant too.
        image = h.make_jpeg(5)
        made = c.post("/v1/palette", content=image, headers=alice)
        h.problem(c.get(made.headers["content-location"], headers=bob), 404, "palette_not_found")
        assert c.get(made.headers["content-location"], headers=alice).status_code == 200


def test_retention_expires_jobs_and_their_data(tmp_path: Path, h: Any) -> None:
    class Clock:
        t = 1_900_000_000.0

        def now(self) -> float:
            return self.t

    clock = Clock()
    settings = Settings(data_dir=tmp_path, retention_seconds=3600)
    app = create_app(settings, clock=clock)
    with TestClient(app) as c:
        r = h.submit(c, [("a.jpg", h.make_jpeg(1))])
        job = h.wait_job(c, r.headers["location"])
        assert job["expires_at"].startswith("2030-03-17T18:")  # finished + 1 h
        runtime = app.state.runtime
        clock.t += 3599
        assert c.get(r.headers["location"]).status_code == 200
        clock.t += 2
        h.problem(c.get(r.headers["location"]), 404, "job_not_found")
        blobs = runtime.backends.blobs
        assert len(list(blobs.keys(f"results/{job['id']}"))) == 1
        assert sweep_once(runtime.backends.jobs, blobs) == 1
        assert list(blobs.keys(f"results/{job['id']}")) == []


# -- operations -----------------------------------------------------------------------------
def test_health_ready_metrics(client: TestClient, h: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["workers"] == "ok"
    client.app.state.runtime.begin_drain()  # type: ignore[attr-defined]
    draining = client.get("/readyz")
    assert draining.status_code == 503 and draining.json()["checks"]["draining"] is True
    assert draining.headers["retry-after"]
    refused = h.submit(client, [("a.jpg", b"\xff\xd8\xff" + b"0" * 600)])
    h.problem(refused, 503, "draining")
    assert refused.headers["retry-after"]
    text = client.get("/metrics").text
    for name in (
        "palette_http_requests_total",
        "palette_http_request_duration_seconds_bucket",
        "palette_jobs{",
        "palette_queue_depth",
    ):
        assert name in text
    assert 'route="/readyz",status="503"' in text


def test_readiness_reports_workers_that_have_stopped(client: TestClient) -> None:
    assert client.get("/readyz").json()["checks"]["workers"] == "ok"
    client.app.state.runtime.pool.drain(1.0)  # type: ignore[attr-defined]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["workers"] == "down"


def test_openapi_lists_every_api_route_and_docs_are_local(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    documented = {(path, verb.upper()) for path, item in spec["paths"].items() for verb in item}
    served = {
        (route.path, method)
        for route in client.app.routes  # type: ignore[attr-defined]
        if isinstance(route, Route)
        for method in route.endpoint.allowed_methods - {"HEAD"}
    }
    assert len(served) > 30 and served == documented
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # nothing remote


def test_errors_are_problem_documents(client: TestClient, h: Any) -> None:
    h.problem(client.get("/v1/nothing-here"), 404, "not_found")
    refused = client.put("/v1/jobs")
    h.problem(refused, 405, "method_not_allowed")
    assert refused.headers["allow"] == "GET, HEAD, POST"
    assert client.options("/v1/palette").headers["allow"] == "POST"
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


def test_settings_from_environment_hide_secrets() -> None:
    env = {
        "PALETTE_WORKERS": "3",
        "PALETTE_API_KEYS": "alice:s3cret,plainkey",
        "PALETTE_MAX_PIXELS": "1000",
        "PALETTE_ZIP_MAX_RATIO": "7.5",
        "PALETTE_DATA_DIR": "/tmp/x",
    }
    s = Settings.from_env(env, port=9001)
    assert (s.workers, s.port, s.max_pixels, s.zip_max_ratio) == (3, 9001, 1000, 7.5)
    assert s.api_keys["s3cret"] == "alice" and s.api_keys["plainkey"].startswith("key-")
    view = json.dumps(s.public_view())
    assert "s3cret" not in view and "plainkey" not in view and "alice" in view
    with pytest.raises(ValueError, match="PALETTE_WORKERS"):
        Settings.from_env({"PALETTE_WORKERS": "many"})


def test_a_callback_url_inside_the_network_is_refused_and_named(tmp_path: Path, h: Any) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path), run_workers=False)) as c:
        r = h.submit(c, [("a.jpg", h.make_jpeg(1))], callback_url="http://10.1.2.3/hook")
        problem = h.problem(r, 422, "url_not_allowed")
        assert problem["parameter"] == "callback_url"
        assert problem["detail"] == (
            "destination 10.1.2.3 is a private address; outbound requests go only to public"
            " addresses unless PALETTE_EGRESS_ALLOW_CIDRS allows it"
        )
        assert c.get("/v1/jobs").json()["jobs"] == []


def test_job_events_and_callback_url_through_the_factory(
    tmp_path: Path, h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Callback URLs are SSRF-checked; loopback needs the operator allowlist.
    monkeypatch.setenv("PALETTE_EGRESS_ALLOW_CIDRS", "127.0.0.0/8")
    app = create_app(Settings.from_env(data_dir=tmp_path))
    with TestClient(app) as c:
        r = h.submit(c, [("a.jpg", h.make_jpeg(1))], callback_url="http://127.0.0.1:9/hook")
        assert r.json()["callback_url"] == "http://127.0.0.1:9/hook"
        job = h.wait_job(c, r.headers["location"])
        # A consumer of its own reads the job's events from the start, in order.
        log = app.state.runtime.backends.events.read("test-reader", 100)
    mine = [(e.type, e.job["status"], e.job["callback_url"]) for e in log if e.job["id"] == job["id"]]
    assert mine[0] == ("job.progress", "running", "http://127.0.0.1:9/hook")
    assert mine[-1] == ("job.succeeded", "succeeded", "http://127.0.0.1:9/hook")
    assert all(e.job["tenant"] == "public" for e in log)


def test_settings_are_logged_at_start_up_without_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, api_keys={"very-secret-key": "alice"})
    with caplog.at_level("INFO", logger="service"), TestClient(create_app(settings)):
        pass
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "service" and "settings in force" in r.getMessage()
    ]
    assert len(lines) == 1
    assert "alice" in lines[0] and "very-secret-key" not in lines[0]
    assert str(tmp_path) in lines[0] and "max_pixels" in lines[0]


def test_unexpected_errors_fail_one_image_or_finally_the_job(tmp_path: Path, h: Any) -> None:
    import palette_native

    def flaky_extract(source: Any, **kwargs: Any) -> Any:
        # Fault injection: the real library, except one input that trips an unexpected bug.
        if isinstance(source, (bytes, bytearray)) and source.endswith(b"BUG"):
            raise RuntimeError("simulated library bug")
        return palette_native.extract(source, **kwargs)

    settings = Settings(data_dir=tmp_path)
    with TestClient(create_app(settings, extract=flaky_extract)) as c:
        archive = h.make_zip({"ok.jpg": h.make_jpeg(1), "bug.jpg": h.make_jpeg(2) + b"BUG"})
        job = h.wait_job(c, h.submit(c, [("a.zip", archive)]).headers["location"])
        assert job["status"] == "succeeded" and job["progress"]["failed"] == 1
        items = {i["name"]: i for i in c.get(job["results_url"]).json()["items"]}
        assert items["bug.jpg"]["error"]["code"] == "internal_error"
        assert items["ok.jpg"]["status"] == "succeeded"

    # A job whose input vanished crashes every worker that claims it: after a few attempts
    # it fails instead of cycling through the queue forever.
    api_only = create_app(settings, run_workers=False)
    with TestClient(api_only) as c:
        r = h.submit(c, [("b.zip", h.make_zip({"x.jpg": h.make_jpeg(3)}))])
        job_id = r.json()["id"]
    from service.backends import open_backends

    backends = open_backends(settings)
    backends.blobs.delete_prefix(f"uploads/{job_id}")
    backends.close()
    with TestClient(create_app(settings)) as c:
        job = h.wait_job(c, r.headers["location"])
    assert job["status"] == "failed" and job["error"]["code"] == "internal_error"
    assert job["error"]["attempts"] == 5
    assert job["error"]["detail"] == "processing failed 5 times (FileNotFoundError)"


def test_sync_palette_survives_a_restart_without_recomputing(settings: Settings, h: Any) -> None:
    image = h.make_jpeg(7)
    with TestClient(create_app(settings)) as c:
        made = c.post("/v1/palette?colors=4", content=image)
        assert made.status_code == 200
    # A new process on the same data dir: the write-behind cache was flushed at shutdown, and
    # the new process learns the stored keys, so both the address and a re-POST hit the store.
    with TestClient(create_app(settings)) as c:
        again = c.get(made.headers["content-location"])
        assert again.status_code == 200 and again.content == made.content
        reposted = c.post("/v1/palette?colors=4", content=image)
        assert reposted.content == made.content and reposted.headers["etag"] == made.headers["etag"]
        metrics = c.get("/metrics").text
        assert 'palette_images_processed_total{outcome="succeeded",path="sync"}' not in metrics
        assert 'palette_palette_cache_total{result="hit"} 1.0' in metrics


def test_write_behind_cache_asks_the_store_only_for_keys_it_holds(tmp_path: Path) -> None:
    from collections.abc import Mapping

    from service.backends import open_backends
    from service.palettes import WriteBehindCache

    backends = open_backends(Settings(data_dir=tmp_path, palette_cache_entries=3))

    class Counting:
        """The backend's palette cache, counting the lookups that reach it."""

        lookups = 0

        def cache_get(self, key: str) -> bytes | None:
            Counting.lookups += 1
            return backends.palette_cache.cache_get(key)

        def cache_put(self, entries: Mapping[str, bytes]) -> None:
            backends.palette_cache.cache_put(entries)

        def cache_keys(self) -> Any:
            return backends.palette_cache.cache_keys()

    store = Counting()
    store.cache_put({"old": b"o"})
    cache = WriteBehindCache(store, hot_entries=2, stored_entries=3)
    assert cache.get("old") == b"o" and Counting.lookups == 1  # known at start: from the store
    assert cache.get("new") is None and Counting.lookups == 1  # unknown: a miss without asking
    for n in range(8):
        cache.put(f"k{n}", b"%d" % n)
    assert cache.get("k0") == b"0"  # pending or stored, never lost in between
    cache.close()  # stores everything still pending
    assert cache.peek("k7") == b"7" and cache.peek("k0") is None  # only 2 kept in memory
    assert all(store.cache_get(f"k{n}") == b"%d" % n for n in range(8))
    for tidy in backends.housekeeping:  # the backend keeps 3 entries
        tidy()
    kept = [k for k in ["old", *(f"k{n}" for n in range(8))] if store.cache_get(k) is not None]
    assert len(kept) == 3
    again = WriteBehindCache(store, hot_entries=2, stored_entries=3)
    Counting.lookups = 0
    assert [k for k in ["old", *(f"k{n}" for n in range(8))] if again.get(k)] == kept
    assert Counting.lookups == 3  # only the keys the store still holds were looked up
    again.close()
    backends.close()


def test_phone_photos_heic_sync_and_in_a_job(client: TestClient, h: Any) -> None:
    """iPhones save HEIC: accepted on the sync path and in jobs, ZIPs included."""
    import pillow_heif

    pixels = np.zeros((480, 640, 3), np.uint8)
    pixels[:240] = (200, 30, 40)
    pixels[240:] = (30, 60, 200)
    out = io.BytesIO()
    pillow_heif.from_bytes(mode="RGB", size=(640, 480), data=pixels.tobytes()).save(out, quality=95)
    heic = out.getvalue()
    r = client.post("/v1/palette?colors=2", content=heic)
    assert r.status_code == 200, r.text
    got = sorted(tuple(int(v) for v in c["rgb"]) for c in r.json()["colors"])
    assert all(max(abs(a - b) for a, b in zip(g, w)) <= 4
               for g, w in zip(got, [(30, 60, 200), (200, 30, 40)]))
    job = h.submit(client, [("IMG_0001.HEIC", heic), ("set.zip", h.make_zip({"IMG_0002.heic": heic}))])
    assert job.status_code == 202, job.text
    done = h.wait_job(client, job.headers["location"])
    assert done["status"] == "succeeded" and done["progress"]["done"] == 2, done


def test_a_deleted_jobs_palettes_leave_the_search(settings: Settings, h: Any) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (0x12, 0x34, 0x56)).save(buffer, "PNG")
    query = {"color": "#123456", "max_delta_e": "0.5"}
    with TestClient(create_app(settings)) as c:
        job = h.wait_job(c, h.submit(c, [("x.png", buffer.getvalue())]).headers["location"])
        found = h.wait_for(lambda: c.get("/v1/search", params=query).json()["items"])
        assert [item["job_id"] for item in found] == [job["id"]]
        assert c.delete(f"/v1/jobs/{job['id']}").status_code == 204
        assert c.get("/v1/search", params=query).json()["items"] == []

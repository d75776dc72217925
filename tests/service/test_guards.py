"""The code that guards users, through the app factory and HTTP: streamed size limits, ranges,
conditional requests, idempotency keys, signed download links, ZIP limits from the environment
and the workers' stop paths. Written against answers, files and counts a client can see."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import palette_native
import pytest
from palette_native.errors import CanceledError
from starlette.testclient import TestClient

from service.app import create_app
from service.backends import open_backends
from service.conditional import parse_range
from service.jobs.blobs import LocalBlobStore
from service.jobs.worker import count_archive_entries
from service.security.settings import SecuritySettings
from service.settings import Settings
from service.signed_urls import SigningKeys, UrlSigner, _mac, canonical

BOUNDARY = "guard-boundary-0123456789"


class Clock:
    """The service's one time source, moved by the test."""

    def __init__(self, start: float = 1_900_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t


def multipart(
    files: list[tuple[str, bytes]], fields: dict[str, str] | None = None
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body built by hand, so its exact length is known."""
    out = bytearray()
    for name, value in (fields or {}).items():
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for filename, data in files:
        out += (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        out += data + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out), {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def chunked(data: bytes, size: int = 4096) -> Iterator[bytes]:
    """The body as a stream of unknown length (no Content-Length header is sent)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


class Rechunk:
    """ASGI wrapper: the request body reaches the app in pieces of ``size`` bytes, as it does
    from a network (TestClient hands the app a whole body in one message)."""

    def __init__(self, app: Any, size: int) -> None:
        self.app = app
        self.size = size

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        pending: list[dict[str, Any]] = []

        async def pieces() -> Any:
            if pending:
                return pending.pop(0)
            message = await receive()
            body = message.get("body", b"")
            if message["type"] != "http.request" or len(body) <= self.size:
                return message
            parts = [body[i : i + self.size] for i in range(0, len(body), self.size)]
            pending.extend({"type": "http.request", "body": p, "more_body": True} for p in parts)
            pending[-1]["more_body"] = message.get("more_body", False)
            return pending.pop(0)

        await self.app(scope, pieces, send)


def nothing_left_behind(app: Any) -> bool:
    """No upload committed and no partial write (expiring those of any age removes none)."""
    blobs = app.state.runtime.backends.blobs
    return list(blobs.keys("uploads")) == [] and blobs.expire(0.0) == 0


# -- streamed size limits ------------------------------------------------------------------------
@pytest.mark.parametrize("streamed", [True, False], ids=["chunked", "content-length"])
def test_sync_body_limit_holds_to_the_byte(tmp_path: Path, h: Any, streamed: bool) -> None:
    image = h.make_jpeg(21)
    assert len(image) > 3 * 256  # the app gets it in several pieces
    for limit, status in ((len(image), 200), (len(image) - 1, 413)):
        app = create_app(Settings(data_dir=tmp_path, max_sync_bytes=limit))
        with TestClient(Rechunk(app, 256)) as c:
            body = chunked(image) if streamed else image
            r = c.post("/v1/palette", content=body, headers={"content-type": "image/jpeg"})
            assert r.status_code == status, r.text
            if status == 200:  # the chunks make up the image they came from
                whole = c.post("/v1/palette", content=image, headers={"content-type": "image/jpeg"})
                assert r.json() == whole.json()
            if status == 413:
                problem = h.problem(r, 413, "request_too_large")
                assert problem["limit_bytes"] == limit
                assert problem["detail"] == (
                    f"The request body is larger than the limit of {limit:,} bytes."
                )
                # A stream's length is unknown until it overflows; a declared one is named.
                assert problem.get("actual_bytes") == (None if streamed else len(image))


@pytest.mark.parametrize("streamed", [True, False], ids=["chunked", "content-length"])
def test_sync_multipart_limit_holds_to_the_byte(tmp_path: Path, h: Any, streamed: bool) -> None:
    body, headers = multipart([("a.jpg", h.make_jpeg(22))])
    for limit, status in ((len(body), 200), (len(body) - 1, 413)):
        with TestClient(create_app(Settings(data_dir=tmp_path, max_sync_bytes=limit))) as c:
            r = c.post("/v1/palette", content=chunked(body) if streamed else body, headers=headers)
            assert r.status_code == status, r.text
            if status == 413:
                assert h.problem(r, 413, "request_too_large")["limit_bytes"] == limit


@pytest.mark.parametrize("streamed", [True, False], ids=["chunked", "content-length"])
def test_job_upload_limit_holds_to_the_byte_and_leaves_nothing(
    tmp_path: Path, h: Any, streamed: bool
) -> None:
    body, headers = multipart([("a.jpg", h.make_jpeg(23)), ("b.png", h.make_png(24))])
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, max_request_bytes=len(body) - 1)
    app = create_app(settings, run_workers=False)
    with TestClient(app) as c:
        r = c.post("/v1/jobs", content=chunked(body, 1000) if streamed else body, headers=headers)
        problem = h.problem(r, 413, "request_too_large")
        assert problem["limit_bytes"] == len(body) - 1
        assert c.get("/v1/jobs").json()["jobs"] == []
        assert nothing_left_behind(app)
    settings = Settings(data_dir=data_dir, max_request_bytes=len(body))
    with TestClient(create_app(settings, run_workers=False)) as c:
        r = c.post("/v1/jobs", content=chunked(body, 1000) if streamed else body, headers=headers)
        assert r.status_code == 202, r.text
        assert r.json()["progress"]["total"] == 2


def test_form_fields_are_bounded(client: TestClient, h: Any) -> None:
    body, headers = multipart([("a.jpg", h.make_jpeg(1))], {"colors": "4" * 8193})
    problem = h.problem(client.post("/v1/jobs", content=body, headers=headers), 400, "field_too_large")
    assert problem["limit_bytes"] == 8192
    ok, headers = multipart([("a.jpg", h.make_jpeg(1))], {"note": "x" * 8192})
    assert client.post("/v1/jobs", content=ok, headers=headers).status_code == 202
    many = {f"f{n}": "1" for n in range(65)}
    body, headers = multipart([("a.jpg", h.make_jpeg(1))], many)
    h.problem(client.post("/v1/jobs", content=body, headers=headers), 400, "too_many_fields")
    fields = {f"f{n}": "1" for n in range(64)}
    body, headers = multipart([("a.jpg", h.make_jpeg(1))], fields)
    assert client.post("/v1/jobs", content=body, headers=headers).status_code == 202


def test_a_small_image_part_is_sniffed_at_its_end(client: TestClient, h: Any) -> None:
    tiny = h.make_png(5, size=(2, 2))
    assert len(tiny) < 512  # smaller than what the type is sniffed from
    r = h.submit(client, [("tiny.png", tiny)])
    assert r.status_code == 202, r.text
    job = h.wait_job(client, r.headers["location"])
    assert job["progress"]["done"] == 1
    results = client.get(job["results_url"]).json()
    assert results["items"][0]["name"] == "tiny.png"


def test_a_bad_content_length_is_refused(client: TestClient, h: Any) -> None:
    r = client.post(
        "/v1/palette", content=h.make_jpeg(1), headers={"content-length": "lots"}
    )
    body = h.problem(r, 400, "bad_content_length")
    assert body["detail"] == "Content-Length is not a number."


# -- byte ranges and conditional requests ----------------------------------------------------
@pytest.fixture
def finished(client: TestClient, h: Any) -> tuple[str, bytes, str]:
    """A finished job's results URL, its bytes and their ETag."""
    r = h.submit(client, [("a.jpg", h.make_jpeg(1)), ("b.jpg", h.make_jpeg(2))])
    job = h.wait_job(client, r.headers["location"])
    full = client.get(job["results_url"])
    assert full.status_code == 200 and len(full.content) > 100
    return job["results_url"], full.content, full.headers["etag"]


def ranged(size: int) -> list[tuple[str, int, tuple[int, int] | None]]:
    """(Range header, expected status, expected inclusive span)."""
    return [
        ("bytes=0-0", 206, (0, 0)),
        ("bytes=5-14", 206, (5, 14)),
        ("bytes=7-", 206, (7, size - 1)),
        (f"bytes={size - 1}-", 206, (size - 1, size - 1)),
        (f"bytes=10-{size + 1000}", 206, (10, size - 1)),  # the end is clamped to the file
        (f"bytes=0-{size - 1}", 206, (0, size - 1)),
        (f"bytes=0-{size}", 206, (0, size - 1)),
        ("bytes=-1", 206, (size - 1, size - 1)),
        ("bytes=-7", 206, (size - 7, size - 1)),
        (f"bytes=-{size + 50}", 206, (0, size - 1)),
        ("BYTES = 2-3", 206, (2, 3)),
        ("bytes=3-3", 206, (3, 3)),
        ("bytes=4-3", 200, None),  # end before start: ignored, the whole file
        ("bytes=0-1,4-5", 200, None),  # several ranges are not served
        ("items=0-5", 200, None),
        ("bytes=abc-", 200, None),
        ("bytes=1-x", 200, None),
        ("bytes=-x", 200, None),
        ("bytes=5", 200, None),
        ("bytes=", 200, None),
        ("bytes=+1-2", 200, None),  # a signed or padded number is not a byte position
        ("bytes=1 -2", 200, None),
    ]


def test_byte_ranges(client: TestClient, h: Any, finished: tuple[str, bytes, str]) -> None:
    url, content, etag = finished
    size = len(content)
    for header, status, span in ranged(size):
        r = client.get(url, headers={"Range": header})
        assert r.status_code == status, (header, r.status_code, r.text[:200])
        assert r.headers["etag"] == etag and r.headers["accept-ranges"] == "bytes"
        if span is None:
            assert r.content == content and "content-range" not in r.headers, header
            assert r.headers["content-length"] == str(size)
            continue
        start, end = span
        assert r.content == content[start : end + 1], header
        assert r.headers["content-range"] == f"bytes {start}-{end}/{size}", header
        assert r.headers["content-length"] == str(end - start + 1), header


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{size}", "bytes=-0"])
def test_unsatisfiable_ranges(
    client: TestClient, h: Any, finished: tuple[str, bytes, str], header: str
) -> None:
    url, content, _ = finished
    size = len(content)
    r = client.get(url, headers={"Range": header.format(size=size)})
    assert h.problem(r, 416, "range_not_satisfiable")["size"] == size
    assert r.headers["content-range"] == f"bytes */{size}"


def test_a_suffix_range_of_an_empty_representation_is_unsatisfiable() -> None:
    # Results are never empty, so this edge is checked on the helper the route calls.
    assert parse_range("bytes=-5", 0) == "unsatisfiable"
    assert parse_range("bytes=0-", 0) == "unsatisfiable"
    assert parse_range("bytes=-5", 3) == (0, 2)


def test_if_range_and_if_none_match(
    client: TestClient, h: Any, finished: tuple[str, bytes, str]
) -> None:
    url, content, etag = finished
    same = client.get(url, headers={"Range": "bytes=0-3", "If-Range": f" {etag} "})
    assert same.status_code == 206 and same.content == content[:4]
    other = client.get(url, headers={"Range": "bytes=0-3", "If-Range": '"x"'})
    assert other.status_code == 200 and other.content == content
    for header in (etag, f"W/{etag}", f'"a", {etag}', "*", f' "b" ,W/{etag} '):
        r = client.get(url, headers={"If-None-Match": header})
        assert r.status_code == 304 and r.content == b"", header
        assert r.headers["etag"] == etag and r.headers["cache-control"] == "private, max-age=0"
    for header in ('"a"', f"{etag[:-2]}\"", '"a", "b"'):
        assert client.get(url, headers={"If-None-Match": header}).status_code == 200, header
    assert etag == '"' + hashlib.sha256(content).hexdigest() + '"'


def test_json_answers_revalidate_on_get_and_head_only(client: TestClient, h: Any) -> None:
    r = h.submit(client, [("a.jpg", h.make_jpeg(3))])
    location = r.headers["location"]
    job = h.wait_job(client, location)
    got = client.get(location)
    etag = got.headers["etag"]
    assert got.headers["content-type"] == "application/json"
    # compact JSON, and the strong ETag is the digest of exactly these bytes
    assert got.content == json.dumps(job, separators=(",", ":")).encode()
    assert etag == '"' + hashlib.sha256(got.content).hexdigest()[:40] + '"'
    for header in (etag, "*", f'"zz", W/{etag}'):
        r = client.get(location, headers={"If-None-Match": header})
        assert r.status_code == 304 and r.headers["etag"] == etag
        assert r.headers["cache-control"] == "no-cache"
    head = client.head(location, headers={"If-None-Match": etag})
    assert head.status_code == 304
    assert client.get(location, headers={"If-None-Match": '"zz"'}).status_code == 200
    # a POST answer is never a 304, whatever the client sends
    palette = client.post("/v1/palette", content=h.make_jpeg(4))
    again = client.post(
        "/v1/palette", content=h.make_jpeg(4), headers={"If-None-Match": palette.headers["etag"]}
    )
    assert again.status_code == 200 and again.content == palette.content


# -- idempotency keys ----------------------------------------------------------------------------
def test_an_idempotency_key_covers_the_options_and_names(client: TestClient, h: Any) -> None:
    image = h.make_jpeg(31)
    key = {"Idempotency-Key": "options-key"}
    first = h.submit(client, [("a.jpg", image)], headers=key, colors="4")
    assert first.status_code == 202
    replay = h.submit(client, [("a.jpg", image)], headers=key, colors="4")
    assert replay.status_code == 202 and replay.json()["id"] == first.json()["id"]
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["location"] == first.headers["location"]
    for files, fields in (
        ([("a.jpg", image)], {"colors": "5"}),  # same bytes, other options
        ([("a.jpg", image)], {}),  # an option left out
        ([("renamed.jpg", image)], {"colors": "4"}),  # same bytes, another name
        ([("a.jpg", image), ("a.jpg", image)], {"colors": "4"}),
    ):
        other = h.submit(client, files, headers=key, **fields)
        h.problem(other, 422, "idempotency_key_reused")
    assert [j["id"] for j in client.get("/v1/jobs").json()["jobs"]] == [first.json()["id"]]
    for bad in ("", "x" * 256, "tab\there"):
        h.problem(
            h.submit(client, [("a.jpg", image)], headers={"Idempotency-Key": bad}),
            400,
            "bad_idempotency_key",
        )
    assert h.submit(client, [("a.jpg", image)], headers={"Idempotency-Key": "k" * 255}).status_code == 202


def test_a_key_expires_when_it_is_next_presented(tmp_path: Path, h: Any) -> None:
    clock = Clock()
    settings = Settings(data_dir=tmp_path, idempotency_seconds=100, sweep_interval_seconds=3600)
    with TestClient(create_app(settings, clock=clock)) as c:
        key = {"Idempotency-Key": "expiring"}
        first = h.submit(c, [("a.jpg", h.make_jpeg(41))], headers=key)
        h.wait_job(c, first.headers["location"])
        clock.t += 99  # still within the window: the same key is a replay or a conflict
        assert h.submit(c, [("a.jpg", h.make_jpeg(41))], headers=key).json()["id"] == first.json()["id"]
        h.problem(h.submit(c, [("b.jpg", h.make_jpeg(42))], headers=key), 422, "idempotency_key_reused")
        clock.t += 1  # the window is over; no sweep has run since the key was stored
        fresh = h.submit(c, [("b.jpg", h.make_jpeg(42))], headers=key)
        assert fresh.status_code == 202 and "idempotent-replayed" not in fresh.headers
        assert fresh.json()["id"] != first.json()["id"]


def test_a_key_whose_request_died_is_freed_after_an_hour(tmp_path: Path, h: Any) -> None:
    """A request that never finished (its process died) holds its key for an hour only."""
    data_dir = tmp_path / "data"
    clock = Clock()
    app = create_app(Settings(data_dir=data_dir, sweep_interval_seconds=3600), clock=clock)
    key = {"Idempotency-Key": "orphaned"}
    with TestClient(app) as c:
        # What a killed server leaves: the key reserved, its upload never finished.
        idempotency = app.state.runtime.backends.idempotency
        assert idempotency.idempotency_begin("public", "orphaned", "POST", "/v1/jobs") == "new"
        clock.t += 3599
        busy = h.submit(c, [("a.jpg", h.make_jpeg(43))], headers=key)
        assert h.problem(busy, 409, "idempotency_key_in_use")
        assert busy.headers["retry-after"] == "1"
        clock.t += 1
        freed = h.submit(c, [("a.jpg", h.make_jpeg(43))], headers=key)
        assert freed.status_code == 202, freed.text


# -- signed download links -----------------------------------------------------------------------
@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[TestClient, Clock, dict[str, str]]]:
    clock = Clock()
    settings = Settings(
        data_dir=tmp_path / "data",
        api_keys={"key-acme": "acme"},
        retention_seconds=3600,
        sweep_interval_seconds=3600,
    )
    with TestClient(create_app(settings, clock=clock)) as c:
        yield c, clock, {"X-API-Key": "key-acme"}


def link(c: TestClient, job_id: str, auth: dict[str, str], **body: Any) -> Any:
    return c.post(f"/v1/jobs/{job_id}/download-url", json=body or None, headers=auth)


def test_download_links_for_jobs_that_cannot_have_one(tmp_path: Path, h: Any) -> None:
    settings = Settings(data_dir=tmp_path, api_keys={"key-acme": "acme"})
    auth = {"X-API-Key": "key-acme"}
    with TestClient(create_app(settings, run_workers=False)) as c:
        h.problem(link(c, "no-such-job", auth), 404, "job_not_found")
        queued = h.submit(c, [("a.jpg", h.make_jpeg(1))], headers=auth).json()["id"]
        assert h.problem(link(c, queued, auth), 409, "job_not_finished")["status_now"] == "queued"
        h.problem(link(c, queued, {}), 401, "unauthorized")
        assert c.post(f"/v1/jobs/{queued}/cancel", headers=auth).status_code == 200
        assert h.problem(link(c, queued, auth), 409, "no_results")["status_now"] == "canceled"


def test_download_link_body_is_checked(keyed: Any, h: Any) -> None:
    c, _, auth = keyed
    location = h.submit(c, [("a.jpg", h.make_jpeg(1))], headers=auth).headers["location"]
    job_id = h.wait_job(c, location, headers=auth)["id"]
    url = f"/v1/jobs/{job_id}/download-url"
    big = c.post(url, content=b"{" + b" " * 4096 + b"}", headers=auth)
    problem = h.problem(big, 413, "body_too_large")
    assert problem["limit_bytes"] == 4096 and problem["actual_bytes"] == 4098
    assert problem["detail"] == "The JSON body is too large."
    ok = c.post(url, content=b"{" + b" " * 4094 + b"}", headers=auth)
    assert ok.status_code == 200, ok.text
    nope = h.problem(c.post(url, content=b"{nope", headers=auth), 400, "invalid_json")
    assert nope["detail"].startswith("The body is not valid JSON (")
    array = h.problem(c.post(url, content=b"[1, 2]", headers=auth), 400, "invalid_json")
    assert array["detail"] == "The body must be a JSON object."
    h.problem(c.post(url, content=b"\xff\xfe", headers=auth), 400, "invalid_json")
    for body, field in (
        ({"expires_in": 0}, "expires_in"),
        ({"expires_in": True}, "expires_in"),
        ({"disposition": "evil"}, "disposition"),
        ({"filename": "a/b"}, "filename"),
        ({"colour": 1}, "colour"),
    ):
        problem = h.problem(link(c, job_id, auth, **body), 422, "invalid_download_request")
        assert problem["field"] == field
    problem = h.problem(link(c, job_id, auth, expires_in=0), 422, "invalid_download_request")
    assert problem["detail"] == "expires_in must be whole seconds from 1 to 604800."


def test_a_json_body_in_pieces_of_undeclared_length_is_held_to_its_limit(
    tmp_path: Path, h: Any
) -> None:
    with TestClient(Rechunk(create_app(Settings(data_dir=tmp_path)), 1000)) as c:
        job = h.wait_job(c, h.submit(c, [("a.jpg", h.make_jpeg(1))]).headers["location"])
        url = f"/v1/jobs/{job['id']}/download-url"
        over = c.post(url, content=chunked(b"{" + b" " * 4095 + b"}"))  # 4,097 bytes
        problem = h.problem(over, 413, "body_too_large")
        assert problem["limit_bytes"] == 4096 and "actual_bytes" not in problem
        assert problem["detail"] == "The JSON body is too large."
        assert c.post(url, content=chunked(b"{" + b" " * 4094 + b"}")).status_code == 200


def test_a_download_link_serves_the_results_to_anyone_until_it_expires(
    keyed: Any, h: Any
) -> None:
    c, clock, auth = keyed
    location = h.submit(c, [("a.jpg", h.make_jpeg(1))], headers=auth).headers["location"]
    job = h.wait_job(c, location, headers=auth)
    results = c.get(job["results_url"], headers=auth)
    made = link(c, job["id"], auth, disposition="inline", filename="palette (1).json", expires_in=60)
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    doc = made.json()
    assert doc["method"] == "GET" and doc["expires_in"] == 60
    assert doc["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(clock.t) + 60))
    parts = urlsplit(doc["url"])
    path = parts.path + "?" + parts.query
    got = c.get(path)  # no API key: the link is the credential
    assert got.status_code == 200 and got.content == results.content
    assert got.headers["etag"] == results.headers["etag"]
    assert got.headers["content-disposition"] == 'inline; filename="palette (1).json"'
    part = c.get(path, headers={"Range": "bytes=2-9"})
    assert part.status_code == 206 and part.content == results.content[2:10]
    assert c.get(path, headers={"If-None-Match": results.headers["etag"]}).status_code == 304
    assert c.head(path).status_code == 200
    default = link(c, job["id"], auth).json()
    assert default["expires_in"] == 900
    plain = c.get(urlsplit(default["url"]).path + "?" + urlsplit(default["url"]).query)
    assert plain.headers["content-disposition"] == f'attachment; filename="{job["id"]}-results.json"'
    # tampering with any parameter breaks the signature
    params = parse_qsl(parts.query)
    for name, value in (("disposition", "attachment"), ("filename", "x.json"), ("expires", "9" * 10)):
        changed = [(k, value if k == name else v) for k, v in params]
        r = c.get(parts.path + "?" + urlencode(changed))
        h.problem(r, 403, "signature_invalid")
    h.problem(c.get(parts.path), 403, "signature_invalid")
    clock.t += 59
    assert c.get(path).status_code == 200
    clock.t += 1
    expired = h.problem(c.get(path), 403, "url_expired")
    assert expired["expired_at"] == int(clock.t)


def test_a_link_never_outlives_the_job_and_a_removed_job_is_404(keyed: Any, h: Any) -> None:
    c, clock, auth = keyed
    clock.t += 0.5  # the results are removed half-way through a second
    location = h.submit(c, [("a.jpg", h.make_jpeg(1))], headers=auth).headers["location"]
    job = h.wait_job(c, location, headers=auth)
    clock.t += 100  # the results are kept 3600 s after the job finished
    made = link(c, job["id"], auth, expires_in=7200).json()
    assert made["expires_in"] == 3500
    shorter = link(c, job["id"], auth, expires_in=3499).json()
    assert shorter["expires_in"] == 3499
    parts = urlsplit(made["url"])
    path = parts.path + "?" + parts.query
    assert c.get(path).status_code == 200
    clock.t += 3499.8  # the results' last fraction of a second: a link made now has none left
    assert link(c, job["id"], auth).json()["expires_in"] == 0
    clock.t -= 3499.8
    assert c.delete(location, headers=auth).status_code == 204
    h.problem(c.get(path), 404, "job_not_found")


# -- ZIP limits set through the environment ------------------------------------------------------
@pytest.mark.parametrize(
    ("variable", "code"),
    [
        ("PALETTE_ZIP_MAX_ENTRY_BYTES", "archive_entry_too_large"),
        ("PALETTE_ZIP_MAX_TOTAL_BYTES", "archive_too_large"),
    ],
)
def test_zip_limits_come_from_the_environment(
    tmp_path: Path, h: Any, variable: str, code: str
) -> None:
    images = {f"{n}.png": h.make_png(50 + n, size=(60, 40)) for n in range(3)}
    biggest = max(len(v) for v in images.values())
    limit = biggest - 1 if code == "archive_entry_too_large" else sum(map(len, images.values())) - 1
    env = {variable: str(limit), "PALETTE_DATA_DIR": str(tmp_path)}
    with TestClient(create_app(Settings.from_env(env))) as c:
        r = h.submit(c, [("set.zip", h.make_zip(images))])
        job = h.wait_job(c, r.headers["location"])
        assert job["status"] == "failed" and job["error"]["code"] == code, job
        assert job["error"]["limit_bytes"] == limit
    env[variable] = str(limit + 1)
    with TestClient(create_app(Settings.from_env(env))) as c:
        job = h.wait_job(c, h.submit(c, [("set.zip", h.make_zip(images))]).headers["location"])
        assert job["status"] == "succeeded" and job["progress"]["done"] == 3, job


def test_an_archives_files_are_counted_from_its_directory(h: Any) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("photos/", b"")  # a folder is not a file
        zf.writestr("photos/a.jpg", h.make_jpeg(1))
        zf.writestr("b.png", h.make_png(2))
    buffer.seek(0)
    assert count_archive_entries(buffer) == 2


# -- the workers' stop paths ---------------------------------------------------------------------
class Gate:
    """``extract`` that runs the real library but holds every image after the first ``free``
    until released or stopped (it polls ``should_cancel`` as the library does between strips),
    and records which images it was given."""

    def __init__(self, names: dict[bytes, str], free: int) -> None:
        self.names = names
        self.free = free
        self.calls: list[str] = []
        self.open = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, source: Any, *, should_cancel: Any = None, **kwargs: Any) -> Any:
        name = self.names[bytes(source)]
        with self.lock:
            self.calls.append(name)
            held = len(self.calls) > self.free
        while held and not self.open.wait(0.01):
            if should_cancel is not None and should_cancel():
                raise CanceledError("stopped while held")
        return palette_native.extract(source, should_cancel=should_cancel, **kwargs)


def archive_of(h: Any, count: int) -> tuple[bytes, dict[bytes, str]]:
    images = {f"img{n}.jpg": h.make_jpeg(300 + n) for n in range(count)}
    return h.make_zip(images), {data: name for name, data in images.items()}


def test_drain_keeps_finished_images_and_the_next_run_does_only_the_rest(
    tmp_path: Path, h: Any
) -> None:
    archive, names = archive_of(h, 6)
    settings = Settings(data_dir=tmp_path, workers=1, drain_grace_seconds=0.2)
    first = Gate(names, free=1)
    with TestClient(create_app(settings, extract=first)) as c:
        location = h.submit(c, [("six.zip", archive)]).headers["location"]
        h.wait_job(c, location, done=1)
        h.wait_for(lambda: len(first.calls) >= 2)
        threading.Timer(0.6, first.open.set).start()
    # Leaving the block drains: the held image would finish 0.6 s in, but the grace period is
    # a deadline, so it is stopped at 0.2 s, not waited for, and the job goes back to the
    # queue with the finished image kept.
    second = Gate(names, free=99)
    with TestClient(create_app(settings, run_workers=False)) as c:
        job = c.get(location).json()
        assert job["status"] == "queued" and job["progress"]["done"] == 1, job
    with TestClient(create_app(settings, extract=second)) as c:
        job = h.wait_job(c, location)
        assert job["status"] == "succeeded" and job["progress"]["done"] == 6, job
        items = c.get(job["results_url"]).json()["items"]
    assert sorted(i["name"] for i in items) == sorted(names.values())
    done_first = set(first.calls[:1])
    # Nothing finished before the drain was computed again, and everything else was.
    assert sorted(second.calls) == sorted(set(names.values()) - done_first)


def test_a_drain_without_grace_stops_the_running_image_and_hands_the_job_back(
    tmp_path: Path, h: Any
) -> None:
    archive, names = archive_of(h, 3)
    settings = Settings(data_dir=tmp_path, workers=1, drain_grace_seconds=0)
    gate = Gate(names, free=0)
    with TestClient(create_app(settings, extract=gate)) as c:
        location = h.submit(c, [("three.zip", archive)]).headers["location"]
        h.wait_for(lambda: len(gate.calls) == 1)
    # The library stopped the image for the drain itself (no cancel, no lost lease): the job
    # is handed back, not left running until its lease runs out.
    with TestClient(create_app(settings, run_workers=False)) as c:
        job = c.get(location).json()
    assert job["status"] == "queued" and job["progress"]["done"] == 0, job


def test_cancel_stops_a_running_job_and_keeps_nothing(tmp_path: Path, h: Any) -> None:
    archive, names = archive_of(h, 8)
    gate = Gate(names, free=2)
    settings = Settings(data_dir=tmp_path, workers=1)
    app = create_app(settings, extract=gate)
    with TestClient(app) as c:
        r = h.submit(c, [("eight.zip", archive)])
        location = r.headers["location"]
        h.wait_job(c, location, done=2)
        h.wait_for(lambda: len(gate.calls) >= 3)
        started = time.monotonic()
        cancel = c.post(location + "/cancel")
        assert cancel.status_code == 202 and cancel.json()["cancel_requested"] is True
        job = h.wait_job(c, location, timeout=5)
        assert time.monotonic() - started < 1.0
        assert job["status"] == "canceled" and job["progress"]["done"] == 0, job
        h.problem(c.get(location + "/results"), 409, "no_results")
        blobs = app.state.runtime.backends.blobs
        h.wait_for(lambda: list(blobs.keys(f"uploads/{job['id']}")) == [], 5)
        calls = len(gate.calls)
        assert calls <= 4  # the held image, and at most the one queued behind it
        assert c.post(location + "/cancel").status_code == 200  # canceled stays canceled
        # The worker is free again; nothing of the canceled job runs any more.
        gate.open.set()
        again = h.submit(c, [("one.zip", h.make_zip({"x.jpg": h.make_jpeg(300)}))])
        assert h.wait_job(c, again.headers["location"])["status"] == "succeeded"
        assert len(gate.calls) == calls + 1


def test_download_links_are_per_tenant_and_checked_to_the_byte(tmp_path: Path, h: Any) -> None:
    settings = Settings(data_dir=tmp_path, api_keys={"key-a": "a", "key-b": "b"})
    alice, bob = {"X-API-Key": "key-a"}, {"X-API-Key": "key-b"}
    with TestClient(create_app(settings)) as c:
        location = h.submit(c, [("a.jpg", h.make_jpeg(1))], headers=alice).headers["location"]
        job_id = h.wait_job(c, location, headers=alice)["id"]
        h.problem(link(c, job_id, bob), 404, "job_not_found")  # another tenant's job
        url = f"/v1/jobs/{job_id}/download-url"
        over = c.post(url, content=b'{"expires_in": 1' + b" " * 4080 + b"}", headers=alice)
        assert h.problem(over, 413, "body_too_large")["actual_bytes"] == 4097
        shortest = link(c, job_id, alice, expires_in=1)
        assert shortest.status_code == 200 and shortest.json()["expires_in"] == 1
        longest = link(c, job_id, alice, expires_in=7 * 24 * 3600)
        assert longest.status_code == 200
        h.problem(link(c, job_id, alice, expires_in=7 * 24 * 3600 + 1), 422, "invalid_download_request")


def test_a_signed_link_must_carry_its_response_parameters(tmp_path: Path, h: Any) -> None:
    from service.signed_urls import SigningKeys, UrlSigner

    keys = "k1:0123456789abcdef-secret"
    clock = Clock()
    settings = Settings(data_dir=tmp_path, url_signing_keys=keys)
    with TestClient(create_app(settings, clock=clock)) as c:
        job = h.wait_job(c, h.submit(c, [("a.jpg", h.make_jpeg(1))]).headers["location"])
        made = urlsplit(link(c, job["id"], {}).json()["url"])
        assert c.get(made.path + "?" + made.query).status_code == 200  # the configured key signs
        signer = UrlSigner(SigningKeys.parse(keys), clock)
        expires = int(clock.t) + 60
        for params in (
            {},
            {"filename": "r.json"},
            {"disposition": "attachment"},
            {"disposition": "download", "filename": "r.json"},
        ):
            forged = signer.sign(made.path, params, expires)  # a valid signature, odd parameters
            h.problem(c.get(forged), 403, "signature_invalid")
        no_expiry = [(k, v) for k, v in parse_qsl(made.query) if k != "expires"]
        h.problem(c.get(made.path + "?" + urlencode(no_expiry)), 403, "signature_invalid")


def test_refused_download_links_say_why(tmp_path: Path, h: Any) -> None:
    clock = Clock()
    settings = Settings(data_dir=tmp_path, url_signing_keys="k1:0123456789abcdef-secret")
    with TestClient(create_app(settings, clock=clock)) as c:
        job = h.wait_job(c, h.submit(c, [("a.jpg", h.make_jpeg(1))]).headers["location"])
        made = urlsplit(link(c, job["id"], {}, expires_in=60).json()["url"])
        params = parse_qsl(made.query)

        def detail(query: list[tuple[str, str]], code: str = "signature_invalid") -> str:
            r = c.get(made.path + "?" + urlencode(query))
            return str(h.problem(r, 403, code)["detail"])

        lacking = "The download link is not valid: the URL lacks its signature, key id or expiry."
        for name in ("sig", "kid", "expires"):
            assert detail([(k, v) for k, v in params if k != name]) == lacking, name
        twice = [*params, ("disposition", "inline")]
        assert detail(twice) == (
            "The download link is not valid: a parameter appears more than once."
        )
        unknown_key = [(k, "k2" if k == "kid" else v) for k, v in params]
        assert detail(unknown_key) == (
            "The download link is not valid: the URL was signed with a key this service does not"
            " hold."
        )
        other_file = [(k, "x.json" if k == "filename" else v) for k, v in params]
        assert detail(other_file) == (
            "The download link is not valid: the signature does not match the URL."
        )
        secret = SigningKeys.parse(settings.url_signing_keys).current[1]
        by_hand = [("disposition", "inline"), ("filename", "r.json"), ("expires", "+1999999999")]
        by_hand.append(("kid", "k1"))
        by_hand.append(("sig", _mac(secret, canonical("GET", made.path, by_hand))))
        assert detail(by_hand) == "The download link is not valid: the expiry is not a number."
        clock.t += 60
        assert detail(params, "url_expired") == "The download link has expired; ask for a new one."
        signer = UrlSigner(SigningKeys.parse(settings.url_signing_keys), clock)
        forged = urlsplit(signer.sign(made.path, {"filename": "r.json"}, int(clock.t) + 60))
        assert detail(parse_qsl(forged.query)) == (
            "The download link lacks its response parameters."
        )


def test_a_signed_download_is_audited_under_the_jobs_tenant(keyed: Any, h: Any) -> None:
    c, _, auth = keyed
    location = h.submit(c, [("a.jpg", h.make_jpeg(1))], headers=auth).headers["location"]
    job = h.wait_job(c, location, headers=auth)
    made = urlsplit(link(c, job["id"], auth).json()["url"])
    assert c.get(made.path + "?" + made.query).status_code == 200  # no credential but the link
    entries = c.get("/v1/audit?action=job.download", headers=auth).json()["data"]
    assert [(e["tenant"], e["target"], e["outcome"]) for e in entries] == [
        ("acme", f"job_id={job['id']}", "allowed 200")
    ]


class PresigningBlobs(LocalBlobStore):
    """Blobs on disk that hand out presigned GETs as the S3 store does, recording what each was
    asked for: the object, its lifetime and the headers S3 would answer the GET with."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.presigned: list[tuple[str, int, str, str]] = []

    def presigned_get(
        self, key: str, expires_in: int, *, content_type: str, content_disposition: str
    ) -> str | None:
        self.presigned.append((key, expires_in, content_type, content_disposition))
        return f"https://bucket.test/{key}?lifetime={expires_in}"


def test_a_presigned_download_redirects_to_a_get_that_ends_with_the_link(
    tmp_path: Path, h: Any
) -> None:
    blobs = PresigningBlobs(tmp_path / "blobs")

    def backends(settings: Settings, clock: Any) -> Any:
        local = dataclasses.replace(settings, blobs="", presigned_downloads=False)
        return dataclasses.replace(open_backends(local, clock), blobs=blobs)

    clock = Clock()
    settings = Settings(data_dir=tmp_path, blobs="s3://bucket/p", presigned_downloads=True)
    with TestClient(create_app(settings, clock=clock, backends=backends)) as c:
        job = h.wait_job(c, h.submit(c, [("a.jpg", h.make_jpeg(1))]).headers["location"])
        results = c.get(job["results_url"]).content
        made = link(c, job["id"], {}, expires_in=60, disposition="inline", filename="p.json")
        parts = urlsplit(made.json()["url"])
        path = parts.path + "?" + parts.query
        clock.t += 20.5
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 307 and r.content == b""
        assert r.headers["cache-control"] == "no-store"
        [(key, lifetime, content_type, disposition)] = blobs.presigned
        assert r.headers["location"] == f"https://bucket.test/{key}?lifetime=40"
        assert (lifetime, content_type, disposition) == (
            40,
            "application/json",
            'inline; filename="p.json"',
        )
        assert b"".join(blobs.read_range(key, 0, len(results) - 1)) == results
        clock.t += 39  # the last second of the link: the presigned GET still gets one second
        assert c.get(path, follow_redirects=False).headers["location"].endswith("lifetime=1")
        assert blobs.presigned[-1][1] == 1


def test_a_job_past_its_wall_clock_limit_fails_with_what_was_done(tmp_path: Path, h: Any) -> None:
    archive, names = archive_of(h, 4)
    security = SecuritySettings(job_timeout_seconds=0.5)
    settings = Settings(data_dir=tmp_path, workers=1, security=security)
    gate = Gate(names, free=1)  # the second image is held until the limit stops it
    with TestClient(create_app(settings, extract=gate)) as c:
        location = h.submit(c, [("four.zip", archive)]).headers["location"]
        job = h.wait_job(c, location)
        assert job["status"] == "failed" and job["progress"]["done"] == 1
        assert job["error"] == {
            "code": "job_timeout",
            "detail": "the job ran longer than 0.5 s; images not finished by then were not"
            " processed",
            "limit_seconds": 0.5,
        }
        results = c.get(job["results_url"]).json()
        assert [item["status"] for item in results["items"]] == ["succeeded"]
        refused = h.problem(c.post(location + "/cancel"), 409, "job_finished")
        assert refused["status_now"] == "failed"


def test_canceling_one_running_job_leaves_the_other_running(tmp_path: Path, h: Any) -> None:
    first = {f"a{n}.jpg": h.make_jpeg(400 + n) for n in range(2)}
    second = {f"b{n}.jpg": h.make_jpeg(500 + n) for n in range(2)}
    gate = Gate({data: name for name, data in {**first, **second}.items()}, free=0)
    settings = Settings(data_dir=tmp_path, workers=2)
    with TestClient(create_app(settings, extract=gate)) as c:
        a = h.submit(c, [("a.zip", h.make_zip(first))]).headers["location"]
        b = h.submit(c, [("b.zip", h.make_zip(second))]).headers["location"]
        h.wait_for(lambda: len(gate.calls) == 2)  # one image of each job is held
        assert c.post(a + "/cancel").status_code in (200, 202)
        assert h.wait_job(c, a)["status"] == "canceled"
        gate.open.set()
        done = h.wait_job(c, b)
        assert done["status"] == "succeeded" and done["progress"]["done"] == 2
        finished = [
            line
            for line in c.get("/metrics").text.splitlines()
            if line.startswith("palette_jobs_finished_total{")
        ]
        assert sorted(finished) == [
            'palette_jobs_finished_total{status="canceled"} 1.0',
            'palette_jobs_finished_total{status="succeeded"} 1.0',
        ]


def test_a_job_canceled_while_its_image_waits_behind_other_jobs_stops_at_once(
    tmp_path: Path, h: Any
) -> None:
    # Both CPU threads hold images of the first job; the second job's only image is queued
    # behind them. Canceling the second job must not wait for the first job's images.
    busy = {f"b{n}.jpg": h.make_jpeg(600 + n) for n in range(2)}
    late = h.make_jpeg(700)
    gate = Gate({**{data: name for name, data in busy.items()}, late: "late.jpg"}, free=0)
    settings = Settings(data_dir=tmp_path, workers=2)
    with TestClient(create_app(settings, extract=gate)) as c:
        b = h.submit(c, [("b.zip", h.make_zip(busy))]).headers["location"]
        h.wait_for(lambda: len(gate.calls) == 2)
        a = h.submit(c, [("late.jpg", late)]).headers["location"]
        h.wait_for(lambda: c.get(a).json()["status"] == "running")
        assert c.post(a + "/cancel").status_code in (200, 202)
        assert h.wait_job(c, a, timeout=10)["status"] == "canceled"
        assert sorted(gate.calls) == ["b0.jpg", "b1.jpg"]
        gate.open.set()
        assert h.wait_job(c, b)["status"] == "succeeded"
    assert "late.jpg" not in gate.calls  # never started: nothing was thrown away half done


def test_a_failed_images_error_names_the_upload_not_the_servers_file(
    tmp_path: Path, h: Any
) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path))) as c:
        location = h.submit(c, [("broken.jpg", h.make_jpeg(1)[:300])]).headers["location"]
        job = h.wait_job(c, location)
        [item] = c.get(job["results_url"]).json()["items"]
    assert item["status"] == "failed"
    text = json.dumps(item["error"])
    assert str(tmp_path) not in text and "broken.jpg" in text


def test_an_image_arriving_in_pieces_is_decoded_from_the_pieces_joined(
    tmp_path: Path, h: Any
) -> None:
    png = h.make_png(61, size=(40, 30))  # PNG: any byte out of place fails its checksums
    assert len(png) > 3 * 100
    answers = []
    for name, size in (("whole", len(png)), ("pieces", 100)):  # separate caches
        app = create_app(Settings(data_dir=tmp_path / name))
        with TestClient(Rechunk(app, size)) as c:
            r = c.post("/v1/palette?colors=4", content=chunked(png))
            assert r.status_code == 200, r.text
            answers.append(r.json())
    assert answers[0] == answers[1]


def test_asking_again_to_cancel_a_running_job_changes_nothing(tmp_path: Path, h: Any) -> None:
    clock = Clock()
    app = create_app(Settings(data_dir=tmp_path), clock=clock, run_workers=False)
    with TestClient(app) as c:
        location = h.submit(c, [("a.jpg", h.make_jpeg(1))]).headers["location"]
        assert app.state.runtime.backends.jobs.claim("elsewhere", 60) is not None  # running
        first = c.post(location + "/cancel")
        assert first.status_code == 202 and first.json()["cancel_requested"] is True
        clock.t += 5
        again = c.post(location + "/cancel")
        assert again.status_code == 202 and again.json() == first.json()

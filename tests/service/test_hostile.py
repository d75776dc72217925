"""Regression tests for what a hostile test of the service found (issue 13, findings 1-11),
each against a real ``palette serve``."""

from __future__ import annotations

import io
import os
import socket
import stat
import struct
import threading
import time
import zipfile
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e


def raw_request(port: int, payload: bytes, *, read_timeout: float = 10.0) -> bytes:
    """Send ``payload`` on a fresh connection (ignoring a server that hangs up early) and
    return everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        try:
            for at in range(0, len(payload), 1 << 16):
                sock.sendall(payload[at : at + (1 << 16)])
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# -- 1: request heads ----------------------------------------------------------------------------


def test_1_a_huge_header_line_is_refused_cheaply_while_others_are_served(server: Any) -> None:
    cpu_before = server.cpu_seconds()
    answers: list[float] = []

    def probe() -> None:
        for _ in range(10):
            started = time.monotonic()
            assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
            answers.append(time.monotonic() - started)

    prober = threading.Thread(target=probe)
    prober.start()
    # 32 MiB of one header line without a colon (it cost ~3 s of CPU per 32 MiB before).
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX" + b"A" * (32 << 20)
    answer = raw_request(server.port, head)
    prober.join()
    assert status_of(answer) == 431
    assert b'"code": "headers_too_large"' in answer and b"application/problem+json" in answer
    assert server.cpu_seconds() - cpu_before < 1.0
    assert max(answers) < 0.5


def test_1_too_many_header_fields_and_a_big_head_in_one_read(server: Any) -> None:
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-%d: v\r\n" % n for n in range(150)
    )
    answer = raw_request(server.port, many + b"\r\n")
    assert status_of(answer) == 431 and b'"code": "too_many_headers"' in answer
    # Under both limits: answered as usual.
    fine = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + b"".join(
        b"X-%d: %s\r\n" % (n, b"v" * 500) for n in range(60)
    )
    assert status_of(raw_request(server.port, fine + b"\r\n")) == 200
    # A head over the byte limit that arrives complete in one piece is refused too.
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 70_000 + b"\r\n\r\n"
    assert status_of(raw_request(server.port, big)) == 431


# -- 2, 3, 4: archives ---------------------------------------------------------------------------


def _records(count: int) -> tuple[bytes, bytes]:
    """``count`` empty stored entries: the local headers and the central directory records."""
    local, central = [], []
    offset = 0
    for n in range(count):
        name = b"%07d" % n
        header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0)
        local.append(header + name)
        central.append(
            struct.pack(
                "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0,
                len(name), 0, 0, 0, 0, 0, offset,
            )
            + name
        )
        offset += len(header) + len(name)
    return b"".join(local), b"".join(central)


def forged_count_zip(count: int, claimed: int) -> bytes:
    local, central = _records(count)
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, claimed, claimed, len(central), len(local), 0
    )
    return local + central + end


def test_2_a_forged_entry_count_costs_no_memory(server_factory: Any, h: Any) -> None:
    """400k directory records with an end record claiming 10: counted from the records,
    refused, and the server's memory barely moves (it grew by 204 MB before)."""
    server = server_factory()
    archive = forged_count_zip(400_000, 10)
    assert len(archive) > 20_000_000
    before = server.peak_rss_mb()
    with httpx.Client(base_url=server.url, timeout=60) as c:
        body = h.problem(h.submit(c, [("many.zip", archive)]), 422, "archive_too_many_entries")
    assert body["actual_entries"] == 400_000 and body["limit_entries"] == 10_000
    assert body["part"] == "many.zip"
    assert server.peak_rss_mb() - before < 40


def test_2_the_entry_limit_counts_records_not_the_claim(server_factory: Any, h: Any) -> None:
    server = server_factory({"PALETTE_ZIP_MAX_ENTRIES": "100"})
    with httpx.Client(base_url=server.url, timeout=60) as c:
        body = h.problem(
            h.submit(c, [("m.zip", forged_count_zip(150, 10))]), 422, "archive_too_many_entries"
        )
    assert body["actual_entries"] == 150 and body["limit_entries"] == 100


def as_zip64(archive: bytes) -> bytes:
    """The same archive with a ZIP64 end record, the classic one saying "see ZIP64" (0xFFFF
    counts, 0xFFFFFFFF size and offset), as streaming writers produce."""
    at = archive.rfind(b"PK\x05\x06")
    (_, _, _, _, count, size, offset, _) = struct.unpack("<4s4H2LH", archive[at : at + 22])
    record = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return archive[:at] + record + locator + end


def test_3_zip64_archives_are_read(server: Any, h: Any) -> None:
    archive = as_zip64(h.make_zip({"a.jpg": h.make_jpeg(1), "b.jpg": h.make_jpeg(2)}))
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:  # a valid archive to the stdlib too
        assert zf.namelist() == ["a.jpg", "b.jpg"]
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = h.submit(c, [("z64.zip", archive)])
        assert r.status_code == 202, r.text
        job = h.wait_job(c, r.headers["location"])
    assert job["status"] == "succeeded" and job["progress"]["done"] == 2


def test_4_a_truncated_archive_ending_in_a_stored_archive_is_corrupt(
    server: Any, h: Any
) -> None:
    inner = h.make_zip({"inner.jpg": h.make_jpeg(3)})
    outer = h.make_zip({"a.jpg": h.make_jpeg(4), "inner.zip": inner})
    truncated = outer[: outer.index(inner) + len(inner)]  # the outer directory is cut off
    with httpx.Client(base_url=server.url, timeout=60) as c:
        body = h.problem(h.submit(c, [("cut.zip", truncated)]), 422, "archive_corrupt")
    assert body["part"] == "cut.zip"


# -- 5: JSON -------------------------------------------------------------------------------------


def test_5_deeply_nested_json_is_a_400_and_the_connection_lives(server: Any, h: Any) -> None:
    # Deeper than any parser should recurse (the standard library's json stops at about 1,000
    # levels with a RecursionError: the 500 of the finding), small enough for every route.
    deep = b"[" * 1500 + b"]" * 1500
    with httpx.Client(base_url=server.url, timeout=30) as c:
        job = h.wait_job(c, h.submit(c, [("a.jpg", h.make_jpeg(5))]).headers["location"])
        for path in (
            "/v1/webhook-endpoints",
            "/v1/api-keys",
            f"/v1/jobs/{job['id']}/download-url",
        ):
            r = c.post(path, content=deep, headers={"content-type": "application/json"})
            h.problem(r, 400, "invalid_json")
            assert c.get("/healthz").status_code == 200  # same connection, still served
    assert "Traceback" not in server.log()


# -- 6: callback secrets -------------------------------------------------------------------------


def test_6_each_tenant_gets_its_own_callback_secret(server_factory: Any) -> None:
    from service.webhooks.signing import generate_secret, tenant_secret

    master = generate_secret()
    server = server_factory(
        {
            "PALETTE_API_KEYS": "alpha:key-alpha-0000000001,beta:key-beta-00000000001",
            "PALETTE_WEBHOOK_CALLBACK_SECRET": master,
        }
    )
    secrets = {
        tenant: httpx.get(
            server.url + "/v1/webhook-callback-secret", headers={"x-api-key": key}, timeout=10
        ).json()["secret"]
        for tenant, key in (("alpha", "key-alpha-0000000001"), ("beta", "key-beta-00000000001"))
    }
    assert secrets == {t: tenant_secret(master, t) for t in ("alpha", "beta")}
    assert len({master, *secrets.values()}) == 3


# -- 8: file modes and error messages -------------------------------------------------------------


def test_8_the_database_is_private_and_item_errors_name_the_clients_file(
    server: Any, h: Any
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        broken = h.make_jpeg(6)[:400]
        job = h.wait_job(c, h.submit(c, [("holiday.jpg", broken)]).headers["location"])
        results = c.get(f"/v1/jobs/{job['id']}/results").text
    assert job["status"] == "succeeded" and job["progress"]["failed"] == 1
    assert "holiday.jpg" in results
    assert str(server.data_dir) not in results and "/blobs/" not in results
    for name in ("jobs.sqlite3", "jobs.sqlite3-wal", "jobs.sqlite3-shm"):
        path = server.data_dir / name
        assert path.exists(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


# -- 9: one format allow-list ---------------------------------------------------------------------


SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
    b'<rect width="64" height="64" fill="#c03"/></svg>'
)


def test_9_the_sync_path_refuses_what_jobs_refuse(server: Any, h: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        h.problem(c.post("/v1/palette", content=SVG), 415, "unsupported_format")
        multipart = c.post("/v1/palette", files={"file": ("x.svg", SVG, "image/svg+xml")})
        h.problem(multipart, 415, "unsupported_format")
        h.problem(h.submit(c, [("x.svg", SVG)]), 415, "unsupported_format")
        assert c.post("/v1/palette", content=h.make_png(1)).status_code == 200


# -- 10: slow clients, memory, links, egress, page headers ----------------------------------------


def test_10_a_stalled_head_and_a_stalled_body_are_cut_off(server_factory: Any) -> None:
    server = server_factory(
        {"PALETTE_HEADER_TIMEOUT_SECONDS": "1", "PALETTE_BODY_TIMEOUT_SECONDS": "1"}
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        answer = sock.recv(65536)
    assert status_of(answer) == 408 and b'"code": "header_timeout"' in answer
    assert time.monotonic() - started < 3
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/palette HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n1234")
        answer = b""
        while chunk := sock.recv(65536):  # until the server closes the connection
            answer += chunk
    assert status_of(answer) == 408 and b'"code": "body_timeout"' in answer


def test_10_sync_bodies_in_memory_are_capped(server_factory: Any, h: Any) -> None:
    server = server_factory({"PALETTE_MAX_SYNC_BYTES_IN_FLIGHT": "200000"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as hog:
        hog.sendall(b"POST /v1/palette HTTP/1.1\r\nHost: x\r\nContent-Length: 400000\r\n\r\n")
        hog.sendall(b"\xff" * 180_000)  # held, waiting for the rest
        time.sleep(0.3)
        image = h.make_jpeg(7, size=(400, 300), quality=95)
        assert len(image) > 20_000
        body = h.problem(httpx.post(server.url + "/v1/palette", content=image), 503, "server_busy")
        assert body["limit_bytes_in_flight"] == 200_000
    # The hog went away: its bytes are given back.
    deadline = time.monotonic() + 5
    while httpx.post(server.url + "/v1/palette", content=image).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_10_download_links_never_come_from_the_host_header(server_factory: Any, h: Any) -> None:
    for env, prefix in (
        ({}, "/v1/downloads/"),
        ({"PALETTE_PUBLIC_BASE_URL": "https://palette.example"}, "https://palette.example/v1/"),
    ):
        server = server_factory(env)
        with httpx.Client(base_url=server.url, timeout=30) as c:
            job = h.wait_job(c, h.submit(c, [("a.jpg", h.make_jpeg(8))]).headers["location"])
            link = c.post(
                f"/v1/jobs/{job['id']}/download-url", headers={"host": "evil.example"}
            ).json()["url"]
        assert link.startswith(prefix) and "evil" not in link
        server.stop()


def test_10_callbacks_to_6to4_addresses_of_private_hosts_are_refused(server: Any, h: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for url in ("http://[2002:7f00:1::1]/hook", "http://[2002:a9fe:a9fe::1]/latest"):
            body = h.problem(
                h.submit(c, [("a.jpg", h.make_jpeg(9))], callback_url=url), 422, "url_not_allowed"
            )
            assert "2002:" in body["detail"]


def test_10_pages_carry_a_content_security_policy(server: Any) -> None:
    ui = httpx.get(server.url + "/", timeout=10)
    assert ui.status_code == 200
    assert "default-src 'self'" in ui.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in ui.headers["content-security-policy"]
    assert ui.headers["x-frame-options"] == "DENY"
    assert ui.headers["referrer-policy"] == "no-referrer"
    assert ui.headers["x-content-type-options"] == "nosniff"
    docs = httpx.get(server.url + "/docs", timeout=10)
    assert "'sha256-" in docs.headers["content-security-policy"]
    assert "strict-transport-security" not in ui.headers  # plain HTTP: no HSTS


# -- 11: deadlines -------------------------------------------------------------------------------


def test_11_the_sync_deadline_and_the_job_wall_clock_limit(server_factory: Any, h: Any) -> None:
    server = server_factory(
        {
            "PALETTE_SYNC_DEADLINE_SECONDS": "0.05",
            "PALETTE_JOB_TIMEOUT_SECONDS": "1",
            "PALETTE_WORKERS": "1",
        }
    )
    rng = np.random.default_rng(1)
    noise = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (1500, 2000, 3), dtype=np.uint8)).save(noise, "PNG")
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.post("/v1/palette?exact=true&colors=32", content=noise.getvalue())
        body = h.problem(r, 503, "deadline_exceeded")
        assert body["limit_seconds"] == 0.05 and r.headers["retry-after"]
        many = h.make_zip({f"{n}.png": noise.getvalue() for n in range(40)})
        job = h.wait_job(c, h.submit(c, [("many.zip", many)], exact="true").headers["location"], 60)
    assert job["status"] == "failed" and job["error"]["code"] == "job_timeout"
    assert job["progress"]["done"] < 40


# -- 7 is tests/webhooks/test_outbox.py::test_one_tenants_slow_endpoints_do_not_hold_every_sender


def test_the_data_dir_path_is_not_in_any_problem(server: Any) -> None:
    """Nothing above leaked the server's layout into an answer either."""
    answer = httpx.post(server.url + "/v1/palette", content=b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    assert str(server.data_dir) not in answer.text

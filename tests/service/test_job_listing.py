"""``GET /v1/jobs`` as clients page through it: ``next`` links to the end, filters that stay
on, cursors bound to the tenant that reads them, and cursors the server never issued."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from service.app import create_app
from service.settings import Settings

ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"X-API-Key": "bob-key"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """No workers: submitted jobs stay queued until a test changes them."""
    settings = Settings(data_dir=tmp_path, api_keys={"alice-key": "alice", "bob-key": "bob"})
    with TestClient(create_app(settings, run_workers=False)) as c:
        yield c


def submit(client: TestClient, h: Any, headers: dict[str, str], count: int) -> list[str]:
    ids = []
    for n in range(count):
        r = h.submit(client, [(f"{n}.png", h.make_png(n, size=(4, 4)))], headers=headers)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    return ids


def follow(client: TestClient, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every page from ``url`` on, following ``next`` until it is null."""
    pages: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url is not None and len(pages) < 20:
        r = client.get(next_url, headers=headers)
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        if doc["next"] is None:
            assert doc["next_cursor"] is None and "link" not in r.headers
        else:
            assert r.headers["link"] == f'<{doc["next"]}>; rel="next"'
            assert parse_qs(urlsplit(doc["next"]).query)["cursor"] == [doc["next_cursor"]]
        pages.append(doc)
        next_url = doc["next"]
    return pages


@pytest.mark.parametrize(("count", "limit"), [(4, 2), (3, 1), (3, 3), (2, 5), (5, 2)])
def test_next_links_read_every_job_once_and_stop_at_the_last(
    client: TestClient, h: Any, count: int, limit: int
) -> None:
    ids = submit(client, h, ALICE, count)
    pages = follow(client, f"/v1/jobs?limit={limit}", ALICE)
    seen = [[job["id"] for job in page["jobs"]] for page in pages]
    assert seen == [ids[::-1][start : start + limit] for start in range(0, count, limit)]


def test_next_keeps_the_status_filter_and_the_page_size(client: TestClient, h: Any) -> None:
    ids = submit(client, h, ALICE, 5)
    for job_id in ids[1::2]:
        assert client.post(f"/v1/jobs/{job_id}/cancel", headers=ALICE).status_code == 200
    pages = follow(client, "/v1/jobs?status=queued&limit=1", ALICE)
    assert [[job["id"] for job in page["jobs"]] for page in pages] == [[ids[4]], [ids[2]], [ids[0]]]
    for page in pages[:-1]:
        query = parse_qs(urlsplit(page["next"]).query)
        assert query["status"] == ["queued"] and query["limit"] == ["1"]
    canceled = follow(client, "/v1/jobs?status=canceled", ALICE)
    assert [[job["id"] for job in page["jobs"]] for page in canceled] == [[ids[3], ids[1]]]
    assert all(job["status"] == "canceled" for job in canceled[0]["jobs"])


def test_a_cursor_shows_no_other_tenants_jobs(client: TestClient, h: Any) -> None:
    """A cursor names a place in the listing, not a tenant: whoever presents it still sees
    only their own jobs."""
    bobs = submit(client, h, BOB, 1)
    alices = submit(client, h, ALICE, 3)
    cursor = client.get("/v1/jobs?limit=1", headers=ALICE).json()["next_cursor"]
    assert cursor
    as_alice = client.get("/v1/jobs", params={"cursor": cursor}, headers=ALICE).json()
    assert [job["id"] for job in as_alice["jobs"]] == alices[1::-1]
    as_bob = client.get("/v1/jobs", params={"cursor": cursor}, headers=BOB).json()
    assert [job["id"] for job in as_bob["jobs"]] == bobs and as_bob["next"] is None


def encoded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("%%%", id="not-base64"),
        pytest.param("not a cursor", id="words"),
        pytest.param(encoded(b"sabc"), id="letters"),
        pytest.param(encoded(b"s"), id="no-number"),
        pytest.param(encoded(b"x12"), id="wrong-letter"),
        pytest.param(encoded(b"s-1"), id="negative"),
        pytest.param(encoded(b"s\xc3\xa91"), id="not-ascii"),
        pytest.param(encoded(b"s%d" % 2**63), id="past-64-bits"),  # was a 500 on SQLite
        pytest.param(encoded(b"s" + b"9" * 19), id="19-nines"),
        pytest.param(encoded(b"s" + b"9" * 20), id="20-digits"),  # past any job number
        pytest.param(encoded(b"s10") + "!", id="stray-character"),
        pytest.param(encoded(b"s1" + b"0" * 40), id="41-digits"),
    ],
)
def test_a_cursor_the_server_did_not_issue_is_a_400_problem(
    client: TestClient, h: Any, cursor: str
) -> None:
    submit(client, h, ALICE, 1)
    r = client.get("/v1/jobs", params={"cursor": cursor}, headers=ALICE)
    body = h.problem(r, 400, "bad_cursor")
    assert body["parameter"] == "cursor"
    assert body["detail"] == "The cursor is not one this server issued."

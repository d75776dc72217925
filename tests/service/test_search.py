"""GET /v1/search over a real ``palette serve``: palettes from the sync route and from jobs,
nearest first, the ΔE filter, tenants kept apart, paging, refusals."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from palette_native import Color

pytestmark = pytest.mark.e2e

ALPHA = {"x-api-key": "alpha-admin-key-00000001"}
BETA = {"x-api-key": "beta-admin-key-000000001"}
KEYS = "alpha:alpha-admin-key-00000001,beta:beta-admin-key-000000001"
QUERY = "#aa3322"


def png(*colors: tuple[int, int, int]) -> bytes:
    """Side-by-side stripes of flat colors."""
    image = Image.new("RGB", (16 * len(colors), 16))
    for n, rgb in enumerate(colors):
        image.paste(rgb, (16 * n, 0, 16 * (n + 1), 16))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def delta_e(one: tuple[int, int, int], two: tuple[int, int, int]) -> float:
    return 100.0 * math.dist(Color(one, 0, 0.0).oklab, Color(two, 0, 0.0).oklab)


QUERY_RGB = (0xAA, 0x33, 0x22)
EXACT = (0xAA, 0x33, 0x22)
CLOSE = (0xB0, 0x36, 0x26)  # about 2 ΔE away
FARTHER = (0xB8, 0x3C, 0x20)  # about 4
BLUE = (0x22, 0x33, 0xAA)
GREEN = (0x20, 0xA0, 0x40)


def search(client: httpx.Client, headers: dict[str, str], **params: Any) -> httpx.Response:
    return client.get("/v1/search", params={"color": QUERY, **params}, headers=headers)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from servertools import ServiceProcess, write_guard

    root = tmp_path_factory.mktemp("search")
    process = ServiceProcess(root / "data", write_guard(root / "guard"), {"PALETTE_API_KEYS": KEYS})
    process.start()
    with httpx.Client(base_url=process.url, timeout=30) as c:
        locations = {}
        for name, colors in {
            "close": (CLOSE, BLUE),
            "farther": (FARTHER, GREEN),
            "blue": (BLUE,),
        }.items():
            answer = c.post("/v1/palette?colors=4", content=png(*colors), headers=ALPHA)
            assert answer.status_code == 200, answer.text
            locations[name] = answer.headers["content-location"]
        assert c.post("/v1/palette", content=png(EXACT), headers=BETA).status_code == 200
        job = c.post(
            "/v1/jobs",
            files=[("file", ("green.png", png(GREEN))), ("file", ("exact.png", png(EXACT, BLUE)))],
            data={"colors": "4"},
            headers=ALPHA,
        ).json()
        deadline = time.monotonic() + 30
        while c.get(f"/v1/jobs/{job['id']}", headers=ALPHA).json()["status"] != "succeeded":
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.05)
        # Sync palettes are indexed behind the answer: wait until all are there.
        while len(search(c, ALPHA, max_delta_e=100).json()["items"]) < 5:
            assert time.monotonic() < deadline, "sync palettes were not indexed"
            time.sleep(0.05)
        yield {"url": process.url, "job": job["id"], "locations": locations}
    process.stop()


@pytest.fixture
def client(server: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server["url"], timeout=30) as c:
        yield c


def test_hits_come_nearest_first_with_their_color_and_address(
    server: dict[str, Any], client: httpx.Client
) -> None:
    answer = search(client, ALPHA, max_delta_e=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["metric"] == "oklab_delta_e_x100" and body["next_cursor"] is None
    items = body["items"]
    assert [i["color"]["hex"] for i in items] == ["#aa3322", "#b03626", "#b83c20"]
    assert [i["delta_e"] for i in items] == pytest.approx(
        [delta_e(QUERY_RGB, rgb) for rgb in (EXACT, CLOSE, FARTHER)], abs=1e-3
    )
    exact, close, farther = items
    assert exact["job_id"] == server["job"] and exact["item"] == 1
    assert exact["results_url"] == f"/v1/jobs/{server['job']}/results"
    assert close["content_location"] == server["locations"]["close"]
    assert farther["content_location"] == server["locations"]["farther"]
    assert 0.4 < close["color"]["fraction"] < 0.6 and len(close["color"]["oklab"]) == 3


def test_addresses_lead_to_the_palettes_found(server: dict[str, Any], client: httpx.Client) -> None:
    exact, close, _ = search(client, ALPHA).json()["items"]
    palette = client.get(close["content_location"], headers=ALPHA).json()
    assert "#b03626" in [c["hex"] for c in palette["colors"]]
    results = client.get(exact["results_url"], headers=ALPHA).json()
    found = results["items"][exact["item"]]
    assert found["name"] == "exact.png"
    assert "#aa3322" in [c["hex"] for c in found["palette"]["colors"]]


def test_max_delta_e_bounds_the_hits(client: httpx.Client) -> None:
    def hexes(limit: float) -> list[str]:
        return [i["color"]["hex"] for i in search(client, ALPHA, max_delta_e=limit).json()["items"]]

    assert hexes(0) == ["#aa3322"]
    assert hexes(delta_e(QUERY_RGB, CLOSE) + 0.01) == ["#aa3322", "#b03626"]
    assert len(hexes(100)) == 5  # every palette of the tenant, blue and green ones too


def test_the_default_radius_is_5(client: httpx.Client) -> None:
    body = client.get("/v1/search", params={"color": "aa3322"}, headers=ALPHA).json()
    assert body["max_delta_e"] == 5 and len(body["items"]) == 3


def test_another_tenants_palettes_are_never_found(client: httpx.Client) -> None:
    beta = search(client, BETA, max_delta_e=100).json()["items"]
    assert [(i["color"]["hex"], i["delta_e"]) for i in beta] == [("#aa3322", 0.0)]
    assert "content_location" in beta[0]
    assert all("job_id" not in i for i in beta)
    alpha = search(client, ALPHA, max_delta_e=100).json()["items"]
    assert beta[0]["content_location"] not in {i.get("content_location") for i in alpha}


def test_pages_follow_the_cursor_and_link(client: httpx.Client) -> None:
    whole = search(client, ALPHA, max_delta_e=100).json()["items"]
    seen: list[dict[str, Any]] = []
    answer = search(client, ALPHA, max_delta_e=100, limit=2)
    while True:
        body = answer.json()
        seen += body["items"]
        assert len(body["items"]) <= 2
        if body["next_cursor"] is None:
            assert "link" not in answer.headers
            break
        assert answer.headers["link"] == f'<{body["next"]}>; rel="next"'
        answer = client.get(body["next"], headers=ALPHA)
    assert seen == whole
    assert [i["delta_e"] for i in seen] == sorted(i["delta_e"] for i in seen)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"color": "#zzzzzz"}, "color"),
        ({"color": "#abcd"}, "color"),
        ({"color": ""}, "color"),
        ({}, "color"),
        ({"color": QUERY, "max_delta_e": "-1"}, "max_delta_e"),
        ({"color": QUERY, "max_delta_e": "nan"}, "max_delta_e"),
        ({"color": QUERY, "max_delta_e": "101"}, "max_delta_e"),
        ({"color": QUERY, "max_delta_e": "five"}, "max_delta_e"),
        ({"color": QUERY, "limit": "0"}, "limit"),
        ({"color": QUERY, "limit": "201"}, "limit"),
        ({"color": QUERY, "limit": "ten"}, "limit"),
        ({"color": QUERY, "cursor": "not-ours"}, "cursor"),
    ],
    ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else v,
)
def test_bad_parameters_are_400_problems(
    client: httpx.Client, params: dict[str, str], parameter: str
) -> None:
    answer = client.get("/v1/search", params=params, headers=ALPHA)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["code"] == ("bad_cursor" if parameter == "cursor" else "bad_parameter")
    assert problem["parameter"] == parameter and problem["status"] == 400


def test_a_deleted_jobs_palettes_are_not_found(client: httpx.Client) -> None:
    job = client.post(
        "/v1/jobs", files=[("file", ("x.png", png((0x12, 0x34, 0x56))))], headers=BETA
    ).json()

    def found() -> list[dict[str, Any]]:
        query = {"color": "#123456", "max_delta_e": "0.5"}
        items: list[dict[str, Any]] = client.get("/v1/search", params=query, headers=BETA).json()[
            "items"
        ]
        return items

    deadline = time.monotonic() + 30
    while not found():
        assert time.monotonic() < deadline, "the job's palette was not indexed"
        time.sleep(0.05)
    assert [i["job_id"] for i in found()] == [job["id"]]
    assert client.delete(f"/v1/jobs/{job['id']}", headers=BETA).status_code == 204
    assert found() == []

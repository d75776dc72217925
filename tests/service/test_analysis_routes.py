"""Issue 14 in the service, over real HTTP against ``palette serve``: ``POST /v1/analyze``,
the brand-conformance block of ``POST /v1/palette?brand=...``, and jobs with ``analyze=true``.

One server for the module (started with small limits, so the 413 and 422 answers are cheap
to provoke); every test talks to it through httpx.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import palette_native as pn
import pytest
from PIL import Image
from servertools import ServiceProcess

pytestmark = pytest.mark.e2e

MAX_SYNC_BYTES = 300_000
MAX_PIXELS = 400_000
DISC_CENTER = (640 * 0.62, 480 * 0.45)  # x, y of the red disc in ``_scene``


def _scene(seed: int = 3) -> np.ndarray:
    """640 x 480: a gray-green textured background with a saturated red disc right of centre."""
    h, w = 480, 640
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack(
        [90 + 20 * np.sin(xx / 37.0), 110 + 15 * np.cos(yy / 23.0), 80 + 0 * xx], axis=2
    )
    image = base + rng.normal(0, 3, (h, w, 3))
    disc = (yy - DISC_CENTER[1]) ** 2 + (xx - DISC_CENTER[0]) ** 2 < (h * 0.18) ** 2
    image[disc] = [220, 30, 40] + rng.normal(0, 8, (int(disc.sum()), 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _encode(pixels: np.ndarray, fmt: str, **kwargs: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **kwargs)
    return out.getvalue()


def _two_colors(first: tuple[int, int, int], second: tuple[int, int, int]) -> bytes:
    """A PNG whose left half is ``first`` and right half ``second``."""
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :40] = first
    pixels[:, 40:] = second
    return _encode(pixels, "PNG")


@pytest.fixture(scope="module")
def photo() -> bytes:
    return _encode(_scene(), "JPEG", quality=90)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, guard_dir: Path) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("analysis")
    process = ServiceProcess(
        root / "data",
        guard_dir,
        {
            "PALETTE_MAX_SYNC_BYTES": str(MAX_SYNC_BYTES),
            "PALETTE_MAX_PIXELS": str(MAX_PIXELS),
            "PALETTE_LEASE_SECONDS": "2",
        },
    ).start()
    yield process
    log = process.log()  # before stopping: SIGINT ends uvicorn with a KeyboardInterrupt trace
    process.stop()
    assert "Traceback" not in log


@pytest.fixture
def c(server: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


# ---- POST /v1/analyze ------------------------------------------------------------------------


def test_analyze_answers_quality_subject_crops_and_palettes(c: httpx.Client, photo: bytes) -> None:
    r = c.post("/v1/analyze?colors=5&crops=4:5,1:1", content=photo)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert (doc["width"], doc["height"]) == (640, 480)
    quality = doc["quality"]
    assert 0 < quality["score"] <= 100
    assert set(quality["components"]) == {
        "sharpness",
        "noise",
        "exposure",
        "compression",
        "contrast",
        "colorfulness",
        "resolution",
    }
    for component in quality["components"].values():
        assert 0 <= component["value"] <= 1 and isinstance(component["raw"], float)
        assert component["unit"]
    assert quality["components"]["compression"]["details"]["jpeg_quality"] == 90
    left, top, width, height = doc["subject"]["box"]
    cx, cy = DISC_CENTER
    assert left <= cx <= left + width and top <= cy <= top + height
    assert set(doc["crops"]) == {"1:1", "4:5"}  # the aspects asked for, not the defaults
    for aspect, (x, y, w, h) in doc["crops"].items():
        ratio_w, ratio_h = (int(n) for n in aspect.split(":"))
        assert abs(w / h - ratio_w / ratio_h) < 0.02
        assert x <= cx <= x + w and y <= cy <= y + h
    for name in ("palette", "subject_palette", "background_palette"):
        assert len(doc[name]["colors"]) == 5
    red, green, blue = doc["subject_palette"]["colors"][0]["rgb"]
    assert red > 150 and green < 90 and blue < 90  # the subject's colors come first
    assert doc["options"]["colors"] == 5
    # The theme of the whole image's palette, as the library makes it from that palette.
    theme = doc["theme"]
    assert theme == pn.theme(pn.analyze(photo, 5).palette).to_dict()
    assert set(theme["schemes"]) == {"light", "dark"}
    assert {"primary", "on_primary", "surface", "on_surface"} <= set(theme["schemes"]["light"])
    assert len(theme["pairs"]) == 52
    for pair in theme["pairs"]:
        assert pair["ratio"] >= pair["required_ratio"], pair


def test_analyze_is_cached_by_digest_and_options(c: httpx.Client, photo: bytes) -> None:
    first = c.post("/v1/analyze?crops=16:9,1:1", content=photo)
    again = c.post("/v1/analyze?crops=1:1,16:9,1:1", content=photo)  # same set, other spelling
    multipart = c.post(
        "/v1/analyze?crops=1:1,16:9", files={"file": ("p.jpg", photo, "image/jpeg")}
    )
    other = c.post("/v1/analyze?colors=3", content=photo)
    plain = c.post("/v1/palette", content=photo)
    for r in (first, again, multipart, other, plain):
        assert r.status_code == 200, r.text
    assert first.headers["etag"] == again.headers["etag"] == multipart.headers["etag"]
    assert first.content == again.content == multipart.content
    assert set(first.json()["crops"]) == {"1:1", "16:9"}
    assert other.headers["etag"] != first.headers["etag"]
    assert plain.headers["etag"] != first.headers["etag"]  # its own key space
    assert "content-location" not in first.headers  # no GET address for analyses


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("crops=", "crops"),
        ("crops=0:1", "crops"),
        ("crops=a:b", "crops"),
        ("crops=16/9", "crops"),
        ("crops=1:1,", "crops"),
        ("crops=" + ",".join(f"{n}:1" for n in range(1, 10)), "crops"),
        ("colors=0", "colors"),
        ("colors=65", "colors"),
        ("colors=many", "colors"),
    ],
    ids=["empty", "zero", "letters", "slash", "trailing-comma", "nine-aspects", "colors-0", "colors-65",
         "colors-text"],
)
def test_analyze_refuses_bad_parameters(
    c: httpx.Client, h: Any, photo: bytes, query: str, parameter: str
) -> None:
    body = h.problem(c.post(f"/v1/analyze?{query}", content=photo), 400, "bad_parameter")
    assert body["parameter"] == parameter


def test_analyze_refuses_bad_bodies_like_the_palette_route(c: httpx.Client, h: Any) -> None:
    corrupt = _encode(_scene(), "JPEG")[:400]
    h.problem(c.post("/v1/analyze", content=corrupt), 422, "decode_error")
    pdf = c.post("/v1/analyze", content=b"%PDF-1.7\n" + b"0" * 200, headers={
        "content-type": "image/jpeg"})  # the declared type does not matter
    h.problem(pdf, 415, "unsupported_format")
    archive = h.make_zip({"a.jpg": h.make_jpeg(1)})
    h.problem(c.post("/v1/analyze", content=archive), 415, "unsupported_format")
    h.problem(c.post("/v1/analyze", content=b""), 400, "empty_body")
    too_many = _encode(np.zeros((600, 800, 3), np.uint8), "PNG")  # 480,000 pixels
    large = h.problem(c.post("/v1/analyze", content=too_many), 422, "image_too_large")
    assert large["limit_pixels"] == MAX_PIXELS and large["actual_pixels"] == 480_000
    big = b"\xff\xd8\xff" + bytes(MAX_SYNC_BYTES)
    h.problem(c.post("/v1/analyze", content=big), 413, "request_too_large")
    h.problem(c.get("/v1/analyze"), 405, "method_not_allowed")
    empty_form = c.post("/v1/analyze", files={"note": (None, "no image here")})
    h.problem(empty_form, 400, "no_files")


# ---- POST /v1/palette?brand= ---------------------------------------------------------------


def test_brand_block_names_the_nearest_brand_color_and_the_share(c: httpx.Client) -> None:
    image = _two_colors((0x11, 0x22, 0x33), (0xDD, 0xEE, 0xFF))
    plain = c.post("/v1/palette?colors=2", content=image)
    assert plain.status_code == 200 and "brand" not in plain.json()
    r = c.post("/v1/palette?colors=2&brand=%23112233,%23f00&brand_tolerance=2", content=image)
    assert r.status_code == 200, r.text
    doc = r.json()
    brand = doc["brand"]
    assert brand["colors"] == ["#112233", "#ff0000"]
    assert brand["tolerance"] == 2.0 and brand["min_share"] == 0.5
    by_hex = {m["hex"]: m for m in brand["matches"]}
    assert [m["hex"] for m in brand["matches"]] == [color["hex"] for color in doc["colors"]]
    on_brand = by_hex["#112233"]
    assert on_brand["nearest"] == "#112233" and on_brand["delta_e"] == 0.0
    assert on_brand["within_tolerance"] is True
    off_brand = by_hex["#ddeeff"]
    assert off_brand["delta_e"] > 2 and off_brand["within_tolerance"] is False
    assert brand["share_within_tolerance"] == pytest.approx(0.5, abs=1e-6)
    assert brand["passed"] is True  # half the image, and half is asked
    assert {k: v for k, v in doc.items() if k != "brand"} == plain.json()
    assert r.headers["etag"] != plain.headers["etag"]

    stricter = c.post("/v1/palette?colors=2&brand=112233&brand_min_share=0.6", content=image)
    assert stricter.json()["brand"]["passed"] is False
    assert stricter.headers["etag"] != r.headers["etag"]
    wide = c.post("/v1/palette?colors=2&brand=112233&brand_tolerance=100", content=image)
    assert wide.json()["brand"]["share_within_tolerance"] == pytest.approx(1.0, abs=1e-6)


def test_brand_result_has_an_address_and_conditional_gets(c: httpx.Client) -> None:
    image = _two_colors((200, 30, 40), (20, 20, 20))
    r = c.post("/v1/palette?colors=2&brand=%23c81e28", content=image)
    assert r.status_code == 200
    location = r.headers["content-location"]
    assert location.startswith("/v1/palettes/") and "brand=" in location
    got = c.get(location)
    assert got.status_code == 200 and got.content == r.content
    assert got.headers["etag"] == r.headers["etag"]
    unchanged = c.get(location, headers={"If-None-Match": r.headers["etag"]})
    assert unchanged.status_code == 304 and unchanged.headers["etag"] == r.headers["etag"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("brand=%23zz0000", "brand"),
        ("brand=%2312345", "brand"),
        ("brand=", "brand"),
        ("brand=%23112233,", "brand"),
        ("brand=" + ",".join(["%23112233"] * 17), "brand"),
        ("brand=112233&brand_tolerance=-1", "brand_tolerance"),
        ("brand=112233&brand_tolerance=nan", "brand_tolerance"),
        ("brand=112233&brand_tolerance=close", "brand_tolerance"),
        ("brand=112233&brand_min_share=1.5", "brand_min_share"),
        ("brand_tolerance=3", "brand_tolerance"),
    ],
    ids=["not-hex", "five-digits", "empty", "trailing-comma", "seventeen", "negative",
         "nan", "text", "share-over-1", "tolerance-alone"],
)
def test_brand_refuses_bad_parameters(
    c: httpx.Client, h: Any, photo: bytes, query: str, parameter: str
) -> None:
    r = c.post(f"/v1/palette?{query}", content=photo)
    assert h.problem(r, 400, "bad_parameter")["parameter"] == parameter
    digest = "0" * 64  # refused before the cache is looked at
    got = c.get(f"/v1/palettes/{digest}?{query}")
    assert h.problem(got, 400, "bad_parameter")["parameter"] == parameter


# ---- jobs with analyze=true ------------------------------------------------------------------


def test_job_items_carry_their_analysis_when_asked(c: httpx.Client, h: Any, photo: bytes) -> None:
    archive = h.make_zip({"inside.png": _encode(_scene(5), "PNG")})
    files = [("photo.jpg", photo), ("broken.jpg", photo[:300]), ("set.zip", archive)]
    r = h.submit(c, files, analyze="true", colors="4")
    assert r.status_code == 202, r.text
    job = h.wait_job(c, r.headers["location"], 120)
    assert job["status"] == "succeeded" and job["options"]["analyze"] is True
    assert job["progress"]["done"] == 2 and job["progress"]["failed"] == 1
    items = {i["name"]: i for i in c.get(r.headers["location"] + "/results").json()["items"]}
    for name in ("photo.jpg", "inside.png"):
        item = items[name]
        assert item["status"] == "succeeded" and "analysis" not in item["palette"]
        assert len(item["palette"]["colors"]) == 4
        analysis = item["analysis"]
        assert 0 < analysis["quality"]["score"] <= 100
        assert set(analysis["crops"]) == {"1:1", "16:9"}
        assert len(analysis["subject_palette"]["colors"]) == 4
        assert "theme" not in analysis  # POST /v1/analyze only: bulk jobs do not pay for it
        left, top, width, height = analysis["subject"]["box"]
        cx, cy = DISC_CENTER
        assert left <= cx <= left + width and top <= cy <= top + height
    assert items["broken.jpg"]["status"] == "failed" and "analysis" not in items["broken.jpg"]
    assert items["broken.jpg"]["error"]["code"] == "decode_error"


def test_jobs_without_analyze_are_unchanged_and_bad_flags_refused(
    c: httpx.Client, h: Any, photo: bytes
) -> None:
    r = h.submit(c, [("photo.jpg", photo)], analyze="false")
    job = h.wait_job(c, r.headers["location"], 60)
    assert job["status"] == "succeeded" and "analyze" not in job["options"]
    (item,) = c.get(r.headers["location"] + "/results").json()["items"]
    assert item["palette"] and "analysis" not in item
    refused = h.submit(c, [("photo.jpg", photo)], analyze="maybe")
    assert h.problem(refused, 400, "bad_parameter")["parameter"] == "analyze"


def test_analyze_jobs_read_encrypted_uploads_twice(
    server_factory: Any, h: Any, photo: bytes
) -> None:
    """Encrypted at rest, an upload reaches the worker as a decrypting stream: the analysis
    reads it again after the palette did."""
    key = base64.b64encode(bytes(range(32))).decode()
    server = server_factory({"PALETTE_ENCRYPTION_KEYS": f"k1:{key}"})
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = h.submit(c, [("photo.jpg", photo)], analyze="on")
        job = h.wait_job(c, r.headers["location"], 120)
        assert job["status"] == "succeeded", job
        (item,) = c.get(r.headers["location"] + "/results").json()["items"]
    assert item["status"] == "succeeded", item
    assert (item["analysis"]["width"], item["analysis"]["height"]) == (640, 480)
    assert item["analysis"]["palette"]["colors"]


def test_analysis_stays_beside_the_palette_in_a_worker_of_this_process(
    client: Any, h: Any, photo: bytes
) -> None:
    """The same as above on the in-process app (whose worker threads the mutation tests can
    reach): each item keeps its analysis next to its palette, and a job without the flag
    stores none."""
    asked = h.submit(client, [("photo.jpg", photo)], analyze="true", colors="4")
    plain = h.submit(client, [("photo.jpg", photo)], colors="4")
    for r in (asked, plain):
        assert h.wait_job(client, r.headers["location"], 60)["status"] == "succeeded"
    document = client.get(asked.headers["location"] + "/results").json()
    assert document["job_id"] == asked.json()["id"] and document["error"] is None
    assert document["count"] == 1
    (item,) = document["items"]
    assert len(item["palette"]["colors"]) == 4 and "analysis" not in item["palette"]
    assert 0 < item["analysis"]["quality"]["score"] <= 100
    (bare,) = client.get(plain.headers["location"] + "/results").json()["items"]
    assert len(bare["palette"]["colors"]) == 4 and "analysis" not in bare["palette"]
    assert "analysis" not in bare

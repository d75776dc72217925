"""The analysis part of a card (POST /v1/analyze), end to end in real Chromium: quality score
and components as text, the subject box over a thumbnail of the chosen file, the theme, and
the error when the service refuses the analysis."""

from __future__ import annotations

import io
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import ConsoleMessage, Locator, Page, expect
from servertools import write_guard

from .conftest import Server, noise_bytes, open_ui, screenshot

pytestmark = pytest.mark.e2e

WIDTH, HEIGHT = 320, 240
DISC = (208, 96, 40)  # x, y, radius of the red disc in ``disc_png``
SYNC_LIMIT = 4096  # bytes: the small server's POST /v1/analyze limit (jobs take far more)

COMPONENTS = ["Sharpness", "Noise", "Exposure", "Compression", "Contrast", "Colorfulness",
              "Resolution"]

# WCAG 2 contrast of each element's computed text color on its computed background.
CONTRAST = """(nodes) => nodes.map((n) => {
    const rgb = (s) => s.match(/\\d+/g).slice(0, 3).map(Number);
    const lin = (v) => (v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    const lum = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    const st = getComputedStyle(n);
    const [a, c] = [lum(rgb(st.backgroundColor)), lum(rgb(st.color))].sort((x, y) => y - x);
    return (a + 0.05) / (c + 0.05);
})"""


def disc_png() -> bytes:
    """A red disc right of centre on a gray background: a subject whose place is known."""
    x, y, r = DISC
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    pixels = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    pixels[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = (220, 30, 40)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def choose(page: Page, name: str, data: bytes, mime: str = "image/png") -> None:
    """Pick a file through the page's real file input."""
    page.set_input_files("#file-input", files=[{"name": name, "mimeType": mime, "buffer": data}])


def card(page: Page, name: str) -> Locator:
    return page.locator(f'#cards > li.card[data-file-name="{name}"]')


def csp_reports(page: Page) -> list[str]:
    """Console messages of Content-Security-Policy refusals from now on."""
    found: list[str] = []

    def record(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            found.append(message.text)

    page.on("console", record)
    return found


def box_of(locator: Locator) -> dict[str, float]:
    box = locator.bounding_box()
    assert box is not None
    return box


def test_single_image_shows_quality_subject_box_and_theme(ui: Page, server: Server) -> None:
    refused = csp_reports(ui)
    data = disc_png()
    choose(ui, "disc.png", data)
    item = card(ui, "disc.png")
    expect(item).to_have_attribute("data-state", "succeeded", timeout=30_000)
    analysis = item.locator("section.analysis")
    expect(analysis).to_have_attribute("data-state", "done", timeout=30_000)
    expected = httpx.post(f"{server.url}/v1/analyze?colors=8", content=data, timeout=30).json()

    # The score and every component, in words and numbers (not color alone).
    score = expected["quality"]["score"]
    expect(analysis.locator(".quality-score")).to_have_text(f"{score:.0f} out of 100")
    rows = analysis.locator("table.components tbody tr")
    expect(rows.locator("th")).to_have_text(COMPONENTS)
    for row in rows.all():
        component = expected["quality"]["components"][row.get_attribute("data-component") or ""]
        expect(row.locator(".component-number")).to_have_text(f"{component['value']:.2f}")
        expect(row.locator(".component-raw")).to_contain_text(component["unit"])
    expect(analysis.locator("table.components")).to_have_accessible_name(re.compile("Quality"))

    # The thumbnail is the chosen file itself, through a local blob: URL.
    image = analysis.locator("img.thumb-image")
    expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    expect(image).to_have_accessible_name("disc.png, with its subject framed")
    image.evaluate("(img) => img.decode()")
    assert image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [WIDTH, HEIGHT]

    # The subject box: where the service put it, scaled to the thumbnail, around the disc.
    left, top, width, height = expected["subject"]["box"]
    shown, drawn = box_of(image), box_of(analysis.locator(".subject-box"))
    scale = shown["width"] / WIDTH
    assert abs(shown["height"] / HEIGHT - scale) < 0.01  # the thumbnail keeps its aspect
    assert drawn["x"] == pytest.approx(shown["x"] + left * scale, abs=1.0)
    assert drawn["y"] == pytest.approx(shown["y"] + top * scale, abs=1.0)
    assert drawn["width"] == pytest.approx(width * scale, abs=1.0)
    assert drawn["height"] == pytest.approx(height * scale, abs=1.0)
    x, y, r = DISC
    assert drawn["x"] <= shown["x"] + (x - r * 0.9) * scale
    assert drawn["x"] + drawn["width"] >= shown["x"] + (x + r * 0.9) * scale
    assert drawn["y"] <= shown["y"] + (y - r * 0.9) * scale
    assert drawn["y"] + drawn["height"] >= shown["y"] + (y + r * 0.9) * scale
    assert drawn["x"] >= shown["x"] - 0.5 and drawn["y"] >= shown["y"] - 0.5
    assert drawn["x"] + drawn["width"] <= shown["x"] + shown["width"] + 0.5
    assert drawn["y"] + drawn["height"] <= shown["y"] + shown["height"] + 0.5
    expect(analysis.locator(".subject-caption")).to_have_text(
        f"Subject: {width} × {height} px at left {left}, top {top}, in {WIDTH} × {HEIGHT}"
    )

    # The theme: light and dark swatches in the service's colors, their text readable.
    theme = expected["theme"]
    expect(analysis.locator(".theme-seed")).to_contain_text(theme["source"])
    for scheme in ("light", "dark"):
        swatches = analysis.locator(f'.theme-scheme[data-scheme="{scheme}"] li.theme-swatch')
        expect(swatches).to_have_count(6)
        colors = theme["schemes"][scheme]
        expect(swatches.locator(".hex")).to_have_text(
            [colors[s.get_attribute("data-role") or ""] for s in swatches.all()]
        )
        expect(swatches.first.locator(".ratio")).to_have_text(re.compile(r"^text \d+\.\d:1$"))
    ratios = analysis.locator("li.theme-swatch").evaluate_all(CONTRAST)
    assert len(ratios) == 12 and min(ratios) >= 4.5, ratios

    analysis.locator("[data-copy='theme-css']").click()
    css = ui.evaluate("navigator.clipboard.readText()")
    assert f"--theme-primary: {theme['schemes']['light']['primary']};" in css
    assert f"--theme-on-surface: {theme['schemes']['dark']['on_surface']};" in css
    screenshot(ui, "10-analysis")
    assert not refused, refused


def test_archives_and_failed_images_get_no_analysis(ui: Page) -> None:
    analyses: list[str] = []
    ui.on("request", lambda r: analyses.append(r.url) if "/v1/analyze" in r.url else None)
    broken = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # an image by its magic bytes, then nothing
    choose(ui, "broken.png", broken)
    item = card(ui, "broken.png")
    expect(item).to_have_attribute(
        "data-state", re.compile("rejected|failed|succeeded"), timeout=30_000
    )
    # The job's own error is shown; there is no palette, so nothing to analyse.
    expect(item.locator(".card-error:not([hidden]), .item-error")).not_to_have_count(0)
    expect(item.locator("section.analysis")).to_have_count(0)
    assert analyses == []


@pytest.fixture()
def small_sync_server(tmp_path: Path) -> Iterator[Server]:
    """A server whose synchronous routes take at most SYNC_LIMIT bytes (jobs take more)."""
    env = {
        "PALETTE_WORKERS": "1",
        "PALETTE_MAX_SYNC_BYTES": str(SYNC_LIMIT),
        "PALETTE_DRAIN_GRACE_SECONDS": "1",
        "PALETTE_DRAIN_DELAY_SECONDS": "0",
    }
    srv = Server(tmp_path / "data", write_guard(tmp_path / "netguard"), env).start()
    yield srv
    srv.stop(signal.SIGTERM)


def test_a_refused_analysis_shows_the_problem_detail(
    page: Page, small_sync_server: Server, axe_source: str
) -> None:
    open_ui(page, small_sync_server.url)
    data = noise_bytes(7)
    assert len(data) > SYNC_LIMIT
    direct = httpx.post(f"{small_sync_server.url}/v1/analyze?colors=8", content=data)
    assert direct.status_code == 413
    choose(page, "noise.png", data)
    item = card(page, "noise.png")
    expect(item).to_have_attribute("data-state", "succeeded", timeout=30_000)
    expect(item.locator("section.palette")).to_have_count(1)  # the palette is unaffected
    analysis = item.locator("section.analysis")
    expect(analysis).to_have_attribute("data-state", "error", timeout=30_000)
    expect(analysis.locator(".analysis-error")).to_have_text(
        f"Analysis failed: {direct.json()['detail']}"
    )
    again = analysis.locator("[data-action='analyze-again']")
    expect(again).to_be_visible()
    again.focus()
    with page.expect_request(lambda r: "/v1/analyze" in r.url and r.method == "POST"):
        page.keyboard.press("Enter")
    expect(analysis).to_have_attribute("data-state", "error", timeout=30_000)
    # Focus stays in the section after its button is replaced.
    assert page.evaluate("document.activeElement.className") == "analysis-title"
    page.evaluate(axe_source)
    result = page.evaluate("axe.run(document, { resultTypes: ['violations'] })")
    assert not [v["id"] for v in result["violations"] if v["impact"] in ("serious", "critical")]

"""The browser UI at `/`, end to end: real Chromium, real `palette serve`, real HTTP."""

from __future__ import annotations

import base64
import itertools
import json
import re
import signal
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import httpx
import palette_native as pn
import pytest
from playwright.sync_api import Locator, Page, Request, expect

from .conftest import (
    Server,
    image_bytes,
    noise_bytes,
    open_ui,
    screenshot,
    start_server,
    zip_bytes,
)

pytestmark = pytest.mark.e2e

JOB_URL = re.compile(r"^/v1/jobs/([^/]+)$")

RED, GREEN, BLUE, YELLOW = (220, 30, 40), (30, 170, 60), (40, 60, 210), (240, 200, 30)


@pytest.fixture(autouse=True)
def _cancel_leftover_jobs(server: Server) -> Iterator[None]:
    """Long jobs of one test must not hold the workers for the next one."""
    yield
    jobs: list[dict[str, Any]] = httpx.get(f"{server.url}/v1/jobs", timeout=5.0).json()["jobs"]
    for job in jobs:
        if job["status"] in ("queued", "running"):
            httpx.post(f"{server.url}/v1/jobs/{job['id']}/cancel", timeout=5.0)


def drop_files(page: Page, files: list[tuple[str, str, bytes]]) -> None:
    """Drop files on the drop zone the way a browser does: dragenter, dragover, drop."""
    payload = [{"name": n, "type": t, "b64": base64.b64encode(d).decode()} for n, t, d in files]
    transfer = page.evaluate_handle(
        """(files) => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, { type: f.type }));
            }
            return dt;
        }""",
        payload,
    )
    for event in ("dragenter", "dragover", "drop"):
        page.dispatch_event("#drop-zone", event, {"dataTransfer": transfer})


def pick_file(page: Page, path: Path) -> None:
    """Choose a file through the real file input (the keyboard-accessible picker)."""
    page.set_input_files("#file-input", files=[str(path)])


def card(page: Page, name: str) -> Locator:
    return page.locator(f'#cards > li.card[data-file-name="{name}"]')


def hexes_of(swatches: Locator) -> list[str]:
    return [s.get_attribute("data-hex") or "" for s in swatches.all()]


def job_id_of(page: Page, name: str, timeout: float = 20_000) -> str:
    locator = card(page, name)
    expect(locator).to_have_attribute("data-job-id", re.compile(r".+"), timeout=timeout)
    value = locator.get_attribute("data-job-id")
    assert isinstance(value, str) and value
    return value


def slow_zip(folder: Path, name: str, count: int, seed: int = 0, size: int = 64) -> Path:
    """A ZIP of distinct noisy images that takes the service a while, written to a file.

    Sized with a wide margin over this machine's speed (about 10 ms an image at 64x64 on
    one worker) so that a job the test needs active is still active when it looks.
    """
    path = folder / name
    images = {f"noise/{i:04d}.png": noise_bytes(seed * 100_000 + i, size) for i in range(count)}
    path.write_bytes(zip_bytes(images))
    return path


def progress_value(page: Page, name: str, bar: str = ".processing-bar") -> float:
    """The value of a card's progress bar, or -1 while it has none (indeterminate)."""
    script = "(b) => b.hasAttribute('value') ? b.value : -1"
    return float(card(page, name).locator(bar).evaluate(script))


def wait_until(page: Page, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Check ``predicate`` every 100 ms until it holds or ``timeout`` seconds have gone by.

    Waiting through the page (not time.sleep) keeps Playwright's event loop turning, so that
    request events and the like keep arriving meanwhile. Returns whether it came to hold.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        page.wait_for_timeout(100)
    return True


def job_posts(
    page: Page, event: Literal["request", "requestfinished"] = "request"
) -> list[Request]:
    """A list that fills with the POST /v1/jobs requests ``page`` makes from now on."""
    posts: list[Request] = []

    def record(request: Request) -> None:
        if request.method == "POST" and urlparse(request.url).path == "/v1/jobs":
            posts.append(request)

    page.on(event, record)
    return posts


def test_drop_images_and_zip_gives_palettes_and_exports(ui: Page, server: Server) -> None:
    images = {
        "red-green.png": image_bytes([RED, GREEN]),
        "blue-yellow.jpg": image_bytes([BLUE, YELLOW], fmt="JPEG"),
        "four.png": image_bytes([RED, GREEN, BLUE, YELLOW]),
    }
    archive = zip_bytes(
        {f"set/img-{i:02d}.png": image_bytes([(i * 12, 200 - i * 9, 90)], 48) for i in range(20)}
    )
    files = [(n, "image/jpeg" if n.endswith(".jpg") else "image/png", d) for n, d in images.items()]
    files.append(("twenty.zip", "application/zip", archive))
    drop_files(ui, files)

    cards = ui.locator("#cards > li.card")
    expect(cards).to_have_count(4)
    # Cards are keyed by file name in drop order, never by completion order.
    assert [c.get_attribute("data-file-name") for c in cards.all()] == [f[0] for f in files]
    screenshot(ui, "01-uploading")

    expected_palettes = {"red-green.png": 1, "blue-yellow.jpg": 1, "four.png": 1, "twenty.zip": 20}
    for name, count in expected_palettes.items():
        expect(card(ui, name)).to_have_attribute("data-state", "succeeded", timeout=60_000)
        expect(card(ui, name).locator(".status")).to_have_text("Done")
        expect(card(ui, name).locator("section.palette")).to_have_count(count)
    job_ids = {job_id_of(ui, name) for name in expected_palettes}
    assert len(job_ids) == 4
    expect(ui.locator("#summary")).to_contain_text("23/23 done, 0 failed")
    expect(card(ui, "twenty.zip").locator(".processing-bar")).to_have_js_property("value", 100)

    # Palettes: swatches sized by share, with text colors readable on them.
    four = card(ui, "four.png").locator("section.palette")
    swatches = four.locator("button.swatch")
    assert swatches.count() >= 4
    hexes = hexes_of(swatches)
    assert all(h and re.fullmatch(r"#[0-9a-f]{6}", h) for h in hexes)
    contrast = ui.evaluate(
        """(sel) => [...document.querySelectorAll(sel)].map((b) => {
        const rgb = (s) => s.match(/\\d+/g).slice(0, 3).map(Number);
        const lin = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
        const lum = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
        const st = getComputedStyle(b);
        const [a, c] = [lum(rgb(st.backgroundColor)), lum(rgb(st.color))].sort((x, y) => y - x);
        return (a + 0.05) / (c + 0.05);
    })""",
        '#cards li[data-file-name="four.png"] button.swatch',
    )
    assert min(contrast) >= 4.5, contrast
    expect(four.locator(".metrics")).to_contain_text("ΔE")
    expect(four.locator(".roles li")).to_have_count(6)

    # A swatch click puts its hex on the clipboard.
    first = swatches.first
    first.click()
    assert ui.evaluate("navigator.clipboard.readText()") == first.get_attribute("data-hex")
    expect(ui.locator("#toast")).to_contain_text(first.get_attribute("data-hex") or "?")

    # Copy all as CSS custom properties / Tailwind / SCSS / JSON.
    four.locator("[data-copy='css']").click()
    css = ui.evaluate("navigator.clipboard.readText()")
    assert css.startswith(":root {") and f"--palette-1: {hexes[0]};" in css
    four.locator("[data-copy='scss']").click()
    assert f"$palette-1: {hexes[0]};" in ui.evaluate("navigator.clipboard.readText()")
    four.locator("[data-copy='tailwind']").click()
    assert f"'1': '{hexes[0]}'" in ui.evaluate("navigator.clipboard.readText()")
    four.locator("[data-copy='json']").click()
    copied = json.loads(ui.evaluate("navigator.clipboard.readText()"))
    assert copied["colors"][0]["hex"] == hexes[0]

    # Downloads made from the palette JSON.
    with ui.expect_download() as info:
        four.locator("[data-download='gpl']").click()
    gpl = info.value.path().read_text(encoding="utf-8")
    assert gpl.startswith("GIMP Palette\nName: four\n") and hexes[0] in gpl
    with ui.expect_download() as info:
        four.locator("[data-download='ase']").click()
    ase = info.value.path().read_bytes()
    assert ase[:4] == b"ASEF" and int.from_bytes(ase[8:12], "big") == len(hexes)
    # Byte for byte what the library writes for the same image and options.
    assert ase == pn.extract(images["four.png"], colors=8).export("ase")
    with ui.expect_download() as info:
        four.locator("[data-download='svg']").click()
    assert info.value.path().read_text(encoding="utf-8").count("<rect ") == len(hexes)
    with ui.expect_download() as info:
        four.locator("[data-download='json']").click()
    palette_json = json.loads(info.value.path().read_text(encoding="utf-8"))
    results = httpx.get(f"{server.url}/v1/jobs/{job_id_of(ui, 'four.png')}/results").json()
    assert palette_json == results["items"][0]["palette"]
    assert [c["hex"] for c in palette_json["colors"]] == hexes

    # One combined download for the bulk job.
    zip_card = card(ui, "twenty.zip")
    zip_card.locator("details.bulk > summary").click()
    with ui.expect_download() as info:
        zip_card.locator("[data-action='download-all']").click()
    with zipfile.ZipFile(info.value.path()) as bundle:
        names = bundle.namelist()
        assert len(names) == 20 * 4 + 1 and "results.json" in names
        assert bundle.read("img-00/img-00.ase")[:4] == b"ASEF"
    screenshot(ui, "02-done")


def test_paste_with_options_sends_them_to_the_service(ui: Page, server: Server) -> None:
    ui.fill("#opt-colors", "3")
    ui.press("#opt-colors", "Tab")
    ui.uncheck("#opt-transparent")
    png = base64.b64encode(image_bytes([RED, GREEN, BLUE, YELLOW])).decode()
    ui.evaluate(
        """(b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'image.png', { type: 'image/png' }));
        document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true }));
    }""",
        png,
    )
    pasted = ui.locator("#cards > li.card")
    expect(pasted).to_have_count(1)
    assert (pasted.get_attribute("data-file-name") or "").startswith("pasted-")
    expect(pasted).to_have_attribute("data-state", "succeeded", timeout=30_000)
    job = server.job(pasted.get_attribute("data-job-id") or "")
    assert job["options"]["colors"] == 3 and job["options"]["alpha_threshold"] == 0
    expect(pasted.locator("button.swatch")).to_have_count(3)
    # Screen readers hear the outcome from the live region.
    expect(ui.locator("#announcer")).to_have_text(re.compile(r"^pasted-.*: done, 1 palette$"))
    # The options are remembered for the next visit.
    open_ui(ui)
    expect(ui.locator("#opt-colors")).to_have_value("3")
    expect(ui.locator("#opt-transparent")).not_to_be_checked()


def test_share_link_and_sort_by_hue(ui: Page) -> None:
    drop_files(ui, [("bands.png", "image/png", image_bytes([BLUE, RED, YELLOW, GREEN]))])
    palette = card(ui, "bands.png").locator("section.palette")
    expect(card(ui, "bands.png")).to_have_attribute("data-state", "succeeded", timeout=30_000)
    expect(palette.locator("button.swatch")).to_have_count(4)
    by_share = hexes_of(palette.locator("button.swatch"))

    ui.check("#order-hue")
    by_hue = hexes_of(palette.locator("button.swatch"))
    assert sorted(by_hue) == sorted(by_share)
    hues = ui.evaluate(
        """(hexes) => hexes.map((h) => {
        const [r, g, b] = [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16) / 255);
        const max = Math.max(r, g, b), min = Math.min(r, g, b), d = max - min;
        if (d < 0.06) return 999;
        const raw = max === r ? ((g - b) / d) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
        return (raw * 60 + 360) % 360;
    })""",
        by_hue,
    )
    assert hues == sorted(hues)
    ui.check("#order-share")

    palette.locator("[data-share]").click()
    url = ui.evaluate("navigator.clipboard.readText()")
    assert urlparse(url).fragment.startswith("palette=")
    open_ui(ui, url)
    shared = ui.locator("#shared section.palette")
    expect(shared).to_be_visible()
    assert hexes_of(shared.locator("button.swatch")) == by_share
    screenshot(ui, "03-shared-palette")


@pytest.fixture()
def one_worker_server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own with one worker, so a long job is surely still running later."""
    srv = start_server(tmp_path, workers=1)
    yield srv
    srv.stop(signal.SIGTERM)


class PollLog:
    """Every GET /v1/jobs/{id} a page starts, for which job, and when the browser started it.

    Times are the browser's own (Request.timing, epoch milliseconds): the test process may
    receive the events in bursts, so its own clock cannot tell how far apart requests were.
    """

    def __init__(self, page: Page) -> None:
        self.entries: list[tuple[str, Request]] = []
        page.on("request", self._on_request)

    def _on_request(self, request: Request) -> None:
        match = JOB_URL.match(urlparse(request.url).path)
        if request.method == "GET" and match:
            self.entries.append((match.group(1), request))

    def of(self, job_id: str) -> list[Request]:
        return [r for j, r in self.entries if j == job_id]

    def wait_for(self, page: Page, job_id: str, count: int, timeout: float = 20.0) -> None:
        polled = wait_until(page, lambda: len(self.of(job_id)) >= count, timeout)
        assert polled, f"expected {count} polls of {job_id}"


def started_ms(request: Request) -> float:
    return float(request.timing["startTime"])


def test_hidden_tab_stops_polling_and_visible_polls_at_once(
    ui: Page, one_worker_server: Server, tmp_path: Path
) -> None:
    server = one_worker_server
    open_ui(ui, server.url)
    log = PollLog(ui)
    created = job_posts(ui, "requestfinished")
    # One worker: the ZIP keeps it busy (running), the image behind it stays queued.
    pick_file(ui, slow_zip(tmp_path, "slow.zip", 4000, seed=1))
    slow_id = job_id_of(ui, "slow.zip")
    drop_files(ui, [("queued.png", "image/png", image_bytes([RED, GREEN]))])
    queued_id = job_id_of(ui, "queued.png")
    log.wait_for(ui, queued_id, 4)
    log.wait_for(ui, slow_id, 4)

    # Polls are conditional: If-None-Match with the last ETag, so the unchanged queued job
    # costs a bodiless 304; they are spaced as Retry-After asks, from the 202 on.
    polls = log.of(queued_id)
    headers = [r.all_headers() for r in polls]
    assert all("if-none-match" in h for h in headers[1:]), headers
    answers = [r.response() for r in polls]
    assert all(a is not None for a in answers)
    statuses = [a.status for a in answers]
    assert statuses[0] == 200 and 304 in statuses[1:], statuses
    retry_after_ms = 1000 * float(answers[0].headers["retry-after"])
    post = created[-1]
    accepted_ms = started_ms(post) + post.timing["responseEnd"]
    times = [accepted_ms] + [started_ms(r) for r in polls]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.9 * retry_after_ms, (gaps, retry_after_ms)

    hidden_ms = ui.evaluate("window.__paletteSetVisibility('hidden'), Date.now()")
    ui.wait_for_timeout(10_000)
    during = [r for _, r in log.entries if started_ms(r) > hidden_ms]
    assert during == [], "no job request while the tab is hidden"
    assert server.job(slow_id)["status"] == "running", "the job must still be active"
    assert server.job(queued_id)["status"] == "queued", "the job must still be active"
    screenshot(ui, "04-hidden-tab-polling-paused")

    shown_ms = ui.evaluate("window.__paletteSetVisibility('visible'), Date.now()")
    ui.wait_for_timeout(0.8 * retry_after_ms)
    fresh = [(j, started_ms(r) - shown_ms) for j, r in log.entries if started_ms(r) > hidden_ms]
    # Each active job is asked about once, at once, and not again before Retry-After.
    assert sorted(j for j, _ in fresh) == sorted([slow_id, queued_id]), fresh
    assert all(delay < 300 for _, delay in fresh), fresh
    # And polling goes on at the Retry-After pace.
    ui.wait_for_timeout(2.5 * retry_after_ms)
    for job_id in (slow_id, queued_id):
        assert len([r for r in log.of(job_id) if started_ms(r) > shown_ms]) >= 2, job_id


def test_only_one_tab_polls_a_job(ui: Page, one_worker_server: Server, tmp_path: Path) -> None:
    server = one_worker_server
    open_ui(ui, server.url)
    first_log = PollLog(ui)
    pick_file(ui, slow_zip(tmp_path, "shared.zip", 4000, seed=4))
    job_id = job_id_of(ui, "shared.zip")
    first_log.wait_for(ui, job_id, 1)

    second = ui.context.new_page()
    second_log = PollLog(second)
    open_ui(second, server.url)
    # The second tab shows the same job (from IndexedDB) and its progress (from the first
    # tab over BroadcastChannel) without asking the server itself.
    expect(card(second, "shared.zip")).to_have_attribute("data-job-id", job_id)
    expect(card(second, "shared.zip")).to_have_attribute("data-state", "running", timeout=10_000)
    start = len(first_log.of(job_id))
    second.wait_for_timeout(4_000)
    assert len(first_log.of(job_id)) >= start + 2
    assert second_log.of(job_id) == []
    assert progress_value(second, "shared.zip") > 0

    # The polling tab goes away: the other one takes over.
    ui.close()
    second_log.wait_for(second, job_id, 1, timeout=5)
    assert server.job(job_id)["status"] == "running"


def test_tabs_share_cards_and_send_each_upload_once(ui: Page, server: Server) -> None:
    second = ui.context.new_page()
    open_ui(second, server.url)
    posts = [job_posts(page) for page in (ui, second)]
    drop_files(ui, [("both-tabs.png", "image/png", image_bytes([BLUE, YELLOW]))])
    for page in (ui, second):
        expect(card(page, "both-tabs.png")).to_have_attribute(
            "data-state", "succeeded", timeout=30_000
        )
        expect(card(page, "both-tabs.png").locator("section.palette")).to_have_count(1)
    assert sum(map(len, posts)) == 1
    assert card(second, "both-tabs.png").get_attribute("data-job-id") == job_id_of(
        ui, "both-tabs.png"
    )
    card(ui, "both-tabs.png").get_by_role("button", name="Dismiss").click()
    expect(card(second, "both-tabs.png")).to_have_count(0)


def test_offline_uploads_survive_reload_and_send_when_online(ui: Page, server: Server) -> None:
    ui.evaluate("navigator.serviceWorker.ready.then(() => true)")
    ui.context.set_offline(True)
    drop_files(
        ui,
        [
            ("offline-a.png", "image/png", image_bytes([RED, BLUE])),
            ("offline-b.png", "image/png", image_bytes([GREEN, YELLOW])),
        ],
    )
    for name in ("offline-a.png", "offline-b.png"):
        expect(card(ui, name)).to_have_attribute("data-state", "waiting")
        expect(card(ui, name).locator(".status")).to_have_text("Waiting for network")
    expect(ui.locator("#summary")).to_contain_text("2 waiting for network")
    screenshot(ui, "05-offline-waiting")

    open_ui(ui)
    for name in ("offline-a.png", "offline-b.png"):
        expect(card(ui, name)).to_have_attribute("data-state", "waiting")
        assert card(ui, name).get_attribute("data-job-id") is None

    uploads = job_posts(ui)
    ui.context.set_offline(False)
    for name in ("offline-a.png", "offline-b.png"):
        expect(card(ui, name)).to_have_attribute("data-state", "succeeded", timeout=30_000)
        expect(card(ui, name).locator("section.palette")).to_have_count(1)
        assert server.job(job_id_of(ui, name))["status"] == "succeeded"
    assert len(uploads) == 2


def test_reload_mid_job_resumes_its_progress_bar(
    ui: Page, one_worker_server: Server, tmp_path: Path
) -> None:
    server = one_worker_server
    open_ui(ui, server.url)
    pick_file(ui, slow_zip(tmp_path, "resume.zip", 1000, seed=2))
    job_id = job_id_of(ui, "resume.zip")
    expect(card(ui, "resume.zip")).to_have_attribute("data-state", "running", timeout=20_000)
    wait_until(ui, lambda: 0 < progress_value(ui, "resume.zip") < 100)
    before = progress_value(ui, "resume.zip")
    assert 0 < before < 100
    screenshot(ui, "06-running")

    open_ui(ui)
    resumed = card(ui, "resume.zip")
    expect(resumed).to_have_attribute("data-job-id", job_id)
    expect(resumed).to_have_attribute("data-state", "running", timeout=5_000)
    # The bar picks up from the server's progress and keeps moving.
    assert wait_until(ui, lambda: progress_value(ui, "resume.zip") > before)
    expect(resumed).to_have_attribute("data-state", "succeeded", timeout=90_000)
    # A bulk job's palettes come folded, a hundred at a time.
    expect(resumed.locator("details.bulk > summary")).to_have_text("1000 palettes")
    resumed.locator("details.bulk > summary").click()
    expect(resumed.locator("section.palette")).to_have_count(100)
    more = resumed.get_by_role("button", name=re.compile(r"^Show 100 more"))
    more.click()
    expect(resumed.locator("section.palette")).to_have_count(200)
    expect(more).to_have_text("Show 100 more (800 not shown)")
    assert server.job(job_id)["progress"]["done"] == 1000


def test_cancel_from_the_card(ui: Page, server: Server, tmp_path: Path) -> None:
    pick_file(ui, slow_zip(tmp_path, "cancel-me.zip", 4000, seed=3, size=32))
    job_id = job_id_of(ui, "cancel-me.zip")
    item = card(ui, "cancel-me.zip")
    expect(item).to_have_attribute("data-state", "running", timeout=20_000)
    item.get_by_role("button", name="Cancel").click()
    expect(item).to_have_attribute("data-state", "canceled", timeout=10_000)
    expect(item.locator(".status")).to_have_text("Canceled")
    assert server.job(job_id)["status"] == "canceled"
    screenshot(ui, "07-canceled")
    # A finished card stays until dismissed, also after a reload.
    open_ui(ui)
    expect(card(ui, "cancel-me.zip")).to_have_attribute("data-state", "canceled")
    card(ui, "cancel-me.zip").get_by_role("button", name="Dismiss").click()
    expect(card(ui, "cancel-me.zip")).to_have_count(0)
    open_ui(ui)
    expect(card(ui, "cancel-me.zip")).to_have_count(0)


def test_cancel_while_offline_is_sent_when_back_online(
    ui: Page, server: Server, tmp_path: Path
) -> None:
    pick_file(ui, slow_zip(tmp_path, "offline-cancel.zip", 4000, seed=5, size=32))
    job_id = job_id_of(ui, "offline-cancel.zip")
    item = card(ui, "offline-cancel.zip")
    expect(item).to_have_attribute("data-state", "running", timeout=20_000)
    ui.context.set_offline(True)
    item.get_by_role("button", name="Cancel").click()
    expect(item.locator(".status")).to_have_text("Cancel waiting for network")
    assert server.job(job_id)["status"] == "running"
    ui.context.set_offline(False)
    expect(item).to_have_attribute("data-state", "canceled", timeout=10_000)
    assert server.job(job_id)["status"] == "canceled"


def test_upload_progress_and_removing_an_upload_in_flight(
    ui: Page, one_worker_server: Server, tmp_path: Path
) -> None:
    # A server of its own, so that its job list shows whether this upload made a job.
    server = one_worker_server
    open_ui(ui, server.url)
    # Slow the page's uploads to 256 KiB/s so that the bar has time to move.
    cdp = ui.context.new_cdp_session(ui)
    cdp.send("Network.enable")
    conditions = {"offline": False, "latency": 0, "downloadThroughput": -1}
    cdp.send("Network.emulateNetworkConditions", {**conditions, "uploadThroughput": 256 * 1024})
    uploads = job_posts(ui)
    pick_file(ui, slow_zip(tmp_path, "big-upload.zip", 150, seed=6))
    item = card(ui, "big-upload.zip")
    expect(item).to_have_attribute("data-state", "uploading")
    seen: list[float] = []

    def sample() -> bool:
        value = progress_value(ui, "big-upload.zip", ".upload-bar")
        if 0 < value < 100:
            seen.append(value)
        return bool(seen) and 20 < seen[-1] < 100

    wait_until(ui, sample, timeout=10)
    assert seen and seen == sorted(seen) and 20 < seen[-1] < 100, seen
    expect(item.locator(".upload-bar + .bar-text")).to_have_text(re.compile(r"^\d+%$"))
    screenshot(ui, "10-upload-progress")

    # Removing it aborts the upload in the browser ...
    assert len(uploads) == 1
    with ui.expect_event("requestfailed", lambda r: r == uploads[0]):
        item.get_by_role("button", name="Remove").click()
    expect(item).to_have_count(0)
    assert uploads[0].failure is not None
    cdp.send("Network.emulateNetworkConditions", {**conditions, "uploadThroughput": -1})
    open_ui(ui)
    expect(ui.locator("#cards > li.card")).to_have_count(0)
    assert len(uploads) == 1, "a removed upload is not sent again"
    # ... and the service never made a job of it.
    assert httpx.get(f"{server.url}/v1/jobs", timeout=5.0).json()["jobs"] == []


def test_rejected_upload_shows_the_problem_detail(ui: Page, server: Server) -> None:
    data = b"just some words, not an image\n"
    drop_files(ui, [("notes.txt", "text/plain", data)])
    item = card(ui, "notes.txt")
    expect(item).to_have_attribute("data-state", re.compile("rejected|failed"), timeout=20_000)
    # The words shown are the service's own problem+json detail.
    if item.get_attribute("data-state") == "rejected":
        direct = httpx.post(
            f"{server.url}/v1/jobs", files={"file": ("notes.txt", data, "text/plain")}
        )
        assert direct.headers["content-type"].startswith("application/problem+json")
        expect(item.locator(".card-error")).to_have_text(direct.json()["detail"])
    else:
        expect(item.locator(".card-error, .item-error")).not_to_have_count(0)
    screenshot(ui, "08-rejected")


def test_keyboard_reaches_the_file_picker(ui: Page) -> None:
    reached = []
    for _ in range(12):
        ui.keyboard.press("Tab")
        reached.append(ui.evaluate("document.activeElement.id || document.activeElement.tagName"))
        if reached[-1] == "file-input":
            break
    assert reached[-1] == "file-input", reached
    expect(ui.locator("#file-input")).to_have_accessible_name("choose files")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_accessibility_scan(ui: Page, axe_source: str, scheme: Literal["light", "dark"]) -> None:
    ui.emulate_media(color_scheme=scheme)
    archive = zip_bytes({f"z/{i}.png": image_bytes([(i * 40, 90, 200 - i * 30)]) for i in range(6)})
    drop_files(
        ui,
        [
            ("a11y.png", "image/png", image_bytes([RED, GREEN, BLUE, YELLOW])),
            ("bad.txt", "text/plain", b"not an image"),
            ("six.zip", "application/zip", archive),
        ],
    )
    expect(card(ui, "a11y.png")).to_have_attribute("data-state", "succeeded", timeout=30_000)
    # The image's analysis too: score table, thumbnail with its subject box, theme swatches.
    expect(card(ui, "a11y.png").locator("section.analysis")).to_have_attribute(
        "data-state", "done", timeout=30_000
    )
    expect(card(ui, "six.zip")).to_have_attribute("data-state", "succeeded", timeout=30_000)
    expect(card(ui, "bad.txt")).to_have_attribute(
        "data-state", re.compile("rejected|failed"), timeout=30_000
    )
    card(ui, "six.zip").locator("details.bulk > summary").click()
    ui.evaluate("location.hash = 'palette=1e90ff.6000,ffd700.3000,2f4f4f.1000&name=shared'")
    expect(ui.locator("#shared section.palette")).to_be_visible()
    # Evaluated through the browser protocol: the page's own CSP (script-src 'self') rightly
    # refuses an injected inline <script>, and the scan must not loosen it.
    ui.evaluate(axe_source)
    for width, label in ((1200, "desktop"), (390, "phone")):
        ui.set_viewport_size({"width": width, "height": 900})
        result = ui.evaluate("axe.run(document, { resultTypes: ['violations'] })")
        serious = [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert not serious, json.dumps(serious, indent=1)
        screenshot(ui, f"09-{label}-{scheme}")


def test_reduced_motion_turns_off_transitions(ui: Page) -> None:
    duration = "getComputedStyle(document.querySelector('#drop-zone')).transitionDuration"
    assert ui.evaluate(duration) != "0s"
    ui.emulate_media(reduced_motion="reduce")
    assert ui.evaluate(duration) == "0s"

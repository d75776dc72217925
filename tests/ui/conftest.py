"""End-to-end fixtures for the browser UI: a real `palette serve` on loopback and Debian's
Chromium driven by Playwright (never `playwright install`: the browser comes from apt).

Environment:
  PALETTE_UI_CHROMIUM   the browser binary (default /usr/bin/chromium)
  PALETTE_UI_AXE        axe-core's axe.min.js (default: tests/ui/node_modules/axe-core/axe.min.js,
                        installed by `npm install --prefix tests/ui --no-save axe-core@4`)
"""

from __future__ import annotations

import io
import os
import signal
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from servertools import ServiceProcess, write_guard

HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE / "screenshots"
CHROMIUM = os.environ.get("PALETTE_UI_CHROMIUM", "/usr/bin/chromium")
AXE = Path(os.environ.get("PALETTE_UI_AXE", HERE / "node_modules" / "axe-core" / "axe.min.js"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Page Visibility cannot be switched from outside in headless Chromium (there is no window to
# hide or tab to switch away from), so the tests flip what the page reads: visibilityState and
# hidden, followed by the real visibilitychange event the UI listens to.
VISIBILITY_HOOK = """
window.__paletteSetVisibility = (state) => {
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => state === 'hidden' });
  document.dispatchEvent(new Event('visibilitychange'));
};
"""


class Server(ServiceProcess):
    """A `palette serve` process on 127.0.0.1 with its own data directory."""

    def job(self, job_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/v1/jobs/{job_id}", timeout=5.0)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


def start_server(folder: Path, workers: int = 2) -> Server:
    """A started `palette serve` with its data, log and network guard under ``folder``."""
    # Tests end servers with SIGTERM: a short drain keeps teardown quick.
    env = {
        "PALETTE_WORKERS": str(workers),
        "PALETTE_DRAIN_GRACE_SECONDS": "1",
        "PALETTE_DRAIN_DELAY_SECONDS": "0",
    }
    server = Server(folder / "data", write_guard(folder / "netguard"), env)
    return server.start()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("ui"))
    yield srv
    srv.stop(signal.SIGTERM)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install -y chromium (or set PALETTE_UI_CHROMIUM)"
        )
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": CHROMIUM_ARGS,
        "headless": True,
    }


@pytest.fixture(scope="session")
def base_url(server: Server) -> str:
    """The server under test: pytest-playwright opens every page relative to it.

    Ours, not the plugin's: pytest-playwright 0.10 (without pytest-base-url) supplies a fallback
    ``base_url`` written as an instance method of a plugin class, which pytest 9 deprecates; the
    PytestRemovedIn10Warning is an error under our ``filterwarnings`` and broke every UI test.
    """
    return server.url


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_context_args,
        "permissions": ["clipboard-read", "clipboard-write"],
        "viewport": {"width": 1200, "height": 900},
    }


def open_ui(page: Any, url: str | None = None) -> None:
    """Load the UI at ``url`` (reload the current page when None) and wait until it is ready."""
    if url is None:
        page.reload()
    else:
        page.goto(url)
    page.wait_for_selector("body[data-ready='true']")


@pytest.fixture()
def ui(page: Any, server: Server) -> Any:
    """The UI at `/`, loaded and ready, with the visibility hook installed."""
    page.add_init_script(VISIBILITY_HOOK)
    open_ui(page, "/")
    return page


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(
            f"axe-core not found at {AXE}: npm install --prefix tests/ui --no-save axe-core@4 "
            "(or set PALETTE_UI_AXE)"
        )
    return AXE.read_text(encoding="utf-8")


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


# ------------------------------------------------------------------------------ test images


def image_bytes(colors: list[tuple[int, int, int]], size: int = 96, fmt: str = "PNG") -> bytes:
    """An image of vertical bands, one per color, equal widths."""
    img = Image.new("RGB", (size, size))
    band = max(1, size // len(colors))
    for i, color in enumerate(colors):
        img.paste(color, (i * band, 0, size if i == len(colors) - 1 else (i + 1) * band, size))
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def noise_bytes(seed: int, size: int = 64) -> bytes:
    """A noisy PNG: the slowest kind of image to summarise, for jobs that must take a while."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pixels = (rng.random((size, size, 3)) * 255).astype("uint8")
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", compress_level=0)
    return out.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()

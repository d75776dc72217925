"""The art corpus: flat-color images and RGBA art, the kinds of file users send besides photos.

Photographs come from :mod:`benchmarks.corpus`; this module makes (or copies) everything else,
deterministically, into ``<corpus dir>/art/``:

* **flat** (scored with plain mean ΔE2000, like the photos):
  charts drawn by matplotlib; UI screens rendered by Chromium from pages written here (real
  text anti-aliasing, borders, shadows); illustrations and logos drawn with Pillow at 4x and
  reduced (anti-aliased edges between flat fills, and many close shades); pixel art upscaled
  without smoothing. Saved as PNG (8-bit, palette and 16-bit), TIFF, WebP and AVIF.
* **rgba** (scored with alpha-weighted ΔE2000): Oxygen icons from Debian's
  ``oxygen-icon-theme`` (real RGBA art with shadows and glows); logos whose glow or shadow
  makes most visible pixels partly transparent; product-style cut-outs of corpus photos with
  feathered edges (one of them a 16-bit PNG).

Run ``python -m benchmarks.art`` to build the cache and list it. Missing sources (the icon
theme, Chromium) raise :class:`benchmarks.corpus.CorpusMissingError` with the install command.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyvips
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .corpus import CorpusMissingError, Photo, build_corpus, corpus_dir

__all__ = ["APT_PACKAGES", "Artwork", "build_art"]

#: Debian packages the art corpus reads from (besides the photo corpus and Chromium).
APT_PACKAGES = ("oxygen-icon-theme", "fonts-dejavu-core", "chromium")

_VERSION = 1
_MANIFEST = "manifest.json"
_OXYGEN = Path("/usr/share/icons/oxygen/base/256x256")
_OXYGEN_ICONS = (
    "apps/accessories-calculator.png", "apps/digikam.png", "apps/internet-web-browser.png",
    "apps/k3b.png", "apps/kmail2.png", "apps/preferences-desktop-display-color.png",
    "apps/clock.png", "devices/camera-photo.png",
)  # fmt: skip
_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
_CHROMIUM = os.environ.get("PALETTE_UI_CHROMIUM", "/usr/bin/chromium")


@dataclass(frozen=True)
class Artwork:
    """One image of the art corpus."""

    name: str
    path: Path
    kind: str  # "flat" or "rgba"
    source: str
    width: int
    height: int


# ------------------------------------------------------------------------------ flat: charts
def _charts(folder: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(3)
    out: dict[str, Path] = {}

    def save(name: str, fig: object, **options: object) -> None:
        out[name] = folder / name
        fig.savefig(out[name], dpi=100, **options)  # type: ignore[attr-defined]
        plt.close(fig)  # type: ignore[arg-type]

    fig, ax = plt.subplots(figsize=(8, 5))
    x = np.arange(6)
    for i in range(4):
        ax.bar(x + i * 0.2, rng.uniform(2, 10, 6), width=0.2, label=f"series {i + 1}")
    ax.set_title("Quarterly sales by region")
    ax.legend()
    ax.grid(axis="y", alpha=0.4)
    save("chart-bars.png", fig)

    fig, ax = plt.subplots(figsize=(8, 5))
    t = np.linspace(0, 10, 400)
    for i in range(7):
        ax.plot(t, np.sin(t + i / 2) * (1 + i / 4) + i, linewidth=2, label=f"line {i}")
    ax.legend(loc="upper left", ncol=2)
    ax.grid(True)
    save("chart-lines.png", fig)

    fig, ax = plt.subplots(figsize=(6, 6))
    ax.pie(rng.uniform(1, 5, 8), labels=[f"part {i}" for i in range(8)], autopct="%1.0f%%",
           colors=plt.get_cmap("Set3").colors[:8], wedgeprops={"edgecolor": "white"})
    save("chart-pie.png", fig)

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.stackplot(np.arange(30), rng.uniform(1, 3, (5, 30)).cumsum(axis=1),
                 colors=plt.get_cmap("Pastel1").colors[:5])
    ax.set_facecolor("#f4f4f8")
    save("chart-area.png", fig)

    fig, ax = plt.subplots(figsize=(7, 6))
    for i in range(20):  # tab20: ten hues, each in a dark and a light shade (close pairs)
        pts = rng.normal(size=(40, 2)) * 0.6 + rng.uniform(-5, 5, 2)
        ax.scatter(pts[:, 0], pts[:, 1], s=30, color=plt.get_cmap("tab20")(i))
    save("chart-scatter.png", fig)

    fig, ax = plt.subplots(figsize=(7, 5))
    ax.imshow(rng.integers(0, 12, (12, 18)), cmap="Paired", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("Categories per cell")
    save("chart-categories.png", fig)
    return out


# --------------------------------------------------------------------------- flat: UI screens
_UI_PAGES = {
    "ui-dashboard.png": """
<style>
body{margin:0;font:14px system-ui,DejaVu Sans,sans-serif;background:#f3f5f9;color:#1f2937}
nav{background:#1e293b;color:#e2e8f0;padding:14px 24px;display:flex;gap:22px}
nav b{color:#38bdf8} main{display:grid;grid-template-columns:repeat(3,1fr);gap:18px;padding:24px}
.card{background:#fff;border-radius:10px;padding:18px;box-shadow:0 2px 6px #0002}
.n{font-size:30px;font-weight:700}.up{color:#16a34a}.down{color:#dc2626}
.bar{height:10px;border-radius:5px;background:#e5e7eb;margin-top:10px}
.bar i{display:block;height:10px;border-radius:5px}
button{background:#6366f1;color:#fff;border:0;border-radius:6px;padding:8px 14px;margin:4px}
button.alt{background:#f59e0b}button.ghost{background:#fff;color:#6366f1;border:1px solid #6366f1}
</style>
<nav><b>Acme</b><span>Overview</span><span>Orders</span><span>Customers</span></nav>
<main>
<div class=card>Revenue<div class=n>$48,210</div><span class=up>+12.4%</span>
<div class=bar><i style="width:72%;background:#22c55e"></i></div></div>
<div class=card>Refunds<div class=n>$1,204</div><span class=down>-3.1%</span>
<div class=bar><i style="width:18%;background:#ef4444"></i></div></div>
<div class=card>Visitors<div class=n>9,832</div><span class=up>+5.0%</span>
<div class=bar><i style="width:55%;background:#3b82f6"></i></div></div>
<div class=card style="grid-column:span 2">Actions<br><button>Export</button>
<button class=alt>Review</button><button class=ghost>Settings</button></div>
<div class=card>Status<p style="color:#0891b2">All systems normal</p></div>
</main>""",
    "ui-settings.png": """
<style>
body{margin:0;font:15px DejaVu Sans,sans-serif;background:#111827;color:#e5e7eb}
.row{display:flex;justify-content:space-between;align-items:center;padding:16px 28px;
border-bottom:1px solid #374151}
.sw{width:44px;height:24px;border-radius:12px;background:#4b5563;position:relative}
.sw.on{background:#10b981}.sw::after{content:"";position:absolute;width:20px;height:20px;
border-radius:10px;background:#f9fafb;top:2px;left:2px}.sw.on::after{left:22px}
h1{padding:20px 28px;margin:0;background:#1f2937;color:#fbbf24;font-size:22px}
small{color:#9ca3af}
</style>
<h1>Settings</h1>
<div class=row><span>Notifications<br><small>Email and push</small></span><div class="sw on"></div></div>
<div class=row><span>Dark mode<br><small>Follow the system</small></span><div class="sw on"></div></div>
<div class=row><span>Auto-update<br><small>Weekly</small></span><div class=sw></div></div>
<div class=row><span>Telemetry<br><small>Anonymous</small></span><div class=sw></div></div>
<div class=row><span style="color:#f87171">Delete account</span><div class=sw></div></div>""",
    "ui-pricing.png": """
<style>
body{margin:0;font:15px DejaVu Sans,sans-serif;background:linear-gradient(#fff7ed,#ffedd5);
color:#431407;text-align:center}
.p{display:inline-block;width:220px;margin:30px 12px;padding:24px;border-radius:14px;
background:#fff;border:2px solid #fed7aa;vertical-align:top}
.p.best{border-color:#ea580c;background:#fff7ed}.price{font-size:34px;color:#c2410c}
a{display:block;margin-top:18px;padding:10px;border-radius:8px;background:#ea580c;color:#fff;
text-decoration:none}li{list-style:none;margin:6px;color:#78350f}
</style>
<h1 style="padding-top:20px">Plans</h1>
<div class=p>Starter<div class=price>$9</div><ul><li>1 user</li><li>10 GB</li></ul><a>Choose</a></div>
<div class="p best">Team<div class=price>$29</div><ul><li>10 users</li><li>1 TB</li></ul><a>Choose</a></div>
<div class=p>Scale<div class=price>$99</div><ul><li>Unlimited</li><li>SLA</li></ul><a>Choose</a></div>""",
}


def _ui_screens(folder: Path) -> dict[str, Path]:
    if not Path(_CHROMIUM).exists():
        raise CorpusMissingError(f"{_CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    out: dict[str, Path] = {}
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_CHROMIUM, args=args, headless=True)
        page = browser.new_page(viewport={"width": 900, "height": 560})
        for name, html in _UI_PAGES.items():
            page.set_content(html)
            out[name] = folder / name
            page.screenshot(path=str(out[name]))
        browser.close()
    return out


# ---------------------------------------------------------------- flat: illustrations, pixel art
def _supersampled(size: tuple[int, int], draw: Callable[[ImageDraw.ImageDraw, int], None],
                  background: tuple[int, ...], mode: str = "RGB") -> Image.Image:
    """Draw at 4x, then reduce: edges get the anti-aliased blends real artwork has."""
    big = Image.new(mode, (size[0] * 4, size[1] * 4), background)
    draw(ImageDraw.Draw(big), 4)
    return big.resize(size, Image.Resampling.LANCZOS)


def _illustrations(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}

    def landscape(d: ImageDraw.ImageDraw, s: int) -> None:
        sky = [(255, 222, 173), (255, 204, 153), (250, 180, 140), (240, 160, 130)]
        for i, color in enumerate(sky):
            d.rectangle((0, i * 60 * s, 800 * s, (i + 1) * 60 * s), fill=color)
        d.ellipse((560 * s, 50 * s, 680 * s, 170 * s), fill=(255, 240, 200))
        for i, (color, y) in enumerate((((112, 128, 144), 150), ((90, 110, 130), 190), ((70, 90, 112), 230))):
            x0 = -100 + i * 180
            d.polygon([(x0 * s, 420 * s), ((x0 + 260) * s, (y + 60) * s),
                       ((x0 + 560) * s, 420 * s)], fill=color)
        d.rectangle((0, 380 * s, 800 * s, 500 * s), fill=(85, 139, 47))
        d.rectangle((0, 440 * s, 800 * s, 500 * s), fill=(76, 125, 42))
        for x in range(40, 800, 90):
            d.rectangle(((x + 12) * s, 360 * s, (x + 20) * s, 400 * s), fill=(101, 67, 33))
            d.ellipse((x * s, 300 * s, (x + 32) * s, 370 * s), fill=(46, 94, 36))

    def logo(d: ImageDraw.ImageDraw, s: int) -> None:
        d.rounded_rectangle((40 * s, 40 * s, 260 * s, 260 * s), 40 * s, fill=(234, 88, 12))
        d.ellipse((90 * s, 90 * s, 210 * s, 210 * s), fill=(255, 255, 255))
        d.ellipse((120 * s, 120 * s, 180 * s, 180 * s), fill=(30, 64, 175))
        font = ImageFont.truetype(_FONT, 64 * s)
        d.text((300 * s, 90 * s), "Orbit", font=font, fill=(30, 41, 59))
        d.text((300 * s, 170 * s), "labs", font=font, fill=(234, 88, 12))

    def shades(d: ImageDraw.ImageDraw, s: int) -> None:
        # Many close colors: a tonal ramp per hue, stripes of nearly equal shades.
        hues = [(59, 130, 246), (16, 185, 129), (244, 63, 94), (168, 85, 247)]
        for row, (r, g, b) in enumerate(hues):
            for col in range(12):
                t = col / 11
                color = tuple(int(round(c * (0.55 + 0.45 * t) + 255 * 0.35 * t)) for c in (r, g, b))
                d.rounded_rectangle(((10 + col * 58) * s, (10 + row * 95) * s,
                                     (62 + col * 58) * s, (95 + row * 95) * s), 8 * s,
                                    fill=tuple(min(255, c) for c in color))

    def icons(d: ImageDraw.ImageDraw, s: int) -> None:
        colors = [(239, 68, 68), (249, 115, 22), (234, 179, 8), (34, 197, 94), (6, 182, 212),
                  (59, 130, 246), (139, 92, 246), (236, 72, 153)]
        for i, c in enumerate(colors):
            x, y = 30 + (i % 4) * 150, 30 + (i // 4) * 150
            d.rounded_rectangle((x * s, y * s, (x + 120) * s, (y + 120) * s), 28 * s, fill=c)
            d.ellipse(((x + 35) * s, (y + 35) * s, (x + 85) * s, (y + 85) * s), fill=(255, 255, 255))
            d.line(((x + 20) * s, (y + 100) * s, (x + 100) * s, (y + 100) * s),
                   fill=tuple(v // 2 for v in c), width=6 * s)

    plans: list[tuple[str, tuple[int, int], Callable[[ImageDraw.ImageDraw, int], None],
                      tuple[int, ...], dict[str, object]]] = [
        ("illustration-landscape.tif", (800, 500), landscape, (255, 222, 173), {"compression": "tiff_lzw"}),
        ("logo-orbit.png", (560, 300), logo, (248, 250, 252), {}),
        ("illustration-shades.webp", (710, 390), shades, (255, 255, 255), {"lossless": True}),
        ("icons-flat.avif", (630, 330), icons, (241, 245, 249), {"quality": 90}),
    ]  # fmt: skip
    for name, size, draw, background, options in plans:
        out[name] = folder / name
        _supersampled(size, draw, background).save(out[name], **options)

    # The landscape again as a 16-bit PNG (same pixels, 16-bit samples).
    deep = np.asarray(Image.open(out["illustration-landscape.tif"]).convert("RGB"), np.uint16) * 257
    out["illustration-landscape-16bit.png"] = folder / "illustration-landscape-16bit.png"
    pyvips.Image.new_from_array(deep).copy(interpretation="rgb16").write_to_file(
        str(out["illustration-landscape-16bit.png"]))
    return out


def _pixel_art(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(11)
    out: dict[str, Path] = {}
    palette = np.array([
        (26, 28, 44), (93, 39, 93), (177, 62, 83), (239, 125, 87), (255, 205, 117),
        (167, 240, 112), (56, 183, 100), (37, 113, 121), (41, 54, 111), (59, 93, 201),
        (65, 166, 246), (115, 239, 247), (244, 244, 244), (148, 176, 194), (86, 108, 134),
        (51, 60, 87),
    ], np.uint8)  # fmt: skip
    # Sprites: symmetric random shapes in 4-5 palette colors each, on a dark background.
    sheet = np.zeros((4 * 18, 6 * 18), np.uint8)
    for sy in range(4):
        for sx in range(6):
            half = rng.integers(0, 5, (16, 8))
            colors = rng.choice(np.arange(1, 16), 4, replace=False)
            sprite = np.where(half > 0, colors[np.minimum(half, 4) - 1], 0)
            sheet[sy * 18 + 1: sy * 18 + 17, sx * 18 + 1: sx * 18 + 17] = np.hstack([sprite, sprite[:, ::-1]])
    img = Image.fromarray(palette[sheet]).resize((sheet.shape[1] * 6, sheet.shape[0] * 6),
                                                 Image.Resampling.NEAREST)
    out["pixel-sprites.png"] = folder / "pixel-sprites.png"
    img.save(out["pixel-sprites.png"])
    # A scene with ordered dithering between neighbouring palette entries, as a palette PNG.
    h, w = 90, 160
    y, x = np.mgrid[0:h, 0:w]
    bayer = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) / 16
    level = (y / h * 4 + bayer[y % 4, x % 4]).astype(int)
    ramp = np.array([11, 10, 9, 8, 0])
    scene = ramp[np.clip(level, 0, 4)]
    ground = y > 60 + 6 * np.sin(x / 9)
    scene[ground] = np.array([6, 5, 7])[(x[ground] // 3 + y[ground] // 2) % 3]
    indexed = Image.fromarray(scene.astype(np.uint8), "P")
    indexed.putpalette(palette.tobytes())
    indexed = indexed.resize((w * 5, h * 5), Image.Resampling.NEAREST)
    out["pixel-scene-palette.png"] = folder / "pixel-scene-palette.png"
    indexed.save(out["pixel-scene-palette.png"])
    return out


# ------------------------------------------------------------------------------------ RGBA art
def _icons(folder: Path) -> dict[str, Path]:
    missing = [name for name in _OXYGEN_ICONS if not (_OXYGEN / name).is_file()]
    if missing:
        raise CorpusMissingError(
            f"Oxygen icons missing ({missing[0]}): apt-get install -y oxygen-icon-theme")
    out: dict[str, Path] = {}
    for name in _OXYGEN_ICONS:
        dest = folder / f"icon-{Path(name).stem}.png"
        dest.write_bytes((_OXYGEN / name).read_bytes())
        out[dest.name] = dest
    return out


def _glow_logos(folder: Path) -> dict[str, Path]:
    """Logos whose glow or soft shadow makes most visible pixels partly transparent."""
    out: dict[str, Path] = {}
    specs = [
        ("glow-ring.png", (600, 600), (34, 211, 238), (236, 72, 153), 40),
        ("glow-text.webp", (800, 360), (250, 204, 21), (124, 58, 237), 24),
        ("shadow-badge.tif", (500, 500), (22, 163, 74), (15, 23, 42), 30),
    ]
    font = ImageFont.truetype(_FONT, 150)
    for name, (w, h), main, accent, blur in specs:
        shape = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(shape)
        if "text" in name:
            d.text((60, 90), "GLOW", font=font, fill=255)
        else:
            d.ellipse((w // 5, h // 5, 4 * w // 5, 4 * h // 5), fill=255)
        halo = shape.filter(ImageFilter.GaussianBlur(blur))
        alpha = np.maximum(np.asarray(halo, np.float32) * 1.3, np.asarray(shape, np.float32))
        rgb = np.empty((h, w, 3), np.float32)
        inner = np.asarray(shape.filter(ImageFilter.GaussianBlur(2)), np.float32)[..., None] / 255
        rgb[:] = np.asarray(main, np.float32) * inner + np.asarray(accent, np.float32) * (1 - inner)
        rgba = np.dstack([rgb, np.clip(alpha, 0, 255)]).round().astype(np.uint8)
        out[name] = folder / name
        Image.fromarray(rgba, "RGBA").save(out[name])
    return out


def _cutouts(folder: Path, photos: list[Photo]) -> dict[str, Path]:
    """Product-style cut-outs: an ellipse of a photo with a feathered edge."""
    picks = {p.name: p for p in photos}
    out: dict[str, Path] = {}
    for i, name in enumerate(("skimage-coffee", "mate-YellowFlower", "lomiri-Wine")):
        image = pyvips.Image.thumbnail(str(picks[name].path), 900, height=900, size="down")
        rgb = np.ndarray(buffer=image.write_to_memory(), dtype=np.uint8,
                         shape=(image.height, image.width, image.bands))
        h, w = rgb.shape[:2]
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.hypot((x - w / 2) / (0.42 * w), (y - h / 2) / (0.42 * h))
        alpha = np.clip((1.0 - r) / 0.18, 0.0, 1.0)  # an edge feathered over ~8% of the size
        if i == 2:  # 16-bit RGBA
            deep = np.dstack([rgb.astype(np.uint16) * 257, (alpha * 65535).round().astype(np.uint16)])
            dest = folder / f"cutout-{name}-16bit.png"
            pyvips.Image.new_from_array(deep).copy(interpretation="rgb16").write_to_file(str(dest))
        else:
            dest = folder / f"cutout-{name}.png"
            Image.fromarray(np.dstack([rgb, (alpha * 255).round().astype(np.uint8)]), "RGBA").save(dest)
        out[dest.name] = dest
    return out


# ------------------------------------------------------------------------------------- corpus
def build_art(force: bool = False) -> list[Artwork]:
    """Create the art cache if it is missing or stale; return its images (flat, then rgba)."""
    folder = corpus_dir() / "art"
    manifest = folder / _MANIFEST
    if not force and manifest.is_file():
        data = json.loads(manifest.read_text())
        art = [Artwork(**{**a, "path": folder / a["path"]}) for a in data["art"]]
        if data.get("version") == _VERSION and all(a.path.is_file() for a in art):
            return art
    folder.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, str, dict[str, Path]]] = [
        ("flat", "matplotlib", _charts(folder)),
        ("flat", "chromium", _ui_screens(folder)),
        ("flat", "pillow", _illustrations(folder)),
        ("flat", "pixel art", _pixel_art(folder)),
        ("rgba", "oxygen-icon-theme", _icons(folder)),
        ("rgba", "pillow", _glow_logos(folder)),
        ("rgba", "photo cut-out", _cutouts(folder, build_corpus())),
    ]
    art = []
    for kind, source, files in made:
        for name, path in files.items():
            header = pyvips.Image.new_from_file(str(path))
            art.append(Artwork(Path(name).stem, path, kind, source, header.width, header.height))
    records = [{**asdict(a), "path": a.path.name} for a in art]
    tmp = folder / f".{_MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"version": _VERSION, "art": records}, indent=1))
    tmp.replace(manifest)
    return art


def main() -> int:
    try:
        art = build_art(force="--force" in sys.argv[1:])
    except CorpusMissingError as exc:
        print(exc, file=sys.stderr)
        return 1
    for a in art:
        print(f"{a.kind:5} {a.name:40} {a.width:5}x{a.height:<5} {a.path.suffix:6} {a.source}")
    print(f"{len(art)} images in {corpus_dir() / 'art'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

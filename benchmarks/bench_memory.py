"""Peak memory: a 200-megapixel image in exact mode, and a large ZIP of photos.

Each measurement runs in a fresh child process that reports its own peak resident set size
(``VmHWM`` in /proc/self/status), so the numbers cover the interpreter, NumPy, libvips and
palette_native together, and nothing the test process did before counts.

The inputs are built from corpus photos and cached next to the corpus (``generated/``):

* ``big-200mp.jpg``: the largest corpus photo upscaled and cropped to 16384x12288 (201 MP).
* ``photos-<N>mb.zip``: corpus JPEGs stored (not deflated: JPEG does not compress) until the
  archive holds ``PALETTE_BENCH_ZIP_MB`` MiB (default 1024) of images.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from .conftest import Report, env_int
from .corpus import Photo, corpus_dir

BIG_SIZE = (16384, 12288)  # 201 MP, under palette_native's default 250 MP limit
BIG_LIMIT_MB = 200
ZIP_LIMIT_MB = 250
# Flat: the RSS seen over the second half of the archive may exceed the RSS seen early on
# (after the first 5-25% of entries, once caches and pools are warm) by at most this much.
ZIP_GROWTH_MB = 48

pytestmark = pytest.mark.slow


def _generated() -> Path:
    folder = corpus_dir() / "generated"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def big_jpeg(corpus: list[Photo]) -> Path:
    import pyvips

    path = _generated() / "big-200mp.jpg"
    if not path.is_file():
        source = max(corpus, key=lambda p: p.megapixels)
        width, height = BIG_SIZE
        image = pyvips.Image.thumbnail(
            str(source.path), width, height=height, crop="centre", size="both"
        )
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.jpg")
        image.jpegsave(str(tmp), Q=90)
        tmp.replace(path)
    return path


@pytest.fixture(scope="module")
def big_zip(corpus: list[Photo]) -> tuple[Path, int]:
    """(path, number of entries) of a stored ZIP holding about PALETTE_BENCH_ZIP_MB of photos."""
    megabytes = env_int("PALETTE_BENCH_ZIP_MB", 1024)
    if megabytes < 1:
        raise pytest.UsageError("PALETTE_BENCH_ZIP_MB must be at least 1")
    path = _generated() / f"photos-{megabytes}mb.zip"
    if not path.is_file():
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
        target, written, index = megabytes << 20, 0, 0
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            while written < target:
                photo = corpus[index % len(corpus)]
                archive.write(photo.path, f"batch-{index // len(corpus):03d}/{photo.path.name}")
                written += photo.bytes
                index += 1
        tmp.replace(path)
    with zipfile.ZipFile(path) as archive:
        return path, len(archive.infolist())


def _run_child(code: str, *args: str) -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    child = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert child.returncode == 0, f"child failed:\n{child.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


_STATUS_HELPER = """
def status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field + " missing from /proc/self/status")
"""

_BIG_CHILD = (
    _STATUS_HELPER
    + """
import json, sys, time
import palette_native
baseline = status_mb("VmHWM")
start = time.perf_counter()
palette = palette_native.extract(sys.argv[1], colors=8, exact=True)
seconds = time.perf_counter() - start
print(json.dumps({"peak_mb": status_mb("VmHWM"), "baseline_mb": baseline, "seconds": seconds,
                  "analyzed": palette.analyzed_pixels, "colors": len(palette.colors)}))
"""
)


def test_peak_rss_200mp_exact(big_jpeg: Path, report: Report) -> None:
    result = _run_child(_BIG_CHILD, str(big_jpeg))
    width, height = BIG_SIZE
    report.sections["Memory: 200 MP JPEG, exact mode"] = [
        (
            f"- peak RSS {result['peak_mb']:.0f} MB (bar < {BIG_LIMIT_MB} MB); after imports "
            f"{result['baseline_mb']:.0f} MB; {result['seconds']:.1f} s"
        ),
    ]
    assert result["analyzed"] == width * height, "exact mode must read every pixel"
    assert result["colors"] == 8
    assert result["peak_mb"] < BIG_LIMIT_MB, f"peak RSS {result['peak_mb']:.0f} MB"


_ZIP_CHILD = (
    _STATUS_HELPER
    + """
import json, sys, time
from palette_native.archive import extract_archive
baseline = status_mb("VmHWM")
rss, ok, failed = [], 0, []
start = time.perf_counter()
for result in extract_archive(sys.argv[1], colors=8):
    if result.ok and len(result.palette.colors) == 8:
        ok += 1
    else:
        failed.append([result.name, str(result.error or result.skipped_reason)])
    rss.append(status_mb("VmRSS"))
print(json.dumps({"peak_mb": status_mb("VmHWM"), "baseline_mb": baseline, "rss": rss, "ok": ok,
                  "failed": failed[:5], "seconds": time.perf_counter() - start}))
"""
)


def test_zip_flat_rss(big_zip: tuple[Path, int], report: Report) -> None:
    path, entries = big_zip
    result = _run_child(_ZIP_CHILD, str(path))
    rss: list[float] = result["rss"]
    early = max(rss[len(rss) // 20 : max(len(rss) // 4, len(rss) // 20 + 1)])
    late = max(rss[len(rss) // 2 :])
    size_mb = path.stat().st_size / 2**20
    report.sections[f"Memory: {size_mb:.0f} MiB stored ZIP of photos ({entries} entries)"] = [
        (
            f"- peak RSS {result['peak_mb']:.0f} MB (bar < {ZIP_LIMIT_MB} MB); after imports "
            f"{result['baseline_mb']:.0f} MB; RSS early {early:.0f} MB, late {late:.0f} MB"
        ),
        f"- {result['seconds']:.1f} s, {1e3 * result['seconds'] / entries:.1f} ms per entry",
    ]
    assert result["ok"] == entries, f"{entries - result['ok']} entries failed: {result['failed']}"
    assert result["peak_mb"] < ZIP_LIMIT_MB, f"peak RSS {result['peak_mb']:.0f} MB"
    assert late - early <= ZIP_GROWTH_MB, f"RSS grew from {early:.0f} MB to {late:.0f} MB"

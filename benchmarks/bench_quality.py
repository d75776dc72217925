"""Palette quality: mean CIEDE2000 of the photos against each extractor's palette.

Every extractor gets the file (palette_native, Pillow, fast-colorthief, libimagequant) or the
common 512-px rendering (the scikit-learn k-means reference), and every palette is scored on the
same 512-px rendering. Quality does not depend on timing, so the bar is asserted in every mode,
``--benchmark-disable`` included.

The bar (issue #2): at K = 8 and 16, palette_native's corpus mean ΔE2000 is at most 1.02x that
of k-means in CIELAB (k-means++, n_init=4) and below libimagequant's.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from .conftest import Report
from .corpus import Photo
from .peers import EXTRACTORS, RGBArray, kmeans_lab_palette, mean_delta_e2000

KMEANS = "sklearn-kmeans-lab"
PEERS = [*EXTRACTORS, KMEANS]
COLORS = [8, 16]
QUALITY_VS_KMEANS = 1.02


@dataclass
class QualityBook:
    """Palettes and scores per (peer, K), computed once per module and shared by the tests."""

    photos: list[Photo]
    renderings: dict[str, RGBArray]
    palettes: dict[tuple[str, int], dict[str, RGBArray]] = field(default_factory=dict)
    scores: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)

    def extract_all(self, peer: str, colors: int) -> dict[str, RGBArray]:
        if peer == KMEANS:
            return {
                p.name: kmeans_lab_palette(self.renderings[p.name], colors) for p in self.photos
            }
        extract = EXTRACTORS[peer]
        return {p.name: extract(Path(p.path), colors) for p in self.photos}

    def record(self, peer: str, colors: int, palettes: dict[str, RGBArray]) -> dict[str, float]:
        self.palettes[(peer, colors)] = palettes
        self.scores[(peer, colors)] = {
            name: mean_delta_e2000(self.renderings[name], palette)
            for name, palette in palettes.items()
        }
        return self.scores[(peer, colors)]

    def mean_score(self, peer: str, colors: int) -> float:
        if (peer, colors) not in self.scores:
            self.record(peer, colors, self.extract_all(peer, colors))
        return statistics.fmean(self.scores[(peer, colors)].values())


@pytest.fixture(scope="module")
def book(corpus: list[Photo], renderings: dict[str, RGBArray]) -> QualityBook:
    return QualityBook(corpus, renderings)


def _check_palette(peer: str, colors: int, palette: RGBArray) -> None:
    assert palette.dtype == np.uint8 and palette.ndim == 2 and palette.shape[1] == 3, peer
    distinct = len(np.unique(palette, axis=0))
    if peer in ("palette_native", KMEANS):
        # Every corpus photo has far more than 16 colors: exactly K distinct colors.
        assert distinct == len(palette) == colors, f"{peer}: {distinct} distinct of {colors}"
    else:
        # Peers may return fewer (fast-colorthief gives K-1) but never more than asked.
        assert 1 <= len(palette) <= colors, f"{peer}: {len(palette)} colors for K={colors}"


@pytest.mark.parametrize("colors", COLORS, ids=lambda k: f"k{k}")
@pytest.mark.parametrize("peer", PEERS)
def test_quality(
    benchmark: BenchmarkFixture, book: QualityBook, report: Report, peer: str, colors: int
) -> None:
    """Each peer's palettes for the whole corpus (timed as one pass), scored by ΔE2000."""
    benchmark.group = f"quality-k{colors}"
    palettes = benchmark.pedantic(book.extract_all, args=(peer, colors), rounds=1)
    for palette in palettes.values():
        _check_palette(peer, colors, palette)
    scores = book.record(peer, colors, palettes)
    mean = statistics.fmean(scores.values())
    assert 0.0 < mean < 30.0, f"{peer}: implausible mean ΔE2000 {mean}"
    benchmark.extra_info["mean_delta_e2000"] = round(mean, 4)
    report.quality.setdefault(peer, {})[colors] = mean
    sizes = sorted({len(p) for p in palettes.values()})
    report.sizes.setdefault(peer, {})[colors] = ",".join(map(str, sizes))


@pytest.mark.parametrize("colors", COLORS, ids=lambda k: f"k{k}")
def test_quality_bar(book: QualityBook, report: Report, colors: int) -> None:
    """palette_native <= 1.02x k-means in CIELAB, and below libimagequant."""
    ours = book.mean_score("palette_native", colors)
    kmeans = book.mean_score(KMEANS, colors)
    liq = book.mean_score("libimagequant", colors)
    lines = report.sections.setdefault("Quality bar", [])
    per_photo = [
        book.scores[(peer, colors)] for peer in ("palette_native", KMEANS, "libimagequant")
    ]
    report.sections[f"Per-photo mean ΔE2000, K={colors}"] = [
        "| photo | MP | palette_native | k-means | libimagequant | ours / k-means |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {p.name} | {p.megapixels:.2f} | {ours_p:.3f} | {km_p:.3f} | {liq_p:.3f} "
            f"| {ours_p / km_p:.3f} |"
            for p in book.photos
            for ours_p, km_p, liq_p in [tuple(scores[p.name] for scores in per_photo)]
        ),
    ]
    lines.append(
        f"- K={colors}: palette_native {ours:.3f}, k-means {kmeans:.3f} "
        f"(ratio {ours / kmeans:.3f}, bar <= {QUALITY_VS_KMEANS}), libimagequant {liq:.3f}"
    )
    assert ours <= QUALITY_VS_KMEANS * kmeans, (
        f"K={colors}: mean ΔE2000 {ours:.3f} is {ours / kmeans:.3f}x k-means' {kmeans:.3f}"
    )
    assert ours < liq, f"K={colors}: mean ΔE2000 {ours:.3f} is not below libimagequant's {liq:.3f}"

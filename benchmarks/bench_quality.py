"""Palette quality: mean CIEDE2000 of each image against each extractor's palette.

Photos: every extractor gets the file (palette_native, Pillow, fast-colorthief, libimagequant)
or the common 512-px rendering (the scikit-learn k-means reference), and every palette is scored
on the same colour-managed 512-px rendering.

Art (benchmarks/art.py): flat-color images and RGBA art, scored at their own size (resampling
would blend flat colors into shades the file does not have). RGBA pixels weigh their alpha in
the score and in the k-means reference alike.

Quality does not depend on timing, so the bars are asserted in every mode,
``--benchmark-disable`` included:
- photos, K = 5, 8, 16 and 32: palette_native's corpus mean ΔE2000 at most 1.00x that of k-means
  in CIELAB (k-means++, n_init=4) and below libimagequant's;
- flat images, K = 8, 16, 32: mean of the per-image ratios to k-means at most 1.00, none above
  1.25;
- RGBA art, K = 8, 16, 32 (alpha-weighted): mean ratio at most 1.05, none above 1.25.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from .art import Artwork, build_art
from .conftest import Report
from .corpus import Photo
from .peers import (
    EXTRACTORS,
    RGBArray,
    kmeans_lab_palette,
    mean_delta_e2000,
    palette_native_palette,
    render_full,
    weighted_pixels,
)

KMEANS = "sklearn-kmeans-lab"
PEERS = [*EXTRACTORS, KMEANS]
COLORS = [5, 8, 16, 32]
QUALITY_VS_KMEANS = 1.00
ART_COLORS = [8, 16, 32]
# kind -> (bar on the mean per-image ratio to k-means, bar on the worst image)
ART_BARS = {"flat": (1.00, 1.25), "rgba": (1.05, 1.25)}


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


# ------------------------------------------------------------------------------------- art
@dataclass
class ArtScores:
    """Per image: palette_native's and k-means' mean ΔE2000 (alpha-weighted for RGBA)."""

    ours: dict[str, float] = field(default_factory=dict)
    kmeans: dict[str, float] = field(default_factory=dict)

    def ratio(self, name: str) -> float:
        """ours / k-means; an image with no more colors than K must come back exact (ratio 1)."""
        if self.kmeans[name] < 1e-9:
            return 1.0 if self.ours[name] < 1e-9 else float("inf")
        return self.ours[name] / self.kmeans[name]


@pytest.fixture(scope="module")
def art() -> list[Artwork]:
    return build_art()


@pytest.fixture(scope="module")
def art_renderings(art: list[Artwork]) -> dict[str, RGBArray]:
    return {a.name: render_full(a.path) for a in art}


@pytest.mark.parametrize("colors", ART_COLORS, ids=lambda k: f"k{k}")
@pytest.mark.parametrize("kind", list(ART_BARS))
def test_art_quality_bar(
    art: list[Artwork], art_renderings: dict[str, RGBArray], report: Report, kind: str,
    colors: int,
) -> None:
    images = [a for a in art if a.kind == kind]
    assert len(images) >= 10, f"{kind} art corpus too small: {len(images)} images"
    scores = ArtScores()
    for image in images:
        rendering = art_renderings[image.name]
        ours = palette_native_palette(image.path, colors)
        visible = len(np.unique(weighted_pixels(rendering)[0], axis=0))
        # Exactly K distinct colors, or every visible color when the image has fewer.
        assert len(np.unique(ours, axis=0)) == len(ours) == min(colors, visible), image.name
        scores.ours[image.name] = mean_delta_e2000(rendering, ours)
        scores.kmeans[image.name] = mean_delta_e2000(rendering, kmeans_lab_palette(rendering, colors))
    ratios = {name: scores.ratio(name) for name in scores.ours}
    mean, worst = statistics.fmean(ratios.values()), max(ratios.values())
    bar_mean, bar_worst = ART_BARS[kind]
    weighting = " (alpha-weighted)" if kind == "rgba" else ""
    report.add(
        f"Art quality, {kind}, K={colors}",
        [
            f"Mean ΔE2000{weighting} at the image's own size; palette_native vs k-means in CIELAB.",
            "",
            "| image | format | palette_native | k-means | ratio |",
            "|---|---|---:|---:|---:|",
            *(
                f"| {a.name} | {a.path.suffix[1:]} | {scores.ours[a.name]:.3f} "
                f"| {scores.kmeans[a.name]:.3f} | {ratios[a.name]:.3f} |"
                for a in images
            ),
            "",
            f"- mean ratio {mean:.3f} (bar <= {bar_mean}), worst {worst:.3f} (bar <= {bar_worst})",
        ],
    )
    assert mean <= bar_mean, f"{kind} K={colors}: mean ratio {mean:.3f} > {bar_mean}"
    worst_name = max(ratios, key=ratios.__getitem__)
    assert worst <= bar_worst, f"{kind} K={colors}: {worst_name} at {worst:.3f}x k-means"


# ------------------------------------------------------------------------ quality target
@pytest.mark.parametrize("target", [1.5, 2.5, 4.0])
def test_palette_size_from_a_quality_target(
    corpus: list[Photo], report: Report, target: float
) -> None:
    """``extract(max_delta_e=t)``: the palette meets t, and the engine at one color fewer
    (a separate run at K - 1) does not."""
    import palette_native

    sizes = []
    for photo in corpus:
        palette = palette_native.extract(photo.path, max_delta_e=target, colors=256)
        n = len(palette.colors)
        assert palette.reason is None, f"{photo.name}: {palette.reason}"
        assert palette.metrics.delta_e_mean <= target, photo.name
        if n > 1:
            fewer = palette_native.extract(photo.path, colors=n - 1)
            assert fewer.metrics.delta_e_mean > target, f"{photo.name}: {n - 1} colors meet {target}"
        sizes.append(n)
    report.add(
        f"Palette size from a quality target (max_delta_e={target:g})",
        [
            f"- colors needed over {len(sizes)} photos: median {statistics.median(sizes):g}, "
            f"min {min(sizes)}, max {max(sizes)}; each meets the target, one fewer does not",
        ],
    )

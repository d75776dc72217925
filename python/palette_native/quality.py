"""No-reference image quality: a 0-100 score from seven named components.

Every component is a number in 0-1 (1 is best) computed from raw measures by a fixed, smooth
formula, so results are deterministic and a change in the image always shows. The fine measures
(sharpness, noise, blockiness) are taken on horizontal bands of the analysis image (see
``palette_native.analyze``: about a megapixel, each pixel the mean of ``scale`` x ``scale``
source pixels), that is, at about the size a photo is looked at on a screen; the global ones
(exposure, contrast, colorfulness) on a sample of about 64K pixels of the image. Luma is
``Y = 0.299 R + 0.587 G + 0.114 B`` on 8-bit sRGB values. The sums over pixels are taken by the
native core in one pass over the sample (``_core.sample_statistics``: channel histograms, luma
and opponent-color moments) and one pass over each band (``_core.fine_sums``), with the GIL
released; what follows from the sums is computed here.

Each component answers for one kind of damage and, as far as the measures allow, for no other:
contrast and colorfulness are divided by the mean luma, so that a darker or brighter copy of a
photo only changes its exposure; sharpness is corrected for the noise it sees, so that noise
does not pass for detail; the noise estimate leaves out clipped regions, so that blowing out a
flat sky does not pass for removing noise.

==============  ===========================================================  ======================
component       raw measure                                                  value
==============  ===========================================================  ======================
sharpness       blur ratio ``b`` on the 20 % strongest edges (by the          ``1 - exp(-2 x)``,
                gradient of a 5-tap box blur), rows and columns, the worse    ``x = (1 - b) /
                of the two: ``b = sqrt((sum D5^2 - n 2 s^2 / 25) /            (1 - sqrt(1/5))``
                (sum D1^2 - n 2 s^2))``, ``D1`` the luma step between
                neighbours, ``D5`` the step after the box blur, ``s`` the
                noise sigma (the energy a white noise adds to each sum is
                taken out). A perfect step edge gives ``b = sqrt(1/5)``,
                a blur much wider than 5 pixels ``b = 1`` (after Crete-
                Roffet et al. 2007, who compare the same two gradients)
noise           ``s``: Immerkaer's (1996) estimate ``sqrt(pi/2) / 6 *        ``1 / (1 + (s / 4)^2)``
                mean |Y * M|`` (``M`` the 3x3 Laplacian difference mask) per
                16x16 tile, the 10th percentile of the tiles that hold no
                clipped pixel (see exposure)
exposure        clipped highlights ``h``: share of the sample whose largest   ``(1 - h)^3 (1 - c)^3
                channel is within ``t`` levels of the image's brightest       * exp(-max(0, e -
                value (``t = 3 + 2 s scale``: clipping is a pile-up at the    1)^2) * (1 -
                top of the histogram, wherever the top is, seen through       exp(-2^H / 48))``
                the noise); crushed shadows ``c``: the same at the darkest
                value; headroom ``e``: stops (log2 of linear light) from the
                99.5th percentile of the largest channel to white; ``H``:
                mean entropy (bits) of the three channel histograms
contrast        ``c = std(Y) / mean(Y)`` (RMS contrast relative to the mean    ``1 - exp(-c / 0.3)``
                luminance, as Peli 1990)
colorfulness    Hasler and Suesstrunk (2003) ``M = sqrt(sd_rg^2 + sd_yb^2)    ``1 - exp(-M' / 30)``,
                + 0.3 sqrt(mean_rg^2 + mean_yb^2)``, ``rg = R - G``,          ``M' = 128 M /
                ``yb = (R + G) / 2 - B``                                      mean(Y)``
compression     JPEG blockiness ``B``: RMS luma step across the 8x8 block     ``q / 100 *
                grid (at the analysis scale, ``8 / scale`` pixels) over the   B^(-1/2)``
                RMS step at the other offsets, both less the noise's
                ``2 s^2``, the larger of rows and columns; ``q``: the IJG
                quality estimated from the file's quantization tables (100
                for anything but a JPEG file)
resolution      megapixels ``p`` of the source                                ``1 - exp(-p)``
==============  ===========================================================  ======================

Why these measures:

* Exposure judges what an exposure error destroys rather than where the tones sit. The
  pile-ups at either end of the histogram stay pile-ups when the whole image is made darker or
  brighter afterwards, so clipping is never "repaired" by a later change; darkening merges
  tone levels, which lowers the channel entropies (a deterministic per-channel map can never
  raise them); brightening without clipping loses nothing and is not rewarded either (the
  entropy stays the same; a full tonal range is not asked for). The headroom term only
  penalises photos whose brightest pixels sit more than a stop below white.
* The noise estimate is a flat-region estimate, so fine texture in a photo with no flat
  region (foliage, rock) still reads as a little noise; this is the known weakness.

The score is ``100 * prod(component ** weight)`` (a weighted geometric mean, so one bad
component pulls the score down however good the others are) with the weights in
:data:`WEIGHTS`. The constants (the weights, the 1 / 4 / 48 / 0.3 / 30 scales, the powers of
the clipping terms) were chosen on the photo corpus of ``benchmarks/bench_analyze.py`` degraded
in steps, which is also what that benchmark measures: there is no held-out set, so treat the
constants as fitted to those 30 photos. The measures themselves (what is computed) follow the
cited papers and the reasons above, not the corpus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core

__all__ = ["COMPONENTS", "WEIGHTS", "Component", "Quality", "measure_quality"]

RGBImage = npt.NDArray[np.uint8]

WEIGHTS: dict[str, float] = {
    "sharpness": 0.25,
    "noise": 0.25,
    "exposure": 0.2,
    "compression": 0.15,
    "contrast": 0.05,
    "colorfulness": 0.05,
    "resolution": 0.05,
}
"""How much each component counts in the score (they sum to 1)."""

COMPONENTS: tuple[str, ...] = tuple(WEIGHTS)
"""The component names, in the order ``Quality.components`` lists them."""

# The per-pixel constants (5-tap re-blur, the 20 % strongest edges read from every 7th 5-tap
# step, 16x16 noise tiles) live with the sums in cpp/src/analysis_quality.cpp.
_BOX = 5  # taps of the re-blur the sharpness compares the image's own gradient with
_NOISE_PERCENTILE = 10.0
_NOISE_SCALE = 4.0  # luma levels of noise that halve the noise component
_CLIP_LEVELS = 3  # levels from the top / bottom that count as clipped (plus twice the noise)
_CLIP_POWER = 3.0
_HEADROOM_STOPS = 1.0  # headroom up to this many stops is not penalised
_TONAL_LEVELS = 48.0
_CONTRAST_SCALE = 0.3
_COLORFULNESS_SCALE = 30.0
_SHARPNESS_GAIN = 2.0


@dataclass(frozen=True)
class Component:
    """One quality component: ``value`` in 0-1 (1 is best) and the raw measure it comes from."""

    name: str
    value: float
    raw: float
    unit: str
    """What ``raw`` is, e.g. ``"blur effect 0-1"``."""
    details: dict[str, float]
    """Further raw numbers behind the component (e.g. clipped highlights and shadows)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": round(self.value, 4),
            "raw": round(self.raw, 4),
            "unit": self.unit,
            **({"details": {k: round(v, 4) for k, v in self.details.items()}}
               if self.details else {}),
        }


@dataclass(frozen=True)
class Quality:
    """A no-reference quality score (0-100) and its components."""

    score: float
    components: dict[str, Component]

    @property
    def sharpness(self) -> Component:
        return self.components["sharpness"]

    @property
    def noise(self) -> Component:
        return self.components["noise"]

    @property
    def exposure(self) -> Component:
        return self.components["exposure"]

    @property
    def contrast(self) -> Component:
        return self.components["contrast"]

    @property
    def colorfulness(self) -> Component:
        return self.components["colorfulness"]

    @property
    def compression(self) -> Component:
        return self.components["compression"]

    @property
    def resolution(self) -> Component:
        return self.components["resolution"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 2),
            "components": {name: c.to_dict() for name, c in self.components.items()},
        }


# ------------------------------------------------------------------------------ the measures
#: The fine measures read horizontal bands of this many rows, covering about this share of the
#: analysis image (bands start on multiples of 16 rows, so the JPEG grid has the same phase in
#: every band). Sums over a couple of hundred thousand pixels of a photo move by far less than
#: a reported digit when the rest is added. The native core measures each band on its own (it
#: stays in the CPU cache) and adds the sums up.
BAND_ROWS = 32
BAND_SHARE = 0.25
#: Rows from the top of one band to the top of the next.
BAND_STEP = max(BAND_ROWS, int(BAND_ROWS / BAND_SHARE) // 16 * 16)


@dataclass(frozen=True)
class SampleStatistics:
    """One pass of the native core over the ~64K-pixel sample (see ``_core.sample_statistics``)."""

    histograms: npt.NDArray[np.uint64]
    """4 x 256 counts: the largest channel of each pixel, then R, G and B."""
    luma_mean: float
    luma_std: float
    rg_mean: float
    rg_std: float
    yb_mean: float
    yb_std: float

    @classmethod
    def of(cls, sample: RGBImage) -> SampleStatistics:
        histograms, sums = _core.sample_statistics(sample)
        return cls(histograms, *sums)


@dataclass(frozen=True)
class FineSums:
    """What the fine measures add up over the bands (see ``_core.fine_sums``)."""

    tiles: npt.NDArray[np.float32]
    """Mean Laplacian response of each 16x16 tile with no clipped pixel."""
    edges: npt.NDArray[np.float64]
    """Per axis (row 0 = down the columns, 1 = along the rows): edges counted, sum of the
    squared step, sum of the squared step between 5-tap means."""
    steps: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
    """Per axis: sum over the bands of the mean squared step at each offset along the axis."""
    bands: int

    @classmethod
    def of(cls, rgb: RGBImage, clip: Clipping) -> FineSums:
        tiles, edges, down, across, bands = _core.fine_sums(
            rgb, clip.bottom + clip.band, clip.top - clip.band, BAND_ROWS, BAND_STEP)
        return cls(tiles, edges, (down, across), bands)


def blur_ratio(sums: FineSums, noise: float) -> float:
    """RMS step after a 5-tap box blur over the RMS step itself, on the strongest edges, less
    what a white noise of ``noise`` levels adds to each (``sqrt(1/5)`` for a perfect step
    edge, 1 for a blur much wider than 5 pixels); the worse of rows and columns."""
    bias = 2.0 * noise * noise
    worst = 0.0
    for count, sharp, smooth in sums.edges.tolist():
        if count == 0:
            continue
        energy = sharp - count * bias
        kept = smooth - count * bias / (_BOX * _BOX)
        ratio = math.sqrt(max(kept, 0.0) / energy) if energy > 0.0 else 1.0
        worst = max(worst, min(1.0, ratio))
    return worst if sums.edges[:, 0].any() else 1.0


def noise_sigma(sums: FineSums) -> float:
    """Immerkaer's noise estimate (luma levels) from the flattest tiles with no clipped pixel."""
    tiles = sums.tiles
    if tiles.size == 0:
        return 0.0
    # np.percentile's linear interpolation, from one partial sort.
    position = _NOISE_PERCENTILE / 100.0 * (tiles.size - 1)
    low = int(position)
    high = min(low + 1, tiles.size - 1)
    parts = np.partition(tiles, [low, high])
    tenth = float(parts[low]) + (float(parts[high]) - float(parts[low])) * (position - low)
    return tenth * math.sqrt(math.pi / 2.0) / 6.0


def blockiness(sums: FineSums, period: int, noise: float) -> float:
    """RMS luma step at the block grid over the RMS step elsewhere, both less the noise's
    share (1.0: no blocks).

    Bands start on rows that are multiples of 16. The grid offset is the one with the largest
    steps, so a cropped JPEG is found too; the larger of the horizontal and vertical ratios is
    returned. ``period < 2`` (blocks smaller than two analysis pixels) cannot be measured and
    gives 1.0.
    """
    if period < 2 or sums.bands == 0:
        return 1.0
    worst = 1.0
    bias = 2.0 * noise * noise
    for total in sums.steps:
        steps = total / sums.bands
        usable = (len(steps) // period) * period
        if usable < 2 * period:
            continue
        by_offset = steps[:usable].reshape(-1, period).mean(axis=0)
        grid = int(np.argmax(by_offset))
        rest = float(np.delete(by_offset, grid).mean())
        at_grid = max(float(by_offset[grid]) - bias, 1e-3)
        worst = max(worst, math.sqrt(at_grid / max(rest - bias, 1e-3)))
    return worst


def colorfulness(stats: SampleStatistics) -> float:
    """Hasler and Suesstrunk's colorfulness M (0 for gray; about 59 is "quite colorful")."""
    spread = math.hypot(stats.rg_std, stats.yb_std)
    offset = math.hypot(stats.rg_mean, stats.yb_mean)
    return spread + 0.3 * offset


def _mean_entropy_bits(histograms: npt.NDArray[np.uint64]) -> float:
    """The mean entropy (bits) of the rows of ``histograms``."""
    counts = histograms.astype(np.float64)
    p = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    logs = np.log2(np.where(p > 0.0, p, 1.0))
    return float(-(p * logs).sum() / len(histograms))


_SRGB = np.arange(256, dtype=np.float64) / 255.0
_LINEAR = np.where(_SRGB <= 0.04045, _SRGB / 12.92, ((_SRGB + 0.055) / 1.055) ** 2.4)


@dataclass(frozen=True)
class Clipping:
    """Where the image's histogram piles up: levels of the largest channel. Pixels whose
    largest channel lies within ``band`` levels of ``top`` or ``bottom`` count as clipped."""

    top: int
    bottom: int
    band: int


def clipping(stats: SampleStatistics, noise: float, scale: float) -> Clipping:
    """The top and bottom of the largest channel, and how many levels from them count as
    clipped: 3, plus twice the noise at the source's scale (noise spreads a pile-up)."""
    levels = np.flatnonzero(stats.histograms[0])
    top, bottom = (int(levels[-1]), int(levels[0])) if levels.size else (0, 0)
    return Clipping(top, bottom, _CLIP_LEVELS + round(2.0 * noise * max(1.0, scale)))


def exposure(stats: SampleStatistics, clip: Clipping) -> dict[str, float]:
    """Clipped highlights and shadows (shares), headroom (stops) and tonal entropy (bits)."""
    counts = stats.histograms[0]
    total = max(1, int(counts.sum()))
    share = np.cumsum(counts) / total
    p995 = int(np.searchsorted(share, 0.995))
    entropy = _mean_entropy_bits(stats.histograms[1:])
    return {
        "clipped_highlights": float(counts[max(0, clip.top - clip.band):].sum()) / total,
        "clipped_shadows": float(counts[:clip.bottom + clip.band + 1].sum()) / total,
        "headroom_stops": math.log2(1.0 / max(float(_LINEAR[min(p995, 255)]), 1e-4)),
        "tonal_entropy_bits": entropy,
    }


# ------------------------------------------------------------------------------ the score
def measure_quality(
    rgb: RGBImage,
    sample: RGBImage,
    *,
    scale: float,
    source_pixels: int,
    jpeg_quality: int | None,
) -> Quality:
    """The quality of an analysis image ``rgb`` (fine measures, on bands) and ``sample``, about
    64K pixels of the image (global statistics: exposure, contrast, colorfulness)."""
    stats = SampleStatistics.of(sample)
    sums = FineSums.of(rgb, clipping(stats, 0.0, scale))
    sigma = noise_sigma(sums)
    clip = clipping(stats, sigma, scale)
    blur = blur_ratio(sums, sigma)
    period = round(8.0 / scale) if scale <= 4.0 else 1
    blocks = blockiness(sums, period, sigma)
    exposed = exposure(stats, clip)
    over = max(0.0, exposed["headroom_stops"] - _HEADROOM_STOPS)
    levels = 2.0 ** exposed["tonal_entropy_bits"]
    exposure_value = ((1.0 - exposed["clipped_highlights"]) ** _CLIP_POWER
                      * (1.0 - exposed["clipped_shadows"]) ** _CLIP_POWER
                      * math.exp(-over * over) * (1.0 - math.exp(-levels / _TONAL_LEVELS)))
    mean_luma = max(stats.luma_mean, 1.0)
    relative = stats.luma_std / mean_luma
    vivid = colorfulness(stats)
    megapixels = source_pixels / 1e6
    table_quality = 100 if jpeg_quality is None else jpeg_quality
    edge = (1.0 - blur) / (1.0 - math.sqrt(1.0 / _BOX))
    components = {
        "sharpness": Component("sharpness", 1.0 - math.exp(-_SHARPNESS_GAIN * max(0.0, edge)),
                               blur, "blur ratio (sqrt(1/5) = a perfect edge, 1 = flat)", {}),
        "noise": Component("noise", 1.0 / (1.0 + (sigma / _NOISE_SCALE) ** 2), sigma,
                           "luma levels (sigma) at the analysis scale", {}),
        "exposure": Component("exposure", exposure_value, exposed["clipped_highlights"]
                              + exposed["clipped_shadows"], "clipped share", exposed),
        "compression": Component(
            "compression", table_quality / 100.0 / math.sqrt(blocks), blocks,
            "blockiness ratio (1 = none)",
            {"jpeg_quality": float(table_quality), "block_period": float(period)},
        ),
        "contrast": Component("contrast", 1.0 - math.exp(-relative / _CONTRAST_SCALE), relative,
                              "RMS contrast / mean luma", {"mean_luma": mean_luma}),
        "colorfulness": Component(
            "colorfulness", 1.0 - math.exp(-vivid * 128.0 / mean_luma / _COLORFULNESS_SCALE),
            vivid, "Hasler-Suesstrunk M", {"mean_luma": mean_luma}),
        "resolution": Component("resolution", 1.0 - math.exp(-megapixels), megapixels,
                                "megapixels", {}),
    }
    log_score = sum(
        WEIGHTS[name] * math.log(max(c.value, 1e-6)) for name, c in components.items()
    )
    return Quality(score=100.0 * math.exp(log_score), components=components)

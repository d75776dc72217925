"""No-reference image quality: a 0-100 score from seven named components.

Every component is a number in 0-1 (1 is best) computed from raw measures by a fixed, smooth
formula, so results are deterministic and a change in the image always shows. The fine measures
(sharpness, noise, blockiness) are taken on horizontal bands of the analysis image (see
``palette_native.analyze``: about a megapixel, each pixel the mean of ``scale`` x ``scale``
source pixels), that is, at about the size a photo is looked at on a screen; the global ones
(exposure, contrast, colorfulness) on a sample of about 64K pixels of the image. Luma is
``Y = 0.299 R + 0.587 G + 0.114 B`` on 8-bit sRGB values.

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

__all__ = ["COMPONENTS", "WEIGHTS", "Component", "Quality", "measure_quality"]

FloatImage = npt.NDArray[np.float32]
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

_BOX = 5  # taps of the re-blur the sharpness compares the image's own gradient with
_EDGE_SHARE = 0.2  # sharpness looks at this share of the strongest edges
_NOISE_TILE = 16
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
def luma(rgb: RGBImage) -> FloatImage:
    """BT.601 luma of 8-bit sRGB (..., 3), in levels (0-255), float32."""
    y = rgb[..., 0].astype(np.float32)
    y *= 0.299
    y += np.float32(0.587) * rgb[..., 1]
    y += np.float32(0.114) * rgb[..., 2]
    return y


#: The fine measures read horizontal bands of this many rows, covering about this share of the
#: analysis image (bands start on multiples of 16 rows, so the JPEG grid has the same phase in
#: every band). Sums over a couple of hundred thousand pixels of a photo move by far less than
#: a reported digit when the rest is added. Each band is measured on its own (it stays in the
#: CPU cache) and the sums are combined.
BAND_ROWS = 32
BAND_SHARE = 0.25


def band_starts(height: int, share: float = BAND_SHARE) -> list[tuple[int, int]]:
    """(top, bottom) rows of the bands the fine measures read."""
    if height <= BAND_ROWS * 2:
        return [(0, height)]
    step = max(BAND_ROWS, int(BAND_ROWS / share) // 16 * 16)
    return [(top, top + BAND_ROWS) for top in range(0, height - BAND_ROWS + 1, step)]


def largest_channel(rgb: RGBImage) -> npt.NDArray[np.uint8]:
    """The largest of the three channels of each pixel (an HSV value)."""
    largest: npt.NDArray[np.uint8] = np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])
    return largest


def _along(values: FloatImage, axis: int, start: int, stop: int) -> FloatImage:
    """``values[start:stop]`` along ``axis`` (a view)."""
    index: list[slice] = [slice(None)] * values.ndim
    index[axis] = slice(start, stop)
    return values[tuple(index)]


@dataclass
class FineSums:
    """What the fine measures add up over the bands (see :func:`fine_sums`)."""

    tiles: list[npt.NDArray[np.float32]]
    """Mean Laplacian response of each 16x16 tile with no clipped pixel."""
    edges: dict[int, list[float]]
    """Per axis (0 = down the rows, 1 = along them): edges counted, sum of the squared step,
    sum of the squared step between 5-tap means."""
    steps: dict[int, npt.NDArray[np.float64]]
    """Per axis: sum over the bands of the mean squared step at each offset along the axis."""
    bands: int = 0


def fine_sums(rgb: RGBImage, clip: Clipping) -> FineSums:
    """One pass over the bands of ``rgb``: tile noise responses, edge energies, block steps."""
    sums = FineSums([], {0: [0.0, 0.0, 0.0], 1: [0.0, 0.0, 0.0]}, {})
    for top, bottom in band_starts(rgb.shape[0]):
        band = rgb[top:bottom]
        y = luma(band)
        _tile_responses(y, clip.usable(band), sums)
        for axis in (0, 1):
            _edge_energies(y, axis, sums.edges[axis])
            step = np.diff(y, axis=axis)
            per_offset = np.square(step, out=step).mean(axis=1 - axis, dtype=np.float64)
            sums.steps[axis] = sums.steps[axis] + per_offset if axis in sums.steps else per_offset
        sums.bands += 1
    return sums


def _tile_responses(y: FloatImage, usable: npt.NDArray[np.bool_], sums: FineSums) -> None:
    rows, cols = y.shape
    if rows < _NOISE_TILE + 2 or cols < _NOISE_TILE + 2:
        return
    # The mask [[1,-2,1],[-2,4,-2],[1,-2,1]] is the outer product of [1,-2,1] with itself.
    down = y[:-2] - 2.0 * y[1:-1] + y[2:]
    response = np.abs(down[:, :-2] - 2.0 * down[:, 1:-1] + down[:, 2:])
    tiles_y, tiles_x = response.shape[0] // _NOISE_TILE, response.shape[1] // _NOISE_TILE
    cut_y, cut_x = tiles_y * _NOISE_TILE, tiles_x * _NOISE_TILE
    shape = (tiles_y, _NOISE_TILE, tiles_x, _NOISE_TILE)
    per_tile = response[:cut_y, :cut_x].reshape(shape).mean(axis=(1, 3))
    whole = usable[1:1 + cut_y, 1:1 + cut_x].reshape(shape).all(axis=(1, 3))
    sums.tiles.append(per_tile[whole])


def _edge_energies(y: FloatImage, axis: int, into: list[float]) -> None:
    """Add this band's strongest edges (top 20 % by the 5-tap step) to ``into``.

    The step between neighbouring 5-tap means is ``(y[i + 5] - y[i]) / 5``; it is set against
    the image's own step at its centre, ``y[i + 3] - y[i + 2]``.
    """
    length = y.shape[axis]
    if length <= _BOX + 2:
        return
    wide = _along(y, axis, _BOX, length) - _along(y, axis, 0, length - _BOX)
    wide = np.square(wide, out=wide)  # (5 x the blurred step)^2
    centre = _BOX // 2
    sharp = _along(y, axis, centre + 1, length - _BOX + centre + 1) - _along(
        y, axis, centre, length - _BOX + centre)
    sample = wide.reshape(-1)[::7]
    rank = int(len(sample) * (1.0 - _EDGE_SHARE))
    edges = wide > np.partition(sample, rank)[rank]
    into[0] += float(np.count_nonzero(edges))
    into[1] += float(np.square(sharp, out=sharp)[edges].sum(dtype=np.float64))
    into[2] += float(wide[edges].sum(dtype=np.float64)) / (_BOX * _BOX)


def blur_ratio(sums: FineSums, noise: float) -> float:
    """RMS step after a 5-tap box blur over the RMS step itself, on the strongest edges, less
    what a white noise of ``noise`` levels adds to each (``sqrt(1/5)`` for a perfect step
    edge, 1 for a blur much wider than 5 pixels); the worse of rows and columns."""
    bias = 2.0 * noise * noise
    worst = 0.0
    for count, sharp, smooth in sums.edges.values():
        if count == 0:
            continue
        energy = sharp - count * bias
        kept = smooth - count * bias / (_BOX * _BOX)
        ratio = math.sqrt(max(kept, 0.0) / energy) if energy > 0.0 else 1.0
        worst = max(worst, min(1.0, ratio))
    return worst if any(c for c, _, _ in sums.edges.values()) else 1.0


def noise_sigma(sums: FineSums) -> float:
    """Immerkaer's noise estimate (luma levels) from the flattest tiles with no clipped pixel."""
    kept = np.concatenate(sums.tiles) if sums.tiles else np.zeros(0, np.float32)
    if kept.size == 0:
        return 0.0
    return float(np.percentile(kept, _NOISE_PERCENTILE)) * math.sqrt(math.pi / 2.0) / 6.0


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
    for total in sums.steps.values():
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


def colorfulness(rgb: RGBImage) -> float:
    """Hasler and Suesstrunk's colorfulness M (0 for gray; about 59 is "quite colorful")."""
    r = rgb[..., 0].astype(np.float32)
    g = rgb[..., 1].astype(np.float32)
    b = rgb[..., 2].astype(np.float32)
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = math.hypot(float(rg.std()), float(yb.std()))
    offset = math.hypot(float(rg.mean()), float(yb.mean()))
    return spread + 0.3 * offset


def _entropy_bits(counts: npt.NDArray[np.int64]) -> float:
    p = counts[counts > 0] / float(counts.sum())
    return float(-(p * np.log2(p)).sum())


_SRGB = np.arange(256, dtype=np.float64) / 255.0
_LINEAR = np.where(_SRGB <= 0.04045, _SRGB / 12.92, ((_SRGB + 0.055) / 1.055) ** 2.4)


@dataclass(frozen=True)
class Clipping:
    """Where the image's histogram piles up: levels of the largest channel."""

    top: int
    bottom: int
    band: int

    def usable(self, rgb: RGBImage) -> npt.NDArray[np.bool_]:
        """Pixels of ``rgb`` (..., 3) that are neither clipped nor crushed."""
        largest = largest_channel(rgb)
        inside: npt.NDArray[np.bool_] = (largest < self.top - self.band) & (
            largest > self.bottom + self.band)
        return inside


def clipping(sample: RGBImage, noise: float, scale: float) -> Clipping:
    """The top and bottom of the largest channel, and how many levels from them count as
    clipped: 3, plus twice the noise at the source's scale (noise spreads a pile-up)."""
    largest = largest_channel(sample)
    return Clipping(int(largest.max()), int(largest.min()),
                    _CLIP_LEVELS + round(2.0 * noise * max(1.0, scale)))


def exposure(sample: RGBImage, clip: Clipping) -> dict[str, float]:
    """Clipped highlights and shadows (shares), headroom (stops) and tonal entropy (bits)."""
    largest = largest_channel(sample).reshape(-1)
    counts = np.bincount(largest, minlength=256)
    total = max(1, largest.size)
    share = np.cumsum(counts) / total
    p995 = int(np.searchsorted(share, 0.995))
    entropy = sum(_entropy_bits(np.bincount(sample[..., k].reshape(-1), minlength=256))
                  for k in range(3)) / 3.0
    return {
        "clipped_highlights": float(counts[max(0, clip.top - clip.band):].sum()) / total,
        "clipped_shadows": float(counts[:clip.bottom + clip.band + 1].sum()) / total,
        "headroom_stops": math.log2(1.0 / max(float(_LINEAR[p995]), 1e-4)),
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
    sums = fine_sums(rgb, clipping(sample, 0.0, scale))
    sigma = noise_sigma(sums)
    clip = clipping(sample, sigma, scale)
    blur = blur_ratio(sums, sigma)
    period = round(8.0 / scale) if scale <= 4.0 else 1
    blocks = blockiness(sums, period, sigma)
    exposed = exposure(sample, clip)
    over = max(0.0, exposed["headroom_stops"] - _HEADROOM_STOPS)
    levels = 2.0 ** exposed["tonal_entropy_bits"]
    exposure_value = ((1.0 - exposed["clipped_highlights"]) ** _CLIP_POWER
                      * (1.0 - exposed["clipped_shadows"]) ** _CLIP_POWER
                      * math.exp(-over * over) * (1.0 - math.exp(-levels / _TONAL_LEVELS)))
    sample_luma = luma(sample)
    mean_luma = max(float(sample_luma.mean()), 1.0)
    relative = float(sample_luma.std()) / mean_luma
    vivid = colorfulness(sample)
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

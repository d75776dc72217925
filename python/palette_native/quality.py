"""No-reference image quality: a 0-100 score from seven named components.

Every component is a number in 0-1 (1 is best) computed from one raw measure by a fixed,
smooth formula, so results are deterministic and a change in the image always shows. The raw
measures are taken on the analysis image (see ``palette_native.analyze``: about a megapixel,
each pixel the mean of ``scale`` x ``scale`` source pixels), that is, at about the size a photo
is looked at on a screen. Luma is ``Y = 0.299 R + 0.587 G + 0.114 B`` on 8-bit sRGB values.

==============  ===========================================================  ====================
component       raw measure                                                  component
==============  ===========================================================  ====================
sharpness       blur effect ``b`` (Crete-Roffet et al. 2007) on the edges:    ``1 - b``
                ``b = sum min(D, D9) / sum D`` over the 20 % strongest
                edges, ``D`` the luma difference of neighbours, ``D9`` the
                same after a 9-tap box blur; ``D`` is debiased for noise
                (``sqrt(D^2 - 2 sigma^2)``); worse of rows and columns
noise           ``sigma``: Immerkaer's (1996) fast estimate, ``sqrt(pi/2) /   ``exp(-sigma / 4)``
                6 * mean |Y * M|`` with ``M`` the 3x3 Laplacian difference
                mask, per 16x16 tile, the 10th percentile of tiles that are
                neither near black nor near white (in luma levels)
exposure        clipped highlights ``h`` / shadows ``s``: share of pixels     ``exp(-P)``
                whose largest channel is within 5 levels of the image's
                top / bottom; unused range: ``u = (255 - p99.5) / 255`` and
                ``f = p0.5 / 255`` of the largest channel;
                ``P = 2 h + 2 s + 5 u^2 + 2 f^2``
contrast        RMS contrast ``c``: standard deviation of luma / 255          ``1 - exp(-c / 0.1)``
colorfulness    Hasler and Suesstrunk (2003) ``M = sqrt(sd_rg^2 + sd_yb^2)    ``1 - exp(-M / 30)``
                + 0.3 sqrt(mean_rg^2 + mean_yb^2)``, ``rg = R - G``,
                ``yb = (R + G) / 2 - B``
compression     JPEG blockiness ``B``: mean luma step across the 8x8 block    ``sqrt(q / 100)
                grid (at the analysis scale, ``8 / scale`` pixels) over the   * exp(-(B - 1) / 2)``
                mean step at the other offsets, the larger of rows and
                columns; ``q``: the IJG quality estimated from the file's
                quantization tables (100 for anything but a JPEG file)
resolution      megapixels ``p`` of the source                                ``1 - exp(-p)``
==============  ===========================================================  ====================

The score is ``100 * prod(component ** weight)`` (a weighted geometric mean, so one bad
component pulls the score down however good the others are) with the weights in
:data:`WEIGHTS`. The constants were tuned on the photo corpus degraded in steps, which is also what
``benchmarks/bench_analyze.py`` measures (there is no held-out set).
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

_BOX = 9  # taps of the re-blur in the blur effect
_EDGE_SHARE = 0.2  # the blur effect looks at this share of the strongest edges
_NOISE_TILE = 16
_NOISE_PERCENTILE = 10.0
_NOISE_SCALE = 4.0
_EXPOSURE_BAND = 5  # levels from the top / bottom that count as clipped


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
    """BT.601 luma of 8-bit sRGB, in levels (0-255), float32."""
    y = rgb[:, :, 0].astype(np.float32)
    y *= 0.299
    y += np.float32(0.587) * rgb[:, :, 1]
    y += np.float32(0.114) * rgb[:, :, 2]
    return y


#: The fine measures read horizontal bands of this many rows, covering about a quarter of the
#: analysis image (bands start on multiples of 16 rows, so the JPEG grid has the same phase in
#: every band). Sums over a few hundred thousand pixels of a photo move by far less than a
#: reported digit when the rest is added; the cost is a quarter.
BAND_ROWS = 34
BAND_SHARE = 0.25


def bands(y_source: RGBImage) -> FloatImage:
    """Luma of the bands the fine measures read: an array (bands, rows, width)."""
    height = y_source.shape[0]
    if height <= BAND_ROWS * 2:
        return luma(y_source)[np.newaxis]
    step = max(BAND_ROWS, int(BAND_ROWS / BAND_SHARE) // 16 * 16)
    starts = range(0, height - BAND_ROWS + 1, step)
    return np.stack([luma(y_source[top:top + BAND_ROWS]) for top in starts])


def _box_along(values: FloatImage, taps: int, axis: int) -> FloatImage:
    """The mean of ``taps`` neighbours along ``axis`` (valid part only)."""
    total = np.cumsum(values, axis=axis, dtype=np.float32)
    length = values.shape[axis]
    out = total.take(range(taps, length), axis=axis) - total.take(range(length - taps), axis=axis)
    out *= np.float32(1.0 / taps)
    return out


def blur_effect(y: FloatImage, noise_sigma: float) -> float:
    """The blur effect (0 sharp, 1 flat) on the strongest edges, debiased for noise.

    ``y`` is (bands, rows, width). Every other row (for the horizontal measure) or column
    (vertical) is used: the measure is a ratio of sums over many thousands of edges.
    """
    worst = 0.0
    bias = np.float32(2.0 * noise_sigma * noise_sigma)
    half = _BOX // 2
    for axis in (1, 2):
        lines = y[:, :, ::2] if axis == 1 else y[:, ::2, :]
        if lines.shape[axis] <= _BOX + 1 or lines.size == 0:
            continue
        blurred = _box_along(lines, _BOX, axis)
        count = blurred.shape[axis]
        sharp = lines.take(range(half, half + count), axis=axis)
        d_sharp = np.abs(np.diff(sharp, axis=axis))
        d_blur = np.abs(np.diff(blurred, axis=axis))
        sample = d_blur.reshape(-1)[::7]
        threshold = float(np.quantile(sample, 1.0 - _EDGE_SHARE)) if sample.size else 0.0
        edges = d_blur > threshold
        d_edge = d_sharp[edges]
        d_edge = np.sqrt(np.maximum(d_edge * d_edge - bias, 0.0))
        total = float(d_edge.sum(dtype=np.float64))
        if total <= 0.0:
            worst = max(worst, 1.0)
            continue
        kept = float(np.minimum(d_edge, d_blur[edges]).sum(dtype=np.float64))
        worst = max(worst, kept / total)
    return worst


def noise_sigma(y: FloatImage) -> float:
    """Immerkaer's noise estimate (luma levels) from the flattest tiles that are not clipped.

    ``y`` is (bands, rows, width).
    """
    if y.shape[1] < _NOISE_TILE + 2 or y.shape[2] < _NOISE_TILE + 2:
        return 0.0
    # The mask [[1,-2,1],[-2,4,-2],[1,-2,1]] is the outer product of [1,-2,1] with itself.
    rows = y[:, :-2] - 2.0 * y[:, 1:-1] + y[:, 2:]
    response = np.abs(rows[:, :, :-2] - 2.0 * rows[:, :, 1:-1] + rows[:, :, 2:])
    tiles_y = response.shape[1] // _NOISE_TILE
    tiles_x = response.shape[2] // _NOISE_TILE
    cut_y, cut_x = tiles_y * _NOISE_TILE, tiles_x * _NOISE_TILE
    shape = (y.shape[0], tiles_y, _NOISE_TILE, tiles_x, _NOISE_TILE)
    per_tile = response[:, :cut_y, :cut_x].reshape(shape).mean(axis=(2, 4))
    level = y[:, 1:1 + cut_y, 1:1 + cut_x].reshape(shape).mean(axis=(2, 4))
    usable = per_tile[(level > 16.0) & (level < 239.0)]
    if usable.size == 0:
        return 0.0
    return float(np.percentile(usable, _NOISE_PERCENTILE)) * math.sqrt(math.pi / 2.0) / 6.0


def blockiness(y: FloatImage, period: int) -> float:
    """Mean luma step at the block grid over the mean step elsewhere (1.0: no blocks).

    ``y`` is (bands, rows, width), bands starting on rows that are multiples of 16. The grid
    offset is the one with the largest steps, so a cropped JPEG is found too; the larger of
    the horizontal and vertical ratios is returned. ``period < 2`` (blocks smaller than two
    analysis pixels) cannot be measured and gives 1.0.
    """
    if period < 2:
        return 1.0
    worst = 1.0
    for axis in (1, 2):
        other = (0, 2) if axis == 1 else (0, 1)
        steps = np.abs(np.diff(y, axis=axis)).mean(axis=other)
        usable = (len(steps) // period) * period
        if usable < 2 * period:
            continue
        by_offset = steps[:usable].reshape(-1, period).mean(axis=0)
        grid = int(np.argmax(by_offset))
        rest = float(np.delete(by_offset, grid).mean())
        if rest > 0:
            worst = max(worst, float(by_offset[grid]) / rest)
    return worst


def colorfulness(rgb: RGBImage) -> float:
    """Hasler and Suesstrunk's colorfulness M (0 for gray; about 59 is "quite colorful")."""
    r = rgb[:, :, 0].astype(np.float32)
    g = rgb[:, :, 1].astype(np.float32)
    b = rgb[:, :, 2].astype(np.float32)
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = math.hypot(float(rg.std()), float(yb.std()))
    offset = math.hypot(float(rg.mean()), float(yb.mean()))
    return spread + 0.3 * offset


def exposure(rgb: RGBImage) -> dict[str, float]:
    """Clipped highlights and shadows and the unused top and bottom of the range (0-1 each)."""
    top_channel = np.maximum(np.maximum(rgb[:, :, 0], rgb[:, :, 1]), rgb[:, :, 2])
    counts = np.bincount(top_channel.reshape(-1), minlength=256)
    share = np.cumsum(counts) / max(1, top_channel.size)
    present = np.flatnonzero(counts)
    top, bottom = int(present[-1]), int(present[0])
    low = int(np.searchsorted(share, 0.005))
    high = int(np.searchsorted(share, 0.995))
    return {
        "clipped_highlights": float(1.0 - share[max(0, top - _EXPOSURE_BAND) - 1])
        if top - _EXPOSURE_BAND > 0 else 1.0,
        "clipped_shadows": float(share[min(255, bottom + _EXPOSURE_BAND)]),
        "unused_highlights": (255.0 - high) / 255.0,
        "unused_shadows": low / 255.0,
    }


# ------------------------------------------------------------------------------ the score
def measure_quality(
    rgb: RGBImage,
    small: RGBImage,
    *,
    scale: float,
    source_pixels: int,
    jpeg_quality: int | None,
) -> Quality:
    """The quality of an analysis image ``rgb`` (fine measures) and its reduction ``small``
    (global statistics: exposure, contrast, colorfulness)."""
    y = bands(rgb)
    sigma = noise_sigma(y)
    blur = blur_effect(y, sigma)
    period = round(8.0 / scale) if scale <= 4.0 else 1
    blocks = blockiness(y, period)
    exposed = exposure(small)
    penalty = (2.0 * exposed["clipped_highlights"] + 2.0 * exposed["clipped_shadows"]
               + 5.0 * exposed["unused_highlights"] ** 2 + 2.0 * exposed["unused_shadows"] ** 2)
    small_luma = luma(small)
    rms = float(small_luma.std()) / 255.0
    vivid = colorfulness(small)
    megapixels = source_pixels / 1e6
    table_quality = 100 if jpeg_quality is None else jpeg_quality
    components = {
        "sharpness": Component("sharpness", 1.0 - blur, blur, "blur effect 0-1", {}),
        "noise": Component("noise", math.exp(-sigma / _NOISE_SCALE), sigma,
                           "luma levels (sigma) at the analysis scale", {}),
        "exposure": Component("exposure", math.exp(-penalty), penalty, "penalty", exposed),
        "compression": Component(
            "compression",
            math.sqrt(table_quality / 100.0) * math.exp(-max(0.0, blocks - 1.0) / 2.0),
            blocks,
            "blockiness ratio (1 = none)",
            {"jpeg_quality": float(table_quality), "block_period": float(period)},
        ),
        "contrast": Component("contrast", 1.0 - math.exp(-rms / 0.1), rms,
                              "RMS contrast of luma 0-1", {}),
        "colorfulness": Component("colorfulness", 1.0 - math.exp(-vivid / 30.0), vivid,
                                  "Hasler-Suesstrunk M", {}),
        "resolution": Component("resolution", 1.0 - math.exp(-megapixels), megapixels,
                                "megapixels", {}),
    }
    log_score = sum(
        WEIGHTS[name] * math.log(max(c.value, 1e-4)) for name, c in components.items()
    )
    return Quality(score=100.0 * math.exp(log_score), components=components)

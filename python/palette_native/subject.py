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
subarray, run for every pair of top and bottom rows at once). All of it is NumPy on the
~64K-pixel reduction of the image and costs a few milliseconds. The constants (exponents,
sigma, threshold, neighbours) were chosen on the labelled set of benchmarks/bench_analyze.py,
which is also the set the bar is measured on (there is no held-out set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import BadParameterError

__all__ = ["Box", "Subject", "parse_aspect", "saliency_grid"]

FloatGrid = npt.NDArray[np.float32]
RGBImage = npt.NDArray[np.uint8]

#: Target number of cells in the saliency grid.
GRID_CELLS = 2400
_BORDER_NEIGHBOURS = 4
_BORDER_SAMPLES = 96
_CENTER_SIGMA = 0.5
_THRESHOLD = 0.9  # times the mean saliency

Box = tuple[int, int, int, int]
"""(left, top, width, height) in source pixels."""


def _srgb_to_linear_table() -> npt.NDArray[np.float32]:
    v = np.arange(256, dtype=np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


_LINEAR = _srgb_to_linear_table()
_TO_LMS = np.array([[0.4122214708, 0.5363325363, 0.0514459929],
                    [0.2119034982, 0.6806995451, 0.1073969566],
                    [0.0883024619, 0.2817188376, 0.6299787005]], dtype=np.float32)
_TO_LAB = np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                    [1.9779984951, -2.4285922050, 0.4505937099],
                    [0.0259040371, 0.7827717662, -0.8086757660]], dtype=np.float32)


def _mix(matrix: npt.NDArray[np.float32], values: FloatGrid) -> FloatGrid:
    """``values @ matrix.T`` channel by channel (small products through BLAS can cost
    milliseconds in thread hand-offs; three multiply-adds per output channel do not)."""
    out = np.empty(values.shape, dtype=np.float32)
    for row in range(3):
        out[..., row] = (matrix[row, 0] * values[..., 0] + matrix[row, 1] * values[..., 1]
                         + matrix[row, 2] * values[..., 2])
    return out


def oklab_image(rgb: RGBImage) -> FloatGrid:
    """Oklab of every pixel of an 8-bit sRGB image (h x w x 3, float32)."""
    return _mix(_TO_LAB, np.cbrt(_mix(_TO_LMS, _LINEAR[rgb])))


def _cell_means(values: npt.NDArray[Any], cell: int) -> FloatGrid:
    """Means over ``cell`` x ``cell`` blocks (edges that do not fill a block are dropped)."""
    h, w = values.shape[0] // cell, values.shape[1] // cell
    wide = values[: h * cell, : w * cell].astype(np.float32)
    sums = np.add.reduceat(np.add.reduceat(wide, np.arange(0, h * cell, cell), axis=0),
                           np.arange(0, w * cell, cell), axis=1)
    return (sums / np.float32(cell * cell)).astype(np.float32)


def _squared_distances(points: FloatGrid, to: FloatGrid) -> FloatGrid:
    """Squared Euclidean distances between every row of ``points`` and every row of ``to``
    (n x m), computed in place channel by channel (no n x m x 3 temporary)."""
    total: FloatGrid = np.subtract.outer(points[:, 0], to[:, 0])
    np.square(total, out=total)
    for k in (1, 2):
        step = np.subtract.outer(points[:, k], to[:, k])
        total += np.square(step, out=step)
    return total


def _percentile_99(values: FloatGrid) -> float:
    """``np.percentile(values, 99)`` (linear interpolation) from one partial sort."""
    flat = values.reshape(-1)
    position = 0.99 * (flat.size - 1)
    low = int(position)
    high = min(low + 1, flat.size - 1)
    parts = np.partition(flat, [low, high])
    return float(parts[low] + (parts[high] - parts[low]) * (position - low))


def _normalise(values: FloatGrid) -> FloatGrid:
    high = _percentile_99(values)
    if high <= 1e-9:
        return np.zeros_like(values)
    clipped: FloatGrid = np.clip(values / high, 0.0, 1.0).astype(np.float32)
    return clipped


def _smooth3(values: FloatGrid) -> FloatGrid:
    padded = np.pad(values, 1, mode="edge")
    total = np.zeros_like(values)
    for dy in range(3):
        for dx in range(3):
            total += padded[dy:dy + values.shape[0], dx:dx + values.shape[1]]
    return total / np.float32(9.0)


def saliency_cues(small: RGBImage) -> tuple[FloatGrid, FloatGrid, FloatGrid, FloatGrid, int]:
    """Distinctness, detail and centre prior of each cell of a grid over ``small``, and the
    cell size in its pixels."""
    h, w = small.shape[:2]
    cell = max(1, int(math.sqrt(h * w / GRID_CELLS)))
    rgb_cells = _cell_means(small, cell)
    rows, cols = rgb_cells.shape[:2]
    if rows < 3 or cols < 3:
        ones = np.ones((max(rows, 1), max(cols, 1)), np.float32)
        return ones, ones, ones, ones, cell
    lab = oklab_image(np.clip(rgb_cells + 0.5, 0, 255).astype(np.uint8))
    # Distinctness from the border's colors.
    border = np.concatenate([lab[0], lab[-1], lab[1:-1, 0], lab[1:-1, -1]])
    border = border[:: max(1, len(border) // _BORDER_SAMPLES)]
    flat = np.ascontiguousarray(lab.reshape(-1, 3))
    squared = _squared_distances(flat, np.ascontiguousarray(border))
    nearest = min(_BORDER_NEIGHBOURS, squared.shape[1])
    background = np.sqrt(np.partition(squared, nearest - 1, axis=1)[:, :nearest]).mean(axis=1)
    distinct = _normalise(background.reshape(rows, cols).astype(np.float32))
    # Rarity: mean distance to a fixed sample of all cells (global color contrast).
    sample = flat[:: max(1, len(flat) // _BORDER_SAMPLES)]
    spread = np.sqrt(_squared_distances(flat, np.ascontiguousarray(sample)))
    rare = _normalise(spread.mean(axis=1).reshape(rows, cols).astype(np.float32))
    # Detail: luma gradient, pooled per cell.
    lightness = small[:, :, 1].astype(np.float32)  # green: most of luma, no conversion
    gradient = np.zeros_like(lightness)
    gradient[:, :-1] += np.abs(np.diff(lightness, axis=1))
    gradient[:-1, :] += np.abs(np.diff(lightness, axis=0))
    detail = _normalise(_cell_means(gradient, cell))
    # Centre prior.
    y = (np.arange(rows, dtype=np.float32) + 0.5) / rows - 0.5
    x = (np.arange(cols, dtype=np.float32) + 0.5) / cols - 0.5
    center = np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * _CENTER_SIGMA**2))
    return distinct, rare, detail, center.astype(np.float32), cell


def saliency_grid(small: RGBImage) -> tuple[FloatGrid, int]:
    """The saliency of each cell of a grid over ``small`` and the cell size in its pixels."""
    distinct, rare, detail, center, cell = saliency_cues(small)
    saliency = distinct * detail * np.sqrt(rare) * center
    return _smooth3(saliency.astype(np.float32)), cell


def _best_rectangle(gain: FloatGrid) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), exclusive ends, of the rectangle with the largest sum.

    For every pair of top and bottom rows at once, the best run of columns is the largest
    difference between a prefix sum of the column sums and the smallest prefix sum before it
    (the maximum-subarray problem, solved with running minima instead of a loop).
    """
    rows, cols = gain.shape
    prefix = np.vstack([np.zeros((1, cols)), np.cumsum(gain, axis=0, dtype=np.float64)])
    tops, bottoms = np.triu_indices(rows + 1, k=1)  # every row range [top, bottom)
    strips = prefix[bottoms] - prefix[tops]  # pairs x cols: column sums of each row range
    running = np.zeros((len(tops), cols + 1))
    np.cumsum(strips, axis=1, out=running[:, 1:])
    lowest = np.minimum.accumulate(running[:, :-1], axis=1)  # smallest prefix before each end
    gains = running[:, 1:] - lowest
    k, end = np.unravel_index(int(np.argmax(gains)), gains.shape)
    start = int(np.argmin(running[k, : end + 1]))
    return int(tops[k]), start, int(bottoms[k]), int(end) + 1


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

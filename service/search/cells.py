"""Coarse cells of Oklab space, which both index backends use to read only the colors near a
query.

A cell is a cube of side ``SIDE`` (ΔE 2); its number packs the three axis indices so that the
cells of one (L, a) column are consecutive: a box query is then one number range per column it
touches (at ΔE 5, 25 to 36 ranges; adjacent ranges are merged, so a box as large as the space
is one range), each read through an index. Smaller cells read fewer colors outside the box
(measured in ``benchmarks/bench_search.py``: ΔE 4 cells read 2.5x the box, ΔE 2 cells 1.7x).
"""

from __future__ import annotations

import math

__all__ = ["AXIS_CELLS", "SIDE", "cell_of", "cell_ranges"]

SIDE = 0.02
AXIS_CELLS = 64
"""Cells per axis: L from 0, a and b from -0.64 (Oklab of sRGB lies well inside)."""
_ORIGIN = (0.0, -0.64, -0.64)


def _axis(value: float, axis: int) -> int:
    return min(AXIS_CELLS - 1, max(0, math.floor((value - _ORIGIN[axis]) / SIDE)))


def cell_of(oklab: tuple[float, float, float]) -> int:
    l, a, b = (_axis(v, n) for n, v in enumerate(oklab))
    return (l * AXIS_CELLS + a) * AXIS_CELLS + b


def cell_ranges(oklab: tuple[float, float, float], radius: float) -> list[tuple[int, int]]:
    """Inclusive ranges of cell numbers covering the box ``oklab`` +/- ``radius``."""
    low = [_axis(v - radius, n) for n, v in enumerate(oklab)]
    high = [_axis(v + radius, n) for n, v in enumerate(oklab)]
    ranges: list[tuple[int, int]] = []
    for l in range(low[0], high[0] + 1):
        for a in range(low[1], high[1] + 1):
            column = (l * AXIS_CELLS + a) * AXIS_CELLS
            if ranges and ranges[-1][1] + 1 == column + low[2]:
                ranges[-1] = (ranges[-1][0], column + high[2])
            else:
                ranges.append((column + low[2], column + high[2]))
    return ranges

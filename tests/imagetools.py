"""Small image builders shared by the tests."""

from __future__ import annotations

import numpy as np


def blocks_image(colors: list[tuple[int, int, int]], counts: list[int], width: int = 64) -> np.ndarray:
    """An RGB image made of horizontal runs of the given colors, counts[i] pixels each."""
    flat = np.concatenate([np.tile(np.array(c, np.uint8), (n, 1)) for c, n in zip(colors, counts)])
    pad = (-len(flat)) % width
    assert pad == 0, "counts must fill whole rows"
    return flat.reshape(-1, width, 3)

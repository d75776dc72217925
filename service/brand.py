"""Brand conformance: how close an image's palette sits to a set of brand colors.

Distances are the engine's own ΔE (Oklab distance x 100, the measure behind a palette's
``delta_e_mean``; about 1 is one just-noticeable difference), so a tolerance means the same
here as in the palette metrics. A palette color is on-brand when its nearest brand color is
within the tolerance; the image's on-brand share is the summed ``fraction`` of those colors,
and the check passes when that share reaches ``min_share``. Computed from the rendered
palette alone (no pixels), so it costs microseconds and never needs the image again.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from typing import Any

import orjson
from palette_native import Color

from .options import BrandCheck
from .palettes import PaletteResult

__all__ = ["conformance", "with_brand"]


def _oklab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    return Color(rgb, 0, 0.0).oklab


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return (int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16))


def conformance(palette: dict[str, Any], check: BrandCheck) -> dict[str, Any]:
    """The ``brand`` block for a rendered palette (``Palette.to_dict()``)."""
    brand = [(hex_color, _oklab(_rgb(hex_color))) for hex_color in check.colors]
    matches: list[dict[str, Any]] = []
    within = 0.0
    for color in palette["colors"]:
        here = _oklab((color["rgb"][0], color["rgb"][1], color["rgb"][2]))
        distance, nearest = min(
            (100.0 * math.dist(here, lab), hex_color) for hex_color, lab in brand
        )
        on_brand = distance <= check.tolerance
        if on_brand:
            within += float(color["fraction"])
        matches.append(
            {
                "hex": color["hex"],
                "fraction": color["fraction"],
                "nearest": nearest,
                "delta_e": round(distance, 4),
                "within_tolerance": on_brand,
            }
        )
    share = round(min(1.0, within), 6)
    return {
        "colors": list(check.colors),
        "tolerance": check.tolerance,
        "min_share": check.min_share,
        "metric": "oklab_delta_e_x100",
        "matches": matches,
        "share_within_tolerance": share,
        "passed": share >= check.min_share,
    }


def with_brand(result: PaletteResult, check: BrandCheck) -> PaletteResult:
    """``result`` with the brand block added: its own address, ETag and body.

    The palette itself stays cached once, whatever brand colors are asked about; the block is
    added per request. The ETag is derived from the palette's and the check's options, so it
    is strong (the same inputs always give these bytes) without hashing the body."""
    palette = orjson.loads(result.body)
    palette["brand"] = conformance(palette, check)
    query = check.query()
    tag = hashlib.sha256(f"{result.etag}|{query}".encode()).hexdigest()[:40]
    return replace(
        result, query=f"{result.query}&{query}", etag=f'"{tag}"', body=orjson.dumps(palette)
    )

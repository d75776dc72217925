"""Palette options: one parser for query strings (sync) and form fields (jobs)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from .problems import Problem

__all__ = [
    "DEFAULT_CROPS",
    "MAX_BRAND_COLORS",
    "MAX_CROPS",
    "OPTION_NAMES",
    "BrandCheck",
    "canonical_query",
    "parse_analysis_options",
    "parse_brand",
    "parse_flag",
    "parse_options",
    "parse_search",
]

# name -> (kind, default, min, max)
_SPEC: dict[str, tuple[str, Any, float | None, float | None]] = {
    "colors": ("int", 8, 1, None),  # the upper bound comes from settings.max_colors
    "exact": ("bool", False, None, None),
    "pixel_budget": ("int", None, 1024, None),
    "alpha_threshold": ("int", None, 0, 255),  # None: each pixel weighs its alpha
    "max_color_fraction": ("float", None, 0.0, 1.0),
    "snap": ("bool", False, None, None),
}
OPTION_NAMES = tuple(_SPEC)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bad(name: str, detail: str, value: str) -> Problem:
    return Problem(400, "bad_parameter", f"{name}: {detail}", parameter=name, value=value)


def _boolean(name: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _bad(name, "expected true or false", text)


def parse_flag(raw: Mapping[str, str], name: str) -> bool:
    """A true/false option outside the palette options (absent or empty: false)."""
    text = raw.get(name)
    return False if text is None or text.strip() == "" else _boolean(name, text.strip())


def parse_options(
    raw: Mapping[str, str], *, max_colors: int, default_pixel_budget: int | None = None
) -> dict[str, Any]:
    """Validate palette options; unknown names are ignored (forms carry other fields)."""
    options: dict[str, Any] = {}
    for name, (kind, default, low, high) in _SPEC.items():
        text = raw.get(name)
        if text is None or text == "":
            value = default_pixel_budget if name == "pixel_budget" else default
            options[name] = value
            continue
        text = text.strip()
        if kind == "bool":
            value = _boolean(name, text)
        elif kind == "int":
            try:
                value = int(text)
            except ValueError:
                raise _bad(name, "expected an integer", text) from None
        else:
            try:
                value = float(text)
            except ValueError:
                raise _bad(name, "expected a number", text) from None
            if math.isnan(value):
                raise _bad(name, "expected a number", text)
        upper = max_colors if name == "colors" else high
        if low is not None and value < low:
            raise _bad(name, f"must be at least {low:g}", text)
        if upper is not None and value > upper:
            raise _bad(name, f"must be at most {upper:g}", text)
        options[name] = value
    if options["max_color_fraction"] is not None and options["max_color_fraction"] <= 0:
        raise _bad("max_color_fraction", "must be above 0", str(options["max_color_fraction"]))
    return options


def canonical_query(options: Mapping[str, Any]) -> str:
    """A stable query string for ``options`` (sorted; defaults included), used in cache keys."""
    pairs: list[tuple[str, str]] = []
    for name in sorted(options):
        value = options[name]
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, float):
            text = repr(value)
        else:
            text = str(value)
        pairs.append((name, text))
    return urlencode(pairs)


# ---- POST /v1/analyze ----------------------------------------------------------------------

DEFAULT_CROPS = ("1:1", "16:9")
MAX_CROPS = 8
_ASPECT = re.compile(r"[1-9][0-9]{0,2}:[1-9][0-9]{0,2}")


def parse_analysis_options(raw: Mapping[str, str], *, max_colors: int) -> dict[str, Any]:
    """``colors`` (as for palettes) and ``crops``: up to 8 aspects ``W:H`` (whole numbers
    1-999), the crop boxes the answer lists; the library's two when absent (an empty
    ``crops=`` is refused, like any text that is not a list of aspects)."""
    colors = parse_options({"colors": raw.get("colors", "")}, max_colors=max_colors)["colors"]
    text = raw.get("crops")
    if text is None:
        return {"colors": colors, "crops": DEFAULT_CROPS}
    aspects = text.split(",")
    if len(aspects) > MAX_CROPS:
        raise _bad("crops", f"at most {MAX_CROPS} aspects", text)
    for aspect in aspects:
        if not _ASPECT.fullmatch(aspect):
            raise _bad("crops", "expected aspects like 1:1,16:9 (whole numbers 1-999)", text)
    # Repeats and order do not change the answer's content: one cache entry for all spellings.
    return {"colors": colors, "crops": tuple(sorted(set(aspects)))}


# ---- brand conformance (POST /v1/palette, GET /v1/palettes/{digest}) ------------------------

MAX_BRAND_COLORS = 16
_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


@dataclass(frozen=True)
class BrandCheck:
    """What ``?brand=`` asks: the brand colors (``#rrggbb``), how far (Oklab ΔE x 100, the
    engine's own metric) a palette color may be from one to count as on-brand, and the share
    of the image that must be on-brand to pass."""

    colors: tuple[str, ...]
    tolerance: float
    min_share: float

    def query(self) -> str:
        return urlencode(
            [
                ("brand", ",".join(self.colors)),
                ("brand_min_share", repr(self.min_share)),
                ("brand_tolerance", repr(self.tolerance)),
            ]
        )


def _hex_color(text: str) -> str:
    digits = text.removeprefix("#").lower()
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return "#" + digits


def _bounded(raw: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    text = raw.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise _bad(name, "expected a number", text) from None
    if not low <= value <= high:  # NaN fails this too
        raise _bad(name, f"must be from {low:g} to {high:g}", text)
    return value


def parse_brand(raw: Mapping[str, str]) -> BrandCheck | None:
    """``brand`` (1-16 hex colors, comma-separated), ``brand_tolerance`` (ΔE, 0-100, default
    5) and ``brand_min_share`` (0-1, default 0.5); None without ``brand``. The two numbers
    alone are refused: they would silently do nothing."""
    text = raw.get("brand")
    if text is None:
        for name in ("brand_tolerance", "brand_min_share"):
            if raw.get(name) is not None:
                raise _bad(name, "only meaningful with brand", raw[name])
        return None
    parts = text.split(",")
    if len(parts) > MAX_BRAND_COLORS:
        raise _bad("brand", f"at most {MAX_BRAND_COLORS} colors", text)
    for part in parts:
        if not _HEX.fullmatch(part):
            raise _bad("brand", f"{part!r} is not a hex color like #1a2b3c or #abc", text)
    colors = tuple(dict.fromkeys(_hex_color(p) for p in parts))
    return BrandCheck(
        colors=colors,
        tolerance=_bounded(raw, "brand_tolerance", 5.0, 0.0, 100.0),
        min_share=_bounded(raw, "brand_min_share", 0.5, 0.0, 1.0),
    )


# ---- search by color (GET /v1/search) -----------------------------------------------------


def parse_search(raw: Mapping[str, str]) -> tuple[str, float]:
    """``color`` (required, ``#rrggbb`` or ``#rgb``, the ``#`` optional) and ``max_delta_e``
    (ΔE, 0-100, default 5) as (``#rrggbb``, ΔE)."""
    text = raw.get("color")
    if text is None or not _HEX.fullmatch(text):
        raise _bad("color", "expected a hex color like #1a2b3c or #abc", text or "")
    return _hex_color(text), _bounded(raw, "max_delta_e", 5.0, 0.0, 100.0)

"""Palette options: one parser for query strings (sync) and form fields (jobs)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from .problems import Problem

__all__ = ["OPTION_NAMES", "canonical_query", "parse_options"]

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
            if text.lower() in _TRUE:
                value = True
            elif text.lower() in _FALSE:
                value = False
            else:
                raise _bad(name, "expected true or false", text)
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

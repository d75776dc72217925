"""Swatch roles (the Android/Vibrant palette idea) and WCAG text colors.

Each of the six roles asks for a color in a window of HSL lightness and saturation: *vibrant*
roles want strongly saturated colors, *muted* ones weakly saturated colors, and the *dark* /
plain / *light* variants want low, middle or high lightness. Every palette color that falls in a
role's window gets a score that rewards being near the window's target lightness and saturation
and having a large share of the image; the best (role, color) pairs are taken greedily, so a
color fills at most one role.

A role that no palette color fits is never left empty: it is made from the nearest role that was
found (same hue, lightness moved to the role's target, saturation pulled into the window) and
flagged ``synthesized=True``.

Every swatch carries two text colors for use on top of it, WCAG 2 contrast ratio at least 3.0
for titles (large text) and 4.5 for body text. They are white or black blended over the swatch
with the least opacity that still meets the ratio (a tint of the swatch, as Android does), so
the result is an opaque ``#rrggbb`` that always meets the ratio.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._palette import Color, hex_of, relative_luminance

__all__ = [
    "BODY_MIN_CONTRAST",
    "ROLES",
    "TITLE_MIN_CONTRAST",
    "Swatch",
    "contrast_ratio",
    "relative_luminance",
    "swatch_roles",
    "text_color",
]

RGB = tuple[int, int, int]

TITLE_MIN_CONTRAST = 3.0
"""WCAG 2 AA minimum for large text (titles)."""
BODY_MIN_CONTRAST = 4.5
"""WCAG 2 AA minimum for normal text (body)."""

_WHITE: RGB = (255, 255, 255)
_BLACK: RGB = (0, 0, 0)

# Score weights: lightness matters most, then saturation and population equally.
_WEIGHT_SATURATION = 0.24
_WEIGHT_LIGHTNESS = 0.52
_WEIGHT_POPULATION = 0.24

# How far inside a window a synthesized color is placed, so that rounding to 8 bits cannot push
# it back out of the window.
_SYNTH_MARGIN = 0.05


class _Target(NamedTuple):
    """A role's window in HSL lightness / saturation (all 0-1) and the value it prefers."""

    min_l: float
    target_l: float
    max_l: float
    min_s: float
    target_s: float
    max_s: float

    def contains(self, lightness: float, saturation: float) -> bool:
        return self.min_l <= lightness <= self.max_l and self.min_s <= saturation <= self.max_s

    def score(self, lightness: float, saturation: float, population_share: float) -> float:
        return (
            _WEIGHT_SATURATION * (1.0 - abs(saturation - self.target_s))
            + _WEIGHT_LIGHTNESS * (1.0 - abs(lightness - self.target_l))
            + _WEIGHT_POPULATION * population_share
        )


_DARK = (0.0, 0.26, 0.45)
_MIDDLE = (0.3, 0.5, 0.7)
_LIGHT = (0.55, 0.74, 1.0)
_VIBRANT = (0.35, 1.0, 1.0)
_MUTED = (0.0, 0.3, 0.4)

_TARGETS: dict[str, _Target] = {
    "vibrant": _Target(*_MIDDLE, *_VIBRANT),
    "muted": _Target(*_MIDDLE, *_MUTED),
    "dark_vibrant": _Target(*_DARK, *_VIBRANT),
    "dark_muted": _Target(*_DARK, *_MUTED),
    "light_vibrant": _Target(*_LIGHT, *_VIBRANT),
    "light_muted": _Target(*_LIGHT, *_MUTED),
}

ROLES: tuple[str, ...] = tuple(_TARGETS)
"""The six role names, in the order ``swatch_roles`` returns them."""


def _hls(rgb: RGB) -> tuple[float, float, float]:
    """(hue, lightness, saturation), all 0-1."""
    return colorsys.rgb_to_hls(rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)


def _from_hls(hue: float, lightness: float, saturation: float) -> RGB:
    r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
    return (round(r * 255), round(g * 255), round(b * 255))


def contrast_ratio(first: RGB, second: RGB) -> float:
    """WCAG 2 contrast ratio of two sRGB colors, from 1.0 (same) to 21.0 (black on white)."""
    a = relative_luminance(first)
    b = relative_luminance(second)
    lighter, darker = max(a, b), min(a, b)
    return (lighter + 0.05) / (darker + 0.05)


def _blend(foreground: RGB, background: RGB, alpha: int) -> RGB:
    """``foreground`` at opacity ``alpha``/255 over ``background``, composited in sRGB."""
    return (
        round(background[0] + (foreground[0] - background[0]) * alpha / 255),
        round(background[1] + (foreground[1] - background[1]) * alpha / 255),
        round(background[2] + (foreground[2] - background[2]) * alpha / 255),
    )


@functools.lru_cache(maxsize=4096)
def text_color(background: RGB, min_contrast: float) -> tuple[RGB, float]:
    """An opaque text color for ``background`` with contrast at least ``min_contrast``.

    White or black (whichever contrasts more) blended over the background with the least
    opacity that meets the ratio. Returns the color and its exact contrast ratio. Any ratio up
    to 4.58 can always be met (the better of white and black reaches at least sqrt(21)).
    """
    if not 1.0 <= min_contrast <= 4.58:
        raise ValueError(f"min_contrast must be in [1.0, 4.58], got {min_contrast}")
    ink = max((_WHITE, _BLACK), key=lambda c: contrast_ratio(c, background))

    def meets(alpha: int) -> bool:
        return contrast_ratio(_blend(ink, background, alpha), background) >= min_contrast

    # Contrast grows with opacity (up to 8-bit rounding), so bisect, then step up in case a
    # rounding wobble left the found opacity just short. Full opacity always meets the ratio.
    low, high = 0, 255
    while low < high:
        middle = (low + high) // 2
        if meets(middle):
            high = middle
        else:
            low = middle + 1
    alpha = low
    while alpha < 255 and not meets(alpha):
        alpha += 1
    color = _blend(ink, background, alpha)
    return color, contrast_ratio(color, background)


@dataclass(frozen=True)
class Swatch:
    """A palette color in one role, with text colors that are readable on it."""

    role: str
    color: Color
    synthesized: bool
    title_text: str
    """``#rrggbb`` for titles / large text, contrast >= 3.0 against ``color``."""
    body_text: str
    """``#rrggbb`` for body text, contrast >= 4.5 against ``color``."""
    title_contrast: float
    body_contrast: float

    @property
    def hex(self) -> str:
        return self.color.hex

    @property
    def rgb(self) -> RGB:
        return self.color.rgb

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "hex": self.color.hex,
            "rgb": list(self.color.rgb),
            "population": self.color.population,
            "fraction": round(self.color.fraction, 6),
            "synthesized": self.synthesized,
            "title_text": self.title_text,
            "title_contrast": round(self.title_contrast, 3),
            "body_text": self.body_text,
            "body_contrast": round(self.body_contrast, 3),
        }


def _make_swatch(role: str, color: Color, synthesized: bool) -> Swatch:
    title, title_ratio = text_color(color.rgb, TITLE_MIN_CONTRAST)
    body, body_ratio = text_color(color.rgb, BODY_MIN_CONTRAST)
    return Swatch(
        role=role,
        color=color,
        synthesized=synthesized,
        title_text=hex_of(title),
        body_text=hex_of(body),
        title_contrast=title_ratio,
        body_contrast=body_ratio,
    )


def _pick(colors: list[Color]) -> dict[str, Color]:
    """Greedy best-score assignment of colors to roles, each color used at most once."""
    largest = max((c.fraction for c in colors), default=0.0)
    candidates: list[tuple[float, int, int]] = []
    for color_index, color in enumerate(colors):
        _, lightness, saturation = _hls(color.rgb)
        share = color.fraction / largest if largest > 0 else 0.0
        for role_index, target in enumerate(_TARGETS.values()):
            if target.contains(lightness, saturation):
                score = target.score(lightness, saturation, share)
                candidates.append((score, role_index, color_index))
    # Highest score first; ties go to the earlier role, then the more populous color.
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    chosen: dict[str, Color] = {}
    used: set[int] = set()
    for _, role_index, color_index in candidates:
        role = ROLES[role_index]
        if role in chosen or color_index in used:
            continue
        chosen[role] = colors[color_index]
        used.add(color_index)
    return chosen


def _synthesize(role: str, chosen: dict[str, Color]) -> Color:
    """A color for a missing ``role``, derived from the nearest role that was found."""
    target = _TARGETS[role]
    if chosen:
        nearest = min(
            chosen,
            key=lambda name: (
                abs(_TARGETS[name].target_l - target.target_l)
                + abs(_TARGETS[name].target_s - target.target_s),
                ROLES.index(name),
            ),
        )
        hue, _, saturation = _hls(chosen[nearest].rgb)
    else:
        hue, saturation = 0.0, 0.0  # no colors at all: start from neutral gray
    low = target.min_s + (_SYNTH_MARGIN if target.min_s > 0.0 else 0.0)
    high = target.max_s - (_SYNTH_MARGIN if target.max_s < 1.0 else 0.0)
    saturation = min(max(saturation, low), high)
    return Color(_from_hls(hue, target.target_l, saturation), population=0, fraction=0.0)


def swatch_roles(colors: list[Color]) -> dict[str, Swatch]:
    """The six swatch roles for a palette, keyed by role name, in ``ROLES`` order; never empty.

    Found roles hold the palette's own ``Color`` objects; synthesized ones hold a new color with
    population 0 and ``synthesized=True``.
    """
    chosen = _pick(colors)
    swatches: dict[str, Swatch] = {}
    for role in ROLES:
        if role in chosen:
            swatches[role] = _make_swatch(role, chosen[role], synthesized=False)
        else:
            swatches[role] = _make_swatch(role, _synthesize(role, chosen), synthesized=True)
    return swatches

"""Harmony suggestions: companions of a palette's key color on the Oklch hue circle, and the
image's dominant hue family.

Companions keep the base color's Oklch lightness and chroma and turn its hue: complementary
(+180 degrees), analogous (-30, +30), triadic (+120, +240) and split-complementary (+150,
+210); chroma is reduced (hue and lightness kept) where the turned color would leave sRGB.

Hue families are arcs of the Oklch hue circle named after the sRGB colors that fall in them;
colors with chroma under :data:`NEUTRAL_CHROMA` are ``neutral``. The dominant family is the
chromatic family holding the largest share of the image's pixels, or ``neutral`` when
chromatic colors hold less than :data:`MIN_CHROMATIC_SHARE` of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._oklch import RGB, from_oklch, oklch
from ._palette import Color, Palette, hex_of

__all__ = ["HUE_FAMILIES", "Harmony", "harmony", "hue_family"]

NEUTRAL_CHROMA = 0.03
MIN_CHROMATIC_SHARE = 0.1

#: (name, start hue in degrees): a family runs from its start to the next family's start.
HUE_FAMILIES: tuple[tuple[str, float], ...] = (
    ("red", 15.0), ("orange", 45.0), ("yellow", 75.0), ("lime", 115.0), ("green", 135.0),
    ("teal", 165.0), ("cyan", 200.0), ("blue", 235.0), ("violet", 275.0), ("magenta", 305.0),
    ("pink", 340.0),
)  # fmt: skip


def hue_family(rgb: RGB) -> str:
    """The hue family of an sRGB color (``neutral`` for grays and near-grays)."""
    _, chroma, hue = oklch(rgb)
    if chroma < NEUTRAL_CHROMA:
        return "neutral"
    name = HUE_FAMILIES[-1][0]  # pink wraps around 0 degrees up to red's start
    for family, start in HUE_FAMILIES:
        if hue >= start:
            name = family
    return name


@dataclass(frozen=True)
class Harmony:
    """Companions of ``base`` and the palette's hue families (share of pixels per family)."""

    base: str
    complementary: list[str]
    analogous: list[str]
    triadic: list[str]
    split_complementary: list[str]
    families: dict[str, float]
    dominant_family: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "complementary": self.complementary,
            "analogous": self.analogous,
            "triadic": self.triadic,
            "split_complementary": self.split_complementary,
            "families": {k: round(v, 4) for k, v in self.families.items()},
            "dominant_family": self.dominant_family,
        }


def _turn(rgb: RGB, degrees: float) -> str:
    lightness, chroma, hue = oklch(rgb)
    return hex_of(from_oklch(lightness, chroma, (hue + degrees) % 360.0))


def _base(colors: list[Color]) -> RGB:
    """The key color: the most colorful color weighted by its share (as a theme's seed)."""
    def appeal(c: Color) -> float:
        chroma = oklch(c.rgb)[1]
        return chroma * c.fraction ** 0.5 if chroma >= NEUTRAL_CHROMA else -1.0 + c.fraction

    return min(colors, key=lambda c: (-appeal(c), c.rgb)).rgb


def harmony(palette_or_color: Palette | str | tuple[int, int, int]) -> Harmony:
    """Harmony suggestions for a ``Palette`` (its key color and hue families) or one color
    (``"#rrggbb"`` or an (r, g, b) tuple; its family then has the whole share)."""
    if isinstance(palette_or_color, Palette):
        colors = palette_or_color.colors or [Color((128, 128, 128), 0, 1.0)]
    else:
        from .theme import _parse_hex

        rgb = (_parse_hex(palette_or_color) if isinstance(palette_or_color, str)
               else tuple(int(v) for v in palette_or_color))
        colors = [Color(rgb, 1, 1.0)]  # type: ignore[arg-type]
    base = _base(colors)
    families: dict[str, float] = {}
    for color in colors:
        family = hue_family(color.rgb)
        families[family] = families.get(family, 0.0) + color.fraction
    chromatic = {k: v for k, v in families.items() if k != "neutral"}
    dominant = "neutral"
    if chromatic and sum(chromatic.values()) >= MIN_CHROMATIC_SHARE:
        dominant = min(chromatic.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return Harmony(
        base=hex_of(base),
        complementary=[_turn(base, 180.0)],
        analogous=[_turn(base, -30.0), _turn(base, 30.0)],
        triadic=[_turn(base, 120.0), _turn(base, 240.0)],
        split_complementary=[_turn(base, 150.0), _turn(base, 210.0)],
        families=dict(sorted(families.items(), key=lambda kv: (-kv[1], kv[0]))),
        dominant_family=dominant,
    )

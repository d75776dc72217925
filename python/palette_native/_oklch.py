"""Oklch color math for themes and harmonies: gamut mapping and colors at a given tone.

A *tone* is CIE L* (0 black, 100 white) of the color's relative luminance, as in
material-color-utilities' HCT: WCAG contrast depends on luminance only, so two tones fix a
contrast ratio whatever the hues. Colors keep their Oklch hue; chroma is reduced until the
color fits in sRGB.
"""

from __future__ import annotations

import math

from ._palette import relative_luminance, rgb_to_oklab

__all__ = ["RGB", "contrast", "from_oklch", "luminance_of_tone", "oklch", "tone_of", "toward"]

RGB = tuple[int, int, int]


def oklch(rgb: RGB) -> tuple[float, float, float]:
    """(L 0-1, chroma, hue in degrees) of an 8-bit sRGB color."""
    lightness, a, b = rgb_to_oklab(rgb)
    chroma = math.hypot(a, b)
    hue = math.degrees(math.atan2(b, a)) % 360.0 if chroma > 1e-9 else 0.0
    return lightness, chroma, hue


def _linear_rgb(lightness: float, chroma: float, hue: float) -> tuple[float, float, float]:
    a = chroma * math.cos(math.radians(hue))
    b = chroma * math.sin(math.radians(hue))
    l_ = (lightness + 0.3963377774 * a + 0.2158037573 * b) ** 3
    m_ = (lightness - 0.1055613458 * a - 0.0638541728 * b) ** 3
    s_ = (lightness - 0.0894841775 * a - 1.2914855480 * b) ** 3
    return (
        4.0767416621 * l_ - 3.3077115913 * m_ + 0.2309699292 * s_,
        -1.2684380046 * l_ + 2.6097574011 * m_ - 0.3413193965 * s_,
        -0.0041960863 * l_ - 0.7034186147 * m_ + 1.7076147010 * s_,
    )


def _encode(value: float) -> int:
    value = min(1.0, max(0.0, value))
    encoded = 12.92 * value if value <= 0.0031308 else 1.055 * value ** (1 / 2.4) - 0.055
    return round(encoded * 255.0)


def _fits(linear: tuple[float, float, float]) -> bool:
    return all(-1e-4 <= v <= 1.0 + 1e-4 for v in linear)


def from_oklch(lightness: float, chroma: float, hue: float) -> RGB:
    """The 8-bit sRGB color of this Oklch, chroma reduced (hue and L kept) to fit in sRGB."""
    lightness = min(1.0, max(0.0, lightness))
    if not _fits(_linear_rgb(lightness, chroma, hue)):
        low, high = 0.0, chroma
        for _ in range(18):
            middle = (low + high) / 2.0
            if _fits(_linear_rgb(lightness, middle, hue)):
                low = middle
            else:
                high = middle
        chroma = low
    r, g, b = _linear_rgb(lightness, chroma, hue)
    return (_encode(r), _encode(g), _encode(b))


def luminance_of_tone(tone: float) -> float:
    """Relative luminance Y (0-1) of CIE L* ``tone`` (0-100)."""
    if tone > 8.0:
        return ((tone + 16.0) / 116.0) ** 3
    return tone / 903.2962962


def tone_of(rgb: RGB) -> float:
    """CIE L* (0-100) of an 8-bit sRGB color."""
    y = relative_luminance(rgb)
    return 116.0 * y ** (1.0 / 3.0) - 16.0 if y > 0.008856 else 903.2962962 * y


def toward(hue: float, chroma: float, tone: float) -> RGB:
    """The color of Oklch ``hue`` with up to ``chroma`` whose tone (L*) is ``tone``: the
    Oklab lightness is searched so that the gamut-mapped color has the target luminance."""
    if tone <= 0.0:
        return (0, 0, 0)
    if tone >= 100.0:
        return (255, 255, 255)
    target = luminance_of_tone(tone)
    low, high = 0.0, 1.0
    best = from_oklch(0.5, chroma, hue)
    for _ in range(22):
        middle = (low + high) / 2.0
        best = from_oklch(middle, chroma, hue)
        if relative_luminance(best) < target:
            low = middle
        else:
            high = middle
    return best


def contrast(first: RGB, second: RGB) -> float:
    """WCAG 2 contrast ratio (1-21)."""
    a, b = relative_luminance(first), relative_luminance(second)
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)

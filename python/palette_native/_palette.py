"""Result types: Color, Metrics and Palette."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .roles import Swatch

__all__ = ["Color", "Metrics", "Palette"]


def _srgb_to_linear(c: float) -> float:
    c /= 255.0
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


# Linear-light value of every 8-bit channel value (colors are 8-bit, and rendering a palette
# converts each color several times).
_LINEAR = tuple(_srgb_to_linear(float(v)) for v in range(256))


def hex_of(rgb: tuple[int, int, int]) -> str:
    """``#rrggbb`` of an 8-bit sRGB color."""
    r, g, b = rgb
    return f"#{r:02x}{g:02x}{b:02x}"


def relative_luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG 2 relative luminance of an 8-bit sRGB color (0 for black, 1 for white)."""
    return 0.2126 * _LINEAR[rgb[0]] + 0.7152 * _LINEAR[rgb[1]] + 0.0722 * _LINEAR[rgb[2]]


def rgb_to_oklab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """8-bit sRGB to Oklab (L in 0-1), after Björn Ottosson's published matrices."""
    r, g, b = _LINEAR[rgb[0]], _LINEAR[rgb[1]], _LINEAR[rgb[2]]
    # In-gamut linear values are >= 0, so the cone responses are too: plain cube roots.
    l3 = (0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b) ** (1.0 / 3.0)
    m3 = (0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b) ** (1.0 / 3.0)
    s3 = (0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b) ** (1.0 / 3.0)
    return (
        0.2104542553 * l3 + 0.7936177850 * m3 - 0.0040720468 * s3,
        1.9779984951 * l3 - 2.4285922050 * m3 + 0.4505937099 * s3,
        0.0259040371 * l3 + 0.7827717662 * m3 - 0.8086757660 * s3,
    )


@dataclass(frozen=True)
class Color:
    """One palette color: an 8-bit sRGB value and its share of the analysed pixels."""

    rgb: tuple[int, int, int]
    population: int
    fraction: float

    @property
    def hex(self) -> str:
        return hex_of(self.rgb)

    @cached_property
    def oklab(self) -> tuple[float, float, float]:
        """Oklab (L 0-1, a, b roughly -0.4..0.4)."""
        return rgb_to_oklab(self.rgb)

    @property
    def oklch(self) -> tuple[float, float, float]:
        """Oklch (L 0-1, chroma, hue in degrees 0-360)."""
        lightness, a, b = self.oklab
        chroma = math.hypot(a, b)
        hue = math.degrees(math.atan2(b, a)) % 360.0 if chroma > 1e-9 else 0.0
        return (lightness, chroma, hue)

    @property
    def luminance(self) -> float:
        """WCAG 2 relative luminance (0-1)."""
        return relative_luminance(self.rgb)

    def to_dict(self) -> dict[str, Any]:
        lightness, a, b = self.oklab
        chroma, hue = self.oklch[1:]
        return {
            "hex": self.hex,
            "rgb": list(self.rgb),
            "oklab": [round(lightness, 6), round(a, 6), round(b, 6)],
            "oklch": [round(lightness, 6), round(chroma, 6), round(hue, 6)],
            "population": self.population,
            "fraction": round(self.fraction, 6),
        }


@dataclass(frozen=True)
class Metrics:
    """How well the palette represents the image.

    ``mse``: mean squared error per channel, on 0-255, of every analysed pixel against its
    nearest palette color; ``psnr`` in dB from it; ``delta_e_mean`` / ``delta_e_p95``: Oklab
    distance x 100 (so 1.0 is about one just-noticeable difference), pixel-weighted.
    """

    mse: float
    psnr: float
    delta_e_mean: float
    delta_e_p95: float

    def to_dict(self) -> dict[str, float]:
        return {
            "mse": round(self.mse, 4),
            "psnr": round(self.psnr, 4) if math.isfinite(self.psnr) else None,  # type: ignore[dict-item]
            "delta_e_mean": round(self.delta_e_mean, 4),
            "delta_e_p95": round(self.delta_e_p95, 4),
        }


@dataclass(frozen=True)
class Palette:
    """The palette of one image (or of a Histogram of many), colors ordered by population."""

    colors: list[Color]
    metrics: Metrics
    width: int = 0
    height: int = 0
    analyzed_pixels: int = 0
    transparent_fraction: float = 0.0
    reason: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.colors)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.colors)

    @cached_property
    def swatches(self) -> dict[str, Swatch]:
        """The six Vibrant roles (vibrant, muted, dark/light variants), never missing."""
        from .roles import swatch_roles

        return swatch_roles(self.colors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "colors": [c.to_dict() for c in self.colors],
            "swatches": {name: s.to_dict() for name, s in self.swatches.items()},
            "metrics": self.metrics.to_dict(),
            "width": self.width,
            "height": self.height,
            "analyzed_pixels": self.analyzed_pixels,
            "transparent_fraction": round(self.transparent_fraction, 6),
            "reason": self.reason,
            "options": dict(self.options),
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def export(self, fmt: str) -> str | bytes:
        """Render as ``json``, ``css``, ``gpl``, ``ase`` (bytes) or ``svg``."""
        from .exports import export

        return export(self, fmt)

"""Themes from an image: tonal ramps and light / dark schemes with guaranteed contrast.

The model follows material-color-utilities (key colors, tonal palettes, scheme roles at fixed
tones) in Oklch instead of CAM16/HCT, with one difference that matters: every role pair the
theme lists in ``Theme.pairs`` meets its WCAG 2 contrast (4.5:1 for text, 3:1 for large text
and UI parts) *by construction*: each pair's foreground starts at its nominal tone and is
moved, one tone at a time, away from its background until the 8-bit colors meet the ratio
(black or white always reach 4.58:1, so this ends), and the final colors are checked again.

Key colors (hue and chroma in Oklch, from the seed color of the image):

=============== ===================== =========================================
ramp            hue                   chroma (``tonal_spot``, the default)
=============== ===================== =========================================
primary         seed                  seed's, kept within 0.06-0.16
secondary       seed                  a third of primary's
tertiary        seed + 60 degrees     half of primary's
neutral         seed                  0.012
neutral_variant seed                  0.03
error           25 degrees (red)      0.18
=============== ===================== =========================================

``vibrant`` keeps the seed's chroma up to 0.25 (at least 0.12), ``fidelity`` keeps it exactly
and takes the secondary from the palette's second color, ``monochrome`` drops chroma (error
excepted). Tones are CIE L* (0 black, 100 white).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._oklch import RGB, contrast, oklch, tone_of, toward
from ._palette import Color, Palette, hex_of
from .errors import BadParameterError

__all__ = ["TONES", "VARIANTS", "ContrastPair", "Scheme", "Theme", "TonalRamp", "theme"]

TONES: tuple[int, ...] = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 100)
"""Tones listed in each ramp (material-color-utilities' tonal palette tones)."""

VARIANTS: tuple[str, ...] = ("tonal_spot", "vibrant", "fidelity", "monochrome")

TEXT = 4.5
"""WCAG 2 AA minimum for normal text."""
UI = 3.0
"""WCAG 2 AA minimum for large text and user-interface parts."""

_ERROR_HUE, _ERROR_CHROMA = 25.0, 0.18

# role -> (ramp, light tone, dark tone)
_ROLES: dict[str, tuple[str, float, float]] = {
    "primary": ("primary", 40, 80),
    "on_primary": ("primary", 100, 20),
    "primary_container": ("primary", 90, 30),
    "on_primary_container": ("primary", 10, 90),
    "inverse_primary": ("primary", 80, 40),
    "secondary": ("secondary", 40, 80),
    "on_secondary": ("secondary", 100, 20),
    "secondary_container": ("secondary", 90, 30),
    "on_secondary_container": ("secondary", 10, 90),
    "tertiary": ("tertiary", 40, 80),
    "on_tertiary": ("tertiary", 100, 20),
    "tertiary_container": ("tertiary", 90, 30),
    "on_tertiary_container": ("tertiary", 10, 90),
    "error": ("error", 40, 80),
    "on_error": ("error", 100, 20),
    "error_container": ("error", 90, 30),
    "on_error_container": ("error", 10, 90),
    "background": ("neutral", 98, 6),
    "on_background": ("neutral", 10, 90),
    "surface": ("neutral", 98, 6),
    "on_surface": ("neutral", 10, 90),
    "surface_dim": ("neutral", 87, 6),
    "surface_bright": ("neutral", 98, 24),
    "surface_container_lowest": ("neutral", 100, 4),
    "surface_container_low": ("neutral", 96, 10),
    "surface_container": ("neutral", 94, 12),
    "surface_container_high": ("neutral", 92, 17),
    "surface_container_highest": ("neutral", 90, 22),
    "surface_variant": ("neutral_variant", 90, 30),
    "on_surface_variant": ("neutral_variant", 30, 80),
    "outline": ("neutral_variant", 50, 60),
    "outline_variant": ("neutral_variant", 80, 30),
    "inverse_surface": ("neutral", 20, 90),
    "inverse_on_surface": ("neutral", 95, 20),
    "shadow": ("neutral", 0, 0),
    "scrim": ("neutral", 0, 0),
}

# (foreground, background, required ratio), in the order they are settled: fills against the
# surface first, then the text on each fill (so a fill never moves after its text was fixed).
_PAIRS: tuple[tuple[str, str, float], ...] = (
    ("primary", "surface", UI),
    ("secondary", "surface", UI),
    ("tertiary", "surface", UI),
    ("error", "surface", UI),
    ("outline", "surface", UI),
    ("inverse_primary", "inverse_surface", UI),
    ("on_primary", "primary", TEXT),
    ("on_primary_container", "primary_container", TEXT),
    ("on_secondary", "secondary", TEXT),
    ("on_secondary_container", "secondary_container", TEXT),
    ("on_tertiary", "tertiary", TEXT),
    ("on_tertiary_container", "tertiary_container", TEXT),
    ("on_error", "error", TEXT),
    ("on_error_container", "error_container", TEXT),
    ("on_background", "background", TEXT),
    ("on_surface", "surface", TEXT),
    ("on_surface", "surface_dim", TEXT),
    ("on_surface", "surface_bright", TEXT),
    ("on_surface", "surface_container_lowest", TEXT),
    ("on_surface", "surface_container_low", TEXT),
    ("on_surface", "surface_container", TEXT),
    ("on_surface", "surface_container_high", TEXT),
    ("on_surface", "surface_container_highest", TEXT),
    ("on_surface_variant", "surface_variant", TEXT),
    ("on_surface_variant", "surface", TEXT),
    ("inverse_on_surface", "inverse_surface", TEXT),
)


class ContrastPair(NamedTuple):
    """A role pair and its WCAG 2 contrast: ``role`` is ``"<scheme>:<fg>/<bg>"``."""

    role: str
    foreground: str
    background: str
    required_ratio: float
    ratio: float


@dataclass(frozen=True)
class TonalRamp:
    """One key color's tones: hue and chroma fixed (Oklch), tone (L*) from 0 to 100."""

    name: str
    hue: float
    chroma: float

    def rgb(self, tone: float) -> RGB:
        return toward(self.hue, self.chroma, tone)

    def tone(self, tone: float) -> str:
        """``#rrggbb`` at ``tone`` (CIE L*, 0-100)."""
        return hex_of(self.rgb(tone))

    @property
    def tones(self) -> dict[int, str]:
        """The ramp at :data:`TONES`."""
        return {t: self.tone(t) for t in TONES}

    def to_dict(self) -> dict[str, Any]:
        return {"hue": round(self.hue, 3), "chroma": round(self.chroma, 4),
                "tones": {str(t): h for t, h in self.tones.items()}}


@dataclass(frozen=True)
class Scheme:
    """The colors of one scheme (``light`` or ``dark``) by role, ``#rrggbb``."""

    name: str
    colors: dict[str, str]

    def __getitem__(self, role: str) -> str:
        return self.colors[role]


@dataclass(frozen=True)
class Theme:
    """Tonal ramps, light and dark schemes, and every role pair with its contrast."""

    source: str
    variant: str
    ramps: dict[str, TonalRamp]
    light: Scheme
    dark: Scheme
    pairs: list[ContrastPair]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "variant": self.variant,
            "ramps": {name: ramp.to_dict() for name, ramp in self.ramps.items()},
            "schemes": {"light": dict(self.light.colors), "dark": dict(self.dark.colors)},
            "pairs": [p._asdict() | {"ratio": round(p.ratio, 3)} for p in self.pairs],
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_css(self, *, prefix: str = "theme") -> str:
        """CSS custom properties: ramps and the light scheme on ``:root``, the dark scheme
        under ``prefers-color-scheme: dark`` and on ``[data-theme="dark"]``."""
        lines = [":root {"]
        for name, ramp in self.ramps.items():
            for tone, value in ramp.tones.items():
                lines.append(f"  --{prefix}-{_kebab(name)}-{tone}: {value};")
        lines += [f"  --{prefix}-{_kebab(r)}: {v};" for r, v in self.light.colors.items()]
        lines.append("}")
        dark = [f"  --{prefix}-{_kebab(r)}: {v};" for r, v in self.dark.colors.items()]
        lines += ["@media (prefers-color-scheme: dark) {", "  :root {",
                  *("  " + line for line in dark), "  }", "}", '[data-theme="dark"] {', *dark,
                  "}"]
        return "\n".join(lines) + "\n"

    def to_tailwind(self, *, prefix: str = "theme") -> str:
        """A Tailwind CSS config fragment (``tailwind.config.js``): each ramp as a color
        scale by tone, each role as a color reading the CSS variable of ``to_css`` (so the
        dark scheme follows the same classes)."""
        colors: dict[str, Any] = {
            _kebab(name): {str(t): v for t, v in ramp.tones.items()}
            for name, ramp in self.ramps.items()
        }
        for role in self.light.colors:
            key = _kebab(role)
            if isinstance(colors.get(key), dict):
                colors[key]["DEFAULT"] = f"var(--{prefix}-{key})"
            else:
                colors[key] = f"var(--{prefix}-{key})"
        body = json.dumps({"theme": {"extend": {"colors": colors}}}, indent=2)
        return "/** @type {import('tailwindcss').Config} */\nmodule.exports = " + body + ";\n"

    def to_tokens(self) -> str:
        """W3C Design Tokens (Format Module 2025.10) JSON: ``color.<ramp>.<tone>`` and
        ``color.<light|dark>.<role>``, each ``{"$type": "color", "$value": {"colorSpace":
        "srgb", "components": [r, g, b], "hex": "#rrggbb"}}`` (components 0-1)."""
        def token(value: str) -> dict[str, Any]:
            rgb = [int(value[i:i + 2], 16) / 255.0 for i in (1, 3, 5)]
            return {"$type": "color", "$value": {"colorSpace": "srgb",
                                                 "components": [round(c, 4) for c in rgb],
                                                 "hex": value}}

        tree: dict[str, Any] = {
            name: {str(t): token(v) for t, v in ramp.tones.items()}
            for name, ramp in self.ramps.items()
        }
        tree["light"] = {r: token(v) for r, v in self.light.colors.items()}
        tree["dark"] = {r: token(v) for r, v in self.dark.colors.items()}
        tree["$description"] = f"Theme from {self.source} ({self.variant})"
        return json.dumps({"color": tree}, indent=2) + "\n"

    def export(self, fmt: str) -> str:
        """Render as ``css``, ``tailwind``, ``tokens`` or ``json``."""
        renderers: dict[str, Callable[[], str]] = {"css": self.to_css, "tailwind": self.to_tailwind, "tokens": self.to_tokens,
                     "json": lambda: self.to_json(indent=2)}
        if fmt not in renderers:
            raise BadParameterError(f"unknown theme format {fmt!r}; expected one of "
                                    f"{', '.join(renderers)}", parameter="format")
        return renderers[fmt]()


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _seed(palette: Palette) -> tuple[RGB, RGB | None]:
    """The seed color (the most colorful color with a real share of the image, preferring
    larger shares) and the next most colorful one of a clearly different hue, if any."""
    if not palette.colors:
        return (128, 128, 128), None

    def appeal(color: Color) -> float:
        chroma = oklch(color.rgb)[1]
        return chroma * color.fraction ** 0.5 if chroma >= 0.03 else -1.0 + color.fraction

    ranked = sorted(palette.colors, key=lambda c: (-appeal(c), c.rgb))
    seed = ranked[0].rgb
    seed_hue = oklch(seed)[2]
    for color in ranked[1:]:
        _, chroma, hue = oklch(color.rgb)
        gap = abs((hue - seed_hue + 180.0) % 360.0 - 180.0)
        if chroma >= 0.03 and gap >= 30.0:
            return seed, color.rgb
    return seed, None


def _ramps(seed: RGB, second: RGB | None, variant: str) -> dict[str, TonalRamp]:
    _, chroma, hue = oklch(seed)
    if variant == "monochrome":
        primary = 0.0
    elif variant == "vibrant":
        primary = min(max(chroma, 0.12), 0.25)
    elif variant == "fidelity":
        primary = chroma
    else:
        primary = min(max(chroma, 0.06), 0.16)
    secondary_hue, secondary_chroma = hue, primary / 3.0
    if variant == "fidelity" and second is not None:
        _, secondary_chroma, secondary_hue = oklch(second)
    neutral = 0.0 if variant == "monochrome" else 0.012
    return {
        "primary": TonalRamp("primary", hue, primary),
        "secondary": TonalRamp("secondary", secondary_hue, secondary_chroma),
        "tertiary": TonalRamp("tertiary", (hue + 60.0) % 360.0, primary / 2.0),
        "neutral": TonalRamp("neutral", hue, neutral),
        "neutral_variant": TonalRamp("neutral_variant", hue,
                                     0.0 if variant == "monochrome" else 0.03),
        "error": TonalRamp("error", _ERROR_HUE, _ERROR_CHROMA),
    }


def _scheme(name: str, ramps: dict[str, TonalRamp]) -> tuple[Scheme, list[ContrastPair]]:
    dark = name == "dark"
    tones = {role: (ramp, dark_tone if dark else light_tone)
             for role, (ramp, light_tone, dark_tone) in _ROLES.items()}
    colors: dict[str, RGB] = {role: ramps[ramp].rgb(tone) for role, (ramp, tone) in tones.items()}
    for foreground, background, required in _PAIRS:
        ramp_name, tone = tones[foreground]
        bg = colors[background]
        # Away from the background: towards black on light backgrounds, white on dark ones.
        step = -1.0 if contrast((0, 0, 0), bg) >= contrast((255, 255, 255), bg) else 1.0
        while contrast(colors[foreground], bg) < required and 0.0 < tone < 100.0:
            tone = min(100.0, max(0.0, tone + step))
            colors[foreground] = ramps[ramp_name].rgb(tone)
        tones[foreground] = (ramp_name, tone)
    pairs = []
    for foreground, background, required in _PAIRS:
        ratio = contrast(colors[foreground], colors[background])
        if ratio < required:  # pragma: no cover - the loop above cannot end here
            raise AssertionError(f"{name}: {foreground} on {background} is {ratio:.2f}:1")
        pairs.append(ContrastPair(f"{name}:{foreground}/{background}", hex_of(colors[foreground]),
                                  hex_of(colors[background]), required, ratio))
    return Scheme(name, {role: hex_of(rgb) for role, rgb in colors.items()}), pairs


def theme(source_or_palette: Any, *, variant: str = "tonal_spot", colors: int = 16,
          **extract_options: Any) -> Theme:
    """A theme from an image (any ``extract`` source), a ``Palette`` or a seed color
    (``"#rrggbb"`` or an (r, g, b) tuple). ``variant`` is one of :data:`VARIANTS`; for an
    image, ``colors`` and ``extract_options`` go to ``extract``. Deterministic."""
    if variant not in VARIANTS:
        raise BadParameterError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}",
                                parameter="variant")
    second: RGB | None = None
    if isinstance(source_or_palette, Palette):
        seed, second = _seed(source_or_palette)
    elif isinstance(source_or_palette, str) and source_or_palette.startswith("#"):
        seed = _parse_hex(source_or_palette)
    elif isinstance(source_or_palette, tuple) and len(source_or_palette) == 3:
        seed = tuple(int(v) for v in source_or_palette)  # type: ignore[assignment]
    else:
        from ._api import extract

        seed, second = _seed(extract(source_or_palette, colors, **extract_options))
    ramps = _ramps(seed, second, variant)
    light, light_pairs = _scheme("light", ramps)
    dark, dark_pairs = _scheme("dark", ramps)
    return Theme(hex_of(seed), variant, ramps, light, dark, light_pairs + dark_pairs)


def _parse_hex(value: str) -> RGB:
    text = value.lstrip("#")
    if len(text) == 3:
        text = "".join(ch * 2 for ch in text)
    try:
        if len(text) != 6:
            raise ValueError
        return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    except ValueError:
        raise BadParameterError(f"not a #rrggbb color: {value!r}", parameter="seed") from None


def tone_of_hex(value: str) -> float:
    """CIE L* (0-100) of ``#rrggbb`` (handy to check a ramp)."""
    return tone_of(_parse_hex(value))

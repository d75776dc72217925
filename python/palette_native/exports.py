"""Render a Palette as JSON, CSS custom properties, a GIMP palette, Adobe ASE or an SVG strip."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

from .errors import BadParameterError

if TYPE_CHECKING:
    from ._palette import Palette

__all__ = ["FORMATS", "export", "to_ase", "to_css", "to_gpl", "to_json", "to_svg"]

FORMATS: tuple[str, ...] = ("json", "css", "gpl", "ase", "svg")
"""Every format ``export`` accepts; ``ase`` gives bytes, the others text."""

EXTENSIONS: dict[str, str] = {
    "json": ".json",
    "css": ".css",
    "gpl": ".gpl",
    "ase": ".ase",
    "svg": ".svg",
}
"""The usual file extension of each format."""


def to_json(palette: Palette) -> str:
    """The palette's dict as indented JSON (the same as ``palette.to_json(indent=2)``)."""
    return palette.to_json(indent=2)


def to_css(palette: Palette, *, prefix: str = "palette") -> str:
    """CSS custom properties on ``:root``.

    ``--palette-1`` ... ``--palette-N`` are the colors by population; each swatch role adds
    ``--palette-<role>`` plus its ``-title`` and ``-body`` text colors (roles use hyphens:
    ``--palette-dark-vibrant``).
    """
    lines = [":root {"]
    for index, color in enumerate(palette.colors, start=1):
        lines.append(f"  --{prefix}-{index}: {color.hex}; /* {color.fraction:.2%} */")
    for role, swatch in palette.swatches.items():
        name = f"--{prefix}-{role.replace('_', '-')}"
        note = " /* synthesized */" if swatch.synthesized else ""
        lines.append(f"  {name}: {swatch.hex};{note}")
        lines.append(f"  {name}-title: {swatch.title_text};")
        lines.append(f"  {name}-body: {swatch.body_text};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_gpl(palette: Palette, *, name: str = "PaletteEngine") -> str:
    """A GIMP palette (``.gpl``): a header, then ``R G B<tab>name`` per color."""
    safe_name = " ".join(name.split()) or "PaletteEngine"
    columns = max(1, min(len(palette.colors), 16))
    lines = ["GIMP Palette", f"Name: {safe_name}", f"Columns: {columns}", "#"]
    for color in palette.colors:
        r, g, b = color.rgb
        lines.append(f"{r:3d} {g:3d} {b:3d}\t{color.hex} {color.fraction:.2%}")
    return "\n".join(lines) + "\n"


# Adobe Swatch Exchange: "ASEF", version 1.0, a block count, then blocks. A color block is
# type 0x0001 and a byte length, then the name as a UTF-16BE string with a terminating NUL
# (prefixed by its length in code units, NUL included), the color model ("RGB "), one float32
# per channel (0-1) and the color type (0 global, 1 spot, 2 normal). Everything is big-endian.
_ASE_COLOR_BLOCK = 0x0001
_ASE_GLOBAL = 0


def _ase_color_block(name: str, rgb: tuple[int, int, int]) -> bytes:
    encoded = name.encode("utf-16-be") + b"\x00\x00"
    body = (
        struct.pack(">H", len(encoded) // 2)
        + encoded
        + b"RGB "
        + struct.pack(">fff", *(v / 255.0 for v in rgb))
        + struct.pack(">H", _ASE_GLOBAL)
    )
    return struct.pack(">HI", _ASE_COLOR_BLOCK, len(body)) + body


def to_ase(palette: Palette) -> bytes:
    """Adobe Swatch Exchange bytes: one global RGB color per palette color, named by hex."""
    blocks = [_ase_color_block(c.hex, c.rgb) for c in palette.colors]
    return b"ASEF" + struct.pack(">HHI", 1, 0, len(blocks)) + b"".join(blocks)


def to_svg(palette: Palette, *, width: int = 800, height: int = 120) -> str:
    """An SVG strip: one rectangle per color, widths proportional to the color's share.

    Edges are placed at rounded cumulative positions, so the strip has no gaps and exactly
    ``width`` pixels. An all-zero palette gets equal widths.
    """
    colors = palette.colors
    total = sum(c.fraction for c in colors)
    if total > 0:
        shares = [c.fraction / total for c in colors]
    else:
        shares = [1.0 / len(colors)] * len(colors) if colors else []
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" shape-rendering="crispEdges">',
        "<title>Palette</title>",
    ]
    cumulative = 0.0
    left = 0.0
    for color, share in zip(colors, shares, strict=True):
        cumulative += share
        right = round(cumulative * width, 3)
        parts.append(
            f'<rect x="{left:g}" y="0" width="{max(right - left, 0.0):g}" height="{height}" '
            f"fill={quoteattr(color.hex)}><title>{color.hex} {color.fraction:.2%}</title></rect>"
        )
        left = right
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def export(palette: Palette, fmt: str) -> str | bytes:
    """Render ``palette`` in ``fmt``, one of ``FORMATS``; ``ase`` gives bytes, the rest text."""
    renderers: dict[str, Callable[[Palette], str | bytes]] = {
        "json": to_json,
        "css": to_css,
        "gpl": to_gpl,
        "ase": to_ase,
        "svg": to_svg,
    }
    key = fmt.lower() if isinstance(fmt, str) else fmt
    if key not in renderers:
        raise BadParameterError(
            f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}",
            parameter="format",
            allowed=list(FORMATS),
            actual=str(fmt),
        )
    return renderers[key](palette)

"""palette_native: accurate color palettes from images.

>>> import palette_native as pn
>>> pal = pn.extract("photo.jpg", colors=8)
>>> [c.hex for c in pal.colors]
"""

from __future__ import annotations

from . import errors
from ._api import Histogram, Quantized, capabilities, extract, quantize, set_isa
from ._decode import DEFAULT_MAX_PIXELS, DEFAULT_PIXEL_BUDGET
from ._palette import Color, Metrics, Palette
from .errors import (
    ArchiveError,
    BadParameterError,
    CanceledError,
    DecodeError,
    ImageTooLargeError,
    PaletteError,
    UnsupportedFormatError,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_PIXEL_BUDGET",
    "ArchiveError",
    "BadParameterError",
    "CanceledError",
    "Color",
    "DecodeError",
    "Histogram",
    "ImageTooLargeError",
    "Metrics",
    "Palette",
    "PaletteError",
    "Quantized",
    "UnsupportedFormatError",
    "capabilities",
    "errors",
    "extract",
    "quantize",
    "set_isa",
]

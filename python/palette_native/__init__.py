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
from .analyze import Analysis, analyze
from .errors import (
    ArchiveError,
    BadParameterError,
    CanceledError,
    DecodeError,
    ImageTooLargeError,
    PaletteError,
    UnsupportedFormatError,
)
from .harmony import Harmony, harmony
from .quality import Component, Quality
from .subject import Subject
from .theme import ContrastPair, Scheme, Theme, TonalRamp, theme

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_PIXEL_BUDGET",
    "Analysis",
    "ArchiveError",
    "BadParameterError",
    "CanceledError",
    "Color",
    "Component",
    "ContrastPair",
    "DecodeError",
    "Harmony",
    "Histogram",
    "ImageTooLargeError",
    "Metrics",
    "Palette",
    "PaletteError",
    "Quality",
    "Quantized",
    "Scheme",
    "Subject",
    "Theme",
    "TonalRamp",
    "UnsupportedFormatError",
    "analyze",
    "capabilities",
    "errors",
    "extract",
    "harmony",
    "quantize",
    "set_isa",
    "theme",
]

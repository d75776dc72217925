"""The pixels ``analyze`` looks at: one sRGB image of about a megapixel, reduced by area.

Quality measures need fine detail (a blur of half a source pixel, JPEG's 8x8 blocks), so the
image is not sampled like ``extract``'s: JPEG files are decoded at the strongest DCT scale
(1/2, 1/4, 1/8) that keeps at least half of :data:`ANALYSIS_BUDGET` pixels, which costs about
what ``extract``'s own decode costs (the entropy decoding is the same at every scale), and every
other source is read in full, strip by strip, and averaged over power-of-two blocks the same
way. Either way each analysis pixel is the mean of a ``scale`` x ``scale`` square of source
pixels, so a JPEG block of 8 source pixels spans ``8 / scale`` of them.

A plain sRGB JPEG (RGB, no ICC profile) is decoded here with Pillow and its pixels are a view
of Pillow's own memory (exported through the Arrow C data interface: RGBX rows, the fourth
byte padding) rather than a packed copy, and the file is read once for both the pixels and the
quantization tables; every other JPEG, and every error, goes through ``decode``. The ~64K-pixel
sample is gathered into one contiguous array, since five passes read it.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._decode import DEFAULT_PIXEL_BUDGET, Pixels, decode

__all__ = ["ANALYSIS_BUDGET", "AnalysisImage", "load_analysis_image"]

#: About this many pixels (at least half of it, at most twice) are analysed per image.
ANALYSIS_BUDGET = 800_000
#: The strongest reduction used; larger images are reduced by this and then sampled.
_MAX_FACTOR = 64
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class AnalysisImage:
    """An image as ``analyze`` sees it."""

    width: int  # of the source
    height: int
    rgb: npt.NDArray[np.uint8]  # h x w x 3, the source reduced by ``scale`` (may be a strided view)
    alpha: npt.NDArray[np.uint8] | None  # h x w, or None when the source has no alpha
    sample: npt.NDArray[np.uint8]  # about 64K pixels, every n-th (n x n apart), h x w x 3
    sample_alpha: npt.NDArray[np.uint8] | None
    scale: float  # source pixels per analysis pixel (along each axis)
    jpeg_quality: int | None  # IJG quality estimated from the file's tables (JPEG files only)


def _factor(width: int, height: int, budget: int) -> int:
    """The largest power of two that keeps at least half the budget (like the JPEG DCT scale)."""
    factor = 1
    while (
        factor < _MAX_FACTOR
        and (width // (factor * 2)) * (height // (factor * 2)) >= budget // 2
    ):
        factor *= 2
    return factor


def _sample_step(width: int, height: int) -> int:
    """Every n-th pixel along each axis leaves about ``DEFAULT_PIXEL_BUDGET`` of them."""
    pixels = width * height
    return max(1, math.ceil(math.sqrt(pixels / DEFAULT_PIXEL_BUDGET)))


def _box_reduce(strips: Iterator[Pixels], width: int, factor: int,
                step: int) -> tuple[Pixels, Pixels]:
    """The mean of each ``factor`` x ``factor`` block of the image made of ``strips`` (rows
    that do not fill a block at the bottom or right edge are dropped), one strip at a time;
    and every ``step``-th pixel of it along each axis."""
    out_width = max(1, width // factor)
    used = out_width * factor
    rows_out: list[Pixels] = []
    sampled: list[Pixels] = []
    carry: Pixels | None = None
    row = 0  # of the source, where the next strip starts
    for strip in strips:
        first = (-row) % step
        if first < strip.shape[0]:
            sampled.append(np.array(strip[first::step, ::step], dtype=np.uint8))
        row += strip.shape[0]
        if carry is not None:
            strip = np.concatenate([carry, strip], axis=0)
        whole = (strip.shape[0] // factor) * factor
        carry = strip[whole:] if whole < strip.shape[0] else None
        if whole == 0:
            continue
        block = strip[:whole, :used]
        if factor == 1:
            rows_out.append(np.array(block, dtype=np.uint8))
            continue
        channels = block.shape[2]
        sums = block.reshape(whole // factor, factor, out_width, factor, channels).sum(
            axis=(1, 3), dtype=np.uint32
        )
        half = (factor * factor) // 2
        rows_out.append(((sums + half) // (factor * factor)).astype(np.uint8))
    sample = np.concatenate(sampled, axis=0) if len(sampled) > 1 else sampled[0]
    if not rows_out:
        if carry is None:
            raise ValueError("empty image")
        # Fewer rows than one block: average what there is.
        mean = carry[:, :used].astype(np.float32)
        shape = (1, out_width, factor, carry.shape[2])
        averaged: Pixels = np.rint(mean.mean(axis=0)[np.newaxis].reshape(shape).mean(axis=2))
        return averaged.astype(np.uint8), sample
    return (np.concatenate(rows_out, axis=0) if len(rows_out) > 1 else rows_out[0]), sample


class _Replay:
    """A file object that gives back what another one returned (so ``decode`` judges it)."""

    def __init__(self, data: Any, name: Any) -> None:
        self._data = data
        self.name = name

    def read(self) -> Any:
        return self._data


def _starts_like_jpeg(source: Any) -> bool:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source[:3]) == _JPEG_MAGIC
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        with open(source, "rb") as fh:
            return fh.read(3) == _JPEG_MAGIC
    return False


def _estimate_jpeg_quality(source: str | os.PathLike[str] | bytes) -> int | None:
    """The IJG quality (1-100) of a JPEG file (see :func:`_quality_from_tables`)."""
    from PIL import Image, UnidentifiedImageError

    try:
        opened = source if isinstance(source, (str, os.PathLike)) else io.BytesIO(source)
        with Image.open(opened) as img:  # reads the header only
            return _quality_from_tables(getattr(img, "quantization", None))
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def _quality_from_tables(tables: Any) -> int | None:
    """The IJG quality (1-100) whose scaled standard luminance table is nearest the file's.

    Encoders built on libjpeg (nearly all) scale the standard table of the JPEG spec
    (Annex K) by the quality setting, so the file's luminance table gives the setting back.
    """
    if not tables or 0 not in tables:
        return None
    actual = np.asarray(tables[0], dtype=np.float64)
    if actual.shape != (64,):
        return None
    # Pillow lists tables in natural (row-major) order, like the reference tables below.
    errors = np.sum((_IJG_TABLES - actual) ** 2, axis=1)
    return int(np.argmin(errors)) + 1  # the first (lowest) quality on a tie


def _plain_jpeg(data: bytes, budget: int, max_pixels: int) -> tuple[int, int, Pixels, int | None] | None:
    """(width, height, pixels, quality) of a plain sRGB JPEG (RGB, no ICC profile) decoded at
    the strongest DCT scale that keeps half the budget, its pixels a view of Pillow's own
    memory (RGBX rows: the fourth byte is padding) instead of a packed copy; None for anything
    else, and for any error, which ``decode`` then reports in its own words."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError):
        return None
    with img:
        width, height = img.size
        if (img.format != "JPEG" or img.mode != "RGB" or img.info.get("icc_profile")
                or width * height > max_pixels):
            return None
        if img.info.get("progressive") and ((width + 7) // 8) * ((height + 7) // 8) >= budget // 4:
            return None  # decode reads a large progressive file's DC scans alone, far faster
        factor = min(8, _factor(width, height, budget))
        img.draft("RGB", (max(1, width // factor), max(1, height // factor)))
        img.decodermaxblock = max(img.decodermaxblock, len(data))  # one decoder call
        try:
            img.load()
        except (OSError, SyntaxError, ValueError):
            return None
        quality = _quality_from_tables(getattr(img, "quantization", None))
        pixels = _pillow_pixels(img)
    return width, height, pixels, quality


def _pillow_pixels(img: Any) -> Pixels:
    """The RGB pixels of a loaded Pillow image: a view of its memory through its Arrow export
    (Pillow 11.2 on, for an image in one block), else the packed copy ``numpy.asarray`` makes."""
    try:
        schema, array = img.__arrow_c_array__()
    except (AttributeError, ValueError):
        return np.asarray(img)
    rgbx: Pixels = _core.pixels_from_arrow(schema, array, img.height, img.width)
    return rgbx[:, :, :3]


# The JPEG spec's example luminance quantization table (ITU-T T.81, Annex K, Table K.1).
_IJG_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.float64,
)  # fmt: skip
_QUALITIES = np.arange(1, 101, dtype=np.float64)
_IJG_SCALES = np.where(_QUALITIES < 50, 5000.0 / _QUALITIES, 200.0 - 2.0 * _QUALITIES)
#: The luminance table libjpeg writes at each quality 1..100 (one row per quality).
_IJG_TABLES = np.clip(np.floor((_IJG_LUMA * _IJG_SCALES[:, np.newaxis] + 50.0) / 100.0), 1, 255)


def _split(pixels: Pixels) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None]:
    """RGB (a view where the pixels already hold RGB first) and alpha of 1-4 channel pixels."""
    channels = pixels.shape[2]
    rgb = np.repeat(pixels[:, :, :1], 3, axis=2) if channels in (1, 2) else pixels[:, :, :3]
    alpha = np.ascontiguousarray(pixels[:, :, channels - 1]) if channels in (2, 4) else None
    return rgb, alpha


def load_analysis_image(
    source: Any, *, max_pixels: int, budget: int = ANALYSIS_BUDGET
) -> AnalysisImage:
    """Decode ``source`` (anything ``extract`` takes) to its analysis image; raises the same
    errors as ``extract`` (unsupported format, too many pixels, truncated file, ...)."""
    if hasattr(source, "read") and not isinstance(source, (str, os.PathLike)):
        content = source.read()
        if isinstance(content, (bytes, bytearray)) and content:
            source = bytes(content)  # read once: looked at twice (JPEG tables, then the decoder)
        else:
            source = _Replay(content, getattr(source, "name", "file object"))  # decode's error
    data: bytes | None = None
    if isinstance(source, (bytes, bytearray, memoryview)) and _starts_like_jpeg(source):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)) and _starts_like_jpeg(source):
        with open(source, "rb") as fh:
            data = fh.read()  # read once: the decoder and the quantization tables both look
    plain = None if data is None else _plain_jpeg(data, budget, max_pixels)
    if plain is not None:
        width, height, pixels, quality = plain
        step = _sample_step(pixels.shape[1], pixels.shape[0])
        sample = pixels[::step, ::step]
    elif data is not None:
        # Anything else about the JPEG (and every error) is decode's, named after the source.
        decoded = decode(source, exact=False, pixel_budget=budget, max_pixels=max_pixels)
        width, height = decoded.width, decoded.height
        strips = list(decoded.strips)
        pixels = strips[0] if len(strips) == 1 else np.concatenate(strips, axis=0)
        step = _sample_step(pixels.shape[1], pixels.shape[0])
        sample = pixels[::step, ::step]
        quality = _estimate_jpeg_quality(data)
    else:
        decoded = decode(source, exact=True, pixel_budget=budget, max_pixels=max_pixels)
        width, height = decoded.width, decoded.height
        factor = _factor(decoded.width, decoded.height, budget)
        pixels, sample = _box_reduce(decoded.strips, decoded.width, factor,
                                     _sample_step(decoded.width, decoded.height))
        quality = None
    # Beyond the strongest reduction, sample (a 250 MP image still gives a few megapixels).
    step = max(1, int(np.ceil(np.sqrt(pixels.shape[0] * pixels.shape[1] / (2 * budget)))))
    if step > 1:
        pixels = pixels[::step, ::step]
    rgb, alpha = _split(pixels)
    sample_rgb, sample_alpha = _split(sample)
    # Read by five passes (statistics, saliency, weights, palettes): gathered once.
    sample_rgb = np.ascontiguousarray(sample_rgb)
    scale = width / rgb.shape[1]
    return AnalysisImage(width, height, rgb, alpha, sample_rgb, sample_alpha, scale, quality)

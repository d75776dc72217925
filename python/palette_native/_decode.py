"""Decoding: any supported source -> 8-bit sRGB pixel strips (NumPy views, no copies).

Files and bytes go through libvips: the header is read first (so the pixel limit is checked
before any pixel is decoded), then the image is opened again in sequential mode with the
loader's shrink-on-load where it has one, colour-managed to sRGB and read in strips.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyvips

from . import _core
from .errors import BadParameterError, CanceledError, DecodeError, ImageTooLargeError, UnsupportedFormatError

#: Pixels analysed per image unless ``exact=True``; see benchmarks/README.md for the measurement.
DEFAULT_PIXEL_BUDGET = 65_536
#: Images with more pixels than this are refused from their header (decompression bombs).
DEFAULT_MAX_PIXELS = 250_000_000
#: Bytes per strip when streaming full-resolution images.
STRIP_BYTES = 1 << 20

Pixels = npt.NDArray[np.uint8]
CancelCheck = Callable[[], bool] | None


@dataclass
class Decoded:
    width: int  # of the source image
    height: int
    strips: Iterator[Pixels]  # HxWxC uint8, C in 1..4, in top-to-bottom order
    # Every pixel of the image, read again, when ``strips`` hold a sample of them (else None).
    reread: Callable[[], Iterator[Pixels]] | None = None


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{max_pixels:,}",
            limit_pixels=max_pixels,
            actual_pixels=width * height,
        )


def _subsample_step(pixels: int, budget: int) -> int:
    return max(1, math.ceil(math.sqrt(pixels / budget))) if pixels > budget else 1


# ---- arrays -------------------------------------------------------------------------------
def _from_array(arr: npt.NDArray[Any], exact: bool, budget: int, max_pixels: int) -> Decoded:
    if arr.dtype != np.uint8:
        raise BadParameterError(f"pixel arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, np.newaxis]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise BadParameterError(
            f"pixel arrays must be HxW or HxWxC with C in 1..4, got shape {arr.shape}"
        )
    height, width = int(arr.shape[0]), int(arr.shape[1])
    _check_pixels(width, height, max_pixels)
    if arr.strides[2] != 1 or arr.strides[0] < 0 or arr.strides[1] < 0:
        arr = np.ascontiguousarray(arr)
    step = 1 if exact else _subsample_step(width * height, budget)
    if step == 1:
        return Decoded(width, height, iter([arr]))
    full = arr
    # A strided view, read in place by the core.
    return Decoded(width, height, iter([arr[::step, ::step]]), lambda: iter([full]))


def _from_pil(img: Any, exact: bool, budget: int, max_pixels: int) -> Decoded:
    _check_pixels(img.width, img.height, max_pixels)
    mode = img.mode
    if mode not in ("L", "LA", "RGB", "RGBA"):
        has_alpha = "A" in mode or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
    return _from_array(np.asarray(img), exact, budget, max_pixels)


# ---- libvips ------------------------------------------------------------------------------
def _is_srgb_profile(profile: bytes) -> bool:
    # Most photos carry a plain sRGB profile; transforming through it changes nothing but time.
    return b"sRGB" in profile[:1024] or b"s\x00R\x00G\x00B" in profile[:2048]


def _to_srgb8(im: pyvips.Image) -> pyvips.Image:
    icc = im.get_typeof("icc-profile-data") != 0
    interpretation = im.interpretation
    if icc and not _is_srgb_profile(im.get("icc-profile-data")):
        im = im.icc_transform("srgb", embedded=True, intent="perceptual")
    elif interpretation == "cmyk":
        im = im.icc_transform("srgb", input_profile="cmyk", intent="perceptual")
    elif interpretation in ("b-w", "grey16"):
        if im.format != "uchar":
            im = im.colourspace("b-w") if interpretation != "b-w" else im
            if im.format != "uchar":
                im = (im / 257).cast("uchar") if im.format == "ushort" else im.cast("uchar")
    elif interpretation == "multiband":
        pass  # extra channels with no colour space: the first bands are taken as they are
    elif interpretation != "srgb" or im.format != "uchar":
        im = im.colourspace("srgb")
    if im.format != "uchar":
        im = im.cast("uchar")
    if im.bands > 4:
        im = im.extract_band(0, n=4)
    return im


def _jpeg_scale(width: int, height: int, budget: int) -> int:
    """The strongest DCT scale (1, 2, 4, 8) that keeps at least half the pixel budget."""
    shrink = 1
    while shrink < 8 and (width // (shrink * 2)) * (height // (shrink * 2)) >= budget // 2:
        shrink *= 2
    return shrink


_JPEG_MAGIC = b"\xff\xd8\xff"
#: JPEG files up to this size are read whole for the sampled decode (one decoder call).
_JPEG_READ_LIMIT = 32 << 20


def _jpeg_bytes(source: str | bytes) -> bytes | None:
    """The bytes of a JPEG for the sampled Pillow decode, or None when the source is not a JPEG.

    Handing Pillow all the bytes at once lets it decode in one call (one GIL release) instead of
    one per 64 KiB read from the file: about 5 % of the decode on the photo corpus. Files over
    :data:`_JPEG_READ_LIMIT` are left to libvips, which streams them.
    """
    if isinstance(source, bytes):
        return source if source[:3] == _JPEG_MAGIC else None
    try:
        with open(source, "rb") as fh:
            if fh.read(3) != _JPEG_MAGIC or os.fstat(fh.fileno()).st_size > _JPEG_READ_LIMIT:
                return None
            fh.seek(0)
            return fh.read()
    except OSError:
        return None


def _dc_pixels(width: int, height: int) -> int:
    """Pixels of a JPEG's 1/8-scale image: one per 8x8 block."""
    return ((width + 7) // 8) * ((height + 7) // 8)


def _pillow_jpeg(source: bytes, label: str, budget: int, max_pixels: int) -> Decoded | None:
    """Sampled JPEG decode through Pillow's ``draft`` (libjpeg DCT scaling).

    Measured faster than libvips' shrink-on-load for the small outputs a palette needs
    (benchmarks/bench_speed.py, ``test_decode_budget``). A progressive JPEG whose 1/8-scale
    image holds at least a quarter of the budget is read from its DC scans alone by the core
    (``_core.jpeg_dc``): 8-13x faster than libjpeg here, which decodes every AC scan even at
    1/8 scale; the same luma, chroma of 4:2:0 files one 16x16 block coarser. Only for plain
    RGB or gray JPEGs in sRGB; anything needing color management, and anything Pillow will not
    open, goes through libvips. Returns None to say "use libvips".
    """
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(source))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError):
        return None
    with img:
        width, height = img.size
        _check_pixels(width, height, max_pixels)
        icc = img.info.get("icc_profile")
        if img.format != "JPEG" or img.mode not in ("RGB", "L") or (icc and not _is_srgb_profile(icc)):
            return None
        if width * height <= budget:
            return None
        if img.info.get("progressive") and _dc_pixels(width, height) >= budget // 4:
            try:
                dc = _core.jpeg_dc(source)
            except ValueError:
                pass  # a progressive file the DC reader does not handle: libjpeg decodes it
            else:
                return Decoded(width, height, iter([dc]))
        scale = _jpeg_scale(width, height, budget)
        img.draft(img.mode, (max(1, width // scale), max(1, height // scale)))
        # All the bytes in one decoder call: one GIL release instead of one per 64 KiB.
        img.decodermaxblock = max(img.decodermaxblock, len(source))
        try:
            pixels = np.asarray(img)
        except (OSError, SyntaxError, ValueError) as err:
            raise DecodeError(f"{label}: cannot decode image: {err}") from None
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    step = _subsample_step(pixels.shape[0] * pixels.shape[1], budget * 2)
    return Decoded(width, height, iter([pixels[::step, ::step] if step > 1 else pixels]))


def _vips_open(source: str | bytes, **options: Any) -> pyvips.Image:
    if isinstance(source, str):
        return pyvips.Image.new_from_file(source, **options)
    return pyvips.Image.new_from_buffer(source, "", **options)


def _describe_vips_error(err: pyvips.Error) -> str:
    detail = (getattr(err, "detail", "") or str(err)).strip().splitlines()
    return detail[-1] if detail else "unknown libvips error"


def _from_vips_source(source: str | bytes, label: str, exact: bool, budget: int,
                      max_pixels: int) -> Decoded:
    jpeg = None if exact else _jpeg_bytes(source)
    if jpeg is not None:
        fast = _pillow_jpeg(jpeg, label, budget, max_pixels)
        if fast is not None:
            return fast
    try:
        header = _vips_open(source, access="sequential")
    except pyvips.Error as err:
        message = _describe_vips_error(err)
        if "not a known" in message or "not in a known format" in message or "is not a known file format" in message:
            raise UnsupportedFormatError(f"{label}: not a supported image format") from None
        raise DecodeError(f"{label}: cannot read image header: {message}") from None
    width, height = header.width, header.height
    _check_pixels(width, height, max_pixels)
    loader = header.get("vips-loader")
    if loader.startswith("heifload") and header.get("heif-compression") == "hevc":
        return _heic(source, label, exact, budget)
    options: dict[str, Any] = {"access": "sequential", "fail_on": "truncated"}
    pixels = width * height
    if not exact and pixels > budget:
        factor = math.sqrt(pixels / budget)
        if loader.startswith("jpegload"):
            # libjpeg scales by 1/2, 1/4, 1/8 while decoding; subsample the rest.
            options["shrink"] = _jpeg_scale(width, height, budget)
        elif loader.startswith("webpload"):
            options["scale"] = 1.0 / factor
    try:
        im = _to_srgb8(_vips_open(source, **options))
        whole = (im.width, im.height) == (width, height)
        if not exact and im.width * im.height > budget * 2:
            step = _subsample_step(im.width * im.height, budget)
            im = im.subsample(step, step)
            whole = False
    except pyvips.Error as err:
        raise DecodeError(f"{label}: cannot decode image: {_describe_vips_error(err)}") from None

    def every_pixel() -> Iterator[Pixels]:
        try:
            full = _to_srgb8(_vips_open(source, access="sequential", fail_on="truncated"))
        except pyvips.Error as err:
            raise DecodeError(f"{label}: cannot decode image: {_describe_vips_error(err)}") from None
        return _vips_strips(full, label)

    return Decoded(width, height, _vips_strips(im, label), None if whole else every_pixel)


def _heic(source: str | bytes, label: str, exact: bool, budget: int) -> Decoded:
    """HEIC (HEVC in HEIF, what phones save): libvips reads the container but ships no HEVC
    decoder, so pillow-heif decodes it (its wheels carry libde265). Rotation and mirroring
    stored in the file are applied; an embedded ICC profile (Display P3 on iPhones) is
    converted to sRGB like any other format's."""
    import io

    import pillow_heif

    try:
        heif = pillow_heif.open_heif(source if isinstance(source, str) else io.BytesIO(source),
                                     convert_hdr_to_8bit=True)
        pixels = np.asarray(heif)
    except (ValueError, OSError, RuntimeError) as err:
        raise DecodeError(f"{label}: cannot decode image: {err}") from None
    icc = heif.info.get("icc_profile")
    if icc and not _is_srgb_profile(icc):
        try:
            im = pyvips.Image.new_from_array(pixels).copy(interpretation="srgb")
            im.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
            im = _to_srgb8(im)
            pixels = np.ndarray(buffer=im.write_to_memory(), dtype=np.uint8,
                                shape=(im.height, im.width, im.bands))
        except pyvips.Error as err:
            raise DecodeError(f"{label}: cannot convert its colors: {_describe_vips_error(err)}") from None
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    height, width = pixels.shape[:2]
    step = 1 if exact else _subsample_step(width * height, budget)
    if step == 1:
        return Decoded(width, height, iter([pixels]))
    return Decoded(width, height, iter([pixels[::step, ::step]]), lambda: iter([pixels]))


def _vips_strips(im: pyvips.Image, label: str) -> Iterator[Pixels]:
    """Strips of ``im`` computed in the calling thread, strictly top to bottom.

    Images are opened with sequential access, so the loader can only move forward. libvips'
    threaded sinks (``write_to_memory`` and friends) hand output tiles to several worker threads;
    behind ``subsample`` each tile needs input lines far apart, and the workers' requests then
    reach the loader out of order ("out of order read at line N"), at random. One region
    fetched by one thread in row order cannot do that, and is as fast here: the loaders
    (libpng, libtiff) decode on one thread anyway, and callers run images in parallel.
    """
    width, height, bands = im.width, im.height, im.bands
    rows = max(1, min(height, STRIP_BYTES // max(1, width * bands)))
    try:
        region = pyvips.Region.new(im)
        for top in range(0, height, rows):
            n = min(rows, height - top)
            data = region.fetch(0, top, width, n)
            yield np.frombuffer(data, dtype=np.uint8).reshape(n, width, bands)
    except pyvips.Error as err:
        raise DecodeError(f"{label}: cannot decode image: {_describe_vips_error(err)}") from None


def decode(source: Any, *, exact: bool, pixel_budget: int, max_pixels: int) -> Decoded:
    """Open any supported source as 8-bit sRGB strips (see ``palette_native.extract``)."""
    if isinstance(source, np.ndarray):
        return _from_array(source, exact, pixel_budget, max_pixels)
    if isinstance(source, pyvips.Image):
        _check_pixels(source.width, source.height, max_pixels)
        try:
            im = _to_srgb8(source)
            if not exact and im.width * im.height > pixel_budget:
                step = _subsample_step(im.width * im.height, pixel_budget)
                im = im.subsample(step, step)
        except pyvips.Error as err:
            raise DecodeError(f"pyvips image: {_describe_vips_error(err)}") from None
        return Decoded(source.width, source.height, _vips_strips(im, "pyvips image"))
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise DecodeError(f"{path}: no such file", code="file_not_found")
        return _from_vips_source(path, path, exact, pixel_budget, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise DecodeError("empty input: no image bytes", code="empty_input")
        return _from_vips_source(data, "image bytes", exact, pixel_budget, max_pixels)
    if hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise BadParameterError("file objects must be opened in binary mode")
        if not data:
            raise DecodeError("empty input: no image bytes", code="empty_input")
        label = str(getattr(source, "name", "file object"))
        return _from_vips_source(bytes(data), label, exact, pixel_budget, max_pixels)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None  # type: ignore[assignment]
    if Image is not None and isinstance(source, Image.Image):
        return _from_pil(source, exact, pixel_budget, max_pixels)
    raise BadParameterError(
        "source must be a path, bytes, a binary file object, a NumPy uint8 array, a PIL image "
        f"or a pyvips image; got {type(source).__name__}"
    )

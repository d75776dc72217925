"""The contenders and the yardsticks: palette extractors, decode-only paths, CIEDE2000 scoring.

Every extractor takes a file path and K and returns the palette as a ``(n, 3)`` uint8 sRGB
array, so that all of them are scored the same way (:func:`mean_delta_e2000`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyvips
from PIL import Image

__all__ = [
    "DECODERS",
    "EXTRACTORS",
    "Extractor",
    "RGBArray",
    "decode_pillow_draft",
    "decode_pyvips_shrink",
    "decode_pyvips_thumbnail",
    "kmeans_lab_palette",
    "mean_delta_e2000",
    "render_512",
    "render_full",
    "shrink_factor",
    "weighted_pixels",
]

RGBArray = npt.NDArray[np.uint8]
Extractor = Callable[[Path, int], RGBArray]

# libvips caches operations, file loads included: repeated timings of one file would measure the
# cache, not the decoder. Every benchmark process imports this module, so turn it off here.
pyvips.cache_set_max(0)

_JPEG_SCALES = (8, 4, 2, 1)


def shrink_factor(width: int, height: int, budget: int) -> int:
    """The largest JPEG DCT scale (1/8, 1/4, 1/2, 1) that still keeps >= budget pixels.

    Both decode-only baselines use it, so they produce the same pixels as each other.
    """
    for scale in _JPEG_SCALES:
        if math.ceil(width / scale) * math.ceil(height / scale) >= budget:
            return scale
    return 1


# --------------------------------------------------------------------------- decode-only paths
def decode_pillow_draft(path: Path, budget: int) -> RGBArray:
    """Pillow: JPEG ``draft`` (DCT scaling in libjpeg) to the budget, then full load."""
    with Image.open(path) as im:
        scale = shrink_factor(im.width, im.height, budget)
        # Pillow picks the scale from floor(original / requested), so ask for floor sizes.
        im.draft("RGB", (max(1, im.width // scale), max(1, im.height // scale)))
        return np.asarray(im.convert("RGB"))


def decode_pyvips_shrink(path: Path, budget: int) -> RGBArray:
    """pyvips: JPEG shrink-on-load by the same DCT scale, sequential access."""
    header = pyvips.Image.new_from_file(str(path))
    scale = shrink_factor(header.width, header.height, budget)
    image = pyvips.Image.new_from_file(str(path), shrink=scale, access="sequential")
    return np.ndarray(
        buffer=image.write_to_memory(),
        dtype=np.uint8,
        shape=(image.height, image.width, image.bands),
    )


def decode_pyvips_thumbnail(path: Path, budget: int) -> RGBArray:
    """pyvips ``thumbnail``: shrink-on-load plus an exact resize to about ``budget`` pixels."""
    header = pyvips.Image.new_from_file(str(path))
    side = max(
        1,
        round(
            max(header.width, header.height) * math.sqrt(budget / (header.width * header.height))
        ),
    )
    image = pyvips.Image.thumbnail(str(path), side, height=side, size="down")
    return np.ndarray(
        buffer=image.write_to_memory(),
        dtype=np.uint8,
        shape=(image.height, image.width, image.bands),
    )


DECODERS: dict[str, Callable[[Path, int], RGBArray]] = {
    "pillow-draft": decode_pillow_draft,
    "pyvips-shrink": decode_pyvips_shrink,
    "pyvips-thumbnail": decode_pyvips_thumbnail,
}


# --------------------------------------------------------------------------- extractors
def _pillow_palette(image: Image.Image) -> RGBArray:
    colors = image.getcolors(maxcolors=256) or []
    used = sorted(index for _count, index in colors)
    flat = np.asarray(image.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
    return flat[used]


def pillow_octree(path: Path, colors: int) -> RGBArray:
    with Image.open(path) as im:
        return _pillow_palette(im.convert("RGB").quantize(colors, Image.Quantize.FASTOCTREE))


def pillow_median_cut(path: Path, colors: int) -> RGBArray:
    with Image.open(path) as im:
        return _pillow_palette(im.convert("RGB").quantize(colors, Image.Quantize.MEDIANCUT))


def fast_colorthief_palette(path: Path, colors: int) -> RGBArray:
    import fast_colorthief

    return np.asarray(fast_colorthief.get_palette(str(path), colors), dtype=np.uint8)


def libimagequant_palette(path: Path, colors: int) -> RGBArray:
    import imagequant

    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    # The raw-bytes entry point: the PIL helper uses a Pillow API deprecated in Pillow 12+.
    indices, palette = imagequant.quantize_raw_rgba_bytes(
        rgba.tobytes(), rgba.width, rgba.height, dithering_level=0.0, max_colors=colors
    )
    used = np.unique(np.frombuffer(indices, dtype=np.uint8))
    return np.asarray(palette, dtype=np.uint8).reshape(-1, 4)[used, :3]


def palette_native_palette(path: Path, colors: int) -> RGBArray:
    import palette_native

    palette = palette_native.extract(path, colors=colors)
    return np.asarray([c.rgb for c in palette.colors], dtype=np.uint8)


EXTRACTORS: dict[str, Extractor] = {
    "palette_native": palette_native_palette,
    "pillow-octree": pillow_octree,
    "pillow-mediancut": pillow_median_cut,
    "fast-colorthief": fast_colorthief_palette,
    "libimagequant": libimagequant_palette,
}


# --------------------------------------------------------------------------- quality scoring
def render_512(path: Path) -> RGBArray:
    """The common rendering every photo's palette is scored on: long side 512 px, sRGB, 8-bit."""
    # Color-managed like palette_native (an embedded profile to sRGB, perceptual intent): a
    # reference that read Adobe RGB values as sRGB would score palettes against wrong colors.
    image = pyvips.Image.thumbnail(
        str(path), 512, height=512, size="down", export_profile="srgb", intent="perceptual"
    )
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    return _srgb8_array(image)


def render_full(path: Path) -> RGBArray:
    """Every pixel of the file as 8-bit sRGB, alpha kept (RGBA) where the file has it.

    Artwork is scored at its own size: resampling it to a common size would blend flat colors
    into shades that are not in the file, and the reference would spend colors on them.
    """
    image = pyvips.Image.new_from_file(str(path))
    if image.get_typeof("icc-profile-data") != 0:
        image = image.icc_transform("srgb", embedded=True, intent="perceptual")
    return _srgb8_array(image)


def _srgb8_array(image: pyvips.Image) -> RGBArray:
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")  # gray, 16-bit, palette and CMYK files
    if image.format != "uchar":
        image = image.cast("uchar")
    return np.ndarray(
        buffer=image.write_to_memory(),
        dtype=np.uint8,
        shape=(image.height, image.width, image.bands),
    )


def weighted_pixels(
    rendering: RGBArray,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
    """RGB pixels with the weight each carries: its alpha (RGBA renderings), else 1. Pixels of
    weight 0 are left out."""
    pixels = rendering.reshape(-1, rendering.shape[-1])
    if pixels.shape[1] == 4:
        weights = pixels[:, 3].astype(np.float64) / 255.0
        keep = weights > 0
        return pixels[keep, :3], weights[keep]
    return pixels[:, :3], np.ones(len(pixels))


def _to_lab(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    from skimage.color import rgb2lab

    return rgb2lab(rgb.reshape(-1, 1, 3)).reshape(-1, 3)


def _distinct_colors(rendering: RGBArray) -> tuple[RGBArray, npt.NDArray[np.float64]]:
    """The rendering's distinct colors and the total weight of the pixels of each."""
    pixels, weights = weighted_pixels(rendering)
    packed = (
        (pixels[:, 0].astype(np.uint32) << 16)
        | (pixels[:, 1].astype(np.uint32) << 8)
        | pixels[:, 2]
    )
    unique, index = np.unique(packed, return_inverse=True)
    totals = np.bincount(index.reshape(-1), weights=weights, minlength=len(unique))
    distinct = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], axis=1)
    return distinct.astype(np.uint8), totals


def mean_delta_e2000(rendering: RGBArray, palette: RGBArray) -> float:
    """Mean over pixels of the CIEDE2000 distance to the nearest palette color (by CIEDE2000),
    each pixel weighted by its alpha in an RGBA rendering."""
    from skimage.color import deltaE_ciede2000

    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) == 0:
        raise ValueError(f"palette must be a non-empty (n, 3) array, got shape {palette.shape}")
    # Score each distinct color once, weighted by its pixels: images repeat colors.
    distinct, totals = _distinct_colors(rendering)
    # float32 halves the cost and is far more precise than the ~0.01 differences that matter.
    lab = _to_lab(distinct).astype(np.float32)
    palette_lab = _to_lab(np.asarray(palette, dtype=np.uint8)).astype(np.float32)
    best = np.full(len(lab), np.inf, dtype=np.float32)
    for color in palette_lab:  # K passes over (n, 3): small memory, fully vectorised
        best = np.minimum(best, deltaE_ciede2000(lab, np.broadcast_to(color, lab.shape)))
    return float(np.average(best.astype(np.float64), weights=totals))


def _lab_to_rgb8(lab: npt.NDArray[np.float64]) -> RGBArray:
    from skimage.color import lab2rgb

    rgb = lab2rgb(lab.reshape(-1, 1, 3)).reshape(-1, 3)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def kmeans_lab_palette(rendering: RGBArray, colors: int, seed: int = 0) -> RGBArray:
    """Quality reference: scikit-learn k-means in CIELAB (k-means++, n_init=4) on the rendering,
    each pixel weighted by its alpha in an RGBA rendering.

    It runs on the distinct colors with their total weights, which is the same objective as
    running on every pixel (a pixel's color is all k-means sees of it) at a fraction of the cost.
    """
    from sklearn.cluster import KMeans

    distinct, totals = _distinct_colors(rendering)
    if len(distinct) <= colors:  # every color is its own cluster (k-means would warn)
        return distinct
    model = KMeans(n_clusters=colors, init="k-means++", n_init=4, random_state=seed)
    model.fit(_to_lab(distinct), sample_weight=totals)
    return _lab_to_rgb8(model.cluster_centers_)

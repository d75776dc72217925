"""``analyze``: quality score, salient subject and subject / background palettes in one pass.

One decode feeds everything (see ``_analysis_image``): the fine quality measures read the
analysis image (about a megapixel), and a reduction of it to at most 65,536 pixels (every
n-th pixel, like ``extract``'s sampling) gives the global statistics, the saliency map and
the pixels of the three palettes. The per-pixel work (quality sums, saliency, weights) runs in
the native core with the GIL released. The palettes come from the same engine as ``extract``:
for a photo, its histogram and clustering (as ``Histogram.palette`` calls them), for flat
artwork (few exact colors) ``extract`` itself. For a photo the whole palette reads every second
pixel of the reduction (about 16K), the subject and background palettes every fourth (about
4K) as RGBA whose alpha is the weight of each pixel, the saliency for the subject palette and
its complement for the background palette (times the image's own alpha, if it has one).
Flat artwork's palettes read the whole reduction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ._analysis_image import ANALYSIS_BUDGET, load_analysis_image
from . import _core
from ._api import EXACT_COLOR_LIMIT, TRANSPARENT_BELOW, _scratch, _to_palette, extract
from ._decode import DEFAULT_MAX_PIXELS, CancelCheck
from ._palette import Palette
from .errors import BadParameterError, CanceledError
from .quality import Quality, measure_quality
from .subject import Box, Subject, find_subject

__all__ = ["CROP_ASPECTS", "Analysis", "analyze"]

#: The palettes of a photo read every n-th pixel (along each axis) of the ~64K-pixel sample:
#: the whole palette about 16K pixels (measured against all the sample's pixels, its mean color
#: error is the same as a palette of the whole sample's: 3.24 Oklab x 100 over the benchmark
#: corpus at K = 8, at most 3.5 % more on one photo), the subject and background palettes,
#: whose pixels weigh their saliency, about 4K.
PALETTE_STEP = 2
WEIGHTED_STEP = 4
#: The crops ``Analysis.to_dict`` (and so the CLI's JSON) lists.
CROP_ASPECTS: tuple[str, ...] = ("1:1", "16:9")


@dataclass(frozen=True)
class Analysis:
    """What ``analyze`` found in one image."""

    width: int
    height: int
    quality: Quality
    subject: Subject
    palette: Palette
    """The whole image (every pixel counts by its alpha, as in ``extract``)."""
    subject_palette: Palette
    """Pixels weighted by their saliency: the subject's colors first."""
    background_palette: Palette
    """Pixels weighted by one minus their saliency."""
    analyzed_pixels: int
    """Pixels of the analysis image the quality measures looked at."""
    options: dict[str, Any] = field(default_factory=dict)

    def crop(self, aspect: str | float | tuple[float, float]) -> Box:
        """The largest ``(left, top, width, height)`` of ``aspect`` (e.g. ``"1:1"``,
        ``"16:9"``) that keeps the subject; see ``Subject.crop``."""
        return self.subject.crop(aspect)

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready data; ``crops`` holds the ``1:1`` and ``16:9`` boxes."""
        return {
            "width": self.width,
            "height": self.height,
            "quality": self.quality.to_dict(),
            "subject": self.subject.to_dict(),
            "crops": {aspect: list(self.crop(aspect)) for aspect in CROP_ASPECTS},
            "palette": self.palette.to_dict(),
            "subject_palette": self.subject_palette.to_dict(),
            "background_palette": self.background_palette.to_dict(),
            "analyzed_pixels": self.analyzed_pixels,
            "options": dict(self.options),
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _check_colors(colors: Any) -> int:
    if isinstance(colors, bool) or not isinstance(colors, (int, np.integer)):
        raise BadParameterError(f"colors must be an integer, got {type(colors).__name__}")
    if not 1 <= int(colors) <= 256:
        raise BadParameterError(f"colors must be between 1 and 256, got {colors}",
                                parameter="colors", minimum=1, maximum=256, value=int(colors))
    return int(colors)


def _is_flat_artwork(pixels: npt.NDArray[np.uint8]) -> bool:
    """Whether the pixels hold few exact colors, which ``extract`` clusters as they are (a
    photo passes the limit within a few thousand pixels, where the check stops)."""
    colors: _core.ColorSet = _scratch(("analyze", "colors"),
                                      lambda: _core.ColorSet(EXACT_COLOR_LIMIT))
    return bool(colors.add(pixels, TRANSPARENT_BELOW, True))


def _histogram_palette(pixels: npt.NDArray[np.uint8], k: int, *, width: int, height: int,
                       options: dict[str, Any]) -> Palette:
    """The palette of pixels that weigh their alpha (if they have one) from the histogram and
    clustering ``extract`` uses for photos, called as ``Histogram.palette`` calls them.

    Partly transparent pixels make the histogram clear all its cells afterwards, where opaque
    ones leave few to clear, so the two kinds get a histogram each."""
    partly = pixels.ndim == 3 and pixels.shape[2] in (2, 4)
    histogram: _core.Histogram = _scratch(("analyze", "weighted" if partly else "opaque"),
                                          lambda: _core.Histogram(False))
    histogram.add(pixels, TRANSPARENT_BELOW, True)
    return _to_palette(_core.build_palette(histogram, k), width=width, height=height,
                       pixels=int(histogram.pixels),
                       transparent=int(histogram.transparent_pixels), options=options)


def analyze(
    source: Any,
    colors: int = 8,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    should_cancel: CancelCheck = None,
) -> Analysis:
    """Quality, subject and palettes of one image (any ``extract`` source; same errors).

    ``colors`` is the size of each of the three palettes. ``should_cancel`` is polled
    between the stages. Deterministic: the same image and options give the same result.
    """
    k = _check_colors(colors)
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or (
            max_pixels < 1):
        raise BadParameterError("max_pixels must be a positive integer", parameter="max_pixels")

    def check_cancel() -> None:
        if should_cancel is not None and should_cancel():
            raise CanceledError("canceled by the caller")

    check_cancel()
    image = load_analysis_image(source, max_pixels=int(max_pixels))
    check_cancel()
    rgb = image.rgb
    small = image.sample
    quality = measure_quality(rgb, small, scale=image.scale,
                              source_pixels=image.width * image.height,
                              jpeg_quality=image.jpeg_quality)
    check_cancel()
    subject = find_subject(small, image.width, image.height)
    check_cancel()
    seen = small if image.sample_alpha is None else np.dstack([small, image.sample_alpha])
    flat = _is_flat_artwork(seen)
    front, back = _core.saliency_weighted(seen, subject.saliency, 1 if flat else WEIGHTED_STEP)
    if flat:
        # Few exact colors: extract clusters those rather than histogram cells.
        whole, in_front, behind = (replace(extract(pixels, k), width=image.width,
                                           height=image.height) for pixels in (seen, front, back))
    else:
        whole, in_front, behind = (
            _histogram_palette(pixels, k, width=image.width, height=image.height,
                               options={"colors": k})
            for pixels in (seen[::PALETTE_STEP, ::PALETTE_STEP], front, back))
    return Analysis(
        width=image.width,
        height=image.height,
        quality=quality,
        subject=subject,
        palette=whole,
        subject_palette=in_front,
        background_palette=behind,
        analyzed_pixels=int(rgb.shape[0] * rgb.shape[1]),
        options={"colors": k, "analysis_budget": ANALYSIS_BUDGET, "max_pixels": int(max_pixels)},
    )

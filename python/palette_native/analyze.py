"""``analyze``: quality score, salient subject and subject / background palettes in one pass.

One decode feeds everything (see ``_analysis_image``): the fine quality measures read the
analysis image (about a megapixel), and a reduction of it to at most 65,536 pixels (every
n-th pixel, like ``extract``'s sampling) gives the global statistics, the saliency map and
the pixels of the three palettes. The per-pixel work (quality sums, saliency, weights) runs in
the native core with the GIL released. The palettes come from the same engine as ``extract``:
the whole palette is ``extract`` of the reduction; for the subject and background palettes,
every second pixel of it (along each axis, about 16K pixels) is handed to the same histogram
and clustering (the public ``Histogram``) as an RGBA array whose alpha is the weight of each
pixel, the saliency for the subject palette and its complement for the background palette
(times the image's own alpha, if it has one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ._analysis_image import ANALYSIS_BUDGET, load_analysis_image
from . import _core
from ._api import Histogram, extract
from ._decode import DEFAULT_MAX_PIXELS, CancelCheck
from ._palette import Palette
from .errors import BadParameterError, CanceledError
from .quality import Quality, measure_quality
from .subject import Box, Subject, find_subject

__all__ = ["CROP_ASPECTS", "Analysis", "analyze"]

#: The subject and background palettes read every n-th pixel (along each axis) of the sample
#: the whole palette reads: about 16K pixels, plenty for a few colors.
WEIGHTED_STEP = 2
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


def _weighted_palette(rgba: npt.NDArray[np.uint8], k: int) -> Palette:
    """The palette of pixels that weigh their alpha, from the same histogram and clustering as
    ``extract`` (the public multi-image ``Histogram``)."""
    histogram = Histogram()
    histogram.add(rgba)
    return histogram.palette(k)


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
    whole = replace(extract(seen, k), width=image.width, height=image.height)
    front, back = _core.saliency_weighted(seen, subject.saliency, WEIGHTED_STEP)
    options = whole.options
    in_front, behind = (replace(_weighted_palette(pixels, k), width=image.width,
                                height=image.height, options=options) for pixels in (front, back))
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

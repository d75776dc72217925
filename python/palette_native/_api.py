"""The public entry points: extract, quantize and the streaming Histogram."""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._decode import DEFAULT_MAX_PIXELS, DEFAULT_PIXEL_BUDGET, CancelCheck, Decoded, Pixels, decode
from ._palette import Color, Metrics, Palette
from .errors import BadParameterError, CanceledError, PaletteError

__all__ = ["Histogram", "Quantized", "capabilities", "extract", "quantize", "set_isa"]

#: Keep decoded pixels for the exact-colors fallback only up to this many (bounded memory).
_FALLBACK_PIXELS = 1_000_000
#: Colors when neither ``colors`` nor ``max_delta_e`` says otherwise.
DEFAULT_COLORS = 8
#: The most colors ``max_delta_e`` may use unless ``colors`` says otherwise.
DEFAULT_COLORS_FOR_TARGET = 32
#: Pixels with alpha below this are reported as transparent when pixels are weighted by alpha.
TRANSPARENT_BELOW = 128
#: Up to this many exact colors in the analysed pixels, extract clusters the exact colors.
EXACT_COLOR_LIMIT = 4096
#: Flat artwork read from a sample is read again in full up to this many pixels.
FULL_READ_PIXELS = 16_000_000
#: Center moves of the k-median local search on exact colors, per palette color.
SWAP_ROUNDS_PER_COLOR = 2


def _cell_swap_rounds(k: int) -> int:
    """Center moves of the local search on histogram cells (photos). Up to K = 16 the cell
    pipeline alone is at 0.97-0.99x k-means on the photo corpus and the search would only cost
    time; at K = 32 four moves take it from 1.008x to 0.999x for about 0.8 ms."""
    return 4 if k > 16 else 0


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BadParameterError(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= int(value) <= high:
        raise BadParameterError(f"{name} must be between {low} and {high}, got {value}",
                                parameter=name, minimum=low, maximum=high, value=int(value))
    return int(value)


def _check_fraction(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadParameterError("max_color_fraction must be a number between 0 and 1")
    if not 0.0 < float(value) <= 1.0:
        raise BadParameterError(f"max_color_fraction must be in (0, 1], got {value}",
                                parameter="max_color_fraction", value=value)
    return float(value)


def _options(colors: Any, exact: bool, pixel_budget: Any, max_pixels: Any
             ) -> tuple[int, int, int]:
    k = _check_int("colors", colors, 1, 256)
    budget = DEFAULT_PIXEL_BUDGET if pixel_budget is None else _check_int(
        "pixel_budget", pixel_budget, 1024, 1 << 40)
    limit = _check_int("max_pixels", max_pixels, 1, 1 << 40)
    if not isinstance(exact, bool):
        raise BadParameterError("exact must be True or False")
    return k, budget, limit


def _alpha(alpha_threshold: Any) -> tuple[int, bool]:
    """(threshold, weight_by_alpha): ``None`` weighs each pixel by its alpha and reports pixels
    under :data:`TRANSPARENT_BELOW` as transparent; a number is the old cut."""
    if alpha_threshold is None:
        return TRANSPARENT_BELOW, True
    return _check_int("alpha_threshold", alpha_threshold, 0, 255), False


def _to_palette(result: Any, *, width: int, height: int, pixels: int, transparent: int,
                options: dict[str, Any]) -> Palette:
    total = int(result.total_weight)
    colors = [
        Color(rgb=(int(r), int(g), int(b)), population=round(int(n) / _core.OPAQUE_WEIGHT),
              fraction=(int(n) / total) if total else 0.0)
        for (r, g, b), n in zip(result.colors, result.population)
    ]
    return Palette(
        colors=colors,
        metrics=Metrics(mse=result.mse, psnr=result.psnr, delta_e_mean=result.delta_e_mean,
                        delta_e_p95=result.delta_e_p95),
        width=width,
        height=height,
        analyzed_pixels=pixels,
        transparent_fraction=(transparent / pixels) if pixels else 0.0,
        reason=result.reason or None,
        options=options,
    )


def _unique_colors(strips: list[Pixels], alpha_threshold: int, weight_by_alpha: bool
                   ) -> tuple[Any, Any]:
    """Every exact color of ``strips`` with its weight (1/255 pixel units), like the core's."""
    packed_parts, weight_parts = [], []
    for s in strips:
        c = s.shape[2]
        rgb = np.repeat(s[:, :, :1], 3, axis=2) if c in (1, 2) else s[:, :, :3]
        if c in (1, 3):
            weight = np.full(s.shape[:2], _core.OPAQUE_WEIGHT, np.uint64)
        elif weight_by_alpha:
            weight = s[:, :, c - 1].astype(np.uint64)
        else:
            weight = np.where(s[:, :, c - 1] >= alpha_threshold, _core.OPAQUE_WEIGHT, 0)
        keep = weight > 0
        px = rgb[keep].astype(np.uint32)
        packed_parts.append(px[:, 0] | (px[:, 1] << 8) | (px[:, 2] << 16))
        weight_parts.append(weight[keep].astype(np.uint64))
    packed = np.concatenate(packed_parts) if packed_parts else np.zeros(0, np.uint32)
    weights = np.concatenate(weight_parts) if weight_parts else np.zeros(0, np.uint64)
    values, index = np.unique(packed, return_inverse=True)
    totals = np.bincount(index, weights=weights.astype(np.float64), minlength=len(values))
    colors = np.stack([values & 255, (values >> 8) & 255, (values >> 16) & 255], axis=1)
    return np.ascontiguousarray(colors, dtype=np.uint8), totals.round().astype(np.uint64)


_local = threading.local()


def _scratch(key: Any, make: Any) -> Any:
    """A native accumulator reused per thread: its memory stays mapped and warm instead of
    being allocated (and page-faulted) again for every image. Returned cleared."""
    cache: dict[Any, Any] = _local.__dict__.setdefault("scratch", {})
    item = cache.get(key)
    if item is None:
        item = cache[key] = make()
    else:
        item.clear()
    return item


def _scratch_histogram(track_members: bool) -> _core.Histogram:
    return _scratch(("histogram", track_members), lambda: _core.Histogram(track_members))  # type: ignore[no-any-return]


def _flat_colors(sample: _core.ColorSet, decoded: Decoded, threshold: int, weighted: bool,
                 should_cancel: CancelCheck) -> _core.ColorSet | None:
    """The exact colors to cluster when the image is flat artwork (else None).

    A sample with few exact colors marks flat artwork. Its rare colors (a legend swatch, an
    accent) matter and a sample under-counts or misses them, so a sampled image is read again
    in full, up to :data:`FULL_READ_PIXELS`; photos never pass the limit and never pay for this.
    """
    if sample.overflowed:
        return None
    if decoded.reread is None or decoded.width * decoded.height > FULL_READ_PIXELS:
        return sample
    every: _core.ColorSet = _scratch("all colors", lambda: _core.ColorSet(EXACT_COLOR_LIMIT))
    for strip in decoded.reread():
        if should_cancel is not None and should_cancel():
            raise CanceledError("canceled by the caller")
        if not every.add(strip, threshold, weighted):
            return sample  # more exact colors in full than in the sample: keep the sample's
    return every


def extract(
    source: Any,
    colors: int | None = None,
    *,
    max_delta_e: float | None = None,
    exact: bool = False,
    pixel_budget: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    alpha_threshold: int | None = None,
    max_color_fraction: float | None = None,
    snap: bool = False,
    should_cancel: CancelCheck = None,
) -> Palette:
    """The palette of one image: exactly ``colors`` distinct colors (8 by default), ordered by
    population.

    ``source`` is a path, bytes, a binary file object, a NumPy uint8 array (HxW or HxWxC with
    C in 1..4), a PIL image or a pyvips image. Unless ``exact``, about ``pixel_budget`` pixels
    are analysed (shrink-on-load). Each pixel counts in proportion to its alpha (what it shows
    of its color); pixels with alpha under 128 are reported in ``transparent_fraction``. With
    ``alpha_threshold`` set, pixels below it are ignored instead and the rest count in full.
    ``max_color_fraction`` caps any single color's weight while clustering (a flat background
    cannot take the whole palette); ``snap`` makes every color a real image color.
    ``should_cancel`` is polled between strips.

    With ``max_delta_e``, the palette has the fewest colors (up to ``colors``, 32 by default)
    whose mean color error (``metrics.delta_e_mean``, Oklab distance x 100) is at most that
    target, and one color fewer would miss it; if even ``colors`` miss it, that palette comes
    back with ``reason`` saying so.

    Images with few exact colors (flat artwork: charts, UI screens, logos, pixel art) are
    clustered on those exact colors; photos on the histogram's cells.
    """
    target = _check_target(max_delta_e)
    default_k = DEFAULT_COLORS if target is None else DEFAULT_COLORS_FOR_TARGET
    k, budget, limit = _options(default_k if colors is None else colors, exact, pixel_budget,
                                max_pixels)
    threshold, weighted = _alpha(alpha_threshold)
    cap = _check_fraction(max_color_fraction)
    decoded = decode(source, exact=exact, pixel_budget=budget, max_pixels=limit)
    hist = _scratch_histogram(bool(snap))
    exact_colors: _core.ColorSet = _scratch("colors", lambda: _core.ColorSet(EXACT_COLOR_LIMIT))
    kept: list[Pixels] | None = []
    kept_pixels = 0
    probing = True
    for strip in decoded.strips:
        if should_cancel is not None and should_cancel():
            raise CanceledError("canceled by the caller")
        hist.add(strip, threshold, weighted)
        if probing:
            # A photo passes the limit within a few thousand pixels: a sparse look at the first
            # strip finds that out for a sixteenth of the work (artwork then gets counted whole).
            probing = False
            if exact_colors.add(strip[::4, ::4], threshold, weighted):
                exact_colors.clear()
        if not exact_colors.overflowed:
            exact_colors.add(strip, threshold, weighted)
        if kept is not None:
            kept_pixels += strip.shape[0] * strip.shape[1]
            if kept_pixels <= _FALLBACK_PIXELS:
                kept.append(strip)
            else:
                kept = None
    flat = _flat_colors(exact_colors, decoded, threshold, weighted, should_cancel)
    if flat is not None:
        # Flat artwork: cluster its exact colors (cells would merge close shades).
        table, weights = flat.colors()
        pixels, transparent = int(flat.pixels), int(flat.transparent_pixels)

        def palette_of(n: int) -> Any:
            return _core.build_palette_from_colors(table, weights, n, bool(snap), cap, 64,
                                                   SWAP_ROUNDS_PER_COLOR * n)
    else:
        pixels, transparent = int(hist.pixels), int(hist.transparent_pixels)
        fallback: list[Any] = []

        def palette_of(n: int) -> Any:
            result = _core.build_palette(hist, n, bool(snap), cap, 64, _cell_swap_rounds(n))
            if len(result.colors) < n and kept:
                # Fewer histogram cells than colors asked for: cells may still hold several
                # exact colors, so cluster the exact colors instead.
                if not fallback:
                    fallback.append(_unique_colors(kept, threshold, weighted))
                table, weights = fallback[0]
                if len(table) > len(result.colors):
                    result = _core.build_palette_from_colors(table, weights, n, bool(snap), cap, 64)
            return result

    options: dict[str, Any] = {
        "colors": k, "exact": exact, "pixel_budget": budget, "alpha_threshold": alpha_threshold,
        "max_color_fraction": max_color_fraction, "snap": bool(snap)}
    reason = None
    if target is None:
        result = palette_of(k)
    else:
        options["max_delta_e"] = target
        result, reason = _fewest_colors(palette_of, k, target)
    palette = _to_palette(result, width=decoded.width, height=decoded.height, pixels=pixels,
                          transparent=transparent, options=options)
    if reason is not None:
        palette = dataclasses.replace(palette, reason=reason)
    return palette


def _check_target(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise BadParameterError(f"max_delta_e must be a number above 0, got {value!r}",
                                parameter="max_delta_e")
    return float(value)


def _fewest_colors(palette_of: Any, most: int, target: float) -> tuple[Any, str | None]:
    """The palette with the fewest colors (1..most) whose mean ΔE meets ``target`` while one
    color fewer does not. Sizes double from 1 until one meets the target, then a binary search
    between the last size that missed and the first that met keeps "n - 1 misses, n meets" at
    its ends: the answer has that property even where more colors do not always mean less
    error (a few more colors than the histogram has cells switch to exact colors, whose error
    is measured more finely)."""
    low = 0  # known to miss: no colors miss everything
    size = 1
    while True:
        size = min(size, most)
        result = palette_of(size)
        if result.delta_e_mean <= target:
            high, best = size, result
            break
        if size == most:
            return result, f"the target mean ΔE {target:g} needs more than {most} colors"
        low, size = size, size * 2
    while high - low > 1:
        middle = (low + high) // 2
        result = palette_of(middle)
        if result.delta_e_mean <= target:
            high, best = middle, result
        else:
            low = middle
    return best, None


@dataclass(frozen=True)
class Quantized:
    """An image mapped to a palette: ``indices`` (HxW uint8) into ``palette.colors``.

    Transparent pixels (if any) get index ``len(palette.colors)``.
    """

    indices: npt.NDArray[np.uint8]
    palette: Palette
    has_transparency: bool

    def save_png(self, path: str | os.PathLike[str]) -> None:
        """Write an indexed (palette) PNG."""
        from PIL import Image

        h, w = self.indices.shape
        img = Image.frombytes("P", (w, h), self.indices.tobytes())
        flat = [v for c in self.palette.colors for v in c.rgb]
        if self.has_transparency:
            flat += [0, 0, 0]
        img.putpalette(flat)
        extra = {"transparency": len(self.palette.colors)} if self.has_transparency else {}
        img.save(os.fspath(path), format="PNG", optimize=True, **extra)


def quantize(
    source: Any,
    colors: int = 8,
    *,
    dither: bool = False,
    output: str | os.PathLike[str] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    alpha_threshold: int = 128,
) -> Quantized:
    """Map an image (at full resolution) to its own ``colors``-color palette, optionally with
    Floyd-Steinberg dithering; with ``output`` also write an indexed PNG there."""
    k, _, limit = _options(colors, True, None, max_pixels)
    alpha = _check_int("alpha_threshold", alpha_threshold, 0, 255)
    decoded = decode(source, exact=True, pixel_budget=DEFAULT_PIXEL_BUDGET, max_pixels=limit)
    strips = list(decoded.strips)
    pixels = strips[0] if len(strips) == 1 else np.concatenate(strips, axis=0)
    hist = _core.Histogram(False)
    hist.add(pixels, alpha)
    result = _core.build_palette(hist, k, False, 0.0, 64)
    pal = _to_palette(result, width=decoded.width, height=decoded.height,
                      pixels=int(hist.pixels), transparent=int(hist.transparent_pixels),
                      options={"colors": k, "dither": dither, "alpha_threshold": alpha})
    if not pal.colors:
        raise PaletteError("the image has no opaque pixels to quantize", code="no_opaque_pixels")
    rgb = np.array([c.rgb for c in pal.colors], dtype=np.uint8)
    indices = _core.remap(pixels, rgb, bool(dither), alpha, len(pal.colors))
    out = Quantized(indices=indices, palette=pal, has_transparency=hist.transparent_pixels > 0)
    if output is not None:
        out.save_png(output)
    return out


class Histogram:
    """Accumulates pixels of many images (or strips) to take one shared palette.

    Safe to share between threads (adds are serialised).
    """

    def __init__(self, *, snap: bool = False, alpha_threshold: int | None = None) -> None:
        self._alpha, self._weighted = _alpha(alpha_threshold)
        self._alpha_option = alpha_threshold
        self._snap = bool(snap)
        self._hist = _core.Histogram(self._snap)
        self._lock = threading.Lock()
        self.images = 0

    def add(self, source: Any, *, exact: bool = False, pixel_budget: int | None = None,
            max_pixels: int = DEFAULT_MAX_PIXELS, should_cancel: CancelCheck = None) -> None:
        """Add one image (any ``extract`` source) or one strip (a NumPy array)."""
        _, budget, limit = _options(8, exact, pixel_budget, max_pixels)
        decoded = decode(source, exact=exact, pixel_budget=budget, max_pixels=limit)
        local = _scratch_histogram(self._snap)
        for strip in decoded.strips:
            if should_cancel is not None and should_cancel():
                raise CanceledError("canceled by the caller")
            local.add(strip, self._alpha, self._weighted)
        with self._lock:
            self._hist.merge(local)
            self.images += 1

    @property
    def pixels(self) -> int:
        return int(self._hist.pixels)

    def palette(self, colors: int = 8, *, max_color_fraction: float | None = None) -> Palette:
        k = _check_int("colors", colors, 1, 256)
        cap = _check_fraction(max_color_fraction)
        with self._lock:
            result = _core.build_palette(self._hist, k, self._snap, cap, 64)
            pixels, transparent = int(self._hist.pixels), int(self._hist.transparent_pixels)
        return _to_palette(result, width=0, height=0, pixels=pixels, transparent=transparent,
                           options={"colors": k, "images": self.images,
                                    "alpha_threshold": self._alpha_option,
                                    "max_color_fraction": max_color_fraction, "snap": self._snap})


def capabilities() -> dict[str, Any]:
    """Instruction-set paths: compiled into this build, supported by this CPU, active now."""
    return {"compiled": list(_core.compiled_isas()), "supported": list(_core.supported_isas()),
            "active": _core.active_isa()}


def set_isa(name: str) -> None:
    """Force the kernels onto one path (``"scalar"``, ``"avx2"``) or back to ``"best"``."""
    try:
        _core.set_isa(name)
    except ValueError as err:
        raise BadParameterError(str(err)) from None

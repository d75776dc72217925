"""The public entry points: extract, quantize and the streaming Histogram."""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _core
from ._decode import DEFAULT_MAX_PIXELS, DEFAULT_PIXEL_BUDGET, CancelCheck, Pixels, decode
from ._palette import Color, Metrics, Palette
from .errors import BadParameterError, CanceledError, PaletteError

__all__ = ["Histogram", "Quantized", "capabilities", "extract", "quantize", "set_isa"]

#: Keep decoded pixels for the exact-colors fallback only up to this many (bounded memory).
_FALLBACK_PIXELS = 1_000_000


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


def _options(colors: Any, exact: bool, pixel_budget: Any, max_pixels: Any,
             alpha_threshold: Any) -> tuple[int, int, int, int]:
    k = _check_int("colors", colors, 1, 256)
    budget = DEFAULT_PIXEL_BUDGET if pixel_budget is None else _check_int(
        "pixel_budget", pixel_budget, 1024, 1 << 40)
    limit = _check_int("max_pixels", max_pixels, 1, 1 << 40)
    alpha = _check_int("alpha_threshold", alpha_threshold, 0, 255)
    if not isinstance(exact, bool):
        raise BadParameterError("exact must be True or False")
    return k, budget, limit, alpha


def _to_palette(result: Any, *, width: int, height: int, transparent: int,
                options: dict[str, Any]) -> Palette:
    total = int(result.total_pixels)
    colors = [
        Color(rgb=(int(r), int(g), int(b)), population=int(n),
              fraction=(int(n) / total) if total else 0.0)
        for (r, g, b), n in zip(result.colors, result.population)
    ]
    analyzed = total + transparent
    return Palette(
        colors=colors,
        metrics=Metrics(mse=result.mse, psnr=result.psnr, delta_e_mean=result.delta_e_mean,
                        delta_e_p95=result.delta_e_p95),
        width=width,
        height=height,
        analyzed_pixels=analyzed,
        transparent_fraction=(transparent / analyzed) if analyzed else 0.0,
        reason=result.reason or None,
        options=options,
    )


def _unique_colors(strips: list[Pixels], alpha_threshold: int) -> tuple[Any, Any]:
    packed_parts = []
    for s in strips:
        c = s.shape[2]
        if c in (1, 2):
            rgb = np.repeat(s[:, :, :1], 3, axis=2)
        else:
            rgb = s[:, :, :3]
        keep = np.ones(s.shape[:2], bool) if c in (1, 3) else s[:, :, c - 1] >= alpha_threshold
        px = rgb[keep].astype(np.uint32)
        packed_parts.append(px[:, 0] | (px[:, 1] << 8) | (px[:, 2] << 16))
    packed = np.concatenate(packed_parts) if packed_parts else np.zeros(0, np.uint32)
    values, counts = np.unique(packed, return_counts=True)
    colors = np.stack([values & 255, (values >> 8) & 255, (values >> 16) & 255], axis=1)
    return np.ascontiguousarray(colors, dtype=np.uint8), counts.astype(np.uint64)


_local = threading.local()


def _scratch_histogram(track_members: bool) -> _core.Histogram:
    """A cleared native histogram reused per thread: its 2 MB of cells stay mapped and warm
    instead of being allocated (and page-faulted) again for every image."""
    cache: dict[bool, _core.Histogram] = _local.__dict__.setdefault("histograms", {})
    hist = cache.get(track_members)
    if hist is None:
        hist = cache[track_members] = _core.Histogram(track_members)
    else:
        hist.clear()
    return hist


def extract(
    source: Any,
    colors: int = 8,
    *,
    exact: bool = False,
    pixel_budget: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    alpha_threshold: int = 128,
    max_color_fraction: float | None = None,
    snap: bool = False,
    should_cancel: CancelCheck = None,
) -> Palette:
    """The palette of one image: exactly ``colors`` distinct colors, ordered by population.

    ``source`` is a path, bytes, a binary file object, a NumPy uint8 array (HxW or HxWxC with
    C in 1..4), a PIL image or a pyvips image. Unless ``exact``, about ``pixel_budget`` pixels
    are analysed (shrink-on-load). Pixels with alpha below ``alpha_threshold`` are ignored and
    counted in ``transparent_fraction``. ``max_color_fraction`` caps any single color's weight
    while clustering (a flat background cannot take the whole palette); ``snap`` makes every
    color a real image color. ``should_cancel`` is polled between strips.
    """
    k, budget, limit, alpha = _options(colors, exact, pixel_budget, max_pixels, alpha_threshold)
    cap = _check_fraction(max_color_fraction)
    decoded = decode(source, exact=exact, pixel_budget=budget, max_pixels=limit)
    hist = _scratch_histogram(bool(snap))
    kept: list[Pixels] | None = []
    kept_pixels = 0
    for strip in decoded.strips:
        if should_cancel is not None and should_cancel():
            raise CanceledError("canceled by the caller")
        hist.add(strip, alpha)
        if kept is not None:
            kept_pixels += strip.shape[0] * strip.shape[1]
            if kept_pixels <= _FALLBACK_PIXELS:
                kept.append(strip)
            else:
                kept = None
    result = _core.build_palette(hist, k, bool(snap), cap, 64)
    if len(result.colors) < k and kept:
        # Fewer histogram cells than colors asked for: cells may still hold several exact
        # colors, so cluster the exact colors instead.
        uniq, counts = _unique_colors(kept, alpha)
        if len(uniq) > len(result.colors):
            result = _core.build_palette_from_colors(uniq, counts, k, bool(snap), cap, 64)
    options = {"colors": k, "exact": exact, "pixel_budget": budget, "alpha_threshold": alpha,
               "max_color_fraction": max_color_fraction, "snap": bool(snap)}
    return _to_palette(result, width=decoded.width, height=decoded.height,
                       transparent=int(hist.transparent_pixels), options=options)


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
    k, _, limit, alpha = _options(colors, True, None, max_pixels, alpha_threshold)
    decoded = decode(source, exact=True, pixel_budget=DEFAULT_PIXEL_BUDGET, max_pixels=limit)
    strips = list(decoded.strips)
    pixels = strips[0] if len(strips) == 1 else np.concatenate(strips, axis=0)
    hist = _core.Histogram(False)
    hist.add(pixels, alpha)
    result = _core.build_palette(hist, k, False, 0.0, 64)
    pal = _to_palette(result, width=decoded.width, height=decoded.height,
                      transparent=int(hist.transparent_pixels),
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

    def __init__(self, *, snap: bool = False, alpha_threshold: int = 128) -> None:
        self._alpha = _check_int("alpha_threshold", alpha_threshold, 0, 255)
        self._snap = bool(snap)
        self._hist = _core.Histogram(self._snap)
        self._lock = threading.Lock()
        self.images = 0

    def add(self, source: Any, *, exact: bool = False, pixel_budget: int | None = None,
            max_pixels: int = DEFAULT_MAX_PIXELS, should_cancel: CancelCheck = None) -> None:
        """Add one image (any ``extract`` source) or one strip (a NumPy array)."""
        _, budget, limit, _ = _options(8, exact, pixel_budget, max_pixels, self._alpha)
        decoded = decode(source, exact=exact, pixel_budget=budget, max_pixels=limit)
        local = _scratch_histogram(self._snap)
        for strip in decoded.strips:
            if should_cancel is not None and should_cancel():
                raise CanceledError("canceled by the caller")
            local.add(strip, self._alpha)
        with self._lock:
            self._hist.merge(local)
            self.images += 1

    @property
    def pixels(self) -> int:
        return int(self._hist.opaque_pixels + self._hist.transparent_pixels)

    def palette(self, colors: int = 8, *, max_color_fraction: float | None = None) -> Palette:
        k = _check_int("colors", colors, 1, 256)
        cap = _check_fraction(max_color_fraction)
        with self._lock:
            result = _core.build_palette(self._hist, k, self._snap, cap, 64)
            transparent = int(self._hist.transparent_pixels)
        return _to_palette(result, width=0, height=0, transparent=transparent,
                           options={"colors": k, "images": self.images,
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

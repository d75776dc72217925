"""Properties of the native core: every ISA path equals the scalar reference, determinism,
exactly K distinct colors, populations that add up, and a released GIL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import palette_native as pn
from palette_native import _core

ISAS = pn.capabilities()["supported"]
# Every path besides the scalar reference that this build has; each is checked against scalar
# and skipped (with the reason) on a CPU that cannot run it, never compared with itself.
SIMD_ISAS = [isa for isa in pn.capabilities()["compiled"] if isa != "scalar"]


def _require(isa: str) -> None:
    if isa not in ISAS:
        pytest.skip(f"this CPU cannot run the {isa} kernels (supported: {ISAS})")


@pytest.fixture
def restore_isa() -> Iterator[None]:
    yield
    pn.set_isa("best")


def test_capabilities_report_paths() -> None:
    caps = pn.capabilities()
    assert caps["compiled"][0] == "scalar" and "scalar" in caps["supported"]
    assert caps["active"] == caps["supported"][-1]  # the best path is active by default
    assert set(caps["supported"]) <= set(caps["compiled"])


def test_forcing_paths(restore_isa: None) -> None:
    for isa in ISAS:
        pn.set_isa(isa)
        assert pn.capabilities()["active"] == isa
    with pytest.raises(pn.BadParameterError, match="unknown ISA"):
        pn.set_isa("sse9")


def _histogram_state(pixels: np.ndarray, isa: str, alpha: int = 128,
                     weighted: bool = False) -> tuple[object, ...]:
    pn.set_isa(isa)
    h = _core.Histogram(True)
    h.add(pixels, alpha, weighted)
    r = _core.build_palette(h, 8, False, 0.0, 64)
    s = _core.build_palette(h, 5, True, 0.0, 64)
    return (h.pixels, h.weight, h.transparent_pixels, h.distinct_cells, r.colors, r.population,
            r.mse, r.delta_e_mean, r.delta_e_p95, s.colors, s.population)


images = st.integers(1, 4).flatmap(
    lambda c: arrays(np.uint8, st.tuples(st.integers(1, 37), st.integers(1, 53), st.just(c)))
)


# Alpha drawn so that runs of 0 / 255 (the vector path) and partial values (the per-pixel path
# in weighted mode) both occur, in the same group of eight pixels too.
alphas = st.sampled_from([0, 255, 255, 1, 128, 254])


@pytest.mark.parametrize("isa", SIMD_ISAS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(img=images, alpha=st.integers(0, 255), step=st.integers(1, 3), weighted=st.booleans(),
       data=st.data())
def test_every_isa_path_matches_scalar(isa: str, img: np.ndarray, alpha: int, step: int,
                                       weighted: bool, data: st.DataObject) -> None:
    _require(isa)
    if img.shape[2] in (2, 4) and data.draw(st.booleans(), label="alpha from 0/255/partial"):
        plane = data.draw(arrays(np.uint8, img.shape[:2], elements=alphas), label="alpha plane")
        img = img.copy()
        img[..., -1] = plane
    alpha = max(alpha, 1) if weighted else alpha
    try:
        view = img[::step, ::step]  # strided reads as well as packed ones
        assert _histogram_state(view, isa, alpha, weighted) == _histogram_state(
            view, "scalar", alpha, weighted)
    finally:
        pn.set_isa("best")


@pytest.mark.parametrize("isa", SIMD_ISAS)
@pytest.mark.parametrize("weighted", [False, True], ids=["cut", "weighted"])
def test_isa_paths_agree_on_a_photo(photo: np.ndarray, restore_isa: None, isa: str,
                                    weighted: bool) -> None:
    _require(isa)
    cut = np.where(photo[..., 0] > 128, 255, 0).astype(np.uint8)
    soft = np.clip(photo[..., 1].astype(int) * 2 - 128, 0, 255).astype(np.uint8)
    for pixels in (photo, np.dstack([photo, cut]), np.dstack([photo, soft]), photo[..., 1]):
        assert _histogram_state(pixels, isa, 128, weighted) == _histogram_state(
            pixels, "scalar", 128, weighted)


@settings(max_examples=40, deadline=None)
@given(
    colors=st.lists(st.tuples(*[st.integers(0, 255)] * 3), min_size=1, max_size=40, unique=True),
    k=st.integers(1, 24),
    seed=st.integers(0, 2**32 - 1),
)
def test_exactly_k_distinct_colors_and_fractions_sum_to_one(
    colors: list[tuple[int, int, int]], k: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 50, len(colors))
    img = np.repeat(np.array(colors, np.uint8), counts, axis=0).reshape(1, -1, 3)
    pal = pn.extract(img, colors=k)
    assert len(pal.colors) == min(k, len(colors))
    assert len({c.rgb for c in pal.colors}) == len(pal.colors)
    assert sum(c.population for c in pal.colors) == counts.sum()
    assert sum(c.fraction for c in pal.colors) == pytest.approx(1.0)
    if len(colors) <= k:
        assert {c.rgb for c in pal.colors} == set(colors)
    assert pal.to_dict() == pn.extract(img, colors=k).to_dict()  # deterministic


@settings(max_examples=25, deadline=None)
@given(img=arrays(np.uint8, st.tuples(st.integers(2, 30), st.integers(2, 30), st.just(3))),
       k=st.integers(1, 12))
def test_snapped_colors_are_image_colors(img: np.ndarray, k: int) -> None:
    pal = pn.extract(img, colors=k, snap=True)
    real = {tuple(int(v) for v in p) for p in img.reshape(-1, 3)}
    assert all(c.rgb in real for c in pal.colors)
    assert len(pal.colors) == min(k, len(real))


def test_histogram_streams_and_merges(photo: np.ndarray) -> None:
    whole = pn.Histogram()
    whole.add(photo, exact=True)
    strips = pn.Histogram()
    for top in range(0, 512, 100):
        strips.add(photo[top:top + 100], exact=True)
    assert strips.pixels == whole.pixels == 512 * 512
    a, b = strips.palette(8).to_dict(), whole.palette(8).to_dict()
    assert a.pop("options")["images"] == 6 and b.pop("options")["images"] == 1
    assert a == b
    assert strips.images == 6


def test_histogram_shared_palette_of_many_images() -> None:
    shared = pn.Histogram()
    shared.add(np.full((10, 10, 3), (255, 0, 0), np.uint8))
    shared.add(np.full((10, 30, 3), (0, 0, 255), np.uint8))
    pal = shared.palette(4)
    assert [(c.rgb, c.population) for c in pal.colors] == [((0, 0, 255), 300), ((255, 0, 0), 100)]


def test_native_calls_release_the_gil() -> None:
    # While one thread is inside the core, another must keep running Python code. With the GIL
    # held for the whole call, the counter could only move before and after it.
    big = np.random.default_rng(1).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    h = _core.Histogram()
    done = threading.Event()
    ticks_during = 0

    def work() -> None:
        h.add(big)
        h.add(big)
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    while not done.is_set():
        ticks_during += 1
    worker.join()
    assert h.pixels == 2 * 3000 * 4000 and h.weight == 255 * h.pixels
    assert ticks_during > 10_000


def test_native_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="colors must be between 1 and 256"):
        _core.build_palette(_core.Histogram(), 0)
    with pytest.raises(TypeError):
        _core.Histogram().add(np.zeros((4, 4, 3), np.float64))  # no silent conversion
    with pytest.raises(ValueError, match="channels"):
        _core.Histogram().add(np.zeros((4, 4, 6), np.uint8))
    with pytest.raises(ValueError, match="track_members"):
        _core.build_palette(_core.Histogram(False), 4, True)


def test_a_cleared_histogram_equals_a_fresh_one(photo: np.ndarray) -> None:
    """Clearing resets only the cells that were written; whatever came before (weighted RGBA,
    snapping, a pending unflushed image), the next image gets the same palette as a fresh one."""
    soft = np.dstack([photo, np.clip(photo[..., 1].astype(int) * 2 - 100, 0, 255).astype(np.uint8)])
    dark = photo // 3
    reused = _core.Histogram(True)
    # The last one is left pending: no palette is taken, so nothing is flushed before clear().
    for before, weighted, flushed in ((soft, True, True), (photo, False, True), (dark, False, False)):
        reused.add(before, 128, weighted)
        if flushed:
            _core.build_palette(reused, 8, True)
        reused.clear()
        reused.add(photo[::2, ::3], 128, False)
        fresh = _core.Histogram(True)
        fresh.add(photo[::2, ::3], 128, False)
        for snap in (False, True):
            a, b = _core.build_palette(reused, 8, snap), _core.build_palette(fresh, 8, snap)
            assert (a.colors, a.population) == (b.colors, b.population)
        assert (reused.pixels, reused.weight, reused.distinct_cells) == (
            fresh.pixels, fresh.weight, fresh.distinct_cells)
        reused.clear()

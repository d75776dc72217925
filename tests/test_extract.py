from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import pyvips
from PIL import Image

import palette_native as pn
from imagetools import blocks_image

KNOWN = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
         (145, 30, 180), (70, 240, 240), (240, 50, 230)]


def test_exact_recovery_of_known_colors() -> None:
    counts = [64 * n for n in (40, 30, 20, 10, 8, 6, 4, 2)]
    img = blocks_image(KNOWN, counts)
    pal = pn.extract(img, colors=8)
    assert [c.rgb for c in pal.colors] == KNOWN  # ordered by population
    assert [c.population for c in pal.colors] == counts
    assert pal.metrics.mse == 0.0 and pal.metrics.delta_e_mean == 0.0
    assert sum(c.fraction for c in pal.colors) == pytest.approx(1.0)
    assert pal.reason is None


def test_fewer_colors_than_asked_gives_all_with_a_reason() -> None:
    img = blocks_image(KNOWN[:3], [64 * 3, 64 * 2, 64])
    pal = pn.extract(img, colors=8)
    assert sorted(c.rgb for c in pal.colors) == sorted(KNOWN[:3])
    assert pal.reason is not None and "3 distinct colors" in pal.reason


def test_close_colors_in_one_cell_are_still_told_apart() -> None:
    # All four colors fall in the same 32-level histogram cell.
    close = [(100, 100, 100), (101, 100, 100), (100, 102, 100), (103, 103, 103)]
    pal = pn.extract(blocks_image(close, [64] * 4), colors=4)
    assert sorted(c.rgb for c in pal.colors) == sorted(close)


def test_exactly_k_distinct_colors_on_a_photo(photo: np.ndarray) -> None:
    for k in (1, 2, 5, 8, 16, 32, 64):
        pal = pn.extract(photo, colors=k)
        assert len(pal.colors) == k
        assert len({c.rgb for c in pal.colors}) == k
        assert sum(c.population for c in pal.colors) == pal.analyzed_pixels
        pops = [c.population for c in pal.colors]
        assert pops == sorted(pops, reverse=True)


def test_more_colors_lower_error(photo: np.ndarray) -> None:
    errors = [pn.extract(photo, colors=k).metrics.mse for k in (2, 4, 8, 16, 32)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < errors[0] / 4


def test_metrics_match_a_numpy_reference(photo: np.ndarray) -> None:
    pal = pn.extract(photo, colors=8, exact=True)
    rgb = np.array([c.rgb for c in pal.colors], np.float64)
    # Reference MSE: each pixel against the palette color it was counted under. Pixels of one
    # histogram cell share a color, so recover that assignment from the cell means.
    px = photo.reshape(-1, 3).astype(np.float64)
    cells = (photo[..., 0] >> 3).astype(np.int64) << 10 | (photo[..., 1] >> 3).astype(np.int64) << 5 | (photo[..., 2] >> 3)
    cells = cells.reshape(-1)
    counts = np.bincount(cells, minlength=32768)
    means = np.stack([np.bincount(cells, px[:, c], minlength=32768) for c in range(3)], 1)
    used = counts > 0
    means = means[used] / counts[used, None]
    lab_means = np.array([pn.Color(tuple(int(v) for v in np.round(m)), 0, 0).oklab for m in means])
    lab_pal = np.array([c.oklab for c in pal.colors])
    nearest = ((lab_means[:, None, :] - lab_pal[None]) ** 2).sum(-1).argmin(1)
    assign = np.zeros(32768, np.int64)
    assign[np.flatnonzero(used)] = nearest
    err = ((px - rgb[assign[cells]]) ** 2).mean()
    assert pal.metrics.mse == pytest.approx(err, rel=0.02)
    assert pal.metrics.psnr == pytest.approx(10 * np.log10(255**2 / pal.metrics.mse))
    assert 0 < pal.metrics.delta_e_mean < pal.metrics.delta_e_p95


def test_every_source_kind_gives_the_same_palette(tmp_path: Path, photo: np.ndarray) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    data = path.read_bytes()
    expected = pn.extract(photo, colors=6, exact=True)
    sources = {
        "str": str(path),
        "path": path,
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "file": io.BytesIO(data),
        "pil": Image.open(path),
        "pyvips": pyvips.Image.new_from_file(str(path)),
    }
    for name, source in sources.items():
        got = pn.extract(source, colors=6, exact=True)
        assert [c.rgb for c in got.colors] == [c.rgb for c in expected.colors], name
        assert (got.width, got.height) == (512, 512), name


def test_gray_and_gray_alpha_arrays() -> None:
    gray = np.repeat(np.array([10, 120, 240], np.uint8), 64 * 4).reshape(-1, 64)
    pal = pn.extract(gray, colors=3)
    assert sorted(c.rgb for c in pal.colors) == [(10, 10, 10), (120, 120, 120), (240, 240, 240)]
    ga = np.stack([gray, np.full_like(gray, 255)], axis=2)
    ga[:4, :, 1] = 0  # the first run is transparent
    pal = pn.extract(ga, colors=3)
    assert sorted(c.rgb for c in pal.colors) == [(120, 120, 120), (240, 240, 240)]
    assert pal.transparent_fraction == pytest.approx(1 / 3)


def test_pixels_weigh_their_alpha_and_a_threshold_is_the_old_cut() -> None:
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:32] = (255, 0, 0, 255)
    rgba[32:48] = (0, 0, 255, 100)  # partly transparent: counts 100/255 of a pixel
    rgba[48:] = (0, 255, 0, 0)      # fully transparent: counts nothing
    pal = pn.extract(rgba, colors=4)
    assert [c.rgb for c in pal.colors] == [(255, 0, 0), (0, 0, 255)]
    assert [c.population for c in pal.colors] == [32 * 64, round(16 * 64 * 100 / 255)]
    assert pal.colors[0].fraction == pytest.approx(32 * 255 / (32 * 255 + 16 * 100))
    assert pal.transparent_fraction == pytest.approx(0.5)  # pixels under alpha 128
    assert pal.options["alpha_threshold"] is None
    cut = pn.extract(rgba, colors=4, alpha_threshold=128)
    assert [c.rgb for c in cut.colors] == [(255, 0, 0)]
    assert cut.transparent_fraction == pytest.approx(0.5)
    pal = pn.extract(rgba, colors=4, alpha_threshold=50)
    assert [c.rgb for c in pal.colors] == [(255, 0, 0), (0, 0, 255)]
    assert [c.population for c in pal.colors] == [32 * 64, 16 * 64]
    assert pal.transparent_fraction == pytest.approx(0.25)
    empty = pn.extract(np.zeros((8, 8, 4), np.uint8), colors=4)
    assert empty.colors == [] and empty.transparent_fraction == 1.0 and empty.reason


@pytest.mark.parametrize("exact", [False, True])
def test_a_soft_glow_keeps_its_color(exact: bool) -> None:
    """Most visible pixels of a glow are partly transparent: the old cut at 128 dropped them
    and lost the glow's color; weighted by alpha it is in the palette with its visible share."""
    rng = np.random.default_rng(5)
    rgba = np.zeros((200, 300, 4), np.uint8)
    rgba[..., :3] = (40, 200, 230)                      # cyan glow
    rgba[..., 3] = rng.integers(20, 120, (200, 300))   # all of it under 128
    rgba[80:120, 120:180] = (230, 40, 90, 255)          # an opaque pink core
    pal = pn.extract(rgba, colors=2, exact=exact)
    assert {c.rgb for c in pal.colors} == {(40, 200, 230), (230, 40, 90)}
    glow_weight = rgba[..., 3].astype(float)[rgba[..., 0] == 40].sum()
    core_weight = 40 * 60 * 255.0
    share = {c.rgb: c.fraction for c in pal.colors}
    if exact:
        assert share[(40, 200, 230)] == pytest.approx(glow_weight / (glow_weight + core_weight))
    assert share[(40, 200, 230)] > 0.7
    assert pn.extract(rgba, colors=2, alpha_threshold=128, exact=exact).colors[0].rgb == (230, 40, 90)


def test_metrics_are_alpha_weighted() -> None:
    colors = np.array([(20, 60, 200), (200, 60, 20), (90, 200, 90)], np.uint8)
    alphas = np.array([255, 40, 170], np.uint8)
    counts = np.array([300, 500, 200])
    px = np.repeat(np.column_stack([colors, alphas]), counts, axis=0).reshape(1, -1, 4)
    pal = pn.extract(px, colors=1, exact=True)
    (c,) = [np.array(col.rgb, float) for col in pal.colors]
    weights = (alphas.astype(float) * counts)
    sq = ((colors.astype(float) - c) ** 2).sum(axis=1)
    assert pal.metrics.mse == pytest.approx((weights * sq).sum() / (3 * weights.sum()))
    unweighted = (counts * sq).sum() / (3 * counts.sum())
    assert abs(pal.metrics.mse - unweighted) > 1.0  # the weighting shows


def test_strided_views_are_read_in_place() -> None:
    big = np.zeros((40, 80, 4), np.uint8)
    big[..., :3] = (10, 20, 30)
    big[10:30, 20:60, :3] = (200, 100, 50)
    strip = big[10:30, 20:60, :3]  # non-contiguous: row and pixel strides of the parent
    assert not strip.flags.c_contiguous
    pal = pn.extract(strip, colors=2)
    assert [c.rgb for c in pal.colors] == [(200, 100, 50)]


def test_snap_gives_real_image_colors(photo: np.ndarray) -> None:
    pal = pn.extract(photo, colors=12, snap=True, exact=True)
    real = {tuple(int(v) for v in p) for p in photo.reshape(-1, 3)}
    assert len(pal.colors) == 12
    assert all(c.rgb in real for c in pal.colors)


def test_color_cap_keeps_a_flat_background_from_taking_the_palette(photo: np.ndarray) -> None:
    # A product shot: a near-white, slightly noisy backdrop around a small subject (1.6 %).
    rng = np.random.default_rng(7)
    img = (245 + rng.integers(-8, 9, (1024, 1024, 1))).astype(np.uint8).repeat(3, axis=2)
    img[:128, :128] = photo[::4, ::4]
    subject = photo[::4, ::4].reshape(-1, 3).astype(float)

    def subject_error(p: pn.Palette) -> float:
        rgb = np.array([c.rgb for c in p.colors], float)
        return float(((subject[:, None] - rgb[None]) ** 2).sum(-1).min(1).mean())

    def backdrop_colors(p: pn.Palette) -> int:
        return sum(1 for c in p.colors if all(abs(v - 245) <= 10 for v in c.rgb))

    plain = pn.extract(img, colors=6, exact=True)
    capped = pn.extract(img, colors=6, exact=True, max_color_fraction=0.02)
    assert backdrop_colors(plain) >= 2  # the backdrop's noise takes several colors...
    assert backdrop_colors(capped) < backdrop_colors(plain)  # ...unless its weight is capped
    assert subject_error(capped) < 0.95 * subject_error(plain)
    # Populations still count every pixel: the backdrop keeps its real share.
    assert sum(c.population for c in capped.colors) == 1024 * 1024


def test_budget_and_exact(photo: np.ndarray) -> None:
    big = np.ascontiguousarray(np.tile(photo, (4, 4, 1)))  # 2048 x 2048
    pal = pn.extract(big, colors=8)
    assert pal.analyzed_pixels <= pn.DEFAULT_PIXEL_BUDGET * 2
    assert (pal.width, pal.height) == (2048, 2048)
    assert pn.extract(big, colors=8, exact=True).analyzed_pixels == 2048 * 2048
    assert pn.extract(big, colors=8, pixel_budget=10_000).analyzed_pixels <= 20_000


def test_results_are_deterministic(photo: np.ndarray) -> None:
    first = pn.extract(photo, colors=16).to_dict()
    for _ in range(3):
        assert pn.extract(photo, colors=16).to_dict() == first


def test_to_dict_and_json(photo: np.ndarray) -> None:
    pal = pn.extract(photo, colors=5)
    doc = json.loads(pal.to_json())
    assert [c["hex"] for c in doc["colors"]] == [c.hex for c in pal.colors]
    first = doc["colors"][0]
    assert set(first) >= {"hex", "rgb", "oklab", "oklch", "population", "fraction"}
    assert doc["width"] == 512 and doc["metrics"]["mse"] > 0
    c = pal.colors[0]
    assert c.hex == "#%02x%02x%02x" % c.rgb
    assert 0 <= c.oklab[0] <= 1 and 0 <= c.oklch[2] < 360


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"colors": 0}, "colors must be between 1 and 256"),
        ({"colors": 300}, "colors must be between 1 and 256"),
        ({"colors": "8"}, "colors must be an integer"),
        ({"alpha_threshold": 256}, "alpha_threshold"),
        ({"max_color_fraction": 1.5}, "max_color_fraction"),
        ({"pixel_budget": 10}, "pixel_budget"),
        ({"exact": "yes"}, "exact must be"),
    ],
    ids=lambda v: str(v),
)
def test_bad_parameters(photo: np.ndarray, kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(pn.BadParameterError, match=fragment) as info:
        pn.extract(photo, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and info.value.code == "bad_parameter"


def test_cancel_between_strips(tmp_path: Path, photo: np.ndarray) -> None:
    path = tmp_path / "big.png"
    pyvips.Image.new_from_array(np.tile(photo, (8, 2, 1))).write_to_file(str(path))
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(pn.CanceledError):
        pn.extract(path, exact=True, should_cancel=cancel)
    assert len(calls) == 2


# ---- flat artwork: exact colors, read in full ---------------------------------------------
def _flat_art(width: int = 1200, height: int = 900) -> np.ndarray:
    """Bands of flat colors with a rare accent (a legend swatch) that a sample barely sees."""
    img = np.zeros((height, width, 3), np.uint8)
    bands = [(244, 244, 246), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    for i, color in enumerate(bands):
        img[:, i * width // len(bands):(i + 1) * width // len(bands)] = color
    img[401:404, 601:604] = (148, 103, 189)  # 9 pixels, off the sampling grid
    return img


def test_flat_artwork_is_read_in_full_and_keeps_rare_colors(tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    Image.fromarray(_flat_art()).save(path)
    pal = pn.extract(path, colors=6)
    assert pal.analyzed_pixels == 1200 * 900  # the sample looked flat: every pixel counted
    assert (148, 103, 189) in {c.rgb for c in pal.colors}
    assert {c.population for c in pal.colors if c.rgb == (148, 103, 189)} == {9}
    assert pal.metrics.delta_e_mean == 0.0


def test_flat_sample_of_a_busier_image_keeps_the_sample(tmp_path: Path) -> None:
    """A sample can look flat while the whole image is not (grain between the sampled rows):
    then the sample's exact colors are clustered, not a full count that overflows."""
    img = _flat_art()
    rng = np.random.default_rng(3)
    grain = rng.integers(0, 256, img.shape, dtype=np.uint8)
    rows = np.arange(img.shape[0]) % 5 != 0  # the sample reads every 5th row and column
    img[rows] = grain[rows]
    path = tmp_path / "busy.png"
    Image.fromarray(img).save(path)
    pal = pn.extract(path, colors=5)
    assert pal.analyzed_pixels < 1200 * 900 // 20
    assert len(pal.colors) == 5


def test_cancel_while_artwork_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    Image.fromarray(_flat_art()).save(path)
    calls = 0

    def after_the_sample() -> bool:
        nonlocal calls
        calls += 1
        return calls > 1  # the sample is one strip; the full read is the next one

    with pytest.raises(pn.CanceledError):
        pn.extract(path, colors=4, should_cancel=after_the_sample)


def test_many_exact_colors_in_fewer_cells_than_colors() -> None:
    """4,608 distinct colors (more than the exact-color limit) packed into 9 histogram cells:
    the palette still has K distinct colors, taken from the exact colors."""
    values = np.arange(8, dtype=np.uint8)
    cube = np.stack(np.meshgrid(values, values, values, indexing="ij"), axis=-1).reshape(-1, 3)
    bases = [(0, 0, 0), (64, 0, 0), (0, 64, 0), (0, 0, 64), (64, 64, 0), (0, 64, 64),
             (64, 0, 64), (128, 128, 128), (200, 16, 96)]
    img = np.concatenate([cube + np.array(b, np.uint8) for b in bases]).reshape(72, 64, 3)
    hist = pn.Histogram()
    hist.add(img, exact=True)
    assert len(hist.palette(16).colors) == 9  # cells alone cannot give 16
    pal = pn.extract(img, colors=16, exact=True)
    assert len({c.rgb for c in pal.colors}) == 16
    assert sum(c.population for c in pal.colors) == 72 * 64


def test_histogram_add_can_be_canceled_and_quantize_needs_opaque_pixels(photo: np.ndarray) -> None:
    hist = pn.Histogram()
    with pytest.raises(pn.CanceledError):
        hist.add(photo, should_cancel=lambda: True)
    assert hist.images == 0 and hist.pixels == 0
    with pytest.raises(pn.PaletteError, match="no opaque pixels") as caught:
        pn.quantize(np.zeros((4, 4, 4), np.uint8))
    assert caught.value.code == "no_opaque_pixels"


def test_histogram_of_rgba_images_weighs_alpha_by_default() -> None:
    shared = pn.Histogram()
    half = np.zeros((10, 10, 4), np.uint8)
    half[..., :3] = (0, 0, 255)
    half[..., 3] = 51  # a fifth of a pixel each
    shared.add(half)
    shared.add(np.full((10, 10, 3), (255, 0, 0), np.uint8))
    pal = shared.palette(4)
    assert [(c.rgb, c.population) for c in pal.colors] == [((255, 0, 0), 100), ((0, 0, 255), 20)]
    assert pal.transparent_fraction == pytest.approx(0.5)
    cut = pn.Histogram(alpha_threshold=128)
    cut.add(half)
    assert cut.palette(4).colors == []


# ---- palette size from a quality target ---------------------------------------------------
@pytest.mark.parametrize("target", [1.5, 2.5, 4.0])
def test_max_delta_e_gives_the_fewest_colors_that_meet_it(photo: np.ndarray, target: float) -> None:
    pal = pn.extract(photo, max_delta_e=target, colors=128)
    n = len(pal.colors)
    assert pal.reason is None and pal.options["max_delta_e"] == target
    assert pal.metrics.delta_e_mean <= target
    assert pn.extract(photo, colors=n).to_dict()["colors"] == pal.to_dict()["colors"]
    assert pn.extract(photo, colors=n - 1).metrics.delta_e_mean > target  # one fewer misses


def test_max_delta_e_out_of_reach_and_on_flat_images() -> None:
    rng = np.random.default_rng(9)
    noise = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    far = pn.extract(noise, max_delta_e=0.5)
    assert len(far.colors) == 32 and far.metrics.delta_e_mean > 0.5
    assert far.reason is not None and "more than 32 colors" in far.reason
    flat = np.zeros((30, 30, 3), np.uint8)
    flat[:10], flat[10:20], flat[20:] = (200, 0, 0), (0, 200, 0), (0, 0, 200)
    exact = pn.extract(flat, max_delta_e=0.01)
    assert sorted(c.rgb for c in exact.colors) == [(0, 0, 200), (0, 200, 0), (200, 0, 0)]
    for bad in (0, -1, float("nan"), "2", True):
        with pytest.raises(pn.BadParameterError, match="max_delta_e"):
            pn.extract(flat, max_delta_e=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("threshold", [None, 128], ids=["weighted", "cut at 128"])
def test_many_exact_colors_in_few_cells_with_alpha(threshold: int | None) -> None:
    """The exact-color fallback (more exact colors than the limit, fewer cells than K) weighs
    alpha like the histogram does; a target search calls it for several sizes."""
    values = np.arange(8, dtype=np.uint8)
    cube = np.stack(np.meshgrid(values, values, values, indexing="ij"), -1).reshape(-1, 3)
    bases = [(0, 0, 0), (64, 0, 0), (0, 64, 0), (0, 0, 64), (64, 64, 0), (0, 64, 64),
             (64, 0, 64), (128, 128, 128), (200, 16, 96)]
    rgb = np.concatenate([cube + np.array(b, np.uint8) for b in bases]).reshape(72, 64, 3)
    alpha = np.full((72, 64, 1), 200, np.uint8)
    alpha[:8] = 60  # the first 512 colors: left out by the cut, weighed 60/255 otherwise
    img = np.concatenate([rgb, alpha], axis=2)
    pal = pn.extract(img, colors=16, exact=True, alpha_threshold=threshold)
    assert len({c.rgb for c in pal.colors}) == 16
    # Weighed: 4,096 pixels at alpha 200 and 512 at 60; cut: the 4,096 count in full.
    weighed = 64 * 64 if threshold == 128 else (64 * 64 * 200 + 8 * 64 * 60) / 255
    assert sum(c.population for c in pal.colors) == pytest.approx(weighed, abs=16)
    # Past 9 colors the exact colors are clustered and measured (finer than cell means), so
    # the error is not monotonic in K here; the target search still ends on "n - 1 misses".
    target = pn.extract(img, colors=16, exact=True, alpha_threshold=threshold, max_delta_e=0.85)
    n = len(target.colors)
    assert target.reason is None and target.metrics.delta_e_mean <= 0.85
    fewer = pn.extract(img, colors=n - 1, exact=True, alpha_threshold=threshold)
    assert fewer.metrics.delta_e_mean > 0.85


def test_a_large_pyvips_image_is_sampled_and_an_empty_file_object_refused(
    photo: np.ndarray) -> None:
    import io

    big = pyvips.Image.new_from_array(np.tile(photo, (2, 2, 1))).copy(interpretation="srgb")
    pal = pn.extract(big, colors=4)
    assert pal.analyzed_pixels < 1024 * 1024 // 4 and (pal.width, pal.height) == (1024, 1024)
    with pytest.raises(pn.DecodeError) as caught:
        pn.extract(io.BytesIO(b""), colors=4)
    assert caught.value.code == "empty_input"
    for bad in (True, "half", float("nan")):
        with pytest.raises(pn.BadParameterError, match="max_color_fraction"):
            pn.extract(photo, colors=4, max_color_fraction=bad)  # type: ignore[arg-type]

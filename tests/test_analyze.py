"""analyze(): quality components, the subject box and crops, the weighted palettes."""

from __future__ import annotations

import io

import numpy as np
import palette_native as pn
import pytest
from palette_native.quality import COMPONENTS, WEIGHTS
from PIL import Image


def _scene(size: tuple[int, int] = (480, 640), seed: int = 3) -> np.ndarray:
    """A gray-green textured background with a saturated red disc right of centre."""
    h, w = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([90 + 20 * np.sin(xx / 37.0), 110 + 15 * np.cos(yy / 23.0),
                     80 + 0 * xx], axis=2)
    image = base + rng.normal(0, 3, (h, w, 3))
    disc = (yy - h * 0.45) ** 2 + (xx - w * 0.62) ** 2 < (h * 0.18) ** 2
    image[disc] = [220, 30, 40] + rng.normal(0, 8, (int(disc.sum()), 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _jpeg(array: np.ndarray, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def test_components_are_in_range_with_raw_measures() -> None:
    result = pn.analyze(_scene())
    assert set(result.quality.components) == set(COMPONENTS)
    assert abs(sum(WEIGHTS.values()) - 1.0) < 1e-9
    for component in result.quality.components.values():
        assert 0.0 <= component.value <= 1.0, component
        assert np.isfinite(component.raw), component
    assert 0.0 < result.quality.score <= 100.0
    assert result.quality.sharpness is result.quality.components["sharpness"]


def test_each_distortion_lowers_its_component() -> None:
    clean = _scene()
    base = pn.analyze(clean).quality
    blurred = np.asarray(Image.fromarray(clean).resize((160, 120)).resize((640, 480)))
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 12, clean.shape), 0, 255)
    dark = np.rint(clean * 0.35).astype(np.uint8)
    assert pn.analyze(blurred).quality.sharpness.value < base.sharpness.value
    assert pn.analyze(noisy.astype(np.uint8)).quality.noise.value < base.noise.value
    assert pn.analyze(dark).quality.exposure.value < base.exposure.value
    q90, q10 = pn.analyze(_jpeg(clean, 90)).quality, pn.analyze(_jpeg(clean, 10)).quality
    assert q90.compression.details["jpeg_quality"] == 90
    assert q10.compression.details["jpeg_quality"] == 10
    assert q10.compression.value < q90.compression.value
    assert q10.score < q90.score


def test_subject_box_finds_the_disc_and_crops_keep_it() -> None:
    image = _scene()
    result = pn.analyze(image)
    left, top, width, height = result.subject.box
    cx, cy = 640 * 0.62, 480 * 0.45  # the disc's centre
    assert left <= cx <= left + width and top <= cy <= top + height
    assert width * height < 0.6 * 640 * 480
    for aspect, expected in (("1:1", 1.0), ("16:9", 16 / 9), ("9:16", 9 / 16), (0.5, 0.5)):
        x, y, w, h = result.crop(aspect)
        assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 480
        assert abs(w / h - expected) < 0.02, aspect
        assert x <= cx <= x + w and y <= cy <= y + h, aspect


@pytest.mark.parametrize("aspect", ["", "0:1", "a:b", -1.0, "1:0"])
def test_bad_aspect_is_refused(aspect: object) -> None:
    result = pn.analyze(_scene((120, 160)))
    with pytest.raises(pn.BadParameterError):
        result.crop(aspect)  # type: ignore[arg-type]


def test_subject_palette_favours_the_subject() -> None:
    result = pn.analyze(_scene(), colors=4)
    red = lambda pal: sum(c.fraction for c in pal.colors if c.rgb[0] > 150 and c.rgb[1] < 90)
    assert red(result.subject_palette) > red(result.palette) > red(result.background_palette)
    assert len(result.palette.colors) == 4
    assert (result.palette.width, result.palette.height) == (640, 480)


def test_same_sources_and_errors_as_extract(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = _jpeg(_scene((240, 320)), 85)
    path = tmp_path / "scene.jpg"
    path.write_bytes(data)
    by_path = pn.analyze(path).to_dict()
    assert pn.analyze(data).to_dict() == by_path
    assert pn.analyze(io.BytesIO(data)).to_dict() == by_path
    assert pn.analyze(str(path)).to_dict() == by_path  # deterministic
    pn.analyze(Image.open(io.BytesIO(data)))
    with pytest.raises(pn.DecodeError):
        pn.analyze(tmp_path / "missing.jpg")
    with pytest.raises(pn.UnsupportedFormatError):
        pn.analyze(b"not an image at all")
    with pytest.raises(pn.ImageTooLargeError):
        pn.analyze(data, max_pixels=1000)
    with pytest.raises(pn.BadParameterError):
        pn.analyze(data, colors=0)
    with pytest.raises(pn.CanceledError):
        pn.analyze(data, should_cancel=lambda: True)


def test_png_and_rgba_sources() -> None:
    rgba = np.dstack([_scene((200, 300)), np.full((200, 300), 255, np.uint8)])
    rgba[:, :60, 3] = 0  # a transparent strip counts in no palette
    out = io.BytesIO()
    Image.fromarray(rgba).save(out, format="PNG")
    result = pn.analyze(out.getvalue())
    assert result.quality.compression.details["jpeg_quality"] == 100
    assert result.palette.transparent_fraction > 0.15
    assert result.to_json()


def test_flat_artwork_palettes_are_its_exact_colors() -> None:
    image = np.zeros((240, 320, 3), np.uint8)
    image[:] = (20, 40, 200)  # a blue background
    image[60:180, 100:220] = (230, 200, 10)  # a yellow square in the middle
    image[:20] = (250, 250, 250)  # a white band at the top
    result = pn.analyze(image, colors=3)
    exact = {(20, 40, 200), (230, 200, 10), (250, 250, 250)}
    for palette in (result.palette, result.subject_palette, result.background_palette):
        assert {c.rgb for c in palette.colors} <= exact
    yellow = lambda pal: sum(c.fraction for c in pal.colors if c.rgb == (230, 200, 10))
    assert yellow(result.subject_palette) > yellow(result.palette) > yellow(result.background_palette)


def test_pixels_from_arrow_share_pillows_memory() -> None:
    from palette_native import _core

    image = Image.fromarray(_scene((60, 80)))
    view = _core.pixels_from_arrow(*image.__arrow_c_array__(), image.height, image.width)
    assert view.shape == (60, 80, 4) and not view.flags.writeable
    assert np.array_equal(view[:, :, :3], np.asarray(image))
    gray = image.convert("L")
    with pytest.raises(ValueError, match="fixed-size list"):
        _core.pixels_from_arrow(*gray.__arrow_c_array__(), gray.height, gray.width)
    with pytest.raises(ValueError, match="pixels"):
        _core.pixels_from_arrow(*image.__arrow_c_array__(), image.height + 1, image.width)


def test_pillow_view_and_packed_decode_give_the_same_analysis() -> None:
    from PIL import ImageCms

    scene = Image.fromarray(_scene((600, 800)))
    plain, tagged = io.BytesIO(), io.BytesIO()
    scene.save(plain, format="JPEG", quality=85)
    # An sRGB profile sends the file through decode (packed pixels) instead of the view.
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    scene.save(tagged, format="JPEG", quality=85, icc_profile=srgb)
    assert pn.analyze(plain.getvalue()).to_dict() == pn.analyze(tagged.getvalue()).to_dict()


def test_pillow_without_the_arrow_export_gives_the_packed_copy() -> None:
    from palette_native._analysis_image import _pillow_pixels

    image = Image.fromarray(_scene((60, 80)))

    class BeforeArrow:  # what Pillow before 11.2 offers: the array interface only
        height, width = image.height, image.width
        __array_interface__ = image.__array_interface__

    packed = _pillow_pixels(BeforeArrow())
    view = _pillow_pixels(image)
    assert packed.strides[1] == 3 and view.strides[1] == 4
    assert np.array_equal(packed, view)

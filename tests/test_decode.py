"""Decoding through libvips: formats, color management, corrupt input, decompression bombs."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import pyvips
from PIL import Image

import palette_native as pn


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels, followed by a tiny IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def test_gray_png(tmp_path: Path) -> None:
    arr = np.repeat(np.array([20, 200], np.uint8), 32 * 32).reshape(64, 32)
    path = tmp_path / "gray.png"
    Image.fromarray(arr, "L").save(path)
    pal = pn.extract(path, colors=4)
    assert sorted(c.rgb for c in pal.colors) == [(20, 20, 20), (200, 200, 200)]


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path: Path) -> None:
    arr = np.zeros((32, 32, 3), np.uint16)
    arr[:16] = (65535, 0, 0)
    arr[16:] = (0, 0, 32896)  # 128 * 257
    path = tmp_path / "deep.png"
    pyvips.Image.new_from_array(arr).copy(interpretation="rgb16").write_to_file(str(path))
    assert pyvips.Image.new_from_file(str(path)).format == "ushort"
    pal = pn.extract(path, colors=4)
    assert sorted(c.rgb for c in pal.colors) == [(0, 0, 128), (255, 0, 0)]


def test_cmyk_jpeg_with_icc_profile_is_converted_to_srgb(tmp_path: Path) -> None:
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:32] = (200, 30, 30)
    rgb[32:] = (30, 60, 200)
    cmyk = pyvips.Image.new_from_array(rgb).copy(interpretation="srgb").icc_transform("cmyk")
    path = tmp_path / "cmyk.jpg"
    cmyk.write_to_file(str(path), Q=95)
    loaded = pyvips.Image.new_from_file(str(path))
    assert loaded.interpretation == "cmyk" and loaded.get_typeof("icc-profile-data") != 0
    pal = pn.extract(path, colors=2)
    got = sorted(c.rgb for c in pal.colors)
    # The reference: libvips' own transform through the embedded profile. The blue is outside
    # the press gamut, so it does not come back as it went in; the red nearly does.
    ref = np.ndarray(buffer=loaded.icc_transform("srgb", embedded=True, intent="perceptual")
                     .write_to_memory(), dtype=np.uint8, shape=(64, 64, 3))
    want = sorted({tuple(int(v) for v in ref[8, 8]), tuple(int(v) for v in ref[56, 56])})
    for color, expected in zip(got, want):
        assert max(abs(a - b) for a, b in zip(color, expected)) <= 2, (color, expected)
    red = max(got, key=lambda c: c[0])
    assert max(abs(a - b) for a, b in zip(red, (200, 30, 30))) <= 40  # raw CMYK read as RGB would be far off


def test_palette_png_and_animated_gif_first_frame(tmp_path: Path) -> None:
    img = Image.new("P", (32, 32))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.paste(1, (0, 16, 32, 32))
    path = tmp_path / "indexed.png"
    img.save(path)
    assert sorted(c.rgb for c in pn.extract(path, colors=4).colors) == [(0, 255, 0), (255, 0, 0)]

    frames = [Image.new("RGB", (16, 16), color) for color in ((0, 0, 255), (255, 255, 0))]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    pal = pn.extract(gif, colors=4)
    assert [c.rgb for c in pal.colors] == [(0, 0, 255)]


def test_webp_and_tiff(tmp_path: Path, photo: np.ndarray) -> None:
    for suffix in ("webp", "tif"):
        path = tmp_path / f"photo.{suffix}"
        pyvips.Image.new_from_array(photo).write_to_file(str(path))
        assert len(pn.extract(path, colors=8).colors) == 8


def test_jpeg_shrink_on_load_stays_near_the_budget(tmp_path: Path, photo: np.ndarray) -> None:
    path = tmp_path / "big.jpg"
    pyvips.Image.new_from_array(np.tile(photo, (6, 6, 1))).write_to_file(str(path), Q=90)
    pal = pn.extract(path, colors=8)
    assert (pal.width, pal.height) == (3072, 3072)
    assert pn.DEFAULT_PIXEL_BUDGET // 2 <= pal.analyzed_pixels <= pn.DEFAULT_PIXEL_BUDGET * 2
    exact = pn.extract(path, colors=8, exact=True)
    assert exact.analyzed_pixels == 3072 * 3072
    # The sampled palette stays close to the full one.
    assert pal.metrics.delta_e_mean == pytest.approx(exact.metrics.delta_e_mean, rel=0.15)


def test_not_an_image() -> None:
    with pytest.raises(pn.UnsupportedFormatError, match="not a supported image format") as info:
        pn.extract(b"this is plain text, not pixels" * 10)
    assert info.value.code == "unsupported_format"
    assert isinstance(info.value, pn.DecodeError)


def test_truncated_jpeg(photo: np.ndarray) -> None:
    data = pyvips.Image.new_from_array(photo).write_to_buffer(".jpg", Q=90)
    with pytest.raises(pn.DecodeError, match="image bytes"):
        pn.extract(data[: len(data) // 2], exact=True)


def test_truncated_jpeg_on_the_sampled_path(photo: np.ndarray) -> None:
    big = np.ascontiguousarray(np.tile(photo, (2, 2, 1)))
    data = pyvips.Image.new_from_array(big).write_to_buffer(".jpg", Q=90)
    assert len(pn.extract(data).colors) == 8  # sampled: 1024x1024 > the pixel budget
    with pytest.raises(pn.DecodeError, match="image bytes"):
        pn.extract(data[: len(data) // 2])


def test_corrupt_png(tmp_path: Path, photo: np.ndarray) -> None:
    data = bytearray(pyvips.Image.new_from_array(photo).write_to_buffer(".png"))
    data[200:400] = b"\xff" * 200  # smash compressed data
    with pytest.raises(pn.DecodeError):
        pn.extract(bytes(data), exact=True)


def test_empty_missing_and_wrong_types(tmp_path: Path) -> None:
    with pytest.raises(pn.DecodeError, match="empty"):
        pn.extract(b"")
    with pytest.raises(pn.DecodeError, match="no such file") as info:
        pn.extract(tmp_path / "missing.jpg")
    assert info.value.code == "file_not_found"
    with pytest.raises(pn.BadParameterError, match="source must be"):
        pn.extract(12345)
    with pytest.raises(pn.BadParameterError, match="uint8"):
        pn.extract(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(pn.BadParameterError, match="shape"):
        pn.extract(np.zeros((4, 4, 5), np.uint8))
    with open(__file__) as text_file, pytest.raises(pn.BadParameterError, match="binary mode"):
        pn.extract(text_file)


def test_decompression_bomb_is_refused_from_the_header() -> None:
    bomb = _png_header_only(100_000, 100_000)  # 10 gigapixels claimed in a few bytes
    with pytest.raises(pn.ImageTooLargeError) as info:
        pn.extract(bomb)
    err = info.value
    assert err.code == "image_too_large"
    assert err.details == {"limit_pixels": pn.DEFAULT_MAX_PIXELS, "actual_pixels": 10**10}
    assert "10,000,000,000" in str(err)


def test_max_pixels_applies_to_every_source_kind(photo: np.ndarray) -> None:
    for source in (photo, Image.fromarray(photo), pyvips.Image.new_from_array(photo),
                   pyvips.Image.new_from_array(photo).write_to_buffer(".png")):
        with pytest.raises(pn.ImageTooLargeError):
            pn.extract(source, max_pixels=512 * 512 - 1)


# ---- HEIC (HEVC in HEIF): decoded by pillow-heif, since libvips ships no HEVC decoder -------
def _heic(pixels: np.ndarray, **options: object) -> bytes:
    import io

    import pillow_heif

    heif = pillow_heif.from_bytes(
        mode="RGBA" if pixels.shape[2] == 4 else "RGB", size=(pixels.shape[1], pixels.shape[0]),
        data=np.ascontiguousarray(pixels).tobytes(),
    )
    out = io.BytesIO()
    heif.save(out, quality=95, **options)
    data = out.getvalue()
    assert data[4:12] == b"ftypheic"
    return data


def _bands(colors: list[tuple[int, int, int]], height: int = 480, width: int = 640) -> np.ndarray:
    rgb = np.zeros((height, width, 3), np.uint8)
    for i, color in enumerate(colors):
        rgb[i * height // len(colors):(i + 1) * height // len(colors)] = color
    return rgb


def _close(got: list[tuple[int, int, int]], want: list[tuple[int, int, int]], tol: int) -> bool:
    return len(got) == len(want) and all(
        max(abs(a - b) for a, b in zip(g, w)) <= tol for g, w in zip(sorted(got), sorted(want)))


def test_heic_by_path_bytes_and_file_object(tmp_path: Path) -> None:
    colors = [(200, 30, 40), (30, 60, 200), (240, 220, 40)]
    data = _heic(_bands(colors))
    path = tmp_path / "phone.heic"
    path.write_bytes(data)
    with path.open("rb") as handle:
        for source in (path, str(path), data, handle):
            pal = pn.extract(source, colors=3)
            assert (pal.width, pal.height) == (640, 480)
            assert _close([c.rgb for c in pal.colors], colors, 4), pal.colors  # HEVC is lossy


def test_heic_with_alpha_weighs_it() -> None:
    rgba = np.zeros((480, 640, 4), np.uint8)
    rgba[..., :3] = (30, 160, 90)
    rgba[:240, :, 3] = 255
    pal = pn.extract(_heic(rgba), colors=2)
    assert pal.transparent_fraction == pytest.approx(0.5, abs=0.01)
    assert _close([pal.colors[0].rgb], [(30, 160, 90)], 4)


def test_heic_with_a_display_p3_profile_is_converted_to_srgb() -> None:
    colors = [(200, 30, 40), (30, 60, 200)]
    srgb = pyvips.Image.new_from_array(_bands(colors)).copy(interpretation="srgb")
    p3 = srgb.icc_transform("p3", intent="perceptual")
    p3_pixels = np.ndarray(buffer=p3.write_to_memory(), dtype=np.uint8, shape=(480, 640, 3))
    assert not _close([tuple(int(v) for v in p3_pixels[0, 0])], [colors[0]], 6)  # P3 differs
    pal = pn.extract(_heic(p3_pixels, icc_profile=p3.get("icc-profile-data")), colors=2)
    assert _close([c.rgb for c in pal.colors], colors, 4), pal.colors


def test_heic_sampled_and_exact_agree_and_corrupt_heic_is_a_decode_error() -> None:
    rng = np.random.default_rng(2)
    big = _bands([(200, 30, 40), (30, 60, 200)], 900, 1200)
    # Grain enough for a photo's count of exact colors (artwork would be read in full).
    big = np.clip(big.astype(int) + rng.integers(-40, 41, big.shape), 0, 255).astype(np.uint8)
    data = _heic(big)
    sampled, exact = pn.extract(data, colors=2), pn.extract(data, colors=2, exact=True)
    assert sampled.analyzed_pixels < exact.analyzed_pixels == 1200 * 900
    assert _close([c.rgb for c in sampled.colors], [c.rgb for c in exact.colors], 4)
    with pytest.raises(pn.DecodeError):
        pn.extract(data[: len(data) // 2], colors=2)


def test_heic_inside_a_zip(tmp_path: Path) -> None:
    import zipfile

    from palette_native.archive import extract_archive

    path = tmp_path / "phone.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("IMG_0001.HEIC", _heic(_bands([(200, 30, 40)])))
    (result,) = list(extract_archive(path, colors=2))
    assert result.ok and _close([c.rgb for c in result.palette.colors], [(200, 30, 40)], 4)


# ---- sample layouts and modes the other sources bring ---------------------------------------
def test_pil_modes_and_reversed_arrays_give_the_same_colors() -> None:
    rgb = _bands([(200, 30, 40), (30, 60, 200)], 64, 64)
    want = [(30, 60, 200), (200, 30, 40)]
    indexed = Image.fromarray(rgb).quantize(2)
    cases = {
        "P": indexed,
        "P with transparency": Image.fromarray(rgb).quantize(2),
        "CMYK round trip": Image.fromarray(rgb).convert("CMYK"),
        "reversed rows": rgb[::-1],
        "reversed columns": rgb[:, ::-1],
    }
    cases["P with transparency"].info["transparency"] = 255  # an unused index: all visible
    for name, source in cases.items():
        pal = pn.extract(source, colors=2)
        assert _close([c.rgb for c in pal.colors], want, 3), (name, pal.colors)


def test_pyvips_images_of_other_formats() -> None:
    gray = pyvips.Image.new_from_array(np.full((40, 40), 120.5)).copy(interpretation="b-w")
    assert gray.format == "double"
    assert [c.rgb for c in pn.extract(gray, colors=2).colors] == [(120, 120, 120)]
    five = pyvips.Image.new_from_array(np.full((20, 20, 5), 90, np.uint8)).copy(
        interpretation="multiband")
    assert [c.rgb for c in pn.extract(five, colors=2).colors] == [(90, 90, 90)]


def test_gray_heic() -> None:
    import io

    import pillow_heif

    gray = np.full((120, 160), 77, np.uint8)
    out = io.BytesIO()
    pillow_heif.from_bytes(mode="L", size=(160, 120), data=gray.tobytes()).save(out, quality=95)
    (color,) = pn.extract(out.getvalue(), colors=2).colors
    assert all(abs(v - 77) <= 3 for v in color.rgb)


def test_a_jpeg_header_claiming_a_huge_image_is_refused(photo: np.ndarray) -> None:
    import io

    out = io.BytesIO()
    Image.fromarray(photo[:64, :64]).save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 30000, 30000)  # height, width: 900 MP
    with pytest.raises(pn.ImageTooLargeError):
        pn.extract(bytes(data), colors=4)


def test_a_truncated_file_opened_lazily_by_pyvips(photo: np.ndarray) -> None:
    png = pyvips.Image.new_from_array(photo).write_to_buffer(".png")
    lazy = pyvips.Image.new_from_buffer(png[: len(png) // 3], "", access="sequential",
                                        fail_on="truncated")
    with pytest.raises(pn.DecodeError, match="pyvips image"):
        pn.extract(lazy, colors=4, exact=True)

"""The core's progressive-JPEG reader (``_core.jpeg_dc``): the 1/8-scale image from the DC scans
alone, checked against libjpeg's own 1/8-scale decode (through Pillow), and how ``extract``
uses it."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image

import palette_native
from imagetools import photo_like
from palette_native import _core


def _jpeg(pixels: np.ndarray, **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.squeeze()).save(out, "JPEG", **options)
    return out.getvalue()


def _libjpeg_eighth(data: bytes) -> np.ndarray:
    """libjpeg's decode at 1/8 scale (Pillow's draft mode)."""
    image = Image.open(io.BytesIO(data))
    image.draft(image.mode, (image.width // 8, image.height // 8))
    pixels = np.asarray(image)
    return pixels if pixels.ndim == 3 else pixels[:, :, np.newaxis]


PICTURE = photo_like(1001, 757, seed=3)


@pytest.mark.parametrize("gray", [False, True], ids=["rgb", "gray"])
@pytest.mark.parametrize("restarts", [None, 3], ids=["no-restarts", "restart-every-3-blocks"])
@pytest.mark.parametrize("quality", [40, 95])
def test_unsubsampled_files_match_libjpeg_exactly(gray: bool, restarts: int | None, quality: int) -> None:
    pixels = PICTURE.mean(axis=2).astype(np.uint8) if gray else PICTURE
    options: dict[str, object] = {"progressive": True, "quality": quality}
    if not gray:
        options["subsampling"] = 0  # 4:4:4
    if restarts:
        options["restart_marker_blocks"] = restarts
    data = _jpeg(pixels, **options)
    got = _core.jpeg_dc(data)
    assert got.shape == ((757 + 7) // 8, (1001 + 7) // 8, 1 if gray else 3)
    np.testing.assert_array_equal(got, _libjpeg_eighth(data))


@pytest.mark.parametrize("subsampling", [1, 2], ids=["4:2:2", "4:2:0"])
def test_subsampled_chroma_is_close_to_libjpeg(subsampling: int) -> None:
    """libjpeg reads chroma at 1/8 scale with a 2x2 inverse DCT (low AC coefficients included);
    the DC reader repeats each chroma block's mean instead: the same picture, a little softer."""
    data = _jpeg(PICTURE, progressive=True, quality=85, subsampling=subsampling)
    got = _core.jpeg_dc(data).astype(np.int16)
    want = _libjpeg_eighth(data).astype(np.int16)
    assert got.shape == want.shape
    assert np.abs(got - want).mean() < 3.0
    # The mean color of the whole picture agrees to a level.
    assert np.abs(got.mean(axis=(0, 1)) - want.mean(axis=(0, 1))).max() < 1.0


def test_other_files_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="not a progressive Huffman-coded JPEG"):
        _core.jpeg_dc(_jpeg(PICTURE))  # baseline
    with pytest.raises(ValueError, match="not a JPEG"):
        _core.jpeg_dc(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    cmyk = io.BytesIO()
    Image.fromarray(PICTURE).convert("CMYK").save(cmyk, "JPEG", progressive=True)
    with pytest.raises(ValueError, match="not gray or three-component"):
        _core.jpeg_dc(cmyk.getvalue())
    with pytest.raises(ValueError):
        _core.jpeg_dc(b"")


def test_damaged_files_never_crash_the_reader() -> None:
    """Truncations and byte flips of a progressive file: an image of the header's size or a
    ValueError, every time (never a crash or a read out of bounds)."""
    data = _jpeg(PICTURE[:200, :300], progressive=True, quality=80, restart_marker_blocks=2)
    rng = random.Random(7)
    outcomes = {"image": 0, "refused": 0}
    cases = [data[:cut] for cut in range(0, len(data), max(1, len(data) // 150))]
    for _ in range(400):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        cases.append(bytes(damaged))
    for case in cases:
        try:
            got = _core.jpeg_dc(case)
        except ValueError:
            outcomes["refused"] += 1
        else:
            assert got.dtype == np.uint8 and got.ndim == 3 and got.shape[2] in (1, 3)
            outcomes["image"] += 1
    assert outcomes["image"] > 0 and outcomes["refused"] > 0, outcomes


def test_extract_reads_progressive_files_through_their_dc_scans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large progressive files go through the DC reader, and their palette matches the palette
    of the same picture saved as a baseline file (which libjpeg decodes)."""
    from palette_native import _decode

    calls: list[int] = []
    real = _core.jpeg_dc

    def spy(data: bytes) -> np.ndarray:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(_decode._core, "jpeg_dc", spy)
    picture = photo_like(1400, 1050, seed=4)  # 1/8 scale: 175 x 132, over a quarter budget
    progressive = _jpeg(picture, progressive=True, quality=92, subsampling=0)
    baseline = _jpeg(picture, quality=92, subsampling=0)
    fast = palette_native.extract(progressive, colors=8)
    assert calls == [len(progressive)]
    slow = palette_native.extract(baseline, colors=8)
    assert calls == [len(progressive)]  # a baseline file is libjpeg's
    assert fast.width == slow.width == 1400 and fast.height == slow.height == 1050
    # As good a palette of the picture: its pixels are as near to their nearest palette color.
    pixels = picture[::4, ::4].reshape(-1, 1, 3).astype(float)

    def error(palette: palette_native.Palette) -> float:
        colors = np.array([c.rgb for c in palette.colors], dtype=float)[None, :, :]
        return float(np.sqrt(((pixels - colors) ** 2).sum(axis=2)).min(axis=1).mean())

    assert error(fast) <= 1.05 * error(slow), (error(fast), error(slow))
    # Small files (their 1/8 image under a quarter of the budget) and exact runs are not.
    small = _jpeg(PICTURE[:300, :400], progressive=True)
    palette_native.extract(small, colors=8)
    palette_native.extract(progressive, colors=8, exact=True)
    assert calls == [len(progressive)]

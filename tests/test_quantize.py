from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import palette_native as pn


def test_quantize_writes_an_indexed_png(tmp_path: Path, photo: np.ndarray) -> None:
    out = tmp_path / "q.png"
    q = pn.quantize(photo, colors=16, output=out)
    assert q.indices.shape == (512, 512) and q.indices.max() < 16
    img = Image.open(out)
    assert img.mode == "P"
    pal = img.getpalette()
    assert pal is not None
    assert [tuple(pal[i * 3:i * 3 + 3]) for i in range(16)] == [c.rgb for c in q.palette.colors]
    assert np.array_equal(np.asarray(img), q.indices)
    # Each pixel maps to a palette color no worse than the palette's own error says.
    rgb = np.array([c.rgb for c in q.palette.colors], float)[q.indices]
    assert ((rgb - photo) ** 2).mean() < 4 * q.palette.metrics.mse + 1


def test_dithering_keeps_the_palette_and_the_mean_color(photo: np.ndarray) -> None:
    plain = pn.quantize(photo, colors=4)
    dithered = pn.quantize(photo, colors=4, dither=True)
    assert [c.rgb for c in plain.palette.colors] == [c.rgb for c in dithered.palette.colors]
    assert not np.array_equal(plain.indices, dithered.indices)
    rgb = np.array([c.rgb for c in plain.palette.colors], float)

    def block_means(img: np.ndarray) -> np.ndarray:  # 8x8 block averages: what the eye blends
        return img.reshape(64, 8, 64, 8, 3).mean(axis=(1, 3))

    def local_error(idx: np.ndarray) -> float:
        return float(np.abs(block_means(rgb[idx]) - block_means(photo.astype(float))).mean())

    # Error diffusion preserves local averages, so blended areas come out closer.
    assert local_error(dithered.indices) < 0.95 * local_error(plain.indices)


def test_transparent_pixels_get_their_own_index(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4] = (255, 0, 0, 255)
    rgba[4:] = (0, 0, 0, 0)
    out = tmp_path / "t.png"
    q = pn.quantize(rgba, colors=4, output=out)
    assert q.has_transparency and set(np.unique(q.indices)) == {0, 1}
    back = Image.open(out).convert("RGBA")
    assert np.asarray(back)[0, 0].tolist() == [255, 0, 0, 255]
    assert np.asarray(back)[7, 7, 3] == 0

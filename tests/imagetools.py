"""Small image builders shared by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def blocks_image(colors: list[tuple[int, int, int]], counts: list[int], width: int = 64) -> np.ndarray:
    """An RGB image made of horizontal runs of the given colors, counts[i] pixels each."""
    flat = np.concatenate([np.tile(np.array(c, np.uint8), (n, 1)) for c, n in zip(colors, counts)])
    pad = (-len(flat)) % width
    assert pad == 0, "counts must fill whole rows"
    return flat.reshape(-1, width, 3)


def soft_logo(width: int, height: int) -> np.ndarray:
    """RGBA art on a transparent background: two shapes behind a wide glow, so most visible
    pixels are partly transparent (anti-aliased edges, shadows)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = width / 2, height / 2
    r = np.hypot((x - cx) / (0.3 * width), (y - cy) / (0.3 * height))
    alpha = np.clip(1.6 - r, 0.0, 1.0) ** 1.5
    rgba = np.zeros((height, width, 4), np.float32)
    rgba[..., :3] = (220, 40, 60)
    square = (np.abs(x - cx) < 0.12 * width) & (np.abs(y - cy) < 0.18 * height)
    rgba[square, :3] = (30, 90, 200)
    ring = np.abs(r - 1.0) < 0.06
    rgba[ring, :3] = (250, 200, 40)
    rgba[..., 3] = alpha * 255
    return rgba.round().astype(np.uint8)


def photo_like(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB scene with texture and grain: gradients, a few blobs of color and noise, so
    every format's encoder has something real to compress (and no format is flat)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 60 + 150 * x / width
    img[..., 1] = 40 + 120 * y / height
    img[..., 2] = 180 - 100 * (x + y) / (width + height)
    for _ in range(6):
        bx, by = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.05, 0.2) * min(width, height)
        color = rng.uniform(0, 255, 3)
        weight = np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * radius**2))[..., None]
        img = img * (1 - weight) + color * weight
    img += 12 * np.sin(x / 7.0)[..., None] * np.cos(y / 11.0)[..., None]
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def write_format_set(folder: Path, width: int = 1400, height: int = 1000) -> dict[str, Path]:
    """One file per kind of image users send, each big enough (1.4 MP by default) to be
    sampled rather than read whole: every format and sample layout the loaders handle."""
    import pyvips
    from PIL import Image

    photo = photo_like(width, height)
    logo = soft_logo(width, height)
    # 16-bit samples whose low byte varies too, so the scaling to 8 bits is exercised
    low = (np.arange(width, dtype=np.uint32) % 200)[None, :, None]
    deep = np.minimum(photo.astype(np.uint32) * 257 + low, 65535).astype(np.uint16)
    gray = photo.mean(axis=2).round().astype(np.uint8)
    quantized = Image.fromarray(photo).quantize(64, dither=Image.Dither.NONE)
    files: dict[str, Path] = {}

    def pil(name: str, img: Image.Image, **options: object) -> None:
        files[name] = folder / name
        img.save(files[name], **options)

    def vips(name: str, arr: np.ndarray, interpretation: str, **options: object) -> None:
        files[name] = folder / name
        image = pyvips.Image.new_from_array(arr).copy(interpretation=interpretation)
        image.write_to_file(str(files[name]), **options)

    pil("rgb.png", Image.fromarray(photo))
    pil("rgba-logo.png", Image.fromarray(logo, "RGBA"))
    pil("interlaced.png", Image.fromarray(photo), interlace=1)
    vips("rgb16.png", deep, "rgb16")
    pil("gray.png", Image.fromarray(gray, "L"))
    vips("gray16.png", deep[..., 0], "grey16")
    pil("palette.png", quantized)
    transparent = quantized.copy()
    transparent.info["transparency"] = 0
    pil("palette-transparent.png", transparent, transparency=0)
    pil("rgb.tif", Image.fromarray(photo), compression="tiff_lzw")
    pil("rgba-logo.tif", Image.fromarray(logo, "RGBA"), compression="tiff_adobe_deflate")
    vips("rgb16.tif", deep, "rgb16")
    pil("rgb.webp", Image.fromarray(photo), quality=85)
    pil("rgba-logo.webp", Image.fromarray(logo, "RGBA"), lossless=True)
    pil("palette.gif", quantized)
    pil("rgb.avif", Image.fromarray(photo), quality=70)
    pil("rgba-logo.avif", Image.fromarray(logo, "RGBA"), quality=70)
    pil("baseline.jpg", Image.fromarray(photo), quality=90)
    pil("progressive.jpg", Image.fromarray(photo), quality=90, progressive=True)
    pil("gray.jpg", Image.fromarray(gray, "L"), quality=90)
    pil("cmyk.jpg", Image.fromarray(photo).convert("CMYK"), quality=90)
    import pillow_heif

    for name, pixels, mode in (("rgb.heic", photo, "RGB"), ("rgba-logo.heic", logo, "RGBA")):
        files[name] = folder / name
        heif = pillow_heif.from_bytes(mode=mode, size=(width, height), data=pixels.tobytes())
        heif.save(files[name], quality=85)
    return files

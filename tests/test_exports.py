"""Export formats (palette_native.exports): every output is parsed back and compared."""

from __future__ import annotations

import io
import json
import re
import struct
import xml.etree.ElementTree as ET

import pytest
from palette_native._palette import Color, Metrics, Palette
from palette_native.errors import BadParameterError, PaletteError
from palette_native.exports import FORMATS, export

SVG_NS = "{http://www.w3.org/2000/svg}"


def make_palette(specs: list[tuple[tuple[int, int, int], int]]) -> Palette:
    total = sum(pop for _, pop in specs) or 1
    colors = [Color(rgb, pop, pop / total) for rgb, pop in specs]
    return Palette(
        colors=colors,
        metrics=Metrics(2.5, 44.1, 1.2, 3.4),
        width=40,
        height=30,
        analyzed_pixels=1200,
    )


PALETTES = {
    "four": make_palette(
        [((230, 40, 30), 600), ((20, 30, 90), 300), ((250, 250, 245), 200), ((90, 160, 60), 100)]
    ),
    "one": make_palette([((12, 34, 56), 1)]),
    "empty": make_palette([]),
}


def read_ase(data: bytes) -> list[tuple[str, str, tuple[float, ...], int]]:
    """A small independent ASE reader: (name, model, values, color type) per color block."""
    stream = io.BytesIO(data)
    assert stream.read(4) == b"ASEF"
    major, minor, count = struct.unpack(">HHI", stream.read(8))
    assert (major, minor) == (1, 0)
    colors = []
    for _ in range(count):
        block_type, length = struct.unpack(">HI", stream.read(6))
        body = stream.read(length)
        assert len(body) == length, "block shorter than its declared length"
        assert block_type == 0x0001
        (name_units,) = struct.unpack(">H", body[:2])
        name_bytes = body[2 : 2 + 2 * name_units]
        assert name_bytes.endswith(b"\x00\x00")
        name = name_bytes[:-2].decode("utf-16-be")
        rest = body[2 + 2 * name_units :]
        model = rest[:4].decode("ascii")
        channels = {"RGB ": 3, "CMYK": 4, "LAB ": 3, "Gray": 1}[model]
        values = struct.unpack(f">{channels}f", rest[4 : 4 + 4 * channels])
        (color_type,) = struct.unpack(">H", rest[4 + 4 * channels :])
        colors.append((name, model, values, color_type))
    assert stream.read() == b"", "trailing bytes after the last block"
    return colors


@pytest.mark.parametrize("name", list(PALETTES))
def test_json_is_palette_to_json(name: str) -> None:
    palette = PALETTES[name]
    text = export(palette, "json")
    assert text == palette.to_json(indent=2)
    assert isinstance(text, str)
    data = json.loads(text)
    assert [c["hex"] for c in data["colors"]] == [c.hex for c in palette.colors]
    assert palette.export("json") == text


@pytest.mark.parametrize("name", list(PALETTES))
def test_css_custom_properties(name: str) -> None:
    palette = PALETTES[name]
    css = export(palette, "css")
    assert isinstance(css, str)
    assert css.startswith(":root {") and css.rstrip().endswith("}")
    props = dict(re.findall(r"^\s*(--[a-z0-9-]+):\s*(#[0-9a-f]{6});", css, re.MULTILINE))
    numbered = {k: v for k, v in props.items() if re.fullmatch(r"--palette-\d+", k)}
    assert numbered == {f"--palette-{i}": c.hex for i, c in enumerate(palette.colors, 1)}
    for role, swatch in palette.swatches.items():
        base = "--palette-" + role.replace("_", "-")
        assert props[base] == swatch.hex
        assert props[base + "-title"] == swatch.title_text
        assert props[base + "-body"] == swatch.body_text
    # Braces balance and every declaration ends with a semicolon.
    assert css.count("{") == css.count("}") == 1
    for line in css.splitlines()[1:-1]:
        assert re.fullmatch(r"\s+--[a-z0-9-]+: #[0-9a-f]{6};( /\*[^*]*\*/)?", line), line


@pytest.mark.parametrize("name", list(PALETTES))
def test_gpl_parses_back(name: str) -> None:
    palette = PALETTES[name]
    gpl = export(palette, "gpl")
    assert isinstance(gpl, str)
    lines = gpl.splitlines()
    assert lines[0] == "GIMP Palette"
    assert lines[1].startswith("Name: ")
    assert re.fullmatch(r"Columns: \d+", lines[2])
    rows = []
    for line in lines[3:]:
        if line.startswith("#") or not line.strip():
            continue
        match = re.fullmatch(r"\s*(\d{1,3})\s+(\d{1,3})\s+(\d{1,3})\t(.*)", line)
        assert match, line
        rgb = tuple(int(match.group(i)) for i in (1, 2, 3))
        rows.append((rgb, match.group(4).split()[0]))
    assert rows == [(c.rgb, c.hex) for c in palette.colors]


@pytest.mark.parametrize("name", list(PALETTES))
def test_ase_parses_back(name: str) -> None:
    palette = PALETTES[name]
    data = export(palette, "ase")
    assert isinstance(data, bytes)
    blocks = read_ase(data)
    assert len(blocks) == len(palette.colors)
    for (block_name, model, values, color_type), color in zip(blocks, palette.colors, strict=True):
        assert block_name == color.hex
        assert model == "RGB "
        assert color_type == 0  # global
        assert tuple(round(v * 255) for v in values) == color.rgb
        assert all(0.0 <= v <= 1.0 for v in values)


def test_ase_known_bytes_for_one_color() -> None:
    # Hand-assembled: header, one block of type 1 whose body is 8 UTF-16 units ("#0c2238" + NUL),
    # "RGB ", three floats and type 0.
    name = "#0c2238".encode("utf-16-be") + b"\x00\x00"
    body = b"\x00\x08" + name + b"RGB " + struct.pack(">fff", 12 / 255, 34 / 255, 56 / 255)
    body += b"\x00\x00"
    expected = b"ASEF\x00\x01\x00\x00\x00\x00\x00\x01" + b"\x00\x01" + struct.pack(">I", len(body))
    expected += body
    assert export(PALETTES["one"], "ase") == expected


@pytest.mark.parametrize("name", list(PALETTES))
def test_svg_strip(name: str) -> None:
    palette = PALETTES[name]
    svg = export(palette, "svg")
    assert isinstance(svg, str)
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == SVG_NS + "svg"
    width = float(root.attrib["width"])
    rects = root.findall(SVG_NS + "rect")
    assert [r.attrib["fill"] for r in rects] == [c.hex for c in palette.colors]
    x = 0.0
    for rect, color in zip(rects, palette.colors, strict=True):
        assert float(rect.attrib["x"]) == pytest.approx(x)
        w = float(rect.attrib["width"])
        assert w == pytest.approx(color.fraction * width, abs=0.01)
        x += w
    if rects:
        assert x == pytest.approx(width)


def test_svg_all_zero_fractions_get_equal_widths() -> None:
    palette = Palette(
        colors=[Color((1, 2, 3), 0, 0.0), Color((4, 5, 6), 0, 0.0)], metrics=Metrics(0, 0, 0, 0)
    )
    rects = ET.fromstring(export(palette, "svg")).findall(SVG_NS + "rect")  # type: ignore[arg-type]
    assert [float(r.attrib["width"]) for r in rects] == [400.0, 400.0]


def test_formats_tuple_and_case() -> None:
    assert FORMATS == ("json", "css", "gpl", "ase", "svg")
    assert export(PALETTES["four"], "GPL") == export(PALETTES["four"], "gpl")


@pytest.mark.parametrize("fmt", ["png", "", "jsonl"])
def test_unknown_format(fmt: str) -> None:
    with pytest.raises(BadParameterError, match="unknown export format") as info:
        export(PALETTES["four"], fmt)
    assert isinstance(info.value, PaletteError) and isinstance(info.value, ValueError)
    assert info.value.code == "bad_parameter"
    assert info.value.details["allowed"] == list(FORMATS)

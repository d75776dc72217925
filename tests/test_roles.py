"""Swatch roles and WCAG text colors (palette_native.roles)."""

from __future__ import annotations

import colorsys
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from palette_native._palette import Color, Metrics, Palette
from palette_native.roles import (
    ROLES,
    Swatch,
    contrast_ratio,
    relative_luminance,
    swatch_roles,
    text_color,
)

# The role windows, restated here from the Android palette idea so the test checks the code
# against an independent description: (min L, max L, min S, max S) in HSL.
WINDOWS = {
    "vibrant": (0.3, 0.7, 0.35, 1.0),
    "muted": (0.3, 0.7, 0.0, 0.4),
    "dark_vibrant": (0.0, 0.45, 0.35, 1.0),
    "dark_muted": (0.0, 0.45, 0.0, 0.4),
    "light_vibrant": (0.55, 1.0, 0.35, 1.0),
    "light_muted": (0.55, 1.0, 0.0, 0.4),
}


def hls(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    return colorsys.rgb_to_hls(*(v / 255 for v in rgb))


def in_window(role: str, rgb: tuple[int, int, int]) -> bool:
    _, lightness, saturation = hls(rgb)
    min_l, max_l, min_s, max_s = WINDOWS[role]
    return min_l <= lightness <= max_l and min_s <= saturation <= max_s


def palette_of(*specs: tuple[tuple[int, int, int], int]) -> list[Color]:
    total = sum(pop for _, pop in specs)
    return [Color(rgb, pop, pop / total) for rgb, pop in specs]


def test_wcag_reference_values() -> None:
    assert relative_luminance((255, 255, 255)) == pytest.approx(1.0)
    assert relative_luminance((0, 0, 0)) == 0.0
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast_ratio((255, 255, 255), (0, 0, 0)) == pytest.approx(21.0)
    assert contrast_ratio((10, 20, 30), (10, 20, 30)) == pytest.approx(1.0)
    # Published WebAIM figure: #777777 on white is 4.48:1.
    assert contrast_ratio((0x77, 0x77, 0x77), (255, 255, 255)) == pytest.approx(4.48, abs=0.01)


def test_each_role_finds_the_color_made_for_it() -> None:
    colors = palette_of(
        ((220, 30, 40), 50),  # vibrant: saturated, mid lightness
        ((120, 110, 100), 40),  # muted
        ((90, 10, 120), 30),  # dark vibrant
        ((40, 45, 50), 20),  # dark muted
        ((250, 170, 190), 10),  # light vibrant
        ((210, 205, 200), 5),  # light muted
    )
    swatches = swatch_roles(colors)
    assert list(swatches) == list(ROLES)
    expected = dict(zip(ROLES, colors, strict=True))
    for role, swatch in swatches.items():
        assert swatch.role == role
        assert not swatch.synthesized, role
        assert swatch.color is expected[role], role


def test_a_color_fills_at_most_one_role() -> None:
    # One color fits both the vibrant and the light vibrant windows; it may take only one.
    colors = palette_of(((240, 120, 120), 100))
    swatches = swatch_roles(colors)
    found = [s for s in swatches.values() if not s.synthesized]
    assert len(found) == 1
    assert found[0].color is colors[0]


def test_population_breaks_near_ties() -> None:
    # Two almost identical vibrant reds; the far more common one should win the role.
    colors = palette_of(((200, 40, 40), 10), ((201, 40, 40), 1000))
    colors.sort(key=lambda c: c.population)  # rare one first, so order cannot decide
    assert swatch_roles(colors)["vibrant"].color.rgb == (201, 40, 40)


def test_missing_roles_are_synthesized_in_their_windows() -> None:
    colors = palette_of(((30, 110, 220), 70), ((25, 25, 30), 30))
    swatches = swatch_roles(colors)
    assert swatches["vibrant"].color is colors[0]
    assert swatches["dark_muted"].color is colors[1]
    for role in ("muted", "dark_vibrant", "light_vibrant", "light_muted"):
        swatch = swatches[role]
        assert swatch.synthesized
        assert swatch.color.population == 0 and swatch.color.fraction == 0.0
        assert in_window(role, swatch.color.rgb), (role, swatch.color.rgb)
    # Synthesized vibrant variants keep the hue of the blue they come from.
    blue_hue = hls(colors[0].rgb)[0]
    for role in ("dark_vibrant", "light_vibrant"):
        assert hls(swatches[role].color.rgb)[0] == pytest.approx(blue_hue, abs=0.02)


def test_empty_palette_still_has_every_role() -> None:
    swatches = swatch_roles([])
    assert list(swatches) == list(ROLES)
    for role, swatch in swatches.items():
        assert swatch.synthesized
        assert in_window(role, swatch.color.rgb), (role, swatch.color.rgb)


@pytest.mark.parametrize(
    "background",
    [
        (0, 0, 0),
        (255, 255, 255),
        (119, 119, 119),
        (118, 118, 118),
        (255, 0, 0),
        (0, 0, 255),
        (0, 255, 0),
        (128, 64, 200),
        (250, 250, 0),
    ],
    ids=lambda rgb: "#{:02x}{:02x}{:02x}".format(*rgb),
)
def test_text_colors_meet_wcag(background: tuple[int, int, int]) -> None:
    title, title_ratio = text_color(background, 3.0)
    body, body_ratio = text_color(background, 4.5)
    assert contrast_ratio(title, background) == pytest.approx(title_ratio)
    assert title_ratio >= 3.0
    assert body_ratio >= 4.5
    # The least opacity that works: the title tint sits closer to the background than body text.
    assert title_ratio <= body_ratio


def test_text_color_is_a_tint_not_always_pure() -> None:
    # On black the title color is a gray, not pure white: the least opacity meeting 3.0.
    title, ratio = text_color((0, 0, 0), 3.0)
    assert title[0] == title[1] == title[2]
    assert 0 < title[0] < 255
    assert ratio < 3.2


def test_text_color_rejects_unreachable_ratio() -> None:
    with pytest.raises(ValueError, match="min_contrast"):
        text_color((128, 128, 128), 7.0)


rgb_strategy = st.tuples(*(st.integers(0, 255),) * 3)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(rgb_strategy, st.integers(1, 10_000)), max_size=12))
def test_roles_invariants(specs: list[tuple[tuple[int, int, int], int]]) -> None:
    colors = palette_of(*specs) if specs else []
    swatches = swatch_roles(colors)
    assert list(swatches) == list(ROLES)
    used: list[int] = []
    for role, swatch in swatches.items():
        assert isinstance(swatch, Swatch)
        assert swatch.title_contrast >= 3.0 and swatch.body_contrast >= 4.5
        title = tuple(int(swatch.title_text[i : i + 2], 16) for i in (1, 3, 5))
        body = tuple(int(swatch.body_text[i : i + 2], 16) for i in (1, 3, 5))
        assert contrast_ratio(title, swatch.color.rgb) >= 3.0  # type: ignore[arg-type]
        assert contrast_ratio(body, swatch.color.rgb) >= 4.5  # type: ignore[arg-type]
        assert in_window(role, swatch.color.rgb), (role, swatch.color.rgb)
        if swatch.synthesized:
            assert swatch.color.population == 0
        else:
            index = next(i for i, c in enumerate(colors) if c is swatch.color)
            used.append(index)
    assert len(used) == len(set(used)), "a palette color filled two roles"
    # Whenever there are colors, at least one role is a real palette color.
    if colors:
        assert used
    # Deterministic.
    assert {r: s.to_dict() for r, s in swatch_roles(colors).items()} == {
        r: s.to_dict() for r, s in swatches.items()
    }


def test_palette_swatches_and_dict() -> None:
    colors = palette_of(((200, 30, 30), 3), ((30, 30, 40), 1))
    palette = Palette(colors=colors, metrics=Metrics(1.0, 48.0, 0.5, 1.0))
    assert palette.swatches["vibrant"].hex == "#c81e1e"
    data = json.loads(palette.to_json())
    vibrant = data["swatches"]["vibrant"]
    assert vibrant["hex"] == "#c81e1e"
    assert vibrant["synthesized"] is False
    assert vibrant["body_contrast"] >= 4.5
    assert set(data["swatches"]) == set(ROLES)
    assert sum(s["synthesized"] for s in data["swatches"].values()) == 4

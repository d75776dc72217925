"""theme() and harmony(): contrast by construction, ramps, exports, determinism."""

from __future__ import annotations

import json

import numpy as np
import palette_native as pn
import pytest
from palette_native._oklch import tone_of
from palette_native.roles import contrast_ratio
from palette_native.theme import TONES, VARIANTS, tone_of_hex


def _rgb(value: str) -> tuple[int, int, int]:
    return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))


SEEDS = ["#d65e3a", "#ffff00", "#00ffff", "#0000ff", "#808080", "#000000", "#ffffff", "#3a7d2c"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("seed", SEEDS)
def test_every_pair_meets_its_ratio(seed: str, variant: str) -> None:
    theme = pn.theme(seed, variant=variant)
    assert len(theme.pairs) == 52
    for pair in theme.pairs:
        ratio = contrast_ratio(_rgb(pair.foreground), _rgb(pair.background))
        assert abs(ratio - pair.ratio) < 1e-9
        assert ratio >= pair.required_ratio, pair
        scheme = theme.light if pair.role.startswith("light:") else theme.dark
        fg, bg = pair.role.split(":", 1)[1].split("/")
        assert (scheme[fg], scheme[bg]) == (pair.foreground, pair.background)
    assert {p.required_ratio for p in theme.pairs} == {3.0, 4.5}


def test_ramps_follow_their_tones() -> None:
    theme = pn.theme("#3a7d2c")
    for ramp in theme.ramps.values():
        tones = ramp.tones
        assert list(tones) == list(TONES)
        assert tones[0] == "#000000" and tones[100] == "#ffffff"
        for tone in TONES[1:-1]:
            assert abs(tone_of_hex(tones[tone]) - tone) < 1.0, (ramp.name, tone)
    assert set(theme.ramps) == {"primary", "secondary", "tertiary", "neutral",
                                "neutral_variant", "error"}


def test_same_image_same_theme() -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
    image[20:60, 30:90] = (30, 90, 200)
    first, second = pn.theme(image), pn.theme(image.copy())
    assert first.to_dict() == second.to_dict()
    palette = pn.extract(image, 16)
    assert pn.theme(palette).to_dict() == first.to_dict()
    assert first.source != "#808080"
    assert tone_of(_rgb(first.light["surface"])) > 90 > tone_of(_rgb(first.dark["surface"])) + 60


def test_exports() -> None:
    theme = pn.theme("#aa3355")
    css = theme.export("css")
    assert "--theme-primary-40:" in css and "prefers-color-scheme: dark" in css
    assert f"--theme-on-primary: {theme.light['on_primary']};" in css
    tokens = json.loads(theme.export("tokens"))
    token = tokens["color"]["light"]["primary"]
    assert token["$type"] == "color" and token["$value"]["hex"] == theme.light["primary"]
    assert tokens["color"]["primary"]["40"]["$value"]["colorSpace"] == "srgb"
    tailwind = theme.export("tailwind")
    body = json.loads(tailwind.split("module.exports = ", 1)[1].rstrip().rstrip(";"))
    colors = body["theme"]["extend"]["colors"]
    assert colors["primary"]["40"] == theme.ramps["primary"].tone(40)
    assert colors["primary"]["DEFAULT"] == "var(--theme-primary)"
    assert json.loads(theme.export("json"))["source"] == "#aa3355"
    with pytest.raises(pn.BadParameterError):
        theme.export("xml")
    with pytest.raises(pn.BadParameterError):
        pn.theme("#aa3355", variant="loud")
    with pytest.raises(pn.BadParameterError):
        pn.theme("#zzzzzz")


def test_harmony_turns_the_hue() -> None:
    from palette_native._oklch import oklch

    result = pn.harmony("#d65e3a")
    base_l, _, base_h = oklch(_rgb(result.base))
    for offset, color in [(180, result.complementary[0]), (-30, result.analogous[0]),
                          (30, result.analogous[1]), (120, result.triadic[0]),
                          (240, result.triadic[1])]:
        lightness, _, hue = oklch(_rgb(color))
        assert abs((hue - base_h - offset + 180) % 360 - 180) < 4.0, (offset, color)
        assert abs(lightness - base_l) < 0.02
    assert result.dominant_family == "red"  # Oklch hue 38: red-orange, in the red arc
    assert pn.harmony("#ff8800").dominant_family == "orange"
    assert pn.harmony((40, 90, 230)).dominant_family == "blue"


def test_harmony_families_of_a_palette() -> None:
    image = np.zeros((60, 100, 3), np.uint8)
    image[:, :70] = (20, 60, 200)  # blue
    image[:, 70:90] = (200, 30, 30)  # red
    image[:, 90:] = (128, 128, 128)
    result = pn.harmony(pn.extract(image, 3))
    assert result.dominant_family == "blue"
    assert abs(result.families["blue"] - 0.7) < 0.01 and abs(result.families["neutral"] - 0.1) < 0.01
    gray = pn.harmony(pn.extract(np.full((10, 10, 3), 120, np.uint8), 2))
    assert gray.dominant_family == "neutral"

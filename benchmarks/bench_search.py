"""Search by color (issue 14): 10,000 processed palettes, a color query in under 50 ms p95.

The palettes are photo-like: each image gets a scene of 8 colors around a random key color
(lightness and chroma spread as in the corpus photos' palettes, a few near-neutrals), with
fractions that fall off like real populations. They are inserted through the store's seam
(``Backends.search.add``), then queried by colors picked near indexed ones and by random ones
with the route's default radius (ΔE 5), 50 hits a page:

* through the seam, on SQLite and on a real ``redis-server``, against a NumPy brute force over
  every color of the tenant (the baseline, in the same group; it must give the same hits);
* over HTTP: a real ``palette serve`` on the SQLite store holding the same palettes, from one
  keep-alive client.

The bar (p95 < 50 ms) is asserted in every run; under ``--benchmark-disable`` (CI) the index
is as large and the queries fewer.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from service.backends import Backends, open_backends
from service.search.interfaces import IndexedPalette, Oklab
from service.search.service import indexed_palette
from service.settings import Settings

PALETTES = 10_000
COLORS = 8
RADIUS_DE = 5.0
PAGE = 50
BAR_P95_MS = 50.0
TENANT = "public"  # the tenant of an open server (no keys): the HTTP test's caller
SEED = 14


def _srgb_from_oklab(lab: np.ndarray) -> np.ndarray:
    """Oklab -> 8-bit sRGB (clipped into the gamut), vectorised."""
    m1 = np.array(
        [[1.0, 0.3963377774, 0.2158037573], [1.0, -0.1055613458, -0.0638541728],
         [1.0, -0.0894841775, -1.2914855480]]
    )  # fmt: skip
    m2 = np.array(
        [[4.0767416621, -3.3077115913, 0.2309699292], [-1.2684380046, 2.6097574011, -0.3413193965],
         [-0.0041960863, -0.7034186147, 1.7076147010]]
    )  # fmt: skip
    linear = np.clip((lab @ m1.T) ** 3 @ m2.T, 0.0, 1.0)
    encoded = np.where(
        linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055
    )
    rounded: np.ndarray = np.rint(encoded * 255).astype(int)
    return rounded


def photo_like_palettes(count: int, seed: int = SEED) -> list[dict[str, Any]]:
    """``Palette.to_dict()``-shaped palettes (hex and fraction are what the index reads)."""
    rng = np.random.default_rng(seed)
    palettes = []
    for _ in range(count):
        key = np.array([rng.uniform(0.25, 0.9), *rng.normal(0.0, 0.07, 2)])
        spread = rng.uniform(0.03, 0.15)
        scene = key + rng.normal(0.0, spread, (COLORS, 3)) * np.array([1.5, 1.0, 1.0])
        scene[rng.random(COLORS) < 0.25, 1:] *= 0.15  # near-neutrals: shadows, sky, walls
        scene[:, 0] = np.clip(scene[:, 0], 0.05, 0.99)
        rgb = _srgb_from_oklab(scene)
        fractions = np.sort(rng.dirichlet(np.full(COLORS, 0.8)))[::-1]
        palettes.append(
            {
                "colors": [
                    {"hex": "#{:02x}{:02x}{:02x}".format(*c), "fraction": round(float(f), 4)}
                    for c, f in zip(rgb, fractions)
                ]
            }
        )
    return palettes


def indexed(palettes: list[dict[str, Any]], expires_at: float) -> list[IndexedPalette]:
    return [
        indexed_palette(TENANT, f"/v1/palettes/{n:064x}?colors=8", p, expires_at)
        for n, p in enumerate(palettes)
    ]


def queries(entries: list[IndexedPalette], count: int, seed: int = SEED + 1) -> list[Oklab]:
    """Half near an indexed color (ΔE up to ~3 away: many hits), half anywhere in the gamut."""
    rng = np.random.default_rng(seed)
    found: list[Oklab] = []
    for n in range(count):
        if n % 2 == 0:
            color = entries[int(rng.integers(len(entries)))].colors[int(rng.integers(COLORS))]
            l, a, b = np.array(color.oklab) + rng.normal(0.0, 0.015, 3)
        else:
            l, a, b = rng.uniform(0.2, 0.95), *rng.uniform(-0.15, 0.15, 2)
        found.append((float(l), float(a), float(b)))
    return found


class BruteForce:
    """The baseline: every color of the tenant in NumPy arrays, distances to all of them."""

    def __init__(self, entries: list[IndexedPalette]) -> None:
        self.lab = np.array([c.oklab for e in entries for c in e.colors])
        self.owner = np.repeat(np.arange(len(entries)), [len(e.colors) for e in entries])
        self.refs = [e.ref for e in entries]

    def search(self, query: Oklab, radius: float, limit: int) -> list[tuple[str, float]]:
        distance = np.sqrt(((self.lab - np.array(query)) ** 2).sum(axis=1))
        near = distance <= radius
        best: dict[int, float] = {}
        for owner, d in zip(self.owner[near].tolist(), distance[near].tolist()):
            if d < best.get(owner, math.inf):
                best[owner] = d
        ranked = sorted(best.items(), key=lambda kv: kv[1])[:limit]
        return [(self.refs[owner], d) for owner, d in ranked]


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) >= 20 else max(samples)


def timed(call: Callable[[Oklab], object], points: list[Oklab]) -> list[float]:
    """Milliseconds per query (after two warm-up queries)."""
    for point in points[:2]:
        call(point)
    out = []
    for point in points:
        started = time.perf_counter()
        call(point)
        out.append((time.perf_counter() - started) * 1000)
    return out


def summary(name: str, ms: list[float], hits: list[int]) -> str:
    return (
        f"{name}: {len(ms)} queries over {PALETTES} palettes ({PALETTES * COLORS} colors), "
        f"ΔE <= {RADIUS_DE:g}, {PAGE} a page: median {statistics.median(ms):.2f} ms, "
        f"p95 {p95(ms):.2f} ms, max {max(ms):.2f} ms; hits per query median "
        f"{statistics.median(hits):.0f}, max {max(hits)}"
    )


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def palettes() -> list[dict[str, Any]]:
    return photo_like_palettes(PALETTES)


@pytest.fixture(scope="module")
def query_count(request: pytest.FixtureRequest) -> int:
    return 60 if request.config.getoption("benchmark_disable", default=False) else 400


def _open(kind: str, root: Path) -> Iterator[Backends]:
    settings = Settings(data_dir=root / "data")
    server = None
    if kind == "redis":
        import dataclasses

        from scaletools import RedisServer

        server = RedisServer(root / "redis").start()
        settings = dataclasses.replace(
            settings,
            store=server.url,
            url_signing_keys="k1:" + "a" * 43,
            webhooks=dataclasses.replace(settings.webhooks, callback_secret="whsec_" + "b" * 32),
        )
    backends = open_backends(settings)
    try:
        yield backends
    finally:
        backends.close()
        if server is not None:
            server.stop()


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def filled(
    request: pytest.FixtureRequest,
    palettes: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Backends, list[IndexedPalette], float]]:
    """The backend with the 10,000 palettes in its index, and how long inserting took."""
    for backends in _open(request.param, tmp_path_factory.mktemp(f"search-{request.param}")):
        entries = indexed(palettes, backends.clock.now() + 86400)
        started = time.perf_counter()
        for first in range(0, len(entries), 500):  # as the sync writer and job results batch
            backends.search.add(entries[first : first + 500])
        yield request.param, backends, entries, time.perf_counter() - started


# -- benchmarks --------------------------------------------------------------------------------
def test_seam_query_p95_under_50_ms(
    benchmark: Any,
    filled: tuple[str, Backends, list[IndexedPalette], float],
    query_count: int,
    enforce_timing_bars: bool,
) -> None:
    kind, backends, entries, insert_s = filled
    benchmark.group = f"search-{kind}"
    benchmark.name = f"index-{kind}"
    points = queries(entries, query_count)
    radius = RADIUS_DE / 100
    brute = BruteForce(entries)

    # Correct first: the index gives the brute force's hits, in its order.
    counts = []
    for point in points:
        hits, _ = backends.search.search(TENANT, point, radius, limit=PAGE)
        expected = brute.search(point, radius, PAGE)
        assert [h.distance for h in hits] == pytest.approx([d for _, d in expected], abs=1e-9)
        if expected:  # the same palettes (those tied with the last one may differ)
            cut = expected[-1][1] - 1e-9
            assert {h.ref for h in hits if h.distance < cut} == {r for r, d in expected if d < cut}
        counts.append(len(hits))
    assert max(counts) == PAGE and min(counts) == 0  # full pages and empty answers both seen

    ms = timed(lambda q: backends.search.search(TENANT, q, radius, limit=PAGE), points)
    print("\n" + summary(f"seam ({kind}; {PALETTES} inserted in {insert_s:.1f} s)", ms, counts))
    bar = BAR_P95_MS if enforce_timing_bars else BAR_P95_MS * 2
    assert p95(ms) < bar, f"{kind} index p95 {p95(ms):.1f} ms over {bar:g} ms"
    cycle = iter(points * 1000)
    benchmark(lambda: backends.search.search(TENANT, next(cycle), radius, limit=PAGE))


def test_brute_force_baseline(
    benchmark: Any, palettes: list[dict[str, Any]], query_count: int
) -> None:
    entries = indexed(palettes, 2e9)
    brute = BruteForce(entries)
    points = queries(entries, query_count)
    benchmark.group = "search-sqlite"
    benchmark.name = "numpy-brute-force"
    ms = timed(lambda q: brute.search(q, RADIUS_DE / 100, PAGE), points)
    counts = [len(brute.search(q, RADIUS_DE / 100, PAGE)) for q in points]
    print("\n" + summary("NumPy brute force (baseline)", ms, counts))
    cycle = iter(points * 1000)
    benchmark(lambda: brute.search(next(cycle), RADIUS_DE / 100, PAGE))


@pytest.mark.e2e
def test_http_query_p95_under_50_ms(
    palettes: list[dict[str, Any]],
    tmp_path: Path,
    query_count: int,
    enforce_timing_bars: bool,
) -> None:
    """``GET /v1/search`` on a real server whose store holds the 10,000 palettes."""
    from servertools import ServiceProcess, write_guard

    for backends in _open("sqlite", tmp_path):
        entries = indexed(palettes, backends.clock.now() + 86400)
        backends.search.add(entries)
    points = queries(entries, query_count)
    # No rate limit: one client asks as fast as it can.
    env = {"PALETTE_RATE_LIMITS": ""}
    server = ServiceProcess(tmp_path / "data", write_guard(tmp_path / "guard"), env).start(60)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:

            def ask(point: Oklab) -> int:
                hex_color = "#{:02x}{:02x}{:02x}".format(*_srgb_from_oklab(np.array([point]))[0])
                params = {"color": hex_color, "max_delta_e": str(RADIUS_DE), "limit": str(PAGE)}
                answer = client.get("/v1/search", params=params)
                assert answer.status_code == 200, answer.text
                return len(answer.json()["items"])

            counts = [ask(point) for point in points]
            ms = timed(ask, points)
    finally:
        server.stop()
    assert max(counts) == PAGE
    print("\n" + summary("HTTP (GET /v1/search, one keep-alive client)", ms, counts))
    bar = BAR_P95_MS if enforce_timing_bars else BAR_P95_MS * 2
    assert p95(ms) < bar, f"HTTP p95 {p95(ms):.1f} ms over {bar:g} ms"

"""Speed: file to palette (decode included), decode-only floors, kernel throughput, threads.

How the bar is judged, in both modes (timed, and ``--benchmark-disable`` as CI runs it):
the pytest-benchmark tests give the human-readable group tables, but the ratio assertions never
read them (with ``--benchmark-disable`` each runs once, untimed). Instead ``bar_timings``
measures the contenders itself with ``time.perf_counter``: ``PALETTE_BENCH_ROUNDS`` rounds
(default 5) after one warm-up round, interleaved photo by photo so that a load spike from
another process hits every contender alike. Each photo's time is the median of its rounds, and
a contender's time is the median over photos. Timed runs assert the issue's bars as written;
under ``--benchmark-disable`` (CI) they are loosened by ``CI_SLACK`` (conftest.py) so a busy
neighbour cannot fail CI while a real regression still does. The kernel bar (an absolute
60 ms) runs in a child process pinned to one CPU.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from .conftest import CI_SLACK, Report, env_int
from .corpus import Photo
from .peers import DECODERS, EXTRACTORS, RGBArray

ROUNDS = max(1, env_int("PALETTE_BENCH_ROUNDS", 5))
FASTER_THAN_PEERS = 2.5  # x faster than min(Pillow fast octree, fast-colorthief)
DECODE_SLACK = 1.3  # at most this times the fastest decode-only path
THREAD_SPEEDUP = 1.7  # 2 threads vs 1 on a batch
KERNEL_MS = float(os.environ.get("PALETTE_BENCH_KERNEL_MS", "60"))
KERNEL_SHAPE = (4000, 6000)  # 24 MP

Timings = dict[str, list[float]]  # photo name -> seconds, one per round


def _median_ms(times: Timings) -> float:
    """Median over photos of each photo's median time, in ms."""
    return 1e3 * statistics.median(statistics.median(t) for t in times.values())


def _time_pass(run: Callable[[Photo], Any], photos: list[Photo], log: Timings) -> list[Any]:
    out = []
    for photo in photos:
        start = time.perf_counter()
        out.append(run(photo))
        log.setdefault(photo.name, []).append(time.perf_counter() - start)
    return out


@pytest.fixture(scope="module")
def budgets(speed_corpus: list[Photo]) -> dict[str, int]:
    """Pixels palette_native analyses per photo by default: the decode-only paths' budget."""
    import palette_native

    return {p.name: palette_native.extract(p.path, colors=8).analyzed_pixels for p in speed_corpus}


def _runner(name: str, colors: int, budgets: dict[str, int]) -> Callable[[Photo], Any]:
    if name in DECODERS:
        decode = DECODERS[name]
        return lambda photo: decode(photo.path, budgets[photo.name])
    extract = EXTRACTORS[name]
    return lambda photo: extract(photo.path, colors)


# --------------------------------------------------------------------------- the bar, measured
BAR_COLORS = [5, 8, 16, 32]
BAR_EXTRACTORS = ["palette_native", "pillow-octree", "fast-colorthief"]
BAR_DECODERS = ["pillow-draft", "pyvips-shrink"]  # the same pixels whatever K is


@pytest.fixture(scope="module")
def bar_timings(
    speed_corpus: list[Photo], budgets: dict[str, int]
) -> dict[tuple[str, int], float]:
    """Median ms per photo for each bar contender, per K (decoders under K=0), interleaved
    rounds (see module doc)."""
    runners = {(name, k): _runner(name, k, budgets) for name in BAR_EXTRACTORS for k in BAR_COLORS}
    runners |= {(name, 0): _runner(name, 0, budgets) for name in BAR_DECODERS}
    logs: dict[tuple[str, int], Timings] = {key: {} for key in runners}
    for round_index in range(ROUNDS + 1):
        for photo in speed_corpus:
            for key, run in runners.items():
                start = time.perf_counter()
                run(photo)
                elapsed = time.perf_counter() - start
                if round_index > 0:  # round 0 warms imports, caches and the page cache
                    logs[key].setdefault(photo.name, []).append(elapsed)
    return {key: _median_ms(log) for key, log in logs.items()}


@pytest.mark.parametrize("colors", BAR_COLORS, ids=lambda k: f"k{k}")
def test_speed_bar(
    bar_timings: dict[tuple[str, int], float], report: Report, enforce_timing_bars: bool,
    colors: int,
) -> None:
    ours = bar_timings[("palette_native", colors)]
    peer_name = min(("pillow-octree", "fast-colorthief"), key=lambda n: bar_timings[(n, colors)])
    decode_name = min(BAR_DECODERS, key=lambda n: bar_timings[(n, 0)])
    peer, floor = bar_timings[(peer_name, colors)], bar_timings[(decode_name, 0)]
    report.add(
        f"Speed bar (K={colors}, 0.5-5 MP photos, perf_counter medians)",
        [
            f"- rounds: {ROUNDS} (+1 warm-up), interleaved per photo",
            *(f"- {name}: {bar_timings[(name, colors)]:.1f} ms" for name in BAR_EXTRACTORS),
            *(f"- {name} (decode only): {bar_timings[(name, 0)]:.1f} ms" for name in BAR_DECODERS),
            f"- vs {peer_name}: {peer / ours:.2f}x faster (bar >= {FASTER_THAN_PEERS}x)",
            f"- vs {decode_name} decode-only: {ours / floor:.2f}x its time (bar <= {DECODE_SLACK}x)",
        ],
    )
    slack = 1.0 if enforce_timing_bars else CI_SLACK
    assert peer / ours >= FASTER_THAN_PEERS / slack, (
        f"K={colors}: palette_native {ours:.1f} ms is only {peer / ours:.2f}x faster than "
        f"{peer_name} {peer:.1f} ms (bar {FASTER_THAN_PEERS}x)"
    )
    assert ours <= DECODE_SLACK * slack * floor, (
        f"K={colors}: palette_native {ours:.1f} ms is {ours / floor:.2f}x the {decode_name} "
        f"decode-only {floor:.1f} ms (bar {DECODE_SLACK}x)"
    )


# --------------------------------------------------------------------------- group tables
def _check_output(name: str, colors: int, out: RGBArray, photo: Photo, budget: int) -> None:
    if name in DECODERS:
        assert out.ndim == 3 and out.shape[2] == 3, f"{name}: shape {out.shape}"
        # libvips rounds a DCT-scaled edge down where libjpeg rounds up: allow one pixel.
        assert (out.shape[0] + 1) * (out.shape[1] + 1) >= budget, f"{name}: below the budget"
        assert out.shape[0] <= photo.height and out.shape[1] <= photo.width
        return
    distinct = len(np.unique(out, axis=0))
    if name == "palette_native":
        assert distinct == len(out) == colors, f"{photo.name}: {distinct} distinct of {colors}"
    else:
        assert 1 <= distinct <= colors, f"{name} {photo.name}: {distinct} colors for K={colors}"


SPEED_CASES = [
    *((name, 8) for name in [*EXTRACTORS, "pillow-draft", "pyvips-shrink"]),
    *((name, k) for k in (5, 16, 32) for name in ["palette_native", "pillow-octree", "fast-colorthief"]),
]
SLOW = {"pillow-mediancut", "libimagequant"}  # 5-20x slower: one timed round is plenty


@pytest.mark.parametrize(("name", "colors"), SPEED_CASES, ids=[f"{n}-k{k}" for n, k in SPEED_CASES])
def test_file_to_palette(
    benchmark: BenchmarkFixture,
    speed_corpus: list[Photo],
    budgets: dict[str, int],
    report: Report,
    name: str,
    colors: int,
) -> None:
    """One pass over the 0.5-5 MP photos per round; decode-only rows decode to the same pixels."""
    benchmark.group = f"file-to-palette-k{colors}"
    run = _runner(name, colors, budgets)
    log: Timings = {}
    rounds = 1 if name in SLOW else 3
    outs = benchmark.pedantic(_time_pass, args=(run, speed_corpus, log), rounds=rounds)
    for photo, out in zip(speed_corpus, outs, strict=True):
        _check_output(name, colors, out, photo, budgets[photo.name])
    ms = _median_ms(log)
    benchmark.extra_info["median_ms_per_photo"] = round(ms, 2)
    report.speed_ms.setdefault(name, {})[colors] = ms


def test_decoders_agree(speed_corpus: list[Photo], budgets: dict[str, int]) -> None:
    """Both decode-only floors use the same DCT scale, so they compare like for like.

    libjpeg rounds a scaled edge up and libvips rounds it down, so edges may differ by a pixel.
    """
    for photo in speed_corpus:
        shapes = [
            DECODERS[n](photo.path, budgets[photo.name]).shape
            for n in ("pillow-draft", "pyvips-shrink")
        ]
        assert all(abs(a - b) <= 1 for a, b in zip(*shapes, strict=True)), f"{photo.name}: {shapes}"


# --------------------------------------------------------------------------- decode budgets
BUDGETS = [65_536, 131_072, 262_144, 524_288]
DECODE_CASES = [(d, b) for b in BUDGETS for d in ("pillow-draft", "pyvips-shrink")]


@pytest.mark.parametrize(
    ("decoder", "budget"), DECODE_CASES, ids=[f"{d}-{b // 1024}K" for d, b in DECODE_CASES]
)
def test_decode_budget(
    benchmark: BenchmarkFixture,
    speed_corpus: list[Photo],
    report: Report,
    decoder: str,
    budget: int,
) -> None:
    """Decode-only cost per pixel budget, to choose palette_native's decode path and default."""
    benchmark.group = f"decode-budget-{budget // 1024}K"
    decode = DECODERS[decoder]
    log: Timings = {}
    arrays = benchmark.pedantic(
        _time_pass, args=(lambda p: decode(p.path, budget), speed_corpus, log), rounds=3
    )
    pixels = [a.shape[0] * a.shape[1] for a in arrays]
    assert all(
        px >= min(budget, p.width * p.height) for px, p in zip(pixels, speed_corpus, strict=True)
    )
    rows = report.sections.setdefault(
        "Decode-only cost by pixel budget (0.5-5 MP photos)",
        ["| decoder | budget | median ms | median decoded pixels |", "|---|---:|---:|---:|"],
    )
    rows.append(
        f"| {decoder} | {budget // 1024}K | {_median_ms(log):.1f} "
        f"| {statistics.median(pixels):,.0f} |"
    )


# --------------------------------------------------------------------------- progressive JPEGs
PROGRESSIVE_VS_FLOOR = 0.5  # file -> palette at most this times libjpeg's decode alone


def test_progressive_jpegs(speed_corpus: list[Photo], report: Report, tmp_path: Path,
                           enforce_timing_bars: bool) -> None:
    """Web images are often progressive JPEGs (mozjpeg's default, "save for web"), which libjpeg
    decodes several times slower than baseline ones even at 1/8 scale. Each speed photo saved
    again as a progressive JPEG (Pillow, quality 85, 4:2:0): palette_native's file -> palette
    time against Pillow's draft decode alone of the same files at the same pixel count."""
    from PIL import Image

    import palette_native

    files = []
    for photo in speed_corpus:
        path = tmp_path / f"{photo.name}.jpg"
        with Image.open(photo.path) as image:
            image.convert("RGB").save(path, "JPEG", quality=85, progressive=True)
        files.append(path)
    budgets = {p: palette_native.extract(p, colors=8).analyzed_pixels for p in files}
    decode = DECODERS["pillow-draft"]
    times: dict[str, dict[Path, list[float]]] = {"palette_native": {}, "pillow-draft": {}}
    for _ in range(ROUNDS + 1):  # the first round warms up and is dropped below
        for path in files:
            start = time.perf_counter()
            palette = palette_native.extract(path, colors=8)
            times["palette_native"].setdefault(path, []).append(time.perf_counter() - start)
            assert len(palette.colors) == 8 and palette.reason is None, path.name
            start = time.perf_counter()
            pixels = decode(path, budgets[path])
            times["pillow-draft"].setdefault(path, []).append(time.perf_counter() - start)
            assert pixels.shape[0] * pixels.shape[1] >= budgets[path], path.name

    def median_ms(name: str) -> float:
        return 1e3 * statistics.median(statistics.median(t[1:]) for t in times[name].values())

    ours, floor = median_ms("palette_native"), median_ms("pillow-draft")
    ratio = ours / floor
    report.add(
        "Progressive JPEGs (the speed photos saved progressive, perf_counter medians)",
        [
            f"- {len(files)} files; palette_native file -> palette (K=8): {ours:.1f} ms",
            f"- pillow-draft decode only, same pixel count: {floor:.1f} ms",
            f"- palette_native / decode-only floor = {ratio:.2f} (bar <= {PROGRESSIVE_VS_FLOOR})",
        ],
    )
    slack = 1.0 if enforce_timing_bars else CI_SLACK
    assert ratio <= PROGRESSIVE_VS_FLOOR * slack, f"{ratio:.2f}x the decode-only floor"


# --------------------------------------------------------------------------- threads
def _thread_speedups(works: list[Callable[[Path], Any]], paths: list[Path]
                     ) -> list[tuple[float, float, float]]:
    """(1-thread s, 2-thread s, speed-up) per work: medians of batches after a warm-up, the
    works' batches interleaved so that a load spike from another process hits each alike."""

    def batch(work: Callable[[Path], Any], threads: int) -> float:
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, paths))
        return time.perf_counter() - start

    for work in works:
        batch(work, 2)
    one: list[list[float]] = [[] for _ in works]
    two: list[list[float]] = [[] for _ in works]
    for _ in range(max(3, ROUNDS // 2)):
        for i, work in enumerate(works):
            one[i].append(batch(work, 1))
            two[i].append(batch(work, 2))
    return [
        (statistics.median(a), statistics.median(b), statistics.median(a) / statistics.median(b))
        for a, b in zip(one, two)
    ]


def test_threads_scale(
    speed_corpus: list[Photo], report: Report, enforce_timing_bars: bool
) -> None:
    """Two threads give >= 1.7x the throughput of one on a batch (the GIL is released).

    Pillow's JPEG decode (which releases the GIL) runs the same way as a control: when it does
    not scale either, the machine had no second core to give, whatever palette_native does.
    """
    import palette_native

    paths = [p.path for p in speed_corpus]

    def work(path: Path) -> None:
        assert len(palette_native.extract(path, colors=8).colors) == 8

    def decode(path: Path) -> None:
        DECODERS["pillow-draft"](path, 262_144)

    (one, two, speedup), (*_, control) = _thread_speedups([work, decode], paths)
    cpus = len(os.sched_getaffinity(0))
    report.add(
        "Threads (batch of the 0.5-5 MP photos, K=8)",
        [
            (
                f"- 1 thread: {1e3 * one:.0f} ms, 2 threads: {1e3 * two:.0f} ms, "
                f"speed-up {speedup:.2f}x (bar >= {THREAD_SPEEDUP}x)"
            ),
            (
                f"- control, Pillow draft decode: speed-up {control:.2f}x; CPUs available: {cpus}; "
                f"load average {os.getloadavg()[0]:.1f}"
            ),
        ],
    )
    assert cpus >= 2, "the thread-scaling bar needs at least 2 CPUs"
    # In CI: two threads must still beat one clearly, unless the control (measured in the same
    # rounds) shows that the machine had no second core to give; then they must scale at least
    # four fifths as well as a decoder that is known to release the GIL.
    bar = THREAD_SPEEDUP if enforce_timing_bars else min(1.3, 0.8 * control)
    assert speedup >= bar, (
        f"2 threads give {speedup:.2f}x one thread (bar {bar:.2f}x); "
        f"control (Pillow decode) {control:.2f}x, load average {os.getloadavg()[0]:.1f}"
    )


# --------------------------------------------------------------------------- kernel
def _kernel_source(corpus: list[Photo]) -> Path:
    return max(corpus, key=lambda p: p.megapixels).path


def make_kernel_array(path: Path) -> RGBArray:
    """A real photo resized and cropped to 6000x4000 (24 MP) RGB."""
    import pyvips

    height, width = KERNEL_SHAPE
    image = pyvips.Image.thumbnail(str(path), width, height=height, crop="centre", size="both")
    return np.ndarray(buffer=image.write_to_memory(), dtype=np.uint8, shape=(height, width, 3))


@pytest.fixture(scope="module")
def kernel_array(corpus: list[Photo]) -> RGBArray:
    return make_kernel_array(_kernel_source(corpus))


def numpy_histogram(array: RGBArray) -> np.ndarray:
    """The NumPy baseline: a 32x32x32 (5 bits per channel) color histogram."""
    r, g, b = (array[..., i] >> 3 for i in range(3))
    index = (r.astype(np.uint16) << 10) | (g.astype(np.uint16) << 5) | b
    return np.bincount(index.ravel(), minlength=1 << 15)


def _native_kernel(array: RGBArray) -> Any:
    import palette_native

    return palette_native.extract(array, colors=8, exact=True)


@pytest.mark.parametrize("name", ["palette_native", "numpy-bincount"])
def test_kernel_24mp(benchmark: BenchmarkFixture, kernel_array: RGBArray, name: str) -> None:
    """Histogram + palette on an in-memory 24 MP RGB array, exact mode (every pixel read)."""
    benchmark.group = "kernel-24mp"
    pixels = kernel_array.shape[0] * kernel_array.shape[1]
    if name == "numpy-bincount":
        counts = benchmark(numpy_histogram, kernel_array)
        assert int(counts.sum()) == pixels
        return
    palette = benchmark(_native_kernel, kernel_array)
    assert palette.analyzed_pixels == pixels
    assert sum(c.population for c in palette.colors) == pixels
    assert len({c.rgb for c in palette.colors}) == 8


_KERNEL_CHILD = """
import json, os, statistics, sys, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from benchmarks.bench_speed import make_kernel_array, numpy_histogram, _native_kernel
array = make_kernel_array(sys.argv[1])
_native_kernel(array); numpy_histogram(array)
out = {}
for name, fn in (("palette_native", _native_kernel), ("numpy", numpy_histogram)):
    wall, cpu = [], []
    for _ in range(int(sys.argv[2])):
        w, c = time.perf_counter(), time.process_time()
        fn(array)
        wall.append(time.perf_counter() - w); cpu.append(time.process_time() - c)
    out[name] = {"wall": 1e3 * statistics.median(wall), "cpu": 1e3 * statistics.median(cpu)}
print(json.dumps(out))
"""


def test_kernel_bar(corpus: list[Photo], report: Report, enforce_timing_bars: bool) -> None:
    """The 24 MP exact-mode kernel runs in under 60 ms on one core.

    The child process is pinned to one CPU, so its CPU time is the work done on that core;
    that, not wall time, is asserted, because on a shared machine other processes take turns
    on the same core. Both are reported.
    """
    root = Path(__file__).resolve().parent.parent
    child = subprocess.run(
        [sys.executable, "-c", _KERNEL_CHILD, str(_kernel_source(corpus)), str(max(5, ROUNDS))],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    ms = json.loads(child.stdout.strip().splitlines()[-1])
    ours, numpy_ms = ms["palette_native"], ms["numpy"]
    report.add(
        "Kernel (24 MP in-memory RGB, exact, pinned to one CPU)",
        [
            (
                f"- palette_native: {ours['cpu']:.1f} ms CPU, {ours['wall']:.1f} ms wall "
                f"(bar < {KERNEL_MS:g} ms)"
            ),
            (
                f"- NumPy 15-bit bincount histogram alone: {numpy_ms['cpu']:.1f} ms CPU, "
                f"{numpy_ms['wall']:.1f} ms wall"
            ),
        ],
    )
    slack = 1.0 if enforce_timing_bars else CI_SLACK
    assert ours["cpu"] < KERNEL_MS * slack, f"24 MP kernel took {ours['cpu']:.1f} ms of CPU"

"""The same files decoded again and again, from several threads: never an error, always the
same palette.

Regression for sampled reads of sequential images failing at random with "out of order read"
(libvips' threaded sink fetched lines behind ``subsample`` out of order). Every kind of file
the loaders take is here, each big enough to be sampled, read by path, bytes and file object,
with the same file and different files interleaved across threads.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from imagetools import write_format_set

import palette_native as pn

THREADS = 3
ROUNDS = 2  # passes over every file and source kind, per thread


@pytest.fixture(scope="module")
def format_set(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_format_set(tmp_path_factory.mktemp("formats"))


def _sources(path: Path) -> dict[str, Callable[[], Any]]:
    data = path.read_bytes()
    return {
        "path": lambda: str(path),
        "bytes": lambda: data,
        "file object": lambda: path.open("rb"),
    }


def _palette(source: Any, colors: int) -> dict[str, Any]:
    try:
        return pn.extract(source, colors=colors).to_dict()
    finally:
        if hasattr(source, "close"):
            source.close()


def test_every_format_many_times_from_threads(format_set: dict[str, Path]) -> None:
    expected = {(name, k): _palette(path, k) for name, path in format_set.items() for k in (5, 8)}
    calls = [
        (name, kind, make, k)
        for name, path in format_set.items()
        for kind, make in _sources(path).items()
        for k in (5, 8)
    ]

    def worker(seed: int) -> list[str]:
        order = calls * ROUNDS
        random.Random(seed).shuffle(order)  # same file and different files interleaved
        problems = []
        for name, kind, make, k in order:
            try:
                got = _palette(make(), k)
            except pn.PaletteError as err:
                problems.append(f"{name} by {kind}, K={k}: {err}")
                continue
            if got != expected[(name, k)]:
                problems.append(f"{name} by {kind}, K={k}: a different palette")
        return problems

    with ThreadPoolExecutor(THREADS) as pool:
        problems = [p for found in pool.map(worker, range(THREADS)) for p in found]
    total = len(calls) * ROUNDS * THREADS
    assert not problems, f"{len(problems)} of {total} calls went wrong: {problems[:10]}"


@pytest.mark.parametrize("exact", [False, True], ids=["sampled", "exact"])
def test_one_file_back_to_back(format_set: dict[str, Path], exact: bool) -> None:
    """The shape users hit first: one file in a loop, alternating path and bytes."""
    for name in ("rgba-logo.png", "rgb.tif", "rgb16.png"):
        path = format_set[name]
        data = path.read_bytes()
        first = pn.extract(path, colors=8, exact=exact).to_dict()
        for i in range(20):
            assert pn.extract(data if i % 2 else path, colors=8, exact=exact).to_dict() == first

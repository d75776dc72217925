"""The embedded backend's periodic clean-ups remove what is past its window and keep the rest:
checked through the backend's interfaces, with the clock moved by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.backends import Backends, open_backends
from service.settings import Settings


class Clock:
    def __init__(self, start: float = 1_900_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend(tmp_path: Path, clock: Clock) -> Iterator[Backends]:
    b = open_backends(Settings(data_dir=tmp_path, idempotency_seconds=100), clock)
    yield b
    b.close()


def test_the_idempotency_sweep_keeps_keys_inside_their_window(
    backend: Backends, clock: Clock
) -> None:
    keys = backend.idempotency
    assert keys.idempotency_begin("t1", "old", "POST", "/v1/jobs") == "new"
    clock.t += 50
    assert keys.idempotency_begin("t1", "young", "POST", "/v1/jobs") == "new"
    clock.t += 50  # "old" is 100 s old (its window is over), "young" 50 s
    keys.expire()
    assert keys.idempotency_begin("t1", "young", "POST", "/v1/jobs") == "in_flight"
    assert keys.idempotency_begin("t1", "old", "POST", "/v1/jobs") == "new"

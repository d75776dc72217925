"""The job layer's contract, run through the Protocols only, once per backend.

Every backend ``service.backends`` can open is listed in ``conformancetools.FACTORIES``; each
test gets a fresh one on a fake clock. A second backend (Redis + S3) joins the list and must pass
unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conformancetools import FACTORIES, FakeClock

from service.backends import Backends
from service.settings import Settings


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(FACTORIES))
def open_backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[..., Backends]]:
    """``open_backend(**settings)``: the backend under test (several opens share its data,
    as the nodes of one deployment do)."""
    factory = FACTORIES[request.param]
    opened: list[Backends] = []

    def open_one(**overrides: object) -> Backends:
        values: dict[str, object] = {
            "data_dir": tmp_path / "data",
            "retention_seconds": 100.0,
            "idempotency_seconds": 50.0,
            "palette_cache_entries": 3,
            "max_worker_crashes": 3,
        }
        values.update(overrides)
        backends = factory(Settings(**values), clock)  # type: ignore[arg-type]
        opened.append(backends)
        return backends

    yield open_one
    for backends in opened:
        backends.close()


@pytest.fixture
def backend(open_backend: Callable[..., Backends]) -> Backends:
    return open_backend()

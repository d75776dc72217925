"""What the conformance suite (tests/conformance) builds on: the backends under test, a fake
clock and job builders. Importable from test modules (importlib mode: no conftest imports)."""

from __future__ import annotations

from collections.abc import Callable

from service.backends import Backends, open_backends
from service.jobs.interfaces import ItemResult, JobInput, NewJob
from service.settings import Settings

__all__ = ["FACTORIES", "FakeClock", "item", "new_job"]


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


FACTORIES: dict[str, Callable[[Settings, FakeClock], Backends]] = {
    "sqlite+local": open_backends,
}
"""Every backend ``service.backends`` can open; a second one joins here and must pass."""

def new_job(backend: Backends, tenant: str = "t1", images: int = 2) -> NewJob:
    job_id = backend.jobs.new_job_id()
    inputs = [
        JobInput(n, f"img{n}.jpg", f"uploads/{job_id}/{n}", "image", 10) for n in range(images)
    ]
    return NewJob(job_id, tenant, {"colors": 4}, inputs, None, images)


def item(seq: int, status: str = "succeeded", index: int = 0) -> ItemResult:
    return ItemResult(
        seq,
        index,
        f"img{seq}.jpg",
        status,  # type: ignore[arg-type]
        palette={"colors": []} if status == "succeeded" else None,
        error=None if status == "succeeded" else {"code": "decode_error"},
    )

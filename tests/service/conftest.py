"""Fixtures for the service tests: images, archives, app clients and real server processes."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from servertools import ServiceProcess, guarded_env, write_guard
from starlette.testclient import TestClient

from service.app import create_app
from service.backends import Backends, open_backends
from service.settings import Settings


@pytest.fixture(scope="session")
def guard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ``sitecustomize.py`` installs the guard in child Python processes."""
    return write_guard(tmp_path_factory.mktemp("netguard"))


def make_jpeg(seed: int, size: tuple[int, int] = (96, 64), quality: int = 85) -> bytes:
    """A small JPEG with a few flat colour blocks plus noise (distinct bytes per seed)."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = np.zeros((h, w, 3), dtype=np.uint8)
    for band in range(4):
        pixels[:, band * w // 4 : (band + 1) * w // 4] = rng.integers(0, 256, 3)
    noise = rng.integers(-12, 13, pixels.shape)
    pixels = np.clip(pixels.astype(int) + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality)
    return out.getvalue()


def make_png(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def make_zip(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", lease_seconds=2.0, sweep_interval_seconds=3600)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def wait_job(
    c: Any, location: str, timeout: float = 30.0, headers: Any = None, *, done: int | None = None
) -> dict[str, Any]:
    """Poll ``location`` until the job is final or, given ``done``, has done that many images."""

    def ready() -> dict[str, Any] | None:
        job: dict[str, Any] = c.get(location, headers=headers).json()
        if job["status"] not in ("queued", "running"):
            return job
        return job if done is not None and job["progress"]["done"] >= done else None

    result: dict[str, Any] = wait_for(ready, timeout)
    return result


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    """Check that ``r`` is the RFC 9457 problem document ``code``; returns its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["code"] == code and body["status"] == status
    assert body["type"].endswith(code) and body["title"] and body["detail"] and body["request_id"]
    return body


def submit(c: Any, files: list[tuple[str, bytes]], *, headers: Any = None, **fields: str) -> Any:
    """``POST /v1/jobs`` with ``files`` as (name, bytes) parts and ``fields`` as form fields."""
    return c.post(
        "/v1/jobs",
        files=[("file", (n, d, "application/octet-stream")) for n, d in files],
        data=fields,
        headers=headers,
    )


@pytest.fixture
def server_factory(tmp_path: Path, guard_dir: Path) -> Iterator[Any]:
    started: list[ServiceProcess] = []

    def start(env: dict[str, str] | None = None, data_dir: Path | None = None) -> ServiceProcess:
        proc = ServiceProcess(data_dir or tmp_path / "data", guard_dir, dict(env or {}))
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def server(server_factory: Any) -> ServiceProcess:
    process: ServiceProcess = server_factory({"PALETTE_LEASE_SECONDS": "2"})
    return process


@pytest.fixture
def backends_of() -> Iterator[Any]:
    """``backends_of(data_dir)``: the backends a server on ``data_dir`` uses, opened through the
    same factory (checks go through the Protocols, not the files)."""
    opened: list[Backends] = []

    def open_for(data_dir: Path) -> Backends:
        backends = open_backends(Settings(data_dir=data_dir))
        opened.append(backends)
        return backends

    yield open_for
    for backends in opened:
        backends.close()


class Helpers:
    """Test helpers handed to test modules as the ``h`` fixture (importlib mode has no
    sibling imports)."""

    make_jpeg = staticmethod(make_jpeg)
    make_png = staticmethod(make_png)
    make_zip = staticmethod(make_zip)
    wait_for = staticmethod(wait_for)
    guarded_env = staticmethod(guarded_env)
    wait_job = staticmethod(wait_job)
    problem = staticmethod(problem)
    submit = staticmethod(submit)

    def __init__(self, backends: Any) -> None:
        self.backends = backends
        """``h.backends(data_dir)``: see ``backends_of``."""


@pytest.fixture
def h(backends_of: Any) -> Helpers:
    return Helpers(backends_of)

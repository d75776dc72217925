"""Fixtures for the service tests: images, archives, app clients and real server processes."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from service.app import create_app
from service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]

# Loopback-only network guard. Job callbacks make the webhooks package (when present) resolve
# and call whatever URL a test or a fuzzer puts in ``callback_url``; this refuses every name
# lookup and connection that is not loopback, before any packet leaves, in the test process
# (autouse fixture) and in every server process (as its ``sitecustomize``).
NETWORK_GUARD = """
import ipaddress as _ip
import socket as _socket

_real_getaddrinfo = _socket.getaddrinfo
_real_connect = _socket.socket.connect
_real_connect_ex = _socket.socket.connect_ex


def _is_loopback(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or host == "localhost":
        return True
    try:
        return _ip.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _is_loopback(host):
        raise _socket.gaierror(_socket.EAI_NONAME, f"test network guard: {host!r} is not loopback")
    return _real_getaddrinfo(host, *args, **kwargs)


def _check(sock, address):
    if sock.family in (_socket.AF_INET, _socket.AF_INET6) and not _is_loopback(address[0]):
        raise ConnectionRefusedError(f"test network guard: {address!r} is not loopback")


def _guarded_connect(self, address):
    _check(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check(self, address)
    return _real_connect_ex(self, address)


def install():
    _socket.getaddrinfo = _guarded_getaddrinfo
    _socket.socket.connect = _guarded_connect
    _socket.socket.connect_ex = _guarded_connect_ex


def uninstall():
    _socket.getaddrinfo = _real_getaddrinfo
    _socket.socket.connect = _real_connect
    _socket.socket.connect_ex = _real_connect_ex
"""


@pytest.fixture(scope="session")
def guard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ``sitecustomize.py`` installs the guard in child Python processes."""
    folder = tmp_path_factory.mktemp("netguard")
    (folder / "sitecustomize.py").write_text(NETWORK_GUARD + "\ninstall()\n")
    return folder


def guarded_env(guard: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(guard), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


@pytest.fixture(autouse=True)
def network_guard() -> Iterator[None]:
    namespace: dict[str, Any] = {}
    exec(NETWORK_GUARD, namespace)  # noqa: S102 - our own constant, shared with child processes
    namespace["install"]()
    try:
        yield
    finally:
        namespace["uninstall"]()


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


def wait_job(c: Any, location: str, timeout: float = 30.0, headers: Any = None) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        job: dict[str, Any] = c.get(location, headers=headers).json()
        return job if job["status"] not in ("queued", "running") else None

    result: dict[str, Any] = wait_for(final, timeout)
    return result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """``python -m service serve`` on a free loopback port, as a real child process."""

    data_dir: Path
    guard: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        self.port = free_port()
        env = guarded_env(self.guard, {"PALETTE_LOG_LEVEL": "warning", **self.env})
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


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


class Helpers:
    """Test helpers handed to test modules as the ``h`` fixture (importlib mode has no
    sibling imports)."""

    make_jpeg = staticmethod(make_jpeg)
    make_png = staticmethod(make_png)
    make_zip = staticmethod(make_zip)
    wait_for = staticmethod(wait_for)
    guarded_env = staticmethod(guarded_env)
    wait_job = staticmethod(wait_job)


@pytest.fixture
def h() -> type[Helpers]:
    return Helpers

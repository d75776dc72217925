"""Shared fixtures, and a guard: no test may look up a name or open a socket outside loopback."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

# -- the network guard: no test may reach anything but loopback ---------------------------------


class OutsideLoopback(ConnectionRefusedError):
    """Raised instead of connecting anywhere but loopback."""


def is_loopback_address(address: object) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a host name would be resolved inside connect(): refuse it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@dataclass
class NetworkGuard:
    violations: list[str] = field(default_factory=list)

    def check(self, address: object) -> None:
        if not is_loopback_address(address):
            self.violations.append(repr(address))
            raise OutsideLoopback(f"test tried to connect outside loopback: {address!r}")


@pytest.fixture(autouse=True)
def network_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkGuard]:
    """Fail the test if this process tries to reach a non-loopback address or look up a name.

    The connect (or DNS lookup) is refused before it happens (no packet leaves), and the test
    fails at teardown even if the code under test swallowed the error.
    """
    guard = NetworkGuard()
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection

    def connect(self: socket.socket, address: Any) -> None:
        guard.check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard.check(address)
        return real_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        guard.check(address)
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        # A name lookup is a packet to the DNS server: only loopback names and literals pass.
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not is_loopback_address((name, 0)):
            guard.violations.append(f"DNS lookup of {name!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"test network guard: {name!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    yield guard
    assert not guard.violations, f"connections outside loopback were attempted: {guard.violations}"



@pytest.fixture
def photo() -> np.ndarray:
    """A real photograph (scikit-image's astronaut), 512x512 RGB."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the browser tests last: pytest-playwright's sync API keeps an asyncio loop running
    in the main thread for the rest of the session, which breaks later tests that start their
    own loop (Starlette's TestClient, anyio)."""
    items.sort(key=lambda item: "tests/ui/" in item.nodeid.replace("\\", "/"))

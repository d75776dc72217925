"""Fixtures for the webhook tests: a loopback-only network guard and a verifying receiver."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

# -- the network guard ---------------------------------------------------------------------------


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


# -- the receiver --------------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str
    at: float
    verified: bool
    error: str | None

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str]]


class Receiver:
    """A loopback HTTP server that verifies every request with the ``standardwebhooks`` package.

    ``reply(n, received)`` decides the answer to the n-th request (0-based): a status and headers;
    it may also sleep to play a receiver that never answers.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.secrets: list[str] = []
        self.reply: Callable[[int, Received], Reply] = lambda n, r: (200, {})
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                received = receiver._record(headers, body, self.path)
                with receiver._lock:
                    index = len(receiver.received) - 1
                status, extra = receiver.reply(index, received)
                try:
                    self.send_response(status)
                    for key, value in extra.items():
                        self.send_header(key, value)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def _record(self, headers: dict[str, str], body: bytes, path: str) -> Received:
        verified, error = False, "no secret configured"
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified, error = True, None
                break
            except WebhookVerificationError as exc:
                error = str(exc)
        received = Received(headers, body, path, time.time(), verified, error)
        with self._cond:
            self.received.append(received)
            self._cond.notify_all()
        return received

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """Wait until ``count`` requests arrived (or fail the test after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"receiver got {len(self.received)} requests, expected {count}"
                    )
                self._cond.wait(left)
            return list(self.received)

    def successes(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.close()

"""What one delivery attempt records (latency, error text) and how in-flight sends are counted
against the per-endpoint cap, on the embedded backend with real loopback receivers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from service.egress import EgressPolicy, parse_cidrs
from service.webhooks import WebhookSystem, delivery
from service.webhooks.settings import WebhookSettings
from service.webhooks.signing import generate_secret

LOOPBACK = EgressPolicy(allow_cidrs=parse_cidrs("127.0.0.0/8"))


def settings(**overrides: Any) -> WebhookSettings:
    base: dict[str, Any] = {
        "retry_schedule": (0.2,),
        "jitter": 0.0,
        "timeout_s": 2.0,
        "poll_interval_s": 0.05,
        "egress": LOOPBACK,
        "callback_secret": generate_secret(),
    }
    base.update(overrides)
    return WebhookSettings(**base)


def one_attempt(system: WebhookSystem, url: str) -> dict[str, Any]:
    """Queue a test message to ``url``, send it once by hand, and return its only attempt."""
    endpoint, _ = system.endpoints.create_endpoint("t1", {"url": url})
    message_id = system.outbox.enqueue_test(endpoint["id"], "t1", "job.succeeded")
    [claimed] = system.outbox.claim_due(system.deliverer.owner, 10, 30.0)
    system.deliverer.deliver(claimed)
    attempts: list[dict[str, Any]] = system.outbox.get_message(message_id, "t1")["attempts"]
    [attempt] = attempts
    return attempt


def read_request(conn: socket.socket) -> None:
    """Read one whole request (head and ``Content-Length`` body). A server that closed with
    part of it unread would reset the connection, and the client would see a reset instead of
    the answer (or the clean close) the test is about: that happens when the request arrives
    in more than one piece, which it does now and then on a loaded machine."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


@pytest.fixture
def raw_server() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback TCP server that answers every request with the bytes queued in its list."""
    listener = socket.create_server(("127.0.0.1", 0))
    answers: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                read_request(conn)
                if answers:
                    conn.sendall(answers.pop(0))

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook", answers
    listener.close()


class SteppedTimer:
    """The first ``perf_counter()`` reads 100.0 s and every later one 100.25 s, so an attempt
    lasts exactly 250 ms whatever the machine's speed."""

    def __init__(self) -> None:
        self.reads = 0

    def perf_counter(self) -> float:
        self.reads += 1
        return 100.0 if self.reads == 1 else 100.25


@pytest.mark.parametrize("ending", ["answered", "refused", "timed out", "connection error"])
def test_every_attempt_records_how_long_it_took_in_milliseconds(
    open_webhooks: Any,
    receiver: Any,
    raw_server: tuple[str, list[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    ending: str,
) -> None:
    url = receiver.url
    overrides: dict[str, Any] = {}
    if ending == "refused":
        overrides["egress"] = EgressPolicy()  # loopback is not allowed: refused before sending
    elif ending == "timed out":
        overrides["timeout_s"] = 0.3
        def slow(n: int, r: Any) -> tuple[int, dict[str, str]]:
            time.sleep(1.0)  # past the 0.3 s timeout
            return 200, {}

        receiver.reply = slow
    elif ending == "connection error":
        url = raw_server[0]  # closes without an answer
    system = open_webhooks(settings(**overrides))
    timer = SteppedTimer()
    # Only the sender module's view of ``time`` changes; httpx and the other threads keep theirs.
    clock = SimpleNamespace(perf_counter=timer.perf_counter, monotonic=time.monotonic)
    monkeypatch.setattr(delivery, "time", clock)
    attempt = one_attempt(system, url)
    assert attempt["latency_ms"] == 250.0
    expected_error = {
        "answered": None,
        "refused": "refused:",
        "timed out": "timed out after 0.3 s",
        "connection error": "RemoteProtocolError:",
    }[ending]
    if expected_error is None:
        assert attempt["error"] is None and attempt["status_code"] == 200
    else:
        assert attempt["error"].startswith(expected_error) and attempt["status_code"] is None


def test_a_long_transport_error_is_kept_to_300_characters(
    open_webhooks: Any, raw_server: tuple[str, list[bytes]]
) -> None:
    url, answers = raw_server
    answers.append(b"HTTP/1.1 2" + b"x" * 2000 + b"\r\n\r\n")  # h11 quotes the whole line
    attempt = one_attempt(open_webhooks(settings()), url)
    assert attempt["error"].startswith("RemoteProtocolError: illegal status line")
    assert len(attempt["error"]) == 300


def test_sends_that_outlive_their_lease_still_count_against_the_endpoint_cap(
    open_webhooks: Any, receiver: Any
) -> None:
    """While the leases say nothing is in flight (they ran out: here the clock jumps past them),
    the sender's own count of open sends holds the per-endpoint cap, and each finished send
    frees one place, never more: two requests open at a time from the first to the last."""
    now = [1_800_000_000.0]
    system = open_webhooks(
        settings(concurrency=4, per_endpoint_concurrency=2, tenant_concurrency=4),
        clock=lambda: now[0],
    )
    lock = threading.Lock()
    open_now, most = [0], [0]

    def reply(n: int, r: Any) -> tuple[int, dict[str, str]]:
        with lock:
            open_now[0] += 1
            most[0] = max(most[0], open_now[0])
        time.sleep(0.3 if n % 2 == 0 else 0.9)  # one of each pair ends well before the other
        with lock:
            open_now[0] -= 1
        return 200, {}

    receiver.reply = reply
    endpoint, _ = system.endpoints.create_endpoint("t1", {"url": receiver.url})
    ids = [system.outbox.enqueue_test(endpoint["id"], "t1", "job.succeeded") for _ in range(6)]
    system.start()
    receiver.wait_for(2, timeout=5)
    now[0] += system.deliverer.lease_s + 60  # every lease taken so far has run out
    deadline = time.monotonic() + 10
    while any(system.outbox.get_message(i, "t1")["status"] != "succeeded" for i in ids):
        assert time.monotonic() < deadline, "the six messages were not all delivered"
        time.sleep(0.02)
    assert most[0] == 2

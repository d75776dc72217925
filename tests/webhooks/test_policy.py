"""Delivery policy through the webhook routes (in-process ASGI) and a real loopback receiver:
Retry-After caps, retention, re-enabling, in-flight resends, recover windows, refused
connections, the send-time SSRF check, environment proxies and If-Match."""

from __future__ import annotations

import email.utils
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from webhooktools import relay, webhook_app

from service.egress import EgressPolicy, parse_cidrs
from service.webhooks import WebhookSystem
from service.webhooks.settings import WebhookSettings
from service.webhooks.signing import generate_secret

PROBLEM = "application/problem+json"
DAY = 24 * 3600.0


class Api:
    """Requests to the webhook routes over httpx's in-memory ASGI transport."""

    def __init__(self, system: WebhookSystem) -> None:
        self.app = webhook_app(system)
        self.system = system

    def __call__(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.request(method, url, **kwargs)

        return anyio.run(go)

    def endpoint(self, url: str, **fields: Any) -> dict[str, Any]:
        r = self("POST", "/v1/webhook-endpoints", json={"url": url, **fields})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def messages(self, endpoint_id: str, **params: str) -> list[dict[str, Any]]:
        r = self("GET", f"/v1/webhook-endpoints/{endpoint_id}/messages", params=params)
        assert r.status_code == 200, r.text
        return list(r.json()["data"])

    def emit(self, job_id: str, event: str = "job.succeeded") -> None:
        job = {"id": job_id, "status": event.removeprefix("job."), "tenant": "public"}
        relay(self.system, job, event)


@pytest.fixture
def make_api(open_webhooks: Any) -> Callable[..., Api]:
    def make(*, allow: str = "127.0.0.0/8", clock: Any = time.time, **overrides: Any) -> Api:
        base: dict[str, Any] = {
            "retry_schedule": (0.1, 0.1),
            "jitter": 0.0,
            "timeout_s": 2.0,
            "poll_interval_s": 0.02,
            "egress": EgressPolicy(allow_cidrs=parse_cidrs(allow)),
            "callback_secret": generate_secret(),
        }
        settings = WebhookSettings(**{**base, **overrides})
        system: WebhookSystem = open_webhooks(settings, clock)
        return Api(system)

    return make


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
    return value


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


# -- Retry-After ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("retry_after", "expected_delay"),
    [
        ("1000000000", DAY),  # decades, capped at the 24 h default
        ("86401", DAY),
        ("86399", 86399.0),
        ("30", 30.0),
        ("0", 0.0),
        ("date:+7200", 7200.0),  # an HTTP date two hours ahead
        ("date:-600", 0.0),  # a date in the past: retry now
        ("later", 0.1),  # unreadable: the schedule decides
    ],
)
def test_retry_after_sets_the_next_try_within_the_cap(
    make_api: Any, receiver: Any, retry_after: str, expected_delay: float
) -> None:
    now = [1_900_000_000.0]  # frozen: a delay above zero never comes due during the test
    api = make_api(clock=lambda: now[0])
    if retry_after.startswith("date:"):
        when = now[0] + float(retry_after[5:])
        retry_after = email.utils.formatdate(when, usegmt=True)
    receiver.reply = lambda n, r: (429, {"retry-after": retry_after}) if n == 0 else (200, {})
    endpoint = api.endpoint(receiver.url)
    api.system.start()
    api.emit("job_1")
    receiver.wait_for(1, timeout=5)
    if expected_delay == 0:
        [message] = wait_until(lambda: api.messages(endpoint["id"], status="succeeded"))
        assert [a["status_code"] for a in message["attempts"]] == [429, 200]
        return
    [message] = wait_until(lambda: [m for m in api.messages(endpoint["id"]) if m["attempts"]])
    assert message["status"] == "pending" and message["attempts"][0]["status_code"] == 429
    assert epoch(message["next_attempt_at"]) - now[0] == pytest.approx(expected_delay, abs=0.002)


def test_a_lower_cap_from_the_environment_applies(make_api: Any, receiver: Any) -> None:
    settings = WebhookSettings.from_env({"PALETTE_WEBHOOK_RETRY_AFTER_CAP": "0.5"})
    assert settings.retry_after_cap_s == 0.5
    api = make_api(retry_after_cap_s=settings.retry_after_cap_s, retry_schedule=(60.0,))
    receiver.reply = lambda n, r: (503, {"retry-after": "3600"}) if n == 0 else (200, {})
    api.endpoint(receiver.url)
    api.system.start()
    api.emit("job_1")
    first, second = receiver.wait_for(2, timeout=5)
    assert 0.45 <= second.at - first.at < 3.0
    assert first.webhook_id == second.webhook_id


# -- retention -----------------------------------------------------------------------------------
def test_finished_messages_are_kept_30_days(make_api: Any, receiver: Any) -> None:
    now = [1_900_000_000.0]
    api = make_api(clock=lambda: now[0], retry_schedule=(0.0,))
    assert api.system.settings.retention_s == 30 * DAY
    ok = api.endpoint(receiver.url + "?ok", event_types=["job.succeeded"])
    bad = api.endpoint(receiver.url + "?bad", event_types=["job.failed"])
    idle = api.endpoint(receiver.url + "?idle", event_types=["job.canceled"])
    receiver.reply = lambda n, r: (500, {}) if r.path.endswith("?bad") else (200, {})
    api.emit("job_idle", "job.canceled")  # stays pending: its endpoint is disabled below
    assert api("PATCH", f"/v1/webhook-endpoints/{idle['id']}", json={"disabled": True}).is_success
    api.system.start()
    api.emit("job_ok")
    api.emit("job_bad", "job.failed")
    wait_until(lambda: api.messages(ok["id"], status="succeeded"))
    wait_until(lambda: api.messages(bad["id"], status="failed"))
    api.system.stop()
    store = api.system.outbox
    now[0] += 30 * DAY - 1
    store.purge()
    assert len(api.messages(ok["id"])) == len(api.messages(bad["id"])) == 1
    now[0] += 2
    store.purge()
    assert api.messages(ok["id"]) == [] and api.messages(bad["id"]) == []
    # Their attempts go with them (the SQLite store here: rows no listing can reach).
    with store.db.read() as conn:
        left = conn.execute("SELECT COUNT(*) FROM webhook_attempts").fetchone()[0]
    assert left == 0
    assert [m["status"] for m in api.messages(idle["id"])] == ["pending"]  # never purged


# -- re-enabling, resending, recovering ----------------------------------------------------------
def test_a_disabled_endpoint_holds_its_messages_until_re_enabled(
    make_api: Any, receiver: Any
) -> None:
    api = make_api()
    held = api.endpoint(receiver.url + "?held")
    control = api.endpoint(receiver.url + "?control")
    api.emit("job_1")  # one message each; then the owner pauses one endpoint
    path = f"/v1/webhook-endpoints/{held['id']}"
    paused = api("PATCH", path, json={"disabled": True, "disabled_reason": "maintenance"})
    assert paused.json()["disabled"] is True and paused.json()["disabled_reason"] == "maintenance"
    api.system.start()
    # The control endpoint's copy is delivered in the same sender cycle the held one would be.
    [got] = receiver.wait_for(1, timeout=5)
    assert got.path.endswith("?control")
    wait_until(lambda: api.messages(control["id"], status="succeeded"))
    [waiting] = api.messages(held["id"])
    assert waiting["status"] == "pending" and waiting["attempts"] == []
    enabled = api("PATCH", path, json={"disabled": False})
    assert enabled.status_code == 200
    assert enabled.json()["disabled"] is False and enabled.json()["disabled_reason"] is None
    second = receiver.wait_for(2, timeout=5)[1]
    assert second.path.endswith("?held") and second.webhook_id == waiting["id"]


def test_resending_a_message_being_delivered_is_a_conflict(make_api: Any, receiver: Any) -> None:
    api = make_api(timeout_s=5.0)
    release = threading.Event()

    def reply(n: int, r: Any) -> tuple[int, dict[str, str]]:
        release.wait(5)
        return 200, {}

    receiver.reply = reply
    endpoint = api.endpoint(receiver.url)
    api.system.start()
    api.emit("job_1")
    receiver.wait_for(1, timeout=5)  # the sender is now waiting for the answer
    [message] = api.messages(endpoint["id"])
    resend = f"/v1/webhook-endpoints/{endpoint['id']}/messages/{message['id']}/resend"
    busy = api("POST", resend)
    assert busy.status_code == 409 and busy.headers["content-type"] == PROBLEM
    assert busy.json()["code"] == "message_in_flight"
    release.set()
    wait_until(lambda: api.messages(endpoint["id"], status="succeeded"))
    again = api("POST", resend)
    assert again.status_code == 202 and again.json()["status"] == "pending"
    assert [r.webhook_id for r in receiver.wait_for(2, timeout=5)] == [message["id"]] * 2


def test_recover_takes_rfc3339_windows(make_api: Any, receiver: Any) -> None:
    now = [1_900_000_000.0]
    api = make_api(clock=lambda: now[0], retry_schedule=(0.0,))
    receiver.reply = lambda n, r: (500, {})
    endpoint = api.endpoint(receiver.url)
    api.system.start()
    start = now[0]
    for n in range(3):  # created at start, start + 10 s and start + 20 s
        api.emit(f"job_{n}")
        now[0] += 10
    wait_until(lambda: len(api.messages(endpoint["id"], status="failed")) == 3)
    api.system.stop()
    recover = f"/v1/webhook-endpoints/{endpoint['id']}/recover"

    def window(since: Any, until: Any = None) -> httpx.Response:
        body = {"since": since} if until is None else {"since": since, "until": until}
        return api("POST", recover, json=body)

    plus_two = datetime.fromtimestamp(start + 10, timezone(timedelta(hours=2))).isoformat()
    only_middle = window(plus_two, iso(start + 20))
    assert only_middle.status_code == 202 and only_middle.json()["recovered"] == 1
    assert only_middle.json()["since"] == start + 10 and only_middle.json()["until"] == start + 20
    pending = api.messages(endpoint["id"], status="pending")
    assert [m["job_id"] for m in pending] == ["job_1"]
    assert window(iso(start + 30)).json()["recovered"] == 0
    assert window(start - 1).json()["recovered"] == 2  # epoch seconds; until defaults to now
    for since, until in (
        ("yesterday", None),
        (True, None),
        (None, None),
        (iso(start), iso(start)),
        (iso(start + 5), iso(start)),
        (iso(start), "soon"),
    ):
        r = api("POST", recover, json={"since": since, "until": until})
        assert r.status_code == 422 and r.json()["code"] == "invalid_recover_window", (since, until)


# -- what a failed connection looks like ---------------------------------------------------------
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refused_connection_is_a_failed_attempt(make_api: Any) -> None:
    api = make_api(retry_schedule=(0.05,))
    endpoint = api.endpoint(f"http://127.0.0.1:{closed_port()}/hook")
    api.system.start()
    api.emit("job_1")
    [message] = wait_until(lambda: api.messages(endpoint["id"], status="failed"))
    assert len(message["attempts"]) == 2
    for attempt in message["attempts"]:
        assert attempt["status_code"] is None
        assert attempt["error"].startswith("ConnectError")
    assert message["last_error"] == message["attempts"][-1]["error"]


def test_an_address_that_turned_private_is_refused_when_sending(
    make_api: Any, receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URL was public when the endpoint was made; by send time it resolves to loopback."""
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    answers = {"hooks.example": "93.184.216.34"}
    real = socket.getaddrinfo

    def resolver(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    api = make_api(allow="", retry_schedule=(0.05,))
    endpoint = api.endpoint(f"http://hooks.example:{port}/hook")
    answers["hooks.example"] = "127.0.0.1"
    api.system.start()
    api.emit("job_1")
    [message] = wait_until(lambda: api.messages(endpoint["id"], status="failed"))
    assert [a["status_code"] for a in message["attempts"]] == [None, None]
    assert all(
        a["error"].startswith("refused:") and "loopback" in a["error"] for a in message["attempts"]
    )
    assert receiver.arrivals() == []  # refused before connecting, never after


def test_environment_proxies_are_ignored(
    make_api: Any, receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = socket.socket()  # a "proxy" that would see any connection made through it
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(8)
    proxy.setblocking(False)
    with proxy:
        proxy_url = "http://127.0.0.1:%d" % proxy.getsockname()[1]
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy_url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        api = make_api()
        endpoint = api.endpoint(receiver.url)
        api.system.start()
        api.emit("job_1")
        [got] = receiver.wait_for(1, timeout=5)
        assert got.path == "/hook"
        wait_until(lambda: api.messages(endpoint["id"], status="succeeded"))
        with pytest.raises(BlockingIOError):
            proxy.accept()  # nobody connected to the proxy


# -- If-Match ------------------------------------------------------------------------------------
def test_if_match_compares_strongly(make_api: Any, receiver: Any) -> None:
    api = make_api()
    created = api("POST", "/v1/webhook-endpoints", json={"url": receiver.url})
    path, etag = created.headers["location"], created.headers["etag"]
    for header in (f"W/{etag}", '"other"', f'W/{etag}, "other"', ""):
        r = api("PATCH", path, json={"description": "x"}, headers={"if-match": header})
        assert r.status_code == 412 and r.json()["code"] == "precondition_failed", header
        assert r.headers["etag"] == etag
        assert api("DELETE", path, headers={"if-match": header}).status_code == 412
    r = api("PATCH", path, json={"description": "a"}, headers={"if-match": f'"other", {etag}'})
    assert r.status_code == 200 and r.headers["etag"] != etag
    etag = r.headers["etag"]
    r = api("PATCH", path, json={"description": "c"}, headers={"if-match": f'{etag}, "other"'})
    assert r.status_code == 200 and r.headers["etag"] != etag
    etag = r.headers["etag"]
    r = api("PATCH", path, json={"description": "b"}, headers={"if-match": "*"})
    assert r.status_code == 200 and r.json()["description"] == "b"
    assert api("GET", path, headers={"if-none-match": f"W/{r.headers['etag']}"}).status_code == 304
    assert api("DELETE", path, headers={"if-match": r.headers["etag"]}).status_code == 204

"""The endpoint-management and message routes, in-process (a Starlette app with these routes)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from webhooktools import relay, webhook_app

from service.egress import EgressPolicy, parse_cidrs
from service.webhooks import WebhookSystem
from service.webhooks.settings import WebhookSettings
from service.webhooks.signing import generate_secret

PROBLEM = "application/problem+json"


class TestClient:
    """A synchronous client over httpx's in-memory ASGI transport (no sockets involved)."""

    __test__ = False

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.request(method, url, **kwargs)

        return anyio.run(call)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


@pytest.fixture
def build(open_webhooks_at: Any) -> Callable[[Path, str], tuple[TestClient, WebhookSystem]]:
    def make(data_dir: Path, allow: str) -> tuple[TestClient, WebhookSystem]:
        settings = WebhookSettings(
            retry_schedule=(0.1,),
            jitter=0.0,
            timeout_s=2.0,
            poll_interval_s=0.05,
            egress=EgressPolicy(allow_cidrs=parse_cidrs(allow)),
            callback_secret=generate_secret(),
        )
        system: WebhookSystem = open_webhooks_at(data_dir, settings)
        return TestClient(webhook_app(system)), system

    return make


@pytest.fixture
def api(tmp_path: Path, build: Any) -> Iterator[tuple[TestClient, WebhookSystem]]:
    client, system = build(tmp_path, "127.0.0.0/8")
    system.start()
    yield client, system
    system.stop()


@pytest.fixture
def strict_api(tmp_path: Path, build: Any) -> Iterator[TestClient]:
    client, _ = build(tmp_path, "")
    yield client


def test_create_returns_the_secret_once(api: Any, receiver: Any) -> None:
    client, _ = api
    r = client.post(
        "/v1/webhook-endpoints",
        json={
            "url": receiver.url,
            "description": "ci",
            "event_types": ["job.succeeded"],
            "metadata": {"team": "a"},
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["secret"].startswith("whsec_")
    assert r.headers["location"] == f"/v1/webhook-endpoints/{body['id']}"
    assert body["event_types"] == ["job.succeeded"] and body["metadata"] == {"team": "a"}
    got = client.get(r.headers["location"])
    assert got.status_code == 200 and "secret" not in got.json()
    assert got.headers["etag"] == r.headers["etag"]
    assert (
        client.get(
            r.headers["location"], headers={"if-none-match": got.headers["etag"]}
        ).status_code
        == 304
    )
    listed = client.get("/v1/webhook-endpoints").json()
    assert [e["id"] for e in listed["data"]] == [body["id"]] and "secret" not in listed["data"][0]


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data", "http://10.0.0.1/hook", "http://[::1]/x"]
)
def test_private_urls_are_refused_at_creation(strict_api: TestClient, url: str) -> None:
    r = strict_api.post("/v1/webhook-endpoints", json={"url": url})
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["code"] == "url_not_allowed" and r.json()["field"] == "url"


def test_name_resolving_to_loopback_is_refused_unless_allowlisted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
, build: Any) -> None:
    real = socket.getaddrinfo

    def resolver(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host == "hooks.internal.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    strict, _ = build(tmp_path / "strict", "")
    r = strict.post("/v1/webhook-endpoints", json={"url": "https://hooks.internal.example/x"})
    assert r.status_code == 422 and r.json()["code"] == "url_not_allowed"
    assert "127.0.0.1" in r.json()["detail"]
    allowing, _ = build(tmp_path / "allow", "127.0.0.0/8")
    r = allowing.post("/v1/webhook-endpoints", json={"url": "https://hooks.internal.example/x"})
    assert r.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://127.0.0.1/x", "event_types": ["job.exploded"]}, "event_types"),
        ({"url": "http://127.0.0.1/x", "event_types": []}, "event_types"),
        ({"url": 5}, "url"),
        ({"url": "http://127.0.0.1/x", "batch": {"max_events": 0}}, "batch.max_events"),
        ({"url": "http://127.0.0.1/x", "metadata": {"a": 1}}, "metadata"),
        ({"url": "http://127.0.0.1/x", "colour": "red"}, "colour"),
    ],
    ids=["unknown-event", "no-events", "url-type", "batch-size", "metadata", "unknown-field"],
)
def test_invalid_fields_are_422(api: Any, body: dict[str, Any], field: str) -> None:
    client, _ = api
    r = client.post("/v1/webhook-endpoints", json=body)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["code"] == "invalid_webhook_endpoint" and r.json()["field"] == field


def test_malformed_json_is_400(api: Any) -> None:
    client, _ = api
    r = client.post(
        "/v1/webhook-endpoints", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["code"] == "invalid_json"
    for empty in (b"", b" \n"):
        r = client.post(
            "/v1/webhook-endpoints", content=empty, headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and r.json()["code"] == "invalid_json"
        assert r.json()["detail"] == "A JSON object body is required."


def test_patch_honors_if_match(api: Any, receiver: Any) -> None:
    client, _ = api
    created = client.post("/v1/webhook-endpoints", json={"url": receiver.url})
    path, etag = created.headers["location"], created.headers["etag"]
    stale = client.patch(path, json={"description": "x"}, headers={"if-match": '"nope"'})
    assert stale.status_code == 412 and stale.json()["code"] == "precondition_failed"
    assert stale.headers["etag"] == etag
    ok = client.patch(path, json={"description": "x", "disabled": True}, headers={"if-match": etag})
    assert ok.status_code == 200 and ok.json()["disabled"] is True
    assert ok.json()["disabled_reason"] == "disabled by the owner"
    assert ok.headers["etag"] != etag
    again = client.patch(path, json={"description": "y"}, headers={"if-match": etag})
    assert again.status_code == 412
    assert client.delete(path, headers={"if-match": etag}).status_code == 412
    assert client.delete(path, headers={"if-match": ok.headers["etag"]}).status_code == 204
    gone = client.get(path)
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    assert gone.json()["detail"] == f"no webhook endpoint {path.rsplit('/', 1)[1]!r}"


def test_rotate_and_test_event(api: Any, receiver: Any) -> None:
    client, _ = api
    created = client.post("/v1/webhook-endpoints", json={"url": receiver.url}).json()
    rotated = client.post(f"/v1/webhook-endpoints/{created['id']}/secret/rotate")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != created["secret"] and rotated.json()["previous_secret_expires_at"]
    receiver.secrets = [new]
    sent = client.post(
        f"/v1/webhook-endpoints/{created['id']}/test", json={"event_type": "job.failed"}
    )
    assert sent.status_code == 202
    [got] = receiver.wait_for(1, timeout=5)
    assert got.verified and got.json()["type"] == "job.failed"
    assert got.webhook_id == sent.json()["id"]
    receiver.secrets = [created["secret"]]  # the old secret still verifies during the overlap
    client.post(f"/v1/webhook-endpoints/{created['id']}/test")
    assert receiver.wait_for(2, timeout=5)[1].verified


def test_dead_letters_list_resend_and_recover_over_http(api: Any, receiver: Any) -> None:
    client, system = api
    created = client.post("/v1/webhook-endpoints", json={"url": receiver.url}).json()
    receiver.secrets = [created["secret"]]
    healthy = {"up": False}
    receiver.reply = lambda n, r: (200, {}) if healthy["up"] else (500, {})
    since = time.time() - 1
    first = client.post(f"/v1/webhook-endpoints/{created['id']}/test").json()
    second = client.post(f"/v1/webhook-endpoints/{created['id']}/test").json()
    messages = f"/v1/webhook-endpoints/{created['id']}/messages"
    deadline = time.monotonic() + 10
    while len(client.get(messages, params={"status": "failed"}).json()["data"]) < 2:
        assert time.monotonic() < deadline, "messages never became dead letters"
        time.sleep(0.05)
    failed = client.get(messages, params={"status": "failed"}).json()["data"]
    for message in failed:
        assert [a["status_code"] for a in message["attempts"]] == [500, 500]
        assert all(
            a["at"] and a["latency_ms"] is not None and a["error"] == "HTTP 500"
            for a in message["attempts"]
        )
    healthy["up"] = True
    resent = client.post(f"{messages}/{first['id']}/resend")
    assert resent.status_code == 202 and resent.json()["status"] == "pending"
    got = receiver.wait_for(5, timeout=5)
    assert got[-1].webhook_id == first["id"]
    recovered = client.post(f"/v1/webhook-endpoints/{created['id']}/recover", json={"since": since})
    assert recovered.status_code == 202 and recovered.json()["recovered"] == 1
    got = receiver.wait_for(6, timeout=5)
    assert got[-1].webhook_id == second["id"] and all(r.verified for r in got)
    assert client.get(messages, params={"status": "bogus"}).status_code == 400
    assert client.post(f"{messages}/msg_unknown/resend").status_code == 404
    assert (
        client.post(f"/v1/webhook-endpoints/{created['id']}/recover", json={}).json()["code"]
        == "invalid_recover_window"
    )
    deadline = time.monotonic() + 5
    while client.get(f"{messages}/{second['id']}").json()["status"] != "succeeded":
        assert time.monotonic() < deadline, "the recovered message never succeeded"
        time.sleep(0.05)
    attempts = system.outbox.get_message(second["id"], "public")["attempts"]
    assert [(a["status_code"], a["trigger"]) for a in attempts] == [
        (500, "scheduled"),
        (500, "scheduled"),
        (200, "recover"),
    ]
    attempts = system.outbox.get_message(first["id"], "public")["attempts"]
    assert [(a["status_code"], a["trigger"]) for a in attempts] == [
        (500, "scheduled"),
        (500, "scheduled"),
        (200, "resend"),
    ]


def test_tenants_see_only_their_own_endpoints(tmp_path: Path, receiver: Any, build: Any) -> None:
    client, _ = build(tmp_path, "127.0.0.0/8")

    async def as_tenant(scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        scope["tenant"] = headers.get(b"x-tenant", b"public").decode()
        await inner(scope, receive, send)

    inner = client.app
    client.app = as_tenant  # type: ignore[assignment]
    mine = client.post(
        "/v1/webhook-endpoints", json={"url": receiver.url}, headers={"x-tenant": "acme"}
    )
    assert mine.status_code == 201
    path = mine.headers["location"]
    assert client.get(path, headers={"x-tenant": "acme"}).status_code == 200
    for method in ("GET", "PATCH", "DELETE"):
        r = client.request(
            method,
            path,
            headers={"x-tenant": "other"},
            **({"json": {}} if method == "PATCH" else {}),
        )
        assert r.status_code == 404, method
    assert client.get("/v1/webhook-endpoints", headers={"x-tenant": "other"}).json()["data"] == []


def test_message_pages_walk_every_message_once(tmp_path: Path, build: Any) -> None:
    client, system = build(tmp_path, "127.0.0.0/8")  # sender not started: all stay pending
    endpoint = client.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/"}).json()
    for i in range(7):
        relay(system, {"id": f"job_{i}", "status": "succeeded", "tenant": "public"}, "job.succeeded")
    path = f"/v1/webhook-endpoints/{endpoint['id']}/messages"
    seen: list[str] = []
    params: dict[str, str] = {"limit": "3"}
    while True:
        page = client.get(path, params=params).json()
        seen += [m["job_id"] for m in page["data"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == [f"job_{i}" for i in reversed(range(7))]
    only = client.get(path, params={"job_id": "job_3"}).json()["data"]
    assert [m["job_id"] for m in only] == ["job_3"]
    assert client.get(path, params={"cursor": "garbage"}).status_code == 400


def test_wrong_method_is_405_with_allow(api: Any) -> None:
    client, _ = api
    r = client.request("PUT", "/v1/webhook-endpoints")
    assert r.status_code == 405 and r.headers["content-type"] == PROBLEM
    assert r.headers["allow"] == "GET, HEAD, POST"


def test_endpoint_pages_end_where_the_endpoints_do(api: Any) -> None:
    client, _ = api
    made = sorted(
        client.post("/v1/webhook-endpoints", json={"url": f"http://127.0.0.1:{9 + n}/"}).json()["id"]
        for n in range(4)
    )
    first = client.get("/v1/webhook-endpoints?limit=3").json()
    assert [e["id"] for e in first["data"]] == made[:3] and first["next_cursor"] == made[2]
    last = client.get(f"/v1/webhook-endpoints?limit=3&cursor={first['next_cursor']}").json()
    assert [e["id"] for e in last["data"]] == made[3:] and last["next_cursor"] is None
    exact = client.get("/v1/webhook-endpoints?limit=4").json()
    assert len(exact["data"]) == 4 and exact["next_cursor"] is None  # no empty page after


def test_every_endpoint_field_a_patch_changes_is_kept(api: Any) -> None:
    client, _ = api
    created = client.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/a"})
    path = created.headers["location"]

    def patch(body: dict[str, Any]) -> dict[str, Any]:
        r = client.patch(path, json=body)
        assert r.status_code == 200, r.text
        stored: dict[str, Any] = client.get(path).json()
        assert stored == r.json()  # what was answered was kept
        stored["etag"] = client.get(path).headers["etag"]
        return stored

    before = client.get(path)
    after = patch(
        {
            "url": "http://127.0.0.1:9/b",
            "metadata": {"team": "colour"},
            "batch": {"max_events": 10, "max_wait_ms": 250},
            "event_types": ["job.failed"],
        }
    )
    assert after["url"] == "http://127.0.0.1:9/b" and after["metadata"] == {"team": "colour"}
    assert after["batch"] == {"max_events": 10, "max_wait_ms": 250}
    assert after["event_types"] == ["job.failed"]
    assert after["etag"] != before.headers["etag"]
    assert after["updated_at"] >= before.json()["updated_at"]
    assert patch({"batch": None})["batch"] is None
    off = patch({"disabled": True, "disabled_reason": "maintenance"})
    assert off["disabled"] is True and off["disabled_reason"] == "maintenance"
    on = patch({"disabled": False, "disabled_reason": "ignored when enabling"})
    assert on["disabled"] is False and on["disabled_reason"] is None
    assert client.get(path).json()["metadata"] == {"team": "colour"}  # untouched by later patches


def test_a_message_is_resent_unless_it_is_being_delivered(tmp_path: Path, build: Any) -> None:
    client, system = build(tmp_path, "127.0.0.0/8")  # sender not started: nothing is sent
    endpoint = client.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/"}).json()
    for i in range(2):
        relay(system, {"id": f"job_{i}", "status": "succeeded", "tenant": "public"}, "job.succeeded")
    path = f"/v1/webhook-endpoints/{endpoint['id']}/messages"
    waiting, leased = client.get(path).json()["data"]
    [claimed] = system.outbox.claim_due("sender-1", 1, 60.0)  # a sender is posting one now
    if claimed.id == waiting["id"]:
        waiting, leased = leased, waiting
    assert client.post(f"/v1/webhook-messages/{waiting['id']}/resend").status_code == 202
    busy = client.post(f"/v1/webhook-messages/{leased['id']}/resend")
    assert busy.status_code == 409 and busy.json()["code"] == "message_in_flight"
    assert busy.json()["detail"] == "the message is being delivered right now"

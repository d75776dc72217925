"""Property-based requests against the webhook routes: any JSON, any query, never a 5xx.

Runs in-process, with the resolver replaced by one that knows no names, so generated host names
never reach real DNS.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp, Receive, Scope, Send
from webhooktools import webhook_app

from service.backends import open_backends
from service.egress import EgressPolicy, parse_cidrs
from service.settings import Settings
from service.webhooks import WebhookSystem
from service.webhooks.settings import WebhookSettings
from service.webhooks.signing import generate_secret

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
endpoint_fields = st.fixed_dictionaries(
    {},
    optional={
        "url": st.one_of(
            st.just("http://127.0.0.1:9/hook"),
            st.just("http://10.0.0.1/"),
            st.text(max_size=40).map(lambda t: "http://" + t),
            json_values,
        ),
        "description": st.text(max_size=30) | json_values,
        "event_types": st.lists(
            st.sampled_from(["*", "job.succeeded", "job.progress", "x"]), max_size=3
        )
        | json_values,
        "disabled": st.booleans() | json_values,
        "batch": st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "max_events": st.integers(-5, 2000) | json_values,
                "max_wait_ms": st.integers(-5, 10**7) | json_values,
            },
        )
        | json_values,
        "metadata": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)
        | json_values,
    },
).flatmap(
    lambda d: st.dictionaries(st.text(max_size=8), json_values, max_size=2).map(
        lambda extra: {**d, **extra}
    )
)


class FakeTenant:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["tenant"] = "fuzz"
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ASGIApp]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    settings_ = WebhookSettings(
        egress=EgressPolicy(allow_cidrs=parse_cidrs("127.0.0.0/8")),
        callback_secret=generate_secret(),
    )
    b = open_backends(Settings(data_dir=tmp, webhooks=settings_))
    system = WebhookSystem(settings_, b.webhook_endpoints, b.webhook_outbox, b.events, b.clock)
    yield webhook_app(system)  # sender not started
    b.close()


def call(app: ASGIApp, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=FakeTenant(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return anyio.run(go)


def no_dns(host: str, *args: Any, **kwargs: Any) -> list[Any]:
    raise socket.gaierror(socket.EAI_NONAME, "no DNS in tests")


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert json.loads(response.content)["code"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=endpoint_fields, raw=st.binary(max_size=30))
def test_endpoint_create_and_patch_never_5xx(
    app: ASGIApp, monkeypatch: pytest.MonkeyPatch, body: dict[str, Any], raw: bytes
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    created = call(app, "POST", "/v1/webhook-endpoints", json=body)
    check(created)
    check(call(app, "POST", "/v1/webhook-endpoints", content=raw))
    target = created.json()["id"] if created.status_code == 201 else "ep_missing"
    check(
        call(
            app,
            "PATCH",
            f"/v1/webhook-endpoints/{target}",
            json=body,
            headers={"if-match": '"x"'} if raw[:1] == b"x" else {},
        )
    )


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    window=st.dictionaries(st.sampled_from(["since", "until", "other"]), json_values, max_size=3),
    query=st.dictionaries(
        st.sampled_from(["status", "limit", "cursor"]), st.text(max_size=12), max_size=3
    ),
    ident=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#%\\"),
        min_size=1,
        max_size=12,
    ),
)
def test_messages_and_recovery_never_5xx(
    app: ASGIApp,
    monkeypatch: pytest.MonkeyPatch,
    window: dict[str, Any],
    query: dict[str, str],
    ident: str,
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    endpoint = call(app, "POST", "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/"})
    endpoint_id = endpoint.json()["id"]
    for eid in (endpoint_id, ident):
        check(call(app, "POST", f"/v1/webhook-endpoints/{eid}/recover", json=window))
        check(call(app, "GET", f"/v1/webhook-endpoints/{eid}/messages", params=query))
        check(call(app, "POST", f"/v1/webhook-endpoints/{eid}/messages/{ident}/resend"))
        check(call(app, "POST", f"/v1/webhook-endpoints/{eid}/test", json=window))
    check(call(app, "GET", "/v1/webhook-messages", params=query))
    check(call(app, "GET", "/v1/webhook-endpoints", params=query))

"""The outbox and the sender on the embedded backend, with a real loopback receiver."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.backends import open_backends
from service.egress import EgressPolicy, parse_cidrs
from service.settings import Settings
from service.webhooks import WebhookSystem
from service.webhooks.delivery import RetryPolicy, classify, parse_retry_after
from service.webhooks.events import MAX_PAYLOAD_BYTES
from service.webhooks.interfaces import Outcome
from service.webhooks.settings import WebhookSettings, parse_schedule
from service.webhooks.signing import generate_secret, signature, tenant_secret
from webhooktools import relay

LOOPBACK = EgressPolicy(allow_cidrs=parse_cidrs("127.0.0.0/8"))


def make_settings(**overrides: Any) -> WebhookSettings:
    base: dict[str, Any] = {
        "retry_schedule": (0.2, 0.2, 0.2),
        "jitter": 0.0,
        "timeout_s": 2.0,
        "poll_interval_s": 0.05,
        "egress": LOOPBACK,
        "callback_secret": generate_secret(),
    }
    base.update(overrides)
    return WebhookSettings(**base)


@pytest.fixture
def make_system(open_webhooks: Any) -> Any:
    def make(**overrides: Any) -> WebhookSystem:
        system: WebhookSystem = open_webhooks(make_settings(**overrides))
        return system

    return make


def emit(system: WebhookSystem, job: dict[str, Any], event_type: str) -> None:
    """What the sender does with a new entry of the job event log."""
    relay(system, job, event_type)


def job(job_id: str = "job_1", status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "status": status,
        "tenant": extra.pop("tenant", "public"),
        "progress": {"total": 3, "done": 3, "failed": 0, "skipped": 0},
        **extra,
    }


def add_endpoint(system: WebhookSystem, url: str, **fields: Any) -> tuple[str, str]:
    endpoint, secret = system.endpoints.create_endpoint("public", {"url": url, **fields})
    return endpoint["id"], secret


def messages(system: WebhookSystem, owner: str = "public") -> list[dict[str, Any]]:
    """The owner's messages, oldest first, each with its attempts."""
    page, _ = system.outbox.list_messages(owner, endpoint_id=None, limit=200)
    return page[::-1]


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_an_event_relayed_again_writes_nothing_new(make_system: Any, receiver: Any) -> None:
    """At-least-once consumption of the event log: a repeat is the same message, once."""
    from service.jobs.interfaces import JobEvent

    system = make_system()
    add_endpoint(system, receiver.url)
    event = JobEvent("evt_once", "job.succeeded", job(callback_url=receiver.url + "?cb"), 1.0)
    assert system.outbox.relay(event) == 2  # the endpoint and the callback
    assert system.outbox.relay(event) == 0
    assert len(messages(system)) == 2
    again = JobEvent("evt_twice", "job.succeeded", job(), 2.0)
    assert system.outbox.relay(again) == 1
    ids = [m["id"] for m in messages(system)]
    assert len(set(ids)) == 3


def test_delivery_is_signed_thin_and_verifies(make_system: Any, receiver: Any) -> None:
    system = make_system()
    _, secret = add_endpoint(system, receiver.url)
    receiver.secrets = [secret]
    system.start()
    emit(system, job(), "job.succeeded")
    [got] = receiver.wait_for(1, timeout=5)
    assert got.verified, got.error
    body = got.json()
    assert body["type"] == "job.succeeded"
    assert body["data"]["job_id"] == "job_1" and body["data"]["status"] == "succeeded"
    assert body["data"]["links"]["results"] == "/v1/jobs/job_1/results"
    assert len(got.body) < MAX_PAYLOAD_BYTES
    assert got.headers["webhook-id"].startswith("msg_")
    wait_until(
        lambda: messages(system)[0]["status"] == "succeeded",
        5,
        "the message to be marked succeeded",
    )


def test_receiver_down_for_three_attempts_gets_the_fourth_with_the_same_id(
    make_system: Any, receiver: Any, settled: Any
) -> None:
    system = make_system()
    _, secret = add_endpoint(system, receiver.url)
    receiver.secrets = [secret]
    receiver.reply = lambda n, r: (500, {}) if n < 3 else (200, {})
    system.start()
    emit(system, job(), "job.failed")
    got = receiver.wait_for(4, timeout=10)
    assert all(r.verified for r in got)
    assert len({r.webhook_id for r in got}) == 1
    wait_until(lambda: messages(system)[0]["status"] == "succeeded", 5, "success")
    attempts = messages(system)[0]["attempts"]
    assert [a["status_code"] for a in attempts] == [500, 500, 500, 200]
    assert all(a["latency_ms"] is not None for a in attempts)
    assert len(settled(system)) == 4  # nothing after the success


def test_exhausted_message_is_a_dead_letter_and_resend_delivers_it(
    make_system: Any, receiver: Any
) -> None:
    system = make_system(retry_schedule=(0.1, 0.1), timeout_s=0.5)
    endpoint_id, secret = add_endpoint(system, receiver.url)
    receiver.secrets = [secret]
    recovered = {"up": False}

    def reply(n: int, r: Any) -> tuple[int, dict[str, str]]:
        if not recovered["up"]:
            time.sleep(1.0)  # never answers within the timeout
        return 200, {}

    receiver.reply = reply
    system.start()
    emit(system, job(), "job.succeeded")

    def failed() -> list[dict[str, Any]]:
        return system.outbox.list_messages("public", endpoint_id=endpoint_id, status="failed")[0]

    wait_until(lambda: len(failed()) == 1, 10, "the dead letter")
    [dead] = failed()
    assert [a["error"] for a in dead["attempts"]] == ["timed out after 0.5 s"] * 3
    assert all(a["at"] and a["latency_ms"] >= 400 for a in dead["attempts"])
    recovered["up"] = True
    time.sleep(0.3)
    before = len(receiver.received)
    system.outbox.resend(dead["id"], "public")
    system.wake()
    got = receiver.wait_for(before + 1, timeout=5)
    assert got[-1].webhook_id == dead["id"] and got[-1].verified
    wait_until(
        lambda: system.outbox.get_message(dead["id"], "public")["status"] == "succeeded",
        5,
        "the resent message to succeed",
    )


def test_recover_requeues_every_failure_in_the_window(make_system: Any, receiver: Any) -> None:
    system = make_system(retry_schedule=(0.05,))
    endpoint_id, secret = add_endpoint(system, receiver.url)
    receiver.secrets = [secret]
    receiver.reply = lambda n, r: (500, {}) if n < 6 else (204, {})
    system.start()
    start = time.time()
    for i in range(3):
        emit(system, job(f"job_{i}"), "job.succeeded")
    wait_until(
        lambda: (
            len(system.outbox.list_messages("public", endpoint_id=endpoint_id, status="failed")[0])
            == 3
        ),
        10,
        "three dead letters",
    )
    assert system.outbox.recover(endpoint_id, "public", start - 1, None) == 3
    system.wake()
    wait_until(
        lambda: (
            len(
                system.outbox.list_messages("public", endpoint_id=endpoint_id, status="succeeded")[0]
            )
            == 3
        ),
        10,
        "recovery",
    )
    ids = {r.webhook_id for r in receiver.received}
    assert len(ids) == 3 and len(receiver.received) == 9
    assert system.outbox.recover(endpoint_id, "public", time.time() + 10, None) == 0


def test_gone_disables_the_endpoint(make_system: Any, receiver: Any, settled: Any) -> None:
    system = make_system()
    endpoint_id, _ = add_endpoint(system, receiver.url)
    receiver.reply = lambda n, r: (410, {})
    system.start()
    emit(system, job(), "job.succeeded")
    wait_until(lambda: system.endpoints.get_endpoint(endpoint_id, "public")["disabled"], 5, "disable")
    endpoint = system.endpoints.get_endpoint(endpoint_id, "public")
    assert endpoint["disabled_reason"] == "the endpoint answered 410 Gone"
    assert messages(system)[0]["status"] == "failed"
    emit(system, job("job_2"), "job.succeeded")  # a disabled endpoint gets nothing new
    assert len(settled(system)) == 1


def test_redirects_are_failures_and_never_followed(
    make_system: Any, receiver: Any, settled: Any
) -> None:
    system = make_system(retry_schedule=(5.0,))
    add_endpoint(system, receiver.url)
    receiver.reply = lambda n, r: (307, {"location": receiver.url + "/elsewhere"})
    system.start()
    emit(system, job(), "job.succeeded")
    wait_until(lambda: len(messages(system)[0]["attempts"]) == 1, 5, "try")
    [message] = messages(system)
    [attempt] = message["attempts"]
    assert attempt["status_code"] == 307 and "redirect not followed" in attempt["error"]
    assert message["status"] == "pending"
    assert [r.path for r in settled(system)] == ["/hook"]  # the Location was never visited


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honored(make_system: Any, receiver: Any, status: int) -> None:
    system = make_system(retry_schedule=(0.1, 0.1))
    add_endpoint(system, receiver.url)
    receiver.reply = lambda n, r: (status, {"retry-after": "1"}) if n == 0 else (200, {})
    system.start()
    emit(system, job(), "job.succeeded")
    got = receiver.wait_for(2, timeout=5)
    gap = got[1].at - got[0].at
    assert 0.95 <= gap < 2.0, gap  # the 0.1 s schedule would have retried at once


def test_retry_after_parsing() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:40 GMT", now) == pytest.approx(20.0)
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_endpoint_failing_for_the_period_is_disabled(
    make_system: Any, receiver: Any, settled: Any
) -> None:
    system = make_system(retry_schedule=(0.1,) * 30, disable_after_s=0.6)
    endpoint_id, _ = add_endpoint(system, receiver.url)
    receiver.reply = lambda n, r: (500, {})
    system.start()
    emit(system, job(), "job.succeeded")
    wait_until(lambda: system.endpoints.get_endpoint(endpoint_id, "public")["disabled"], 8, "disable")
    endpoint = system.endpoints.get_endpoint(endpoint_id, "public")
    since = endpoint["failing_since"]
    assert since and endpoint["disabled_reason"] == f"every delivery has failed since {since}"
    count = len(receiver.arrivals())
    assert count >= 3
    assert len(settled(system)) == count  # no attempts to a disabled endpoint


def test_progress_is_opt_in_and_coalesced(make_system: Any, receiver: Any) -> None:
    system = make_system()
    add_endpoint(system, receiver.url, event_types=["*"])
    progress_id, _ = add_endpoint(system, receiver.url + "?progress", event_types=["job.progress"])
    for done in range(1, 6):
        emit(system, job(status="running", progress={"total": 5, "done": done}), "job.progress")
    queued = messages(system)
    assert [m["endpoint_id"] for m in queued] == [progress_id]
    assert queued[0]["payload"]["data"]["progress"]["done"] == 5


def test_secret_rotation_signs_with_both_for_the_overlap(make_system: Any, receiver: Any) -> None:
    system = make_system()
    endpoint_id, old = add_endpoint(system, receiver.url)
    endpoint, new = system.endpoints.rotate_secret(endpoint_id, "public")
    assert new != old and endpoint["previous_secret_expires_at"] is not None
    receiver.secrets = [old]
    system.start()
    emit(system, job(), "job.succeeded")
    [first] = receiver.wait_for(1, timeout=5)
    assert first.verified and len(first.headers["webhook-signature"].split(" ")) == 2
    receiver.secrets = [new]
    emit(system, job("job_2"), "job.succeeded")
    second = receiver.wait_for(2, timeout=5)[1]
    assert second.verified


def test_old_secret_stops_signing_after_the_overlap(make_system: Any, receiver: Any) -> None:
    system = make_system(rotation_overlap_s=0.2)
    endpoint_id, old = add_endpoint(system, receiver.url)
    system.endpoints.rotate_secret(endpoint_id, "public")
    time.sleep(0.3)
    receiver.secrets = [old]
    system.start()
    emit(system, job(), "job.succeeded")
    [got] = receiver.wait_for(1, timeout=5)
    assert not got.verified and len(got.headers["webhook-signature"].split(" ")) == 1


def test_batching_100_events_in_two_callbacks(
    make_system: Any, receiver: Any, settled: Any
) -> None:
    system = make_system()
    _, secret = add_endpoint(system, receiver.url, batch={"max_events": 50, "max_wait_ms": 5000})
    receiver.secrets = [secret]
    system.start()
    for i in range(100):
        emit(system, job(f"job_{i}"), "job.succeeded")
    got = receiver.wait_for(2, timeout=10)
    assert len(settled(system)) == 2
    events = [e for r in got for e in r.json()["events"]]
    assert all(r.verified for r in got)
    assert sorted(e["data"]["job_id"] for e in events) == sorted(f"job_{i}" for i in range(100))


def test_a_batch_carries_only_the_latest_progress_of_each_job(
    make_system: Any, receiver: Any
) -> None:
    system = make_system()
    add_endpoint(
        system,
        receiver.url,
        event_types=["job.progress", "job.succeeded"],
        batch={"max_events": 50, "max_wait_ms": 300},
    )

    def progress(job_id: str, done: int) -> None:
        state = job(job_id, status="running", progress={"total": 3, "done": done})
        emit(system, state, "job.progress")

    progress("job_1", 1)
    progress("job_2", 1)
    progress("job_1", 2)
    progress("job_1", 3)
    emit(system, job("job_1"), "job.succeeded")
    system.start()
    [got] = receiver.wait_for(1, timeout=5)
    events = sorted(
        (e["data"]["job_id"], e["type"], e["data"]["progress"]["done"]) for e in got.json()["events"]
    )
    assert events == [
        ("job_1", "job.progress", 3),
        ("job_1", "job.succeeded", 3),
        ("job_2", "job.progress", 1),
    ]


def test_a_disabled_endpoints_buffer_holds_no_other_endpoint_back(make_system: Any) -> None:
    """Both endpoints buffer an event; the one disabled keeps it, the other gets its batch,
    whichever the outbox looks at first (the disabled one has the smaller id here, which is
    the order SQLite groups them in)."""
    system = make_system()
    batch = {"max_events": 1, "max_wait_ms": 60_000}
    ids = sorted(add_endpoint(system, f"http://127.0.0.1:9/{n}", batch=batch)[0] for n in range(2))
    emit(system, job("job_1"), "job.succeeded")
    emit(system, job("job_2"), "job.succeeded")
    system.endpoints.update_endpoint(ids[0], "public", {"disabled": True})
    assert system.outbox.form_batches() == 2  # a batch is full at one event
    assert [m["endpoint_id"] for m in messages(system)] == [ids[1]] * 2
    system.endpoints.update_endpoint(ids[0], "public", {"disabled": False})
    assert system.outbox.form_batches() == 2
    formed = messages(system)
    assert sorted(m["endpoint_id"] for m in formed) == [ids[0]] * 2 + [ids[1]] * 2
    assert all(m["id"].startswith("msg_") for m in formed)


def test_batch_flushes_after_max_wait(make_system: Any, receiver: Any) -> None:
    system = make_system()
    add_endpoint(system, receiver.url, batch={"max_events": 50, "max_wait_ms": 300})
    system.start()
    started = time.time()
    for i in range(3):
        emit(system, job(f"job_{i}"), "job.succeeded")
    [got] = receiver.wait_for(1, timeout=5)
    assert got.at - started >= 0.29
    assert len(got.json()["events"]) == 3


def test_callback_url_is_signed_with_the_tenants_callback_secret(
    make_system: Any, receiver: Any, settled: Any
) -> None:
    system = make_system()
    receiver.secrets = [tenant_secret(system.settings.callback_secret, "public")]
    system.start()
    emit(system, job(callback_url=receiver.url), "job.canceled")
    emit(system, job(callback_url=receiver.url, status="running"), "job.progress")
    [got] = receiver.wait_for(1, timeout=5)
    assert got.verified and got.json()["type"] == "job.canceled"
    assert len(settled(system)) == 1  # callbacks carry the final events only


def test_one_tenants_callback_secret_verifies_no_other_tenants_callbacks(
    make_system: Any, receiver: Any
) -> None:
    """Finding 6: a tenant that verifies its own callbacks must not be able to forge another
    tenant's. Each tenant's secret is its own; the deployment's secret signs nothing."""
    system = make_system()
    master = system.settings.callback_secret
    receiver.secrets = [tenant_secret(master, "tenant-a")]
    system.start()
    emit(system, job("job_b", tenant="tenant-b", callback_url=receiver.url), "job.succeeded")
    emit(system, job("job_a", tenant="tenant-a", callback_url=receiver.url), "job.succeeded")
    got = {r.json()["data"]["job_id"]: r for r in receiver.wait_for(2, timeout=5)}
    assert got["job_a"].verified and not got["job_b"].verified
    signatures = got["job_b"].headers["webhook-signature"]
    assert tenant_secret(master, "tenant-a") != tenant_secret(master, "tenant-b")
    b = got["job_b"]
    timestamp = int(b.headers["webhook-timestamp"])
    assert signature(tenant_secret(master, "tenant-b"), b.webhook_id, timestamp, b.body) in (
        signatures.split()
    )
    for wrong in (master, tenant_secret(master, "tenant-a")):
        assert signature(wrong, b.webhook_id, timestamp, b.body) not in signatures.split()


def test_pending_delivery_survives_a_restart(make_system: Any, receiver: Any) -> None:
    first = make_system(retry_schedule=(0.5,))
    _, secret = add_endpoint(first, receiver.url)
    receiver.secrets = [secret]
    receiver.reply = lambda n, r: (500, {}) if n == 0 else (200, {})
    first.start()
    emit(first, job(), "job.succeeded")
    receiver.wait_for(1, timeout=5)
    first.stop()
    second = make_system(retry_schedule=(0.5,))
    second.start()
    got = receiver.wait_for(2, timeout=5)
    assert got[0].webhook_id == got[1].webhook_id and got[1].verified


def test_schedule_parsing_and_jitter(tmp_path: Path) -> None:
    assert parse_schedule("5, 300,1800") == (5.0, 300.0, 1800.0)
    with pytest.raises(ValueError, match="comma-separated"):
        parse_schedule("5,soon")
    with pytest.raises(ValueError, match="non-negative"):
        parse_schedule("-1")
    env = {"PALETTE_WEBHOOK_RETRY_SCHEDULE": "1,2", "PALETTE_EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}
    settings = WebhookSettings.from_env(env)
    assert settings.retry_schedule == (1.0, 2.0) and settings.timeout_s == 15.0
    assert WebhookSettings.from_env({}).retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    store = RetryPolicy(WebhookSettings(retry_schedule=(10.0, 100.0), jitter=0.2), random.Random(7))
    delays = [store.retry_delay(1) for _ in range(200)]
    assert all(d is not None and 8.0 <= d <= 12.0 for d in delays)
    assert len({round(d or 0, 3) for d in delays}) > 50  # actually jittered
    assert 80.0 <= (store.retry_delay(2) or 0) <= 120.0
    assert store.retry_delay(3) is None


def test_events_go_only_to_the_jobs_tenant(
    make_system: Any, receiver: Any, settled: Any
) -> None:
    system = make_system()
    system.endpoints.create_endpoint("acme", {"url": receiver.url + "?t=acme"})
    add_endpoint(system, receiver.url + "?t=public")
    system.start()
    emit(system, job(tenant="acme"), "job.succeeded")
    [got] = receiver.wait_for(1, timeout=5)
    assert got.path == "/hook?t=acme" and len(settled(system)) == 1


def test_a_stalled_endpoint_does_not_hold_every_sender(
    make_system: Any, receiver: Any, settled: Any
) -> None:
    # Both endpoints are one tenant's: with the tenant cap at its default (half the senders,
    # 2) the stalled endpoint's two sends would hold that tenant's whole share. Here the cap is
    # all four senders, so what is measured is the per-endpoint cap alone (the tenant cap has
    # its own test, test_one_tenants_slow_endpoints_do_not_hold_every_sender).
    system = make_system(
        concurrency=4, per_endpoint_concurrency=2, tenant_concurrency=4, timeout_s=3.0
    )
    add_endpoint(system, receiver.url + "?slow", event_types=["job.failed"])
    add_endpoint(system, receiver.url + "?fast", event_types=["job.succeeded"])

    def reply(n: int, r: Any) -> tuple[int, dict[str, str]]:
        if r.path.endswith("?slow"):
            time.sleep(2.0)
        return 200, {}

    receiver.reply = reply
    for i in range(6):  # six messages for the stalled endpoint, due before the fast one
        emit(system, job(f"job_{i}", status="failed"), "job.failed")
    emit(system, job("job_fast"), "job.succeeded")
    started = time.time()
    system.start()
    deadline = time.monotonic() + 5
    while not any(r.path.endswith("?fast") for r in receiver.arrivals()):
        assert time.monotonic() < deadline, "the fast endpoint starved"
        time.sleep(0.02)
    fast = next(r for r in receiver.arrivals() if r.path.endswith("?fast"))
    assert fast.at - started < 1.0
    stalled = [r for r in settled(system) if r.path.endswith("?slow")]
    assert len(stalled) == 2  # held to the per-endpoint cap, not all four senders


def test_a_database_from_before_requeued_by_gets_the_column(tmp_path: Path) -> None:
    """The previous version's webhook_messages had no requeued_by; opening it adds the column."""
    db = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE webhook_messages (id TEXT PRIMARY KEY, endpoint_id TEXT, "
            "url TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '', job_id TEXT, "
            "event_type TEXT NOT NULL, body TEXT NOT NULL, event_count INTEGER NOT NULL DEFAULT 1, "
            "status TEXT NOT NULL, tries INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, "
            "lease_until REAL, lease_owner TEXT, last_error TEXT, created_at REAL NOT NULL, "
            "updated_at REAL NOT NULL)"
        )
        conn.execute(
            "INSERT INTO webhook_messages (id, url, event_type, body, status, next_attempt_at, "
            "created_at, updated_at) VALUES ('msg_old', 'http://127.0.0.1:9/hook', "
            "'job.succeeded', '{}', 'pending', 0, 0, 0)"
        )
    conn.close()
    settings = Settings(data_dir=tmp_path, webhooks=make_settings())
    open_backends(settings).close()
    backends = open_backends(settings)  # a second start must not try to add it again
    with sqlite3.connect(db) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(webhook_messages)")]
    conn.close()
    assert columns.count("requeued_by") == 1
    outbox = backends.webhook_outbox
    [claimed] = outbox.claim_due("sender-test", 10, 30.0)
    assert claimed.id == "msg_old" and claimed.trigger == "scheduled" and claimed.body == "{}"
    done = Outcome(200, 1.0, None, success=True)
    assert outbox.record_attempt(claimed, "sender-test", done, 0.0) == "succeeded"
    assert outbox.resend("msg_old", "")["attempts"][0]["trigger"] == "scheduled"
    [claimed] = outbox.claim_due("sender-test", 10, 30.0)
    assert claimed.trigger == "resend"  # the column is in use
    backends.close()


@pytest.mark.parametrize("configured", [True, False])
def test_the_settings_log_says_where_the_callback_secret_comes_from(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, configured: bool
) -> None:
    webhooks = make_settings() if configured else make_settings(callback_secret="")
    from service.app import create_app
    from starlette.testclient import TestClient

    with caplog.at_level("INFO", logger="service"):
        with TestClient(create_app(Settings(data_dir=tmp_path, webhooks=webhooks))):
            pass
    source = "configured" if configured else "generated"
    assert f"'webhook_callback_secret': '{source}'" in caplog.text


def test_one_tenants_slow_endpoints_do_not_hold_every_sender(
    make_system: Any, receiver: Any
) -> None:
    """Finding 7: a tenant whose receivers hang holds at most its share of the senders (half of
    them by default), so another tenant's message goes out at once instead of seconds later."""
    system = make_system(concurrency=4, per_endpoint_concurrency=2, timeout_s=3.0)

    def reply(n: int, received: Any) -> tuple[int, dict[str, str]]:
        if "slow" in received.path:
            time.sleep(1.5)
        return 200, {}

    receiver.reply = reply
    slow = [
        system.endpoints.create_endpoint("tenant-slow", {"url": f"{receiver.url}?slow={n}"})[0]
        for n in range(3)
    ]
    fast, _ = system.endpoints.create_endpoint("tenant-fast", {"url": receiver.url + "?fast"})
    for endpoint in slow:
        for _ in range(2):
            system.outbox.enqueue_test(endpoint["id"], "tenant-slow", "job.succeeded")
    system.start()
    # The slow tenant's messages are in flight (as many as it may have) before the other's.
    deadline = time.monotonic() + 5
    while len(receiver.arrivals()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    assert len(receiver.arrivals()) == 2  # half of 4 senders for one tenant
    queued_at = time.monotonic()
    message_id = system.outbox.enqueue_test(fast["id"], "tenant-fast", "job.succeeded")
    system.wake()
    while system.outbox.get_message(message_id, "tenant-fast")["status"] != "succeeded":
        assert time.monotonic() - queued_at < 5
        time.sleep(0.01)
    assert time.monotonic() - queued_at < 0.8  # not behind the 1.5 s replies


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (199, "HTTP 199"),
        (200, None),
        (299, None),
        (300, "redirect not followed (Location: )"),
        (399, "redirect not followed (Location: )"),
        (400, "HTTP 400"),
        (410, "410 Gone: endpoint disabled"),
    ],
)
def test_only_2xx_answers_are_deliveries(code: int, error: str | None) -> None:
    outcome = classify(httpx.Response(code), 12.5, 1_700_000_000.0)
    assert (outcome.status_code, outcome.success, outcome.error) == (code, error is None, error)
    assert outcome.gone == (code == 410)


def test_a_redirect_is_recorded_with_where_it_pointed() -> None:
    moved = httpx.Response(302, headers={"Location": "https://elsewhere.example/" + "x" * 300})
    outcome = classify(moved, 12.5, 1_700_000_000.0)
    where = ("https://elsewhere.example/" + "x" * 300)[:200]
    assert outcome.error == f"redirect not followed (Location: {where})"


def test_the_senders_threads_are_named_and_never_hold_the_process_open(
    make_system: Any, receiver: Any
) -> None:
    """Started from a thread that is not a daemon (as `palette serve` starts it): a thread dump
    tells the dispatcher and the senders apart, and none keeps the interpreter alive."""
    system = make_system()
    add_endpoint(system, receiver.url)
    system.start()
    emit(system, job(), "job.succeeded")
    receiver.wait_for(1, timeout=5)
    threads = [t for t in threading.enumerate() if t.name.startswith("webhook-")]
    names = {t.name.rstrip("_0123456789") for t in threads}
    assert {"webhook-dispatch", "webhook-send"} <= names, names
    assert all(t.daemon for t in threads)

"""Webhook endpoints and the outbox, through their Protocols only, once per backend.

Several opens of one backend share its data, as the nodes of a deployment do: what one node
writes, another lists, claims and records. Senders are played by hand here (claim, then record
an outcome), so every step is decided by the test and the fake clock.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

import pytest
from conformancetools import FakeClock

from service.backends import Backends
from service.clock import iso_time
from service.jobs.interfaces import JobEvent
from service.webhooks.interfaces import (
    Claimed,
    Conflict,
    NotFound,
    Outcome,
    PreconditionFailed,
    WebhookOutbox,
)
from service.webhooks.settings import WebhookSettings

HOOKS = WebhookSettings(disable_after_s=100.0, retention_s=1000.0, rotation_overlap_s=50.0)
LEASE_S = 30.0
OK = Outcome(200, 5.0, None, success=True)
ERROR = Outcome(500, 5.0, "HTTP 500", success=False)
GONE = Outcome(410, 5.0, "410 Gone: endpoint disabled", success=False, gone=True)

_ids = itertools.count()


@pytest.fixture
def node(open_backend: Callable[..., Backends]) -> Callable[[], Backends]:
    """Another node of the same deployment, opened on the same data."""
    return lambda: open_backend(webhooks=HOOKS)


def event(
    event_type: str = "job.succeeded",
    tenant: str = "t1",
    job_id: str | None = None,
    callback_url: str | None = None,
    at: float = 0.0,
) -> JobEvent:
    job: dict[str, Any] = {
        "id": job_id or f"job{next(_ids)}",
        "tenant": tenant,
        "status": event_type.removeprefix("job."),
        "progress": {"total": 2, "done": 1},
    }
    if callback_url:
        job["callback_url"] = callback_url
    return JobEvent(f"evt{next(_ids)}", event_type, job, at)


def endpoint(backend: Backends, owner: str = "t1", **fields: Any) -> str:
    made, _ = backend.webhook_endpoints.create_endpoint(
        owner, {"url": f"https://hooks.example/{next(_ids)}", **fields}
    )
    return str(made["id"])


def claim(outbox: WebhookOutbox, sender: str = "s1", limit: int = 10, **caps: Any) -> list[Claimed]:
    return outbox.claim_due(sender, limit, LEASE_S, **caps)


def record(
    outbox: WebhookOutbox,
    message: Claimed,
    outcome: Outcome,
    at: float,
    retry_in: float | None = None,
    sender: str = "s1",
) -> str:
    return outbox.record_attempt(message, sender, outcome, at, retry_in)


# -- endpoints ---------------------------------------------------------------------------------


def test_endpoints_are_created_listed_in_pages_and_seen_by_every_node(
    node: Callable[[], Backends],
) -> None:
    one, two = node(), node()
    made, secret = one.webhook_endpoints.create_endpoint(
        "t1",
        {
            "url": "https://hooks.example/a",
            "description": "orders",
            "event_types": ["job.succeeded", "job.progress"],
            "batch": {"max_events": 5, "max_wait_ms": 200},
            "metadata": {"team": "blue"},
        },
    )
    assert secret.startswith("whsec_")
    assert made["disabled"] is False and made["batch"] == {"max_events": 5, "max_wait_ms": 200}
    assert two.webhook_endpoints.get_endpoint(made["id"], "t1") == made
    with pytest.raises(NotFound):
        two.webhook_endpoints.get_endpoint(made["id"], "t2")
    others = sorted([made["id"], endpoint(one), endpoint(two)])
    endpoint(one, owner="t2")

    first, cursor = two.webhook_endpoints.list_endpoints("t1", 2, None)
    assert [e["id"] for e in first] == others[:2] and cursor == others[1]
    rest, end = one.webhook_endpoints.list_endpoints("t1", 2, cursor)
    assert [e["id"] for e in rest] == others[2:] and end is None
    assert len(one.webhook_endpoints.list_endpoints("t2", 10, None)[0]) == 1


def test_an_endpoint_reads_back_as_made_with_the_documented_defaults(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    """Only ``url`` is required: the rest takes the defaults the API documents; what is given
    is kept, on every node."""
    one, two = node(), node()
    bare, _ = one.webhook_endpoints.create_endpoint("t1", {"url": "https://hooks.example/bare"})
    assert re.fullmatch(r"ep_[A-Za-z0-9_-]{16}", bare["id"]), bare["id"]
    made_at = iso_time(clock.now())
    expected = {
        "id": bare["id"],
        "url": "https://hooks.example/bare",
        "description": "",
        "event_types": ["*"],
        "disabled": False,
        "disabled_reason": None,
        "batch": None,
        "metadata": {},
        "failing_since": None,
        "previous_secret_expires_at": None,
        "created_at": made_at,
        "updated_at": made_at,
    }
    assert {k: v for k, v in bare.items() if k != "etag"} == expected
    assert two.webhook_endpoints.get_endpoint(bare["id"], "t1") == bare

    full, _ = one.webhook_endpoints.create_endpoint(
        "t1",
        {
            "url": "https://hooks.example/full",
            "description": "orders",
            "event_types": ["job.failed"],
            "disabled": True,
            "disabled_reason": "paused by the owner",
            "metadata": {"team": "blue"},
        },
    )
    read = two.webhook_endpoints.get_endpoint(full["id"], "t1")
    assert read == full and read["id"] != bare["id"]
    assert (read["description"], read["event_types"], read["metadata"]) == (
        "orders", ["job.failed"], {"team": "blue"}
    )
    assert (read["disabled"], read["disabled_reason"]) == (True, "paused by the owner")


def test_updates_and_deletes_hold_to_their_precondition(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one, two = node(), node()
    endpoint_id = endpoint(one)
    before = one.webhook_endpoints.get_endpoint(endpoint_id, "t1")
    clock.advance(1)
    changed = two.webhook_endpoints.update_endpoint(
        endpoint_id,
        "t1",
        {"description": "new", "event_types": ["job.failed"], "batch": None},
        precondition=lambda etag: etag == before["etag"],
    )
    assert changed["description"] == "new" and changed["event_types"] == ["job.failed"]
    assert changed["etag"] != before["etag"] and changed["updated_at"] > before["updated_at"]
    assert one.webhook_endpoints.get_endpoint(endpoint_id, "t1") == changed

    with pytest.raises(PreconditionFailed) as stale:
        one.webhook_endpoints.update_endpoint(
            endpoint_id, "t1", {"description": "lost"}, lambda etag: etag == before["etag"]
        )
    assert stale.value.current_etag == changed["etag"]
    with pytest.raises(PreconditionFailed):
        one.webhook_endpoints.delete_endpoint(endpoint_id, "t1", lambda e: e == before["etag"])
    with pytest.raises(NotFound):
        one.webhook_endpoints.delete_endpoint(endpoint_id, "t2")
    assert two.webhook_endpoints.get_endpoint(endpoint_id, "t1")["description"] == "new"

    one.webhook_endpoints.delete_endpoint(endpoint_id, "t1", lambda e: e == changed["etag"])
    with pytest.raises(NotFound):
        two.webhook_endpoints.get_endpoint(endpoint_id, "t1")
    assert two.webhook_endpoints.list_endpoints("t1", 10, None) == ([], None)
    with pytest.raises(NotFound):
        two.webhook_endpoints.update_endpoint(endpoint_id, "t1", {"description": "gone"})


def test_a_rotated_secret_signs_beside_the_new_one_for_the_overlap(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one, two = node(), node()
    made, first_secret = one.webhook_endpoints.create_endpoint("t1", {"url": "https://h.example"})
    rotated, second_secret = two.webhook_endpoints.rotate_secret(made["id"], "t1")
    assert second_secret != first_secret
    overlap_ends = clock.now() + HOOKS.rotation_overlap_s
    assert rotated["previous_secret_expires_at"] == iso_time(overlap_ends)
    with pytest.raises(NotFound):
        one.webhook_endpoints.rotate_secret(made["id"], "t2")

    one.webhook_outbox.relay(event())
    (message,) = claim(two.webhook_outbox)
    assert message.secrets == (second_secret, first_secret)
    record(two.webhook_outbox, message, ERROR, clock.now(), retry_in=0.0)

    clock.advance(overlap_ends - clock.now())  # the overlap's last instant is over, not in
    after = one.webhook_endpoints.get_endpoint(made["id"], "t1")
    assert after["previous_secret_expires_at"] is None
    (again,) = claim(one.webhook_outbox)
    assert again.id == message.id and again.secrets == (second_secret,)
    clock.advance(1)
    one.webhook_outbox.purge()
    assert one.webhook_endpoints.get_endpoint(made["id"], "t1") == after


# -- enqueue -----------------------------------------------------------------------------------


def test_an_event_is_relayed_once_however_often_and_wherever_it_is_relayed(
    node: Callable[[], Backends],
) -> None:
    one, two = node(), node()
    subscribed = endpoint(one, event_types=["*"])
    endpoint(one, event_types=["job.failed"])  # not this event
    endpoint(one, owner="t2")  # another tenant's
    done = event("job.succeeded", callback_url="https://client.example/cb")
    assert one.webhook_outbox.relay(done) == 2  # the endpoint and the job's callback
    assert two.webhook_outbox.relay(done) == 0
    assert one.webhook_outbox.relay(done) == 0
    assert two.webhook_outbox.relay(event("job.progress")) == 0  # "*" leaves progress out

    messages, _ = two.webhook_outbox.list_messages("t1", endpoint_id=None)
    assert sorted((m["endpoint_id"] or "", m["url"] or "") for m in messages) == [
        ("", "https://client.example/cb"),
        (subscribed, ""),
    ]
    assert all(m["payload"]["data"]["job_id"] == done.job["id"] for m in messages)
    assert [m["event_count"] for m in messages] == [1, 1]  # one event each, not a batch
    assert {m["id"] for m in messages} == {c.id for c in claim(one.webhook_outbox)}


def test_progress_not_yet_sent_takes_the_newer_body(node: Callable[[], Backends]) -> None:
    one, two = node(), node()
    endpoint(one, event_types=["job.progress"])
    first = event("job.progress", job_id="jobP")
    newer = event("job.progress", job_id="jobP")
    newer.job["progress"] = {"total": 2, "done": 2}
    assert one.webhook_outbox.relay(first) == 1
    assert two.webhook_outbox.relay(newer) == 1
    (message,) = claim(one.webhook_outbox)
    assert '"done":2' in message.body


def test_batches_form_once_from_the_buffer(node: Callable[[], Backends], clock: FakeClock) -> None:
    one, two = node(), node()
    endpoint_id = endpoint(one, batch={"max_events": 2, "max_wait_ms": 1000})
    for _ in range(3):
        assert one.webhook_outbox.relay(event()) == 1
    assert one.webhook_outbox.form_batches() == 1  # two full, one waits
    assert two.webhook_outbox.form_batches() == 0
    clock.advance(1.5)
    assert two.webhook_outbox.form_batches() == 1  # the last one waited long enough
    assert one.webhook_outbox.form_batches() == 0
    messages, _ = one.webhook_outbox.list_messages("t1", endpoint_id=endpoint_id)
    assert sorted(m["event_count"] for m in messages) == [1, 2]
    assert all(m["event_type"] == "batch" for m in messages)
    assert sum(len(m["payload"]["events"]) for m in messages) == 3


@pytest.mark.parametrize(
    ("event_type", "status"),
    [("job.failed", "failed"), ("job.succeeded", "succeeded"), ("job.progress", "running")],
)
def test_a_test_message_goes_to_its_endpoint_only(
    node: Callable[[], Backends], event_type: str, status: str
) -> None:
    one = node()
    endpoint_id = endpoint(one, url="https://hooks.example/Test-Path")
    msg_id = one.webhook_outbox.enqueue_test(endpoint_id, "t1", event_type)
    assert re.fullmatch(r"msg_[A-Za-z0-9_-]{24}", msg_id), msg_id  # as every message id
    message = node().webhook_outbox.get_message(msg_id, "t1", endpoint_id)
    assert message["status"] == "pending"
    payload = message["payload"]
    assert payload["type"] == event_type
    assert payload["data"]["example"] is True
    assert payload["data"]["job_id"] == "job_example" and payload["data"]["status"] == status
    (sent,) = claim(node().webhook_outbox)
    assert (sent.id, sent.url, sent.endpoint_id) == (
        msg_id, "https://hooks.example/Test-Path", endpoint_id
    )
    with pytest.raises(NotFound):
        one.webhook_outbox.enqueue_test(endpoint_id, "t2", event_type)


def test_a_deleted_job_takes_its_finished_messages_along(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one = node()
    endpoint(one)
    endpoint(one)
    done = event(job_id="jobD")
    assert one.webhook_outbox.relay(done) == 2
    delivered, retried = claim(one.webhook_outbox)
    record(one.webhook_outbox, delivered, OK, clock.now())
    assert record(one.webhook_outbox, retried, ERROR, clock.now(), retry_in=60.0) == "pending"
    deleted = JobEvent("evt-deleted-jobD", "job.deleted", {"id": "jobD", "tenant": "t1"}, 0.0)
    assert node().webhook_outbox.relay(deleted) == 1
    with pytest.raises(NotFound):
        one.webhook_outbox.get_message(delivered.id, "t1")
    # A message still to be delivered is not lost with the job: its retry still goes out.
    waiting = one.webhook_outbox.get_message(retried.id, "t1")
    assert waiting["status"] == "pending" and len(waiting["attempts"]) == 1
    clock.advance(60.0)
    (again,) = claim(node().webhook_outbox)
    assert again.id == retried.id and again.body == retried.body


# -- claiming ----------------------------------------------------------------------------------


def test_a_claim_leases_until_the_lease_runs_out(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one, two = node(), node()
    endpoint(one)
    one.webhook_outbox.relay(event())
    (held,) = claim(one.webhook_outbox, "s1")
    assert held.tries == 0 and held.trigger == "scheduled" and held.tenant == "t1"
    assert claim(two.webhook_outbox, "s2") == []
    clock.advance(LEASE_S - 1)
    assert claim(two.webhook_outbox, "s2") == []
    clock.advance(2)  # s1 crashed: its lease ran out
    (taken,) = claim(two.webhook_outbox, "s2")
    assert taken.id == held.id
    # The late sender's attempt is kept, but the message stays with the sender holding it.
    assert record(one.webhook_outbox, held, OK, clock.now(), sender="s1") == "pending"
    assert record(two.webhook_outbox, taken, OK, clock.now(), sender="s2") == "succeeded"
    assert len(one.webhook_outbox.get_message(held.id, "t1")["attempts"]) == 2


def test_a_late_success_ends_the_message_even_after_its_lease_ran_out(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one, two = node(), node()
    endpoint(one)
    one.webhook_outbox.relay(event())
    (held,) = claim(one.webhook_outbox, "s1")
    clock.advance(LEASE_S + 1)
    # Another sender looks while the lease is out, but is at its tenant cap.
    assert claim(two.webhook_outbox, "s2", busy_tenants={"t1": 1}, per_tenant=1) == []
    assert record(one.webhook_outbox, held, OK, clock.now(), sender="s1") == "succeeded"
    assert claim(two.webhook_outbox, "s2") == []
    assert two.webhook_outbox.get_message(held.id, "t1")["status"] == "succeeded"


def test_one_sender_keeps_to_its_caps(node: Callable[[], Backends]) -> None:
    one = node()
    a, b = endpoint(one), endpoint(one)
    for _ in range(3):
        one.webhook_outbox.relay(event())
    one.webhook_outbox.relay(event(tenant="t2", callback_url="https://client.example/cb"))
    got = claim(one.webhook_outbox, per_destination=2, busy={a: 1}, busy_tenants={"t1": 0})
    per_endpoint = {e: sum(m.endpoint_id == e for m in got) for e in (a, b)}
    assert per_endpoint == {a: 1, b: 2}
    assert [m.tenant for m in got if m.endpoint_id is None] == ["t2"]


def test_one_sender_keeps_to_its_tenant_cap(node: Callable[[], Backends]) -> None:
    one = node()
    endpoint(one)
    for _ in range(3):
        one.webhook_outbox.relay(event())
    one.webhook_outbox.relay(event(tenant="t2", callback_url="https://client.example/cb"))
    got = claim(one.webhook_outbox, busy_tenants={"t1": 1}, per_tenant=2)
    assert sorted(m.tenant for m in got) == ["t1", "t2"]


def test_a_claim_takes_at_most_its_limit_and_the_tenant_cap(
    node: Callable[[], Backends],
) -> None:
    one = node()
    endpoint(one)
    endpoint(one)
    for _ in range(3):
        one.webhook_outbox.relay(event())  # 6 messages of t1, on two endpoints
    assert len(claim(one.webhook_outbox, "s1", limit=2, per_destination=9, per_tenant=9)) == 2
    assert len(claim(one.webhook_outbox, "s2", per_tenant=3)) == 1  # 2 of t1 held already
    two = node()
    endpoint(two, owner="t3")
    for _ in range(3):
        two.webhook_outbox.relay(event(tenant="t3"))
    assert len(claim(two.webhook_outbox, "s3", per_tenant=2)) == 2


def test_caps_hold_across_senders_on_different_nodes(
    node: Callable[[], Backends],
) -> None:
    one, two = node(), node()
    a = endpoint(one)
    endpoint(one, owner="t2")
    for _ in range(4):
        one.webhook_outbox.relay(event())
    for _ in range(4):
        one.webhook_outbox.relay(event(tenant="t2"))
    first = claim(one.webhook_outbox, "s1", per_destination=2, per_tenant=3)
    second = claim(two.webhook_outbox, "s2", per_destination=2, per_tenant=3)
    held = first + second
    assert sum(m.endpoint_id == a for m in held) == 2  # not two per sender
    assert sum(m.tenant == "t2" for m in held) == 2
    assert second == []  # the first sender took every free place
    record(one.webhook_outbox, first[0], OK, 0.0, sender="s1")
    (freed,) = claim(two.webhook_outbox, "s2", per_destination=2, per_tenant=3)
    assert freed.endpoint_id == first[0].endpoint_id


def test_tenant_caps_hold_across_senders_on_different_nodes(
    node: Callable[[], Backends],
) -> None:
    one, two = node(), node()
    for _ in range(3):
        endpoint(one)
    for _ in range(2):
        one.webhook_outbox.relay(event())
    got = claim(one.webhook_outbox, "s1", limit=3, per_tenant=4)
    last = claim(two.webhook_outbox, "s2", per_tenant=4)
    assert len(got) == 3 and len(last) == 1  # the second sender takes the one place left
    assert len({m.id for m in got + last}) == 4


# -- attempts ----------------------------------------------------------------------------------


def test_attempts_succeed_retry_and_become_dead_letters(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one, two = node(), node()
    endpoint(one)
    one.webhook_outbox.relay(event())
    (message,) = claim(one.webhook_outbox)
    slow_error = Outcome(500, 1234.5678, "HTTP 500", success=False)
    assert record(one.webhook_outbox, message, slow_error, clock.now(), retry_in=60.0) == "pending"
    stored = two.webhook_outbox.get_message(message.id, "t1")
    assert stored["status"] == "pending" and stored["last_error"] == "HTTP 500"
    assert stored["attempts"][0]["status_code"] == 500
    assert stored["attempts"][0]["latency_ms"] == 1234.6
    assert stored["attempts"][0]["trigger"] == "scheduled"
    assert claim(two.webhook_outbox) == []  # not due yet
    clock.advance(61)
    (retry,) = claim(two.webhook_outbox, "s2")
    assert retry.id == message.id and retry.tries == 1
    assert record(two.webhook_outbox, retry, ERROR, clock.now(), sender="s2") == "failed"
    dead = one.webhook_outbox.get_message(message.id, "t1")
    assert dead["status"] == "failed" and dead["next_attempt_at"] is None
    assert len(dead["attempts"]) == 2
    assert claim(one.webhook_outbox) == []

    one.webhook_outbox.relay(event())
    (fine,) = claim(one.webhook_outbox)
    assert record(one.webhook_outbox, fine, OK, clock.now()) == "succeeded"
    delivered = two.webhook_outbox.get_message(fine.id, "t1")
    assert delivered["status"] == "succeeded" and delivered["last_error"] is None
    assert [a["status_code"] for a in delivered["attempts"]] == [200]


def test_a_gone_endpoint_is_disabled_and_its_messages_wait(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one, two = node(), node()
    endpoint_id = endpoint(one)
    for _ in range(2):
        one.webhook_outbox.relay(event())
    (first,) = claim(one.webhook_outbox, per_destination=1)
    assert record(one.webhook_outbox, first, GONE, clock.now()) == "failed"
    gone = two.webhook_endpoints.get_endpoint(endpoint_id, "t1")
    assert gone["disabled"] is True and "410" in gone["disabled_reason"]
    assert claim(two.webhook_outbox) == []  # the other message waits for the endpoint
    assert two.webhook_outbox.relay(event()) == 0  # and nothing new is queued
    enabled = one.webhook_endpoints.update_endpoint(endpoint_id, "t1", {"disabled": False})
    assert enabled["disabled"] is False and enabled["disabled_reason"] is None
    (waiting,) = claim(two.webhook_outbox)
    assert waiting.id != first.id


def test_an_endpoint_failing_too_long_is_disabled_once(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one, two = node(), node()
    endpoint_id = endpoint(one)
    one.webhook_outbox.relay(event())
    outboxes = itertools.cycle([(one.webhook_outbox, "s1"), (two.webhook_outbox, "s2")])
    for _ in range(3):  # failures through both nodes
        outbox, sender = next(outboxes)
        (message,) = claim(outbox, sender)
        assert record(outbox, message, ERROR, clock.now(), 10.0, sender) == "pending"
        failing = one.webhook_endpoints.get_endpoint(endpoint_id, "t1")
        assert failing["disabled"] is False and failing["failing_since"] is not None
        clock.advance(HOOKS.disable_after_s / 2 - 1)
    outbox, sender = next(outboxes)
    (message,) = claim(outbox, sender)
    version = one.webhook_endpoints.get_endpoint(endpoint_id, "t1")["etag"]
    record(outbox, message, ERROR, clock.now(), 10.0, sender)
    disabled = two.webhook_endpoints.get_endpoint(endpoint_id, "t1")
    assert disabled["disabled"] is True
    assert disabled["disabled_reason"].startswith("every delivery has failed since ")
    assert disabled["etag"] != version
    clock.advance(20)
    assert claim(one.webhook_outbox) == [] and claim(two.webhook_outbox, "s2") == []


def test_failing_exactly_the_limit_disables_and_enabling_again_starts_a_new_streak(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one, two = node(), node()
    endpoint_id = endpoint(one)
    one.webhook_outbox.relay(event())
    (message,) = claim(one.webhook_outbox)
    record(one.webhook_outbox, message, ERROR, clock.now(), retry_in=HOOKS.disable_after_s)
    clock.advance(HOOKS.disable_after_s)
    (message,) = claim(two.webhook_outbox, "s2")
    record(two.webhook_outbox, message, ERROR, clock.now(), 10.0, "s2")
    assert one.webhook_endpoints.get_endpoint(endpoint_id, "t1")["disabled"] is True
    enabled = two.webhook_endpoints.update_endpoint(endpoint_id, "t1", {"disabled": False})
    assert enabled["disabled"] is False and enabled["failing_since"] is None
    # A failure now starts a new streak: the old one does not disable it again at once.
    clock.advance(10)
    (message,) = claim(one.webhook_outbox)
    assert record(one.webhook_outbox, message, ERROR, clock.now(), 10.0) == "pending"
    again = two.webhook_endpoints.get_endpoint(endpoint_id, "t1")
    assert again["disabled"] is False and again["failing_since"] is not None


def test_a_success_clears_the_failure_streak(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one = node()
    endpoint_id = endpoint(one)
    one.webhook_outbox.relay(event())
    (message,) = claim(one.webhook_outbox)
    record(one.webhook_outbox, message, ERROR, clock.now(), retry_in=0.0)
    assert one.webhook_endpoints.get_endpoint(endpoint_id, "t1")["failing_since"] is not None
    (again,) = claim(one.webhook_outbox)
    record(one.webhook_outbox, again, OK, clock.now())
    assert node().webhook_endpoints.get_endpoint(endpoint_id, "t1")["failing_since"] is None


# -- dead letters, recovery, reading -------------------------------------------------------------


def test_resend_requeues_one_message_unless_it_is_in_flight(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one, two = node(), node()
    endpoint_id = endpoint(one)
    one.webhook_outbox.relay(event())
    (message,) = claim(one.webhook_outbox)
    with pytest.raises(Conflict):
        two.webhook_outbox.resend(message.id, "t1")
    clock.advance(LEASE_S)  # the lease's last instant: no other sender may claim it yet
    assert claim(two.webhook_outbox, "s2") == []
    with pytest.raises(Conflict):
        two.webhook_outbox.resend(message.id, "t1")
    clock.advance(-LEASE_S)
    record(one.webhook_outbox, message, ERROR, clock.now())  # a dead letter
    with pytest.raises(NotFound):
        two.webhook_outbox.resend(message.id, "t2")
    with pytest.raises(NotFound):
        two.webhook_outbox.resend(message.id, "t1", "ep_other")
    clock.advance(5)
    again = two.webhook_outbox.resend(message.id, "t1", endpoint_id)
    assert again["status"] == "pending" and len(again["attempts"]) == 1
    (resent,) = claim(one.webhook_outbox)
    assert resent.id == message.id and resent.trigger == "resend" and resent.tries == 0
    record(one.webhook_outbox, resent, OK, clock.now())
    assert [a["trigger"] for a in one.webhook_outbox.get_message(message.id, "t1")["attempts"]] == [
        "scheduled",
        "resend",
    ]


def test_recover_requeues_the_failed_messages_of_a_window(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one, two = node(), node()
    endpoint_id = endpoint(one)
    made_at = []
    for _ in range(3):
        made_at.append(clock.now())
        one.webhook_outbox.relay(event())
        clock.advance(10)
    for message in claim(one.webhook_outbox):
        record(one.webhook_outbox, message, ERROR, clock.now())
    with pytest.raises(NotFound):
        two.webhook_outbox.recover(endpoint_id, "t2", made_at[0], None)
    assert two.webhook_outbox.recover(endpoint_id, "t1", made_at[1], made_at[2]) == 1
    assert two.webhook_outbox.recover(endpoint_id, "t1", made_at[1], made_at[2]) == 0
    (recovered,) = claim(one.webhook_outbox)
    assert recovered.trigger == "recover"
    assert one.webhook_outbox.recover(endpoint_id, "t1", made_at[0], None) == 2


def test_messages_list_newest_first_with_filters_and_a_cursor(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one, two = node(), node()
    a, b = endpoint(one), endpoint(one, event_types=["job.failed"])
    endpoint(one, owner="t2")
    one.webhook_outbox.relay(event(job_id="jobA", callback_url="https://c.example/1"))
    clock.advance(1)
    one.webhook_outbox.relay(event("job.failed", job_id="jobB"))
    clock.advance(1)
    one.webhook_outbox.relay(event("job.succeeded", job_id="jobC"))
    one.webhook_outbox.relay(event("job.succeeded", tenant="t2"))
    (to_b,) = [m for m in claim(one.webhook_outbox) if m.endpoint_id == b]
    record(one.webhook_outbox, to_b, ERROR, clock.now())

    outbox = two.webhook_outbox
    everything, end = outbox.list_messages("t1", endpoint_id=None)
    assert end is None and len(everything) == 5
    assert [m["job_id"] for m in everything] == ["jobC", "jobB", "jobB", "jobA", "jobA"]
    created = [m["created_at"] for m in everything]  # RFC 3339, newest first
    assert created == sorted(created, reverse=True) and len(set(created)) == 3
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", c) for c in created)
    # a page that ends exactly at the last message has no next cursor
    assert outbox.list_messages("t1", endpoint_id=None, limit=5) == (everything, None)
    pages, cursor = [], None
    while True:
        page, cursor = outbox.list_messages("t1", endpoint_id=None, limit=2, cursor=cursor)
        pages.append([m["id"] for m in page])
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sum(pages, []) == [m["id"] for m in everything]

    assert [m["job_id"] for m in outbox.list_messages("t1", endpoint_id=a)[0]] == [
        "jobC", "jobB", "jobA"
    ]
    callbacks, _ = outbox.list_messages("t1", endpoint_id=None, callbacks_only=True)
    assert [m["url"] for m in callbacks] == ["https://c.example/1"]
    failed, _ = outbox.list_messages("t1", endpoint_id=None, status="failed")
    assert [m["id"] for m in failed] == [to_b.id]
    by_job, _ = outbox.list_messages("t1", endpoint_id=None, job_id="jobA")
    assert len(by_job) == 2 and {m["job_id"] for m in by_job} == {"jobA"}
    assert outbox.list_messages("t1", endpoint_id=a, status="failed") == ([], None)
    assert len(outbox.list_messages("t2", endpoint_id=None)[0]) == 1


def test_a_message_is_visible_to_its_owner_only(node: Callable[[], Backends]) -> None:
    one, two = node(), node()
    endpoint_id = endpoint(one)
    one.webhook_outbox.relay(event())
    (message,) = claim(one.webhook_outbox)
    assert two.webhook_outbox.get_message(message.id, "t1", endpoint_id)["id"] == message.id
    for owner, where in (("t2", None), ("t1", "ep_other"), ("t2", endpoint_id)):
        # the API's 404 detail is this text: it names the message and nothing of its owner's
        with pytest.raises(NotFound, match=f"^no webhook message '{message.id}'$"):
            two.webhook_outbox.get_message(message.id, owner, where)
    assert two.webhook_outbox.list_messages("t2", endpoint_id=endpoint_id) == ([], None)


def test_purge_forgets_finished_messages_past_the_retention(
    node: Callable[[], Backends], clock: FakeClock
) -> None:
    one, two = node(), node()
    endpoint(one)
    for _ in range(2):
        one.webhook_outbox.relay(event())
    delivered, waiting = claim(one.webhook_outbox)
    record(one.webhook_outbox, delivered, OK, clock.now())
    record(one.webhook_outbox, waiting, ERROR, clock.now(), retry_in=HOOKS.retention_s * 2)
    clock.advance(HOOKS.retention_s - 1)
    assert two.webhook_outbox.purge() == 0
    clock.advance(2)
    assert two.webhook_outbox.purge() == 1
    with pytest.raises(NotFound):
        one.webhook_outbox.get_message(delivered.id, "t1")
    assert one.webhook_outbox.get_message(waiting.id, "t1")["status"] == "pending"
    assert one.webhook_outbox.purge() == 0


def test_deleting_an_endpoint_removes_its_messages(node: Callable[[], Backends]) -> None:
    one, two = node(), node()
    endpoint_id = endpoint(one)
    kept = endpoint(one)
    one.webhook_outbox.relay(event())
    messages, _ = one.webhook_outbox.list_messages("t1", endpoint_id=endpoint_id)
    two.webhook_endpoints.delete_endpoint(endpoint_id, "t1")
    with pytest.raises(NotFound):
        one.webhook_outbox.get_message(messages[0]["id"], "t1")
    (left,) = claim(one.webhook_outbox)
    assert left.endpoint_id == kept

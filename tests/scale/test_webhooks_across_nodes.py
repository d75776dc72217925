"""Webhooks in Redis mode, shared by every node: all their keys in one Cluster slot, and end to
end, an endpoint made through one API node is served by the other while a separate worker
process runs the jobs; each message reaches a loopback receiver once, whichever of the three
processes relays and sends it, and no process keeps webhook state on its disk."""

from __future__ import annotations

import base64
import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conformancetools import FakeClock, distributed
from PIL import Image
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from imagetools import photo_like
from scaletools import RedisServer, keys_with_slots
from servertools import REPO_ROOT, ServiceProcess, guarded_env, write_guard
from service.backends import Backends
from service.jobs.interfaces import JobEvent
from service.redis.keys import key as key_of
from service.redis.webhook_script import TAG
from service.security.settings import SecuritySettings
from service.settings import Settings
from service.webhooks.interfaces import Outcome


@pytest.fixture(params=["redis", "cluster"])
def redis_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backends]:
    open_one = distributed(request.param, "local")
    backend = open_one(Settings(data_dir=tmp_path / "data"), FakeClock())
    yield backend
    backend.close()


def test_every_webhook_key_lives_in_one_slot(redis_backend: Backends) -> None:
    endpoints, outbox = redis_backend.webhook_endpoints, redis_backend.webhook_outbox
    plain, _ = endpoints.create_endpoint(
        "t1", {"url": "https://a.example", "event_types": ["*", "job.progress"]}
    )
    endpoints.create_endpoint(
        "t2", {"url": "https://b.example", "batch": {"max_events": 5, "max_wait_ms": 0}}
    )
    endpoints.rotate_secret(plain["id"], "t1")
    for n, tenant in enumerate(["t1", "t2", "t1"]):
        job = {"id": f"job{n}", "tenant": tenant, "status": "succeeded"}
        job["callback_url"] = "https://c.example"
        outbox.relay(JobEvent(f"e{n}", "job.succeeded", job, 0.0))
        outbox.relay(JobEvent(f"p{n}", "job.progress", {**job, "status": "running"}, 0.0))
    outbox.form_batches()
    failed = {"id": "job9", "tenant": "t2", "status": "failed"}
    outbox.relay(JobEvent("buffered", "job.failed", failed, 0.0))  # stays in the buffer
    claimed = outbox.claim_due("s1", 4, 30.0, per_destination=1)
    assert len(claimed) == 3  # one each: the endpoint, the callback URL, the batch
    outbox.record_attempt(claimed[0], "s1", Outcome(200, 1.0, None, True), 0.0)
    outbox.record_attempt(claimed[1], "s1", Outcome(500, 1.0, "HTTP 500", False), 0.0, 5.0)
    endpoints.update_endpoint(plain["id"], "t1", {"disabled": True})

    every_key = keys_with_slots(redis_backend)
    names = {name: slot for name, slot in every_key.items() if f"{{{TAG}}}" in name}
    kinds = {name.split(":")[2] for name in names}
    # The workload wrote every kind of key the outbox keeps (batches, leases, progress...).
    assert {"ep", "eps", "msg", "att", "due", "parked", "leases", "own", "byep", "byjob",
            "finished", "prog", "buf", "bufdata", "buffered", "relayed", "rotated"} <= kinds, kinds
    assert len(set(names.values())) == 1, names


@pytest.fixture(params=["redis", "cluster"])
def two_nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Backends]]:
    """Two opens of one Redis deployment on one (still) clock: no lease runs out."""
    open_one = distributed(request.param, "local")
    clock = FakeClock()
    nodes = [open_one(Settings(data_dir=tmp_path / "data"), clock) for _ in range(2)]
    yield nodes
    for backend in nodes:
        backend.close()


def test_concurrent_senders_on_two_nodes_share_no_message_and_keep_the_caps(
    two_nodes: list[Backends],
) -> None:
    one = two_nodes[0]
    endpoint_ids = [
        one.webhook_endpoints.create_endpoint("t1", {"url": f"https://{n}.example"})[0]["id"]
        for n in range(3)
    ]
    for n in range(20):
        job = {"id": f"job{n}", "tenant": "t1", "status": "succeeded"}
        assert one.webhook_outbox.relay(JobEvent(f"e{n}", "job.succeeded", job, 0.0)) == 3
    per_endpoint, per_tenant, total = 2, 5, 60
    lock = threading.Lock()
    in_flight: dict[str, int] = {}
    most: dict[str, int] = {}
    delivered: list[str] = []
    problems: list[str] = []

    def sender(backend: Backends, name: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if len(delivered) >= total:
                    return
            got = backend.webhook_outbox.claim_due(
                name, 3, 30.0, per_destination=per_endpoint, per_tenant=per_tenant
            )
            with lock:
                for message in got:
                    for counted in (str(message.endpoint_id), "tenant"):
                        in_flight[counted] = in_flight.get(counted, 0) + 1
                        most[counted] = max(most.get(counted, 0), in_flight[counted])
            time.sleep(0.001)  # the send
            for message in got:
                with lock:
                    in_flight[str(message.endpoint_id)] -= 1
                    in_flight["tenant"] -= 1
                    if message.id in delivered:
                        problems.append(f"{message.id} sent twice")
                    delivered.append(message.id)
                status = backend.webhook_outbox.record_attempt(
                    message, name, Outcome(200, 1.0, None, True), 0.0
                )
                if status != "succeeded":
                    problems.append(f"{message.id}: {status}")
        problems.append(f"{name} ran out of time")

    threads = [
        threading.Thread(target=sender, args=(two_nodes[n % 2], f"s{n}")) for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert problems == []
    assert sorted(delivered) == sorted(set(delivered)) and len(delivered) == total
    assert all(most[e] <= per_endpoint for e in endpoint_ids), most
    assert most["tenant"] <= per_tenant and most["tenant"] >= per_endpoint, most


def test_concurrent_failures_on_two_nodes_disable_an_endpoint_once(
    two_nodes: list[Backends],
) -> None:
    one, two = two_nodes
    made, _ = one.webhook_endpoints.create_endpoint("t1", {"url": "https://gone.example"})
    for n in range(12):
        job = {"id": f"job{n}", "tenant": "t1", "status": "succeeded"}
        one.webhook_outbox.relay(JobEvent(f"e{n}", "job.succeeded", job, 0.0))
    caps = {"per_destination": 12, "per_tenant": 12}
    held = [(one, m) for m in one.webhook_outbox.claim_due("s1", 6, 30.0, **caps)]
    held += [(two, m) for m in two.webhook_outbox.claim_due("s2", 6, 30.0, **caps)]
    assert len(held) == 12
    gone = Outcome(410, 1.0, "410 Gone", False, gone=True)
    start = threading.Barrier(len(held))

    def fail(backend: Backends, message: Any, sender: str) -> None:
        start.wait(10)
        backend.webhook_outbox.record_attempt(message, sender, gone, 0.0)

    threads = [
        threading.Thread(target=fail, args=(b, m, "s1" if b is one else "s2")) for b, m in held
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    after = two.webhook_endpoints.get_endpoint(made["id"], "t1")
    assert after["disabled"] is True
    assert after["etag"] == f'"{made["id"]}-v2"'  # disabled by exactly one of the twelve


def test_bodies_are_sealed_at_rest(tmp_path: Path) -> None:
    key = "k1:" + base64.b64encode(b"k" * 32).decode()
    settings = Settings(
        data_dir=tmp_path / "data", security=SecuritySettings(encryption_keys=key)
    )
    backend = distributed("redis", "local")(settings, FakeClock())
    try:
        made, _ = backend.webhook_endpoints.create_endpoint("t1", {"url": "https://a.example"})
        job = {"id": "job-secret-name", "tenant": "t1", "status": "succeeded"}
        assert backend.webhook_outbox.relay(JobEvent("e1", "job.succeeded", job, 0.0)) == 1
        (message,) = backend.webhook_outbox.claim_due("s1", 1, 30.0)
        assert "job-secret-name" in message.body
        stored = backend.jobs.redis.hget(  # type: ignore[attr-defined]
            key_of(TAG, "msg", message.id), "body"
        )
        assert "job-secret-name" not in stored and not stored.startswith("{")
        listed, _ = backend.webhook_outbox.list_messages("t1", endpoint_id=made["id"])
        assert listed[0]["payload"]["data"]["job_id"] == "job-secret-name"
    finally:
        backend.close()


# -- end to end ----------------------------------------------------------------------------------

class Receiver:
    """A loopback HTTP server that verifies each request with ``standardwebhooks`` and keeps
    what arrived."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.arrivals: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = False
                for secret in outer.secrets:
                    try:
                        Webhook(secret).verify(body, headers)
                        verified = True
                    except WebhookVerificationError:
                        continue
                with outer._lock:
                    outer.arrivals.append(
                        {"path": self.path, "id": headers.get("webhook-id"), "verified": verified,
                         "body": json.loads(body)}
                    )
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def got(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.arrivals)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(photo_like(48, 32, seed=seed)).save(out, "PNG")
    return out.getvalue()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.e2e
@pytest.mark.slow
def test_two_api_nodes_and_a_worker_share_endpoints_and_deliver_once(tmp_path: Path) -> None:
    guard = write_guard(tmp_path / "guard")
    store = RedisServer(tmp_path / "redis").start()
    receiver = Receiver()
    data = tmp_path / "data"  # one directory: local blobs shared by the processes of one host
    env = {
        "PALETTE_STORE": store.url,
        "PALETTE_URL_SIGNING_KEYS": "k1:" + "s" * 43,
        "PALETTE_WEBHOOK_CALLBACK_SECRET": "whsec_" + "c" * 32,
        "PALETTE_EGRESS_ALLOW_CIDRS": "127.0.0.0/8",  # the loopback receiver, nothing else
        "PALETTE_WEBHOOK_POLL_INTERVAL": "0.05",
        "PALETTE_WEBHOOK_TIMEOUT": "2",
        "PALETTE_LOG_LEVEL": "warning",
    }
    apis: list[ServiceProcess] = []
    worker: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(2):
            apis.append(ServiceProcess(data, guard, env, args=["--workers", "0"]).start())
        one, two = apis

        made = httpx.post(
            one.url + "/v1/webhook-endpoints",
            json={"url": receiver.url + "/hook", "event_types": ["job.succeeded"]},
            timeout=10,
        )
        assert made.status_code == 201, made.text
        endpoint = made.json()
        listed = httpx.get(two.url + "/v1/webhook-endpoints", timeout=10).json()["data"]
        assert [e["id"] for e in listed] == [endpoint["id"]]
        tenant_secret = httpx.get(two.url + "/v1/webhook-callback-secret", timeout=10).json()[
            "secret"
        ]
        receiver.secrets = [endpoint["secret"], tenant_secret]

        with open(tmp_path / "worker.log", "wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "service", "worker", "--data-dir", str(data),
                 "--threads", "1"],
                cwd=REPO_ROOT,
                env=guarded_env(guard, env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        jobs = []
        for seed in range(3):
            reply = httpx.post(
                two.url + "/v1/jobs",
                files={"file": (f"p{seed}.png", png(seed), "image/png")},
                data={"colors": "4", "callback_url": receiver.url + "/cb"},
                timeout=30,
            )
            assert reply.status_code == 202, reply.text
            jobs.append(reply.json()["id"])

        def finished() -> bool:
            states = [
                httpx.get(f"{one.url}/v1/jobs/{j}", timeout=10).json()["status"] for j in jobs
            ]
            assert all(s in {"queued", "running", "succeeded"} for s in states), states
            return states == ["succeeded"] * 3

        wait_until(finished, 90, "the worker process to run the jobs")

        messages = f"{one.url}/v1/webhook-endpoints/{endpoint['id']}/messages"

        def all_delivered() -> bool:
            done = {"status": "succeeded"}
            to_endpoint = httpx.get(messages, params=done, timeout=10).json()["data"]
            callbacks = httpx.get(
                two.url + "/v1/webhook-messages", params=done, timeout=10
            ).json()["data"]
            return len(to_endpoint) == 3 and len(callbacks) == 3

        wait_until(all_delivered, 60, "every message to be recorded as delivered")
        # Once recorded as delivered, no process holds a message any more: nothing more comes.
        recorded = httpx.get(messages, timeout=10).json()["data"]
        recorded += httpx.get(two.url + "/v1/webhook-messages", timeout=10).json()["data"]
        assert len(recorded) == 6 and all(len(m["attempts"]) == 1 for m in recorded), recorded

        got = receiver.got()
        assert all(r["verified"] for r in got), got
        ids = [r["id"] for r in got]
        assert sorted(ids) == sorted(m["id"] for m in recorded)  # each webhook-id exactly once
        for path in ("/hook", "/cb"):
            delivered = [r["body"]["data"]["job_id"] for r in got if r["path"] == path]
            assert sorted(delivered) == sorted(jobs), path
        assert not list(data.rglob("*.sqlite3*")), "a Redis node kept state on its disk"
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        for api in apis:
            api.stop()
        receiver.close()
        store.stop()

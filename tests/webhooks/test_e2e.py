"""Webhooks and signed URLs end to end: the real service process (uvicorn on a free loopback
port) and a real receiver on loopback that verifies every message with ``standardwebhooks``."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CALLBACK_SECRET = "whsec_" + "Q2FsbGJhY2tzIGFyZSBzaWduZWQgd2l0aCB0aGlzIQ=="

# Runs in the server process before the service starts: the test process's loopback-only rule
# (tests/conftest.py, imported: the child runs in the repository root, outside pytest's
# pythonpath), with every refused address written to a file the test checks afterwards.
BOOT = r"""
import os, socket, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
from conftest import is_loopback_address
log_path = os.environ["WEBHOOK_TESTS_NETWORK_LOG"]

def guard(real):
    def connect(self, address):
        if not is_loopback_address(address):
            with open(log_path, "a") as f:
                f.write(repr(address) + "\n")
            raise ConnectionRefusedError("outside loopback: %r" % (address,))
        return real(self, address)
    return connect

real_getaddrinfo = socket.getaddrinfo

def getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and not is_loopback_address((name, 0)):
        with open(log_path, "a") as f:
            f.write("DNS " + repr(name) + "\n")
        raise socket.gaierror(socket.EAI_NONAME, "outside loopback: %r" % (name,))
    return real_getaddrinfo(host, *args, **kwargs)

socket.getaddrinfo = getaddrinfo
socket.socket.connect = guard(socket.socket.connect)
socket.socket.connect_ex = guard(socket.socket.connect_ex)
from service.cli import main
sys.exit(main([os.environ.get("WEBHOOK_TESTS_COMMAND", "serve")]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def png(seed: int) -> bytes:
    pixels = (np.random.default_rng(seed).random((24, 24, 3)) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


class Service:
    """``palette serve`` in its own process; kill -9 and restart keep the data dir and port."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.network_log = data_dir.parent / f"{data_dir.name}-network.log"
        self.log = data_dir.parent / f"{data_dir.name}-server.log"
        self.env = {
            **os.environ,
            "PALETTE_HOST": "127.0.0.1",
            "PALETTE_PORT": str(self.port),
            # Download links are absolute only with a configured public address.
            "PALETTE_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}",
            "PALETTE_DATA_DIR": str(data_dir),
            "PALETTE_WORKERS": "1",
            "PALETTE_LOG_LEVEL": "warning",
            "PALETTE_EGRESS_ALLOW_CIDRS": "127.0.0.0/8",  # the loopback receiver, nothing else
            "PALETTE_WEBHOOK_POLL_INTERVAL": "0.05",
            "PALETTE_WEBHOOK_JITTER": "0",
            "PALETTE_WEBHOOK_TIMEOUT": "2",
            "PALETTE_WEBHOOK_CALLBACK_SECRET": CALLBACK_SECRET,
            "WEBHOOK_TESTS_NETWORK_LOG": str(self.network_log),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.headers: dict[str, str] = {}
        if "PALETTE_API_KEYS" in env:
            self.headers["x-api-key"] = env["PALETTE_API_KEYS"].split(",")[0].split(":")[-1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", BOOT],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("service did not become ready:\n" + self.log.read_text())

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def refused_connections(self) -> list[str]:
        return self.network_log.read_text().splitlines() if self.network_log.exists() else []

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def create_endpoint(self, **fields: Any) -> dict[str, Any]:
        r = self.request("POST", "/v1/webhook-endpoints", json=fields)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def submit(self, seed: int = 0, **fields: str) -> str:
        r = self.request(
            "POST", "/v1/jobs", files={"file": (f"img{seed}.png", png(seed))}, data=fields
        )
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    def settle(self, receiver: Any, timeout: float = 15) -> list[Any]:
        """An absence check with a bound: a sentinel message, queued now to an endpoint no job
        event reaches, has been delivered and recorded, so whatever was due before it has been
        sent too. Returns what the receiver got."""
        sentinel = self.create_endpoint(
            url=receiver.url + "?sentinel", event_types=["job.canceled"]
        )
        path = f"/v1/webhook-endpoints/{sentinel['id']}"
        r = self.request("POST", path + "/test", json={"event_type": "job.canceled"})
        assert r.status_code == 202, r.text
        done = path + f"/messages/{r.json()['id']}"
        wait_until(
            lambda: self.request("GET", done).json()["status"] == "succeeded", timeout, "sentinel"
        )
        return list(receiver.arrivals())  # the receiver does not count the sentinel

    def wait_job(self, job_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.request("GET", f"/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "canceled"):
                return dict(job)
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(name: str = "data", **env: str) -> Service:
        svc = Service(tmp_path / name, env)
        svc.start()
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.stop()
    for svc in started:
        assert svc.refused_connections() == [], "the service tried to leave loopback"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_job_events_reach_endpoint_and_callback_verified(service: Any, receiver: Any) -> None:
    svc = service()
    endpoint = svc.create_endpoint(url=receiver.url, event_types=["job.succeeded"])
    progress = svc.create_endpoint(url=receiver.url + "?via=progress", event_types=["job.progress"])
    # Callbacks are signed with the tenant's own secret, derived from the deployment's.
    tenant_secret = httpx.get(
        svc.base + "/v1/webhook-callback-secret", headers=svc.headers
    ).json()["secret"]
    assert tenant_secret.startswith("whsec_") and tenant_secret != CALLBACK_SECRET
    receiver.secrets = [endpoint["secret"], progress["secret"], tenant_secret]
    job_id = svc.submit(callback_url=receiver.url + "?via=callback")
    svc.wait_job(job_id)
    receiver.wait_for(3, timeout=15)
    got = svc.settle(receiver)
    assert all(r.verified for r in got), [r.error for r in got]
    by_path = {r.path: r for r in got}
    assert set(by_path) == {"/hook", "/hook?via=callback", "/hook?via=progress"}
    progress_events = [r.json() for r in got if r.path == "/hook?via=progress"]
    assert all(
        e["type"] == "job.progress" and e["data"]["job_id"] == job_id for e in progress_events
    )
    for r in (by_path["/hook"], by_path["/hook?via=callback"]):
        body = r.json()
        assert body["type"] == "job.succeeded" and body["data"]["job_id"] == job_id
        assert body["data"]["links"]["results"].endswith(f"/v1/jobs/{job_id}/results")
        assert len(r.body) < 20_000


def test_receiver_down_three_times_gets_the_fourth_same_id(service: Any, receiver: Any) -> None:
    svc = service(PALETTE_WEBHOOK_RETRY_SCHEDULE="0.3,0.3,0.3,0.3")
    endpoint = svc.create_endpoint(url=receiver.url)
    receiver.secrets = [endpoint["secret"]]
    receiver.reply = lambda n, r: (503, {}) if n < 3 else (200, {})
    svc.wait_job(svc.submit())
    got = receiver.wait_for(4, timeout=15)
    assert all(r.verified for r in got)
    assert len({r.webhook_id for r in got}) == 1
    messages = f"/v1/webhook-endpoints/{endpoint['id']}/messages"

    def delivered() -> bool:
        data = svc.request("GET", messages, params={"status": "succeeded"}).json()["data"]
        return len(data) == 1

    wait_until(delivered, 10, "the message to be marked delivered")
    [message] = svc.request("GET", messages).json()["data"]
    assert message["id"] == got[0].webhook_id
    assert [a["status_code"] for a in message["attempts"]] == [503, 503, 503, 200]


def test_silent_receiver_becomes_a_dead_letter_and_one_call_resends(
    service: Any, receiver: Any
) -> None:
    svc = service(PALETTE_WEBHOOK_RETRY_SCHEDULE="0.2,0.2", PALETTE_WEBHOOK_TIMEOUT="1")
    endpoint = svc.create_endpoint(url=receiver.url)
    receiver.secrets = [endpoint["secret"]]
    state = {"up": False}

    def reply(n: int, r: Any) -> tuple[int, dict[str, str]]:
        if not state["up"]:
            time.sleep(1.5)  # never answers within the service's timeout
        return 200, {}

    receiver.reply = reply
    svc.wait_job(svc.submit())
    failed_path = f"/v1/webhook-endpoints/{endpoint['id']}/messages"

    def dead() -> list[dict[str, Any]]:
        return list(svc.request("GET", failed_path, params={"status": "failed"}).json()["data"])

    wait_until(lambda: len(dead()) == 1, 20, "the dead letter")
    [letter] = dead()
    assert len(letter["attempts"]) == 3
    for attempt in letter["attempts"]:
        assert attempt["status_code"] is None and attempt["error"] == "timed out after 1 s"
        assert attempt["at"] and attempt["latency_ms"] >= 900
    state["up"] = True
    time.sleep(1.6)  # let the receiver's stalled handlers finish
    before = len(receiver.received)
    r = svc.request("POST", f"{failed_path}/{letter['id']}/resend")
    assert r.status_code == 202
    got = receiver.wait_for(before + 1, timeout=10)
    assert got[-1].webhook_id == letter["id"] and got[-1].verified


def test_kill9_mid_retry_and_restart_still_delivers(service: Any, receiver: Any) -> None:
    svc = service(PALETTE_WEBHOOK_RETRY_SCHEDULE="4")
    endpoint = svc.create_endpoint(url=receiver.url)
    receiver.secrets = [endpoint["secret"]]
    receiver.reply = lambda n, r: (500, {}) if n == 0 else (200, {})
    svc.wait_job(svc.submit())
    [first] = receiver.wait_for(1, timeout=15)
    svc.kill9()  # the retry is due in ~4 s and lives only in the database now
    assert len(receiver.arrivals()) == 1
    svc.start()
    got = receiver.wait_for(2, timeout=20)
    assert got[1].webhook_id == first.webhook_id and got[1].verified
    assert got[1].at - first.at >= 3.5  # the schedule held across the restart


def test_batching_delivers_100_events_in_at_most_3_callbacks(service: Any, receiver: Any) -> None:
    svc = service(PALETTE_WORKERS="2")
    endpoint = svc.create_endpoint(
        url=receiver.url,
        event_types=["job.succeeded"],
        batch={"max_events": 50, "max_wait_ms": 60000},
    )
    receiver.secrets = [endpoint["secret"]]
    jobs = [svc.submit(seed) for seed in range(100)]
    for job_id in jobs:
        svc.wait_job(job_id, timeout=60)
    got = receiver.wait_for(2, timeout=20)
    delivered = svc.settle(receiver)
    assert len(delivered) <= 3
    assert all(r.verified for r in delivered)
    events = [e for r in delivered for e in r.json()["events"]]
    assert sorted(e["data"]["job_id"] for e in events) == sorted(jobs)
    assert all(e["type"] == "job.succeeded" for e in events)
    assert max(len(r.json()["events"]) for r in got) == 50


def test_private_destinations_are_refused_by_the_service(service: Any) -> None:
    svc = service()
    for url in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook"):
        r = svc.request("POST", "/v1/webhook-endpoints", json={"url": url})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "url_not_allowed"
        r = svc.request(
            "POST", "/v1/jobs", files={"file": ("a.png", png(1))}, data={"callback_url": url}
        )
        assert r.status_code == 422 and r.json()["code"] == "url_not_allowed", r.text


def test_signed_download_urls(service: Any) -> None:
    svc = service(PALETTE_API_KEYS="acme:key-acme-0123456789")
    job_id = svc.submit(3)
    other_id = svc.submit(4)
    svc.wait_job(job_id)
    svc.wait_job(other_id)
    results = svc.request("GET", f"/v1/jobs/{job_id}/results")
    assert results.status_code == 200
    r = svc.request("POST", f"/v1/jobs/{job_id}/download-url", json={"expires_in": 600})
    assert r.status_code == 200, r.text
    url = r.json()["url"]
    assert 590 <= r.json()["expires_in"] <= 600
    assert (
        svc.request(
            "POST", f"/v1/jobs/{job_id}/download-url", headers={"x-api-key": "nope"}
        ).status_code
        == 401
    )

    plain = httpx.get(url, timeout=10)  # no API key: the signature is the credential
    assert plain.status_code == 200, plain.text
    assert plain.headers["etag"] == results.headers["etag"] and not plain.headers[
        "etag"
    ].startswith("W/")
    assert plain.content == results.content
    assert plain.headers["content-disposition"] == f'attachment; filename="{job_id}-results.json"'
    ranged = httpx.get(url, headers={"range": "bytes=0-9"}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == results.content[:10]
    assert (
        httpx.get(url, headers={"if-none-match": plain.headers["etag"]}, timeout=10).status_code
        == 304
    )

    def code(u: str) -> tuple[int, str]:
        resp = httpx.get(u, timeout=10)
        return resp.status_code, resp.json().get("code", "")

    sig = url.rsplit("sig=", 1)[1]
    tampered_sig = url[: -len(sig)] + ("A" if sig[0] != "A" else "B") + sig[1:]
    assert code(tampered_sig) == (403, "signature_invalid")
    assert code(url.replace("disposition=attachment", "disposition=inline")) == (
        403,
        "signature_invalid",
    )
    assert code(url.replace(job_id, other_id)) == (403, "signature_invalid")
    assert code(url + "&extra=1") == (403, "signature_invalid")

    short = svc.request("POST", f"/v1/jobs/{job_id}/download-url", json={"expires_in": 1}).json()
    time.sleep(2.1)
    assert code(short["url"]) == (403, "url_expired")
    bad = svc.request("POST", f"/v1/jobs/{job_id}/download-url", json={"expires_in": 604801})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_download_request"


def test_expiry_cleanup_removes_what_is_no_longer_reachable(service: Any, receiver: Any) -> None:
    svc = service(
        PALETTE_RETENTION_SECONDS="3",
        PALETTE_SWEEP_INTERVAL_SECONDS="0.5",
        PALETTE_WEBHOOK_HOUSEKEEPING_INTERVAL="0.5",
    )
    endpoint = svc.create_endpoint(url=receiver.url)
    receiver.secrets = [endpoint["secret"]]
    job_id = svc.submit(5)
    svc.wait_job(job_id)
    results = svc.request("GET", f"/v1/jobs/{job_id}/results")
    assert results.status_code == 200 and results.json()["count"] == 1
    receiver.wait_for(1, timeout=10)
    link = svc.request("POST", f"/v1/jobs/{job_id}/download-url", json={"expires_in": 3600}).json()
    assert link["expires_in"] <= 3  # a link never outlives the data it points to
    assert httpx.get(link["url"], timeout=10).status_code == 200
    messages = f"/v1/webhook-endpoints/{endpoint['id']}/messages"
    wait_until(lambda: len(svc.request("GET", messages).json()["data"]) == 1, 10, "the message")

    def gone() -> bool:
        return (
            svc.request("GET", f"/v1/jobs/{job_id}").status_code == 404
            and svc.request("GET", messages).json()["data"] == []
        )

    wait_until(gone, 15, "the job and its messages to expire")
    assert svc.request("GET", f"/v1/jobs/{job_id}/results").status_code == 404
    assert httpx.get(link["url"], timeout=10).status_code == 403
    assert json.loads(httpx.get(link["url"], timeout=10).content)["code"] == "url_expired"


def test_a_worker_process_emits_the_events_of_the_jobs_it_runs(
    tmp_path: Path, receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job run by a separate ``palette worker`` process reaches endpoints and its callback."""
    from starlette.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    data_dir = tmp_path / "data"
    network_log = tmp_path / "worker-network.log"
    monkeypatch.setenv("PALETTE_EGRESS_ALLOW_CIDRS", "127.0.0.0/8")
    monkeypatch.setenv("PALETTE_WEBHOOK_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("PALETTE_WEBHOOK_CALLBACK_SECRET", CALLBACK_SECRET)
    api = create_app(Settings.from_env(data_dir=data_dir), run_workers=False)  # no workers here
    with TestClient(api) as c:
        endpoint = c.post(
            "/v1/webhook-endpoints", json={"url": receiver.url, "event_types": ["job.succeeded"]}
        )
        assert endpoint.status_code == 201, endpoint.text
        receiver.secrets = [
            endpoint.json()["secret"],
            c.get("/v1/webhook-callback-secret").json()["secret"],
        ]
        r = c.post(
            "/v1/jobs",
            files={"file": ("a.png", png(1))},
            data={"callback_url": receiver.url + "?via=callback"},
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        env = {
            **os.environ,
            "PALETTE_DATA_DIR": str(data_dir),
            "PALETTE_WORKERS": "1",
            "PALETTE_LOG_LEVEL": "warning",
            "WEBHOOK_TESTS_NETWORK_LOG": str(network_log),
            "WEBHOOK_TESTS_COMMAND": "worker",
        }
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-c", BOOT], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            wait_until(
                lambda: c.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded",
                60,
                "the worker process to run the job",
            )
            got = receiver.wait_for(2, timeout=15)
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(30)
    assert code == 0, log.read_text()
    assert all(r.verified for r in got), [r.error for r in got]
    assert sorted(r.path for r in got) == ["/hook", "/hook?via=callback"]
    assert all(r.json()["type"] == "job.succeeded" for r in got)
    assert all(r.json()["data"]["job_id"] == job_id for r in got)
    assert not network_log.exists() or network_log.read_text() == ""

"""The whole distributed topology as processes on loopback: Redis (AOF on), an S3 server
(SeaweedFS), two API nodes (``serve --workers 0``) and worker processes
(``worker --threads 1``). While 20 jobs run, one worker is killed (-9) holding a chunk, Redis
is restarted, the other worker drains on SIGTERM and new workers start. Every job must end
``succeeded`` with each image's result exactly once, and retention must leave no blob behind."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from PIL import Image

from imagetools import photo_like
from scaletools import RedisServer, SeaweedS3
from servertools import REPO_ROOT, ServiceProcess, guarded_env, write_guard

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ZIP_ENTRIES = 12


def jpeg(seed: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(photo_like(96, 64, seed=seed)).save(out, "JPEG", quality=85)
    return out.getvalue()


def archive(seed: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for n in range(ZIP_ENTRIES):
            zf.writestr(f"dir/img{n:02d}.jpg", jpeg(seed * 100 + n))
    return out.getvalue()


class Worker:
    def __init__(self, data_dir: Path, guard: Path, env: dict[str, str]) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / "worker.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service", "worker", "--data-dir", str(data_dir),
                 "--threads", "1"],
                cwd=REPO_ROOT,
                env=guarded_env(guard, env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(30)


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[dict[str, object]]:
    guard = write_guard(tmp_path / "guard")
    store = RedisServer(tmp_path / "redis", aof=True).start()
    s3 = SeaweedS3(tmp_path / "s3").start()
    env = {
        **s3.environ(),
        "PALETTE_STORE": store.url,
        "PALETTE_BLOBS": f"s3://{s3.bucket}/e2e",
        "PALETTE_URL_SIGNING_KEYS": "k1:" + "s" * 43,
        "PALETTE_WEBHOOK_CALLBACK_SECRET": "whsec_" + "c" * 32,
        "PALETTE_CHUNK_IMAGES": "4",
        "PALETTE_LEASE_SECONDS": "2",
        "PALETTE_RETENTION_SECONDS": "20",
        "PALETTE_SWEEP_INTERVAL_SECONDS": "1",
        "PALETTE_LOG_LEVEL": "warning",
    }
    apis = [
        ServiceProcess(tmp_path / f"api{n}", guard, env, args=["--workers", "0"]).start()
        for n in range(2)
    ]
    workers: list[Worker] = []
    state: dict[str, object] = {
        "apis": apis, "workers": workers, "store": store, "s3": s3, "env": env, "guard": guard,
        "tmp": tmp_path,
    }
    try:
        yield state
    finally:
        for w in workers:
            w.stop(signal.SIGKILL)
        for api in apis:
            api.stop()
        store.stop()
        s3.stop()


def test_jobs_survive_kills_restarts_and_drains(topology: dict[str, object]) -> None:
    apis: list[ServiceProcess] = topology["apis"]  # type: ignore[assignment]
    workers: list[Worker] = topology["workers"]  # type: ignore[assignment]
    store: RedisServer = topology["store"]  # type: ignore[assignment]
    s3: SeaweedS3 = topology["s3"]  # type: ignore[assignment]
    env: dict[str, str] = topology["env"]  # type: ignore[assignment]
    guard: Path = topology["guard"]  # type: ignore[assignment]
    tmp: Path = topology["tmp"]  # type: ignore[assignment]

    def start_worker() -> Worker:
        worker = Worker(tmp / f"worker{len(workers)}", guard, env)
        workers.append(worker)
        return worker

    # 20 jobs through both API nodes: single images, and ZIPs split into 3 chunks each.
    expected: dict[str, list[str]] = {}
    for n in range(20):
        api = apis[n % 2]
        if n % 2:
            files = [("file", (f"z{n}.zip", archive(n), "application/zip"))]
            names = [f"dir/img{i:02d}.jpg" for i in range(ZIP_ENTRIES)]
        else:
            files = [("file", (f"p{n}.jpg", jpeg(n), "image/jpeg"))]
            names = [f"p{n}.jpg"]
        reply = httpx.post(api.url + "/v1/jobs", files=files, data={"colors": "4"}, timeout=30)
        assert reply.status_code == 202, reply.text
        expected[reply.json()["id"]] = names

    first, second = start_worker(), start_worker()
    client = redis.Redis(port=store.port, decode_responses=True)

    def held_by(pid: int) -> bool:
        for name in client.scan_iter("pe:*:task:*"):
            if f":{pid}:" in (client.hget(name, "owner") or "") and client.hget(name, "state") == "running":
                return True
        return False

    deadline = time.monotonic() + 60
    while not held_by(first.proc.pid):
        assert time.monotonic() < deadline, "the first worker never held a chunk"
        time.sleep(0.02)
    first.stop(signal.SIGKILL)  # mid-chunk: its lease must expire and the chunk run again
    client.close()

    time.sleep(1.0)
    store.stop()  # SIGTERM: Redis writes its AOF and exits; everyone sees connection errors
    time.sleep(1.0)
    store.start()
    time.sleep(2.0)
    assert second.stop(signal.SIGTERM) == 0  # drains: hands unfinished chunks back
    start_worker()
    start_worker()

    results: dict[str, list[str]] = {}
    deadline = time.monotonic() + 240
    while len(results) < len(expected):
        assert time.monotonic() < deadline, f"unfinished: {set(expected) - set(results)}"
        for job_id in set(expected) - set(results):
            api = apis[len(results) % 2]
            try:
                job = httpx.get(f"{api.url}/v1/jobs/{job_id}", timeout=10).json()
            except httpx.TransportError:
                continue
            assert job["status"] in {"queued", "running", "succeeded"}, job
            if job["status"] == "succeeded":
                body = httpx.get(f"{api.url}/v1/jobs/{job_id}/results", timeout=30).json()
                assert all(item["status"] == "succeeded" for item in body["items"]), body
                results[job_id] = [item["name"] for item in body["items"]]
        time.sleep(0.2)
    assert results == expected  # every image exactly once, in input order

    # Retention (20 s here) removes the records and every upload and result from S3.
    bucket = s3.client()
    deadline = time.monotonic() + 60
    while True:
        left = bucket.list_objects_v2(Bucket=s3.bucket, Prefix="e2e/").get("KeyCount", 0)  # type: ignore[attr-defined]
        if left == 0:
            break
        assert time.monotonic() < deadline, f"{left} blobs left after retention"
        time.sleep(1.0)
    assert httpx.get(f"{apis[0].url}/v1/jobs/{next(iter(expected))}", timeout=10).status_code == 404

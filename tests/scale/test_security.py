"""Issue 13's security layer in the distributed mode, as processes on loopback: two API nodes
(``serve --workers 0``) and a worker on one Redis and one S3 bucket, with encryption at rest on.
A key minted by the CLI authenticates on both nodes; one client's rate limit is one budget
across the nodes; a key revoked through one node is refused by the other once its cache entry
(10 s) runs out; the audit log is one chain that ``palette audit verify`` finds intact; uploads
and results lie encrypted in the bucket; a ZIP's directory is refused at submit."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from imagetools import photo_like
from scaletools import RedisServer, SeaweedS3
from servertools import REPO_ROOT, ServiceProcess, guarded_env, write_guard

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def jpeg(seed: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(photo_like(64, 48, seed=seed)).save(out, "JPEG", quality=85)
    return out.getvalue()


def archive(entries: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for n in range(entries):
            zf.writestr(f"img{n:02d}.jpg", jpeg(n))
    return out.getvalue()


class Deployment:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.guard = write_guard(tmp / "guard")
        self.store = RedisServer(tmp / "redis").start()
        self.s3 = SeaweedS3(tmp / "s3").start()
        kek = base64.b64encode(b"k" * 32).decode()
        self.env = {
            **self.s3.environ(),
            "PALETTE_STORE": self.store.url,
            "PALETTE_BLOBS": f"s3://{self.s3.bucket}/sec",
            "PALETTE_URL_SIGNING_KEYS": "k1:" + "s" * 43,
            "PALETTE_WEBHOOK_CALLBACK_SECRET": "whsec_" + "c" * 32,
            "PALETTE_ENCRYPTION_KEYS": f"kek1:{kek}",
            "PALETTE_RATE_LIMITS": "8/minute",
            "PALETTE_CHUNK_IMAGES": "2",
            "PALETTE_LOG_LEVEL": "warning",
        }
        self.apis: list[ServiceProcess] = []
        self.worker: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service", *args, "--data-dir", str(self.tmp / "cli")],
            cwd=REPO_ROOT,
            env=guarded_env(self.guard, self.env),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self) -> Deployment:
        for n in range(2):
            self.apis.append(
                ServiceProcess(self.tmp / f"api{n}", self.guard, self.env, args=["--workers", "0"])
                .start()
            )
        (self.tmp / "worker").mkdir()
        with open(self.tmp / "worker.log", "wb") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "service", "worker", "--data-dir", str(self.tmp / "worker"),
                 "--threads", "1"],
                cwd=REPO_ROOT,
                env=guarded_env(self.guard, self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker.wait(30)
        for api in self.apis:
            api.stop()
        self.store.stop()
        self.s3.stop()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    made = Deployment(tmp_path)
    try:
        yield made.start()
    finally:
        made.stop()


def test_keys_limits_audit_and_encryption_hold_across_nodes(deployment: Deployment) -> None:
    one, two = deployment.apis
    minted = deployment.cli("keys", "create", "--tenant", "acme", "--role", "admin")
    assert minted.returncode == 0, minted.stderr
    admin = {"Authorization": f"Bearer {minted.stdout.strip()}"}

    # A key exists now: both nodes stop being open (they re-check every 2 s).
    deadline = time.monotonic() + 10
    while httpx.get(two.url + "/v1/jobs", timeout=10).status_code != 401:
        assert time.monotonic() < deadline, "node two stayed open after a key was minted"
        time.sleep(0.3)
    assert httpx.get(one.url + "/v1/jobs", timeout=10).status_code == 401

    # A member key made through node one's API works on node two.
    made = httpx.post(
        one.url + "/v1/api-keys", json={"role": "member", "name": "ci"}, headers=admin, timeout=10
    )
    assert made.status_code == 201, made.text
    member = {"Authorization": f"Bearer {made.json()['key']}"}
    zipped = archive(5)
    submitted = httpx.post(
        two.url + "/v1/jobs",
        files=[("file", ("a.zip", zipped, "application/zip"))],
        data={"colors": "4"},
        headers=member,
        timeout=30,
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    deadline = time.monotonic() + 60
    while True:
        job = httpx.get(f"{one.url}/v1/jobs/{job_id}", headers=member, timeout=10).json()
        if job["status"] == "succeeded":
            break
        assert job["status"] in {"queued", "running"}, job
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    results = httpx.get(f"{two.url}/v1/jobs/{job_id}/results", headers=member, timeout=30).json()
    assert [item["name"] for item in results["items"]] == [f"img{n:02d}.jpg" for n in range(5)]
    assert all(item["status"] == "succeeded" for item in results["items"])

    # The bucket holds ciphertext only (the upload is gone once the job is done; the results
    # document stays): no stored object is a ZIP or a JSON document.
    bucket: Any = deployment.s3.client()
    listed = bucket.list_objects_v2(Bucket=deployment.s3.bucket, Prefix="sec/")
    keys = [entry["Key"] for entry in listed.get("Contents", [])]
    assert any(k.startswith("sec/results/") for k in keys), keys
    for name in keys:
        body = bucket.get_object(Bucket=deployment.s3.bucket, Key=name)["Body"].read()
        assert not body.startswith(b"PK") and b'"items"' not in body, name

    # A ZIP whose end record does not put the directory where it is: refused at submit.
    broken = bytearray(zipped)
    end = zipped.rindex(b"PK\x05\x06")
    offset = int.from_bytes(zipped[end + 16 : end + 20], "little")
    broken[end + 16 : end + 20] = (offset - 1).to_bytes(4, "little")
    refused = httpx.post(
        one.url + "/v1/jobs",
        files=[("file", ("b.zip", bytes(broken), "application/zip"))],
        headers=member,
        timeout=30,
    )
    assert refused.status_code == 422 and refused.json()["code"] == "archive_corrupt", refused.text

    # The member key, revoked through node one, is refused by node two within its cache time.
    key_id = made.json()["id"]
    gone = httpx.delete(f"{one.url}/v1/api-keys/{key_id}", headers=admin, timeout=10)
    assert gone.status_code == 204, gone.text
    assert httpx.get(one.url + "/v1/jobs", headers=member, timeout=10).status_code == 401
    revoked_at = time.monotonic()
    while httpx.get(two.url + "/v1/jobs", headers=member, timeout=10).status_code != 401:
        assert time.monotonic() - revoked_at < 15, "node two kept accepting a revoked key"
        time.sleep(0.5)

    # One budget for one client on both nodes (8/minute, counted in Redis).
    answers = [
        httpx.get((one if n % 2 else two).url + "/v1/jobs", headers=admin, timeout=10).status_code
        for n in range(12)
    ]
    assert 429 in answers and answers.index(429) < 9, answers

    # Every node appended to one chain; the CLI checks it.
    checked = deployment.cli("audit", "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "audit log intact" in checked.stdout
    count = int(checked.stdout.split(":")[1].split()[0])
    assert count >= 4  # at least the key creation, the submit, the revocation, a refusal

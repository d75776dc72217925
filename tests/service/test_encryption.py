"""Encryption at rest: the chunked AES-256-GCM format, the encrypting blob store, and a server
with it on whose data directory holds no readable upload, result or webhook body."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidTag
from starlette.testclient import TestClient

from service.app import create_app
from service.crypto.blobs import EncryptedBlobStore
from service.crypto.keyring import KeyRing, UnknownKey
from service.crypto.stream import CHUNK, DecryptingReader, EncryptingWriter, rewrap
from service.jobs.blobs import LocalBlobStore
from service.security.settings import SecuritySettings
from service.settings import Settings


def kek(kid: str) -> str:
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"


def encrypt(ring: KeyRing, data: bytes, pieces: int = 7) -> bytes:
    out = io.BytesIO()
    writer = EncryptingWriter(ring, out)
    step = max(1, len(data) // pieces)
    for at in range(0, len(data), step):
        writer.write(data[at : at + step])
    writer.close()
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7])
def test_the_stream_format_round_trips_and_reads_any_range(size: int) -> None:
    ring = KeyRing(SecuritySettings(encryption_keys=kek("k1")).encryption_ring)
    data = os.urandom(size)
    sealed = encrypt(ring, data)
    # A run of 16 or more random bytes shows up in random ciphertext by chance with negligible
    # odds; one byte would show up about a third of the time, so short inputs are not checked.
    assert size < 16 or data[:64] not in sealed
    reader = DecryptingReader(ring, io.BytesIO(sealed))
    assert reader.read() == data
    for start in (0, 1, CHUNK - 3, CHUNK, size // 2, max(0, size - 2)):
        reader.seek(start)
        assert reader.read(CHUNK + 10) == data[start : start + CHUNK + 10]
    assert reader.seek(0, os.SEEK_END) == size


def test_tampering_truncation_and_unknown_keys_are_refused() -> None:
    ring = KeyRing(SecuritySettings(encryption_keys=kek("k1")).encryption_ring)
    data = os.urandom(2 * CHUNK + 100)
    sealed = encrypt(ring, data)
    flipped = bytearray(sealed)
    flipped[200] ^= 1
    with pytest.raises(InvalidTag):
        DecryptingReader(ring, io.BytesIO(bytes(flipped))).read()
    # Cut after the second chunk: the new last chunk was not sealed as the last one.
    cut = sealed[: 128 + 2 * (CHUNK + 16)]
    with pytest.raises(InvalidTag):
        DecryptingReader(ring, io.BytesIO(cut)).read()
    other = KeyRing(SecuritySettings(encryption_keys=kek("k2")).encryption_ring)
    with pytest.raises(UnknownKey):
        DecryptingReader(other, io.BytesIO(sealed))


def test_rewrap_changes_only_the_header_and_keeps_the_data_readable() -> None:
    old, new = kek("old"), kek("new")
    before = KeyRing(SecuritySettings(encryption_keys=old).encryption_ring)
    after = KeyRing(SecuritySettings(encryption_keys=f"{new},{old}").encryption_ring)
    data = os.urandom(CHUNK * 2)
    sealed = encrypt(before, data)
    chunks = rewrap(after, io.BytesIO(sealed))
    assert chunks is not None
    moved = b"".join(chunks)
    assert moved[128:] == sealed[128:] and moved[:128] != sealed[:128]
    only_new = KeyRing(SecuritySettings(encryption_keys=new).encryption_ring)
    assert DecryptingReader(only_new, io.BytesIO(moved)).read() == data
    assert rewrap(after, io.BytesIO(moved)) is None  # already under the current key


def test_the_encrypting_store_reports_plaintext_sizes_digests_and_ranges(tmp_path: Path) -> None:
    ring = KeyRing(SecuritySettings(encryption_keys=kek("k1")).encryption_ring)
    store = EncryptedBlobStore(LocalBlobStore(tmp_path), ring)
    data = os.urandom(CHUNK * 3 + 5)
    info = store.put("results/x.json", [data[:1000], data[1000:]])
    import hashlib

    assert info.size == len(data) and info.sha256 == hashlib.sha256(data).hexdigest()
    assert store.size("results/x.json") == len(data)
    assert b"".join(store.read_range("results/x.json", CHUNK - 2, CHUNK + 2)) == data[
        CHUNK - 2 : CHUNK + 3
    ]
    with store.as_file("results/x.json") as f:
        assert not isinstance(f, str) and f.read() == data
    assert data[:256] not in (tmp_path / "results" / "x.json").read_bytes()


def every_file_under(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_uploads_waiting_for_a_worker_are_encrypted(tmp_path: Path, h: Any) -> None:
    settings = Settings.from_env({"PALETTE_ENCRYPTION_KEYS": kek("k1")}, data_dir=tmp_path)
    image = h.make_jpeg(11, size=(300, 200))
    with TestClient(create_app(settings, run_workers=False)) as c:
        r = h.submit(c, [("a.jpg", image), ("b.zip", h.make_zip({"c.jpg": image}))])
        assert r.status_code == 202, r.text
        stored = every_file_under(tmp_path)
        assert len(list((tmp_path / "blobs" / "uploads").rglob("*"))) >= 2
        for at in range(0, len(image) - 64, 512):
            assert image[at : at + 64] not in stored


@pytest.mark.e2e
def test_with_encryption_on_nothing_in_the_data_dir_is_readable(
    server_factory: Any, h: Any, tmp_path: Path
) -> None:
    keys = kek("k1")
    server = server_factory(
        {"PALETTE_ENCRYPTION_KEYS": keys, "PALETTE_EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}
    )
    image = h.make_jpeg(12, size=(400, 300))
    with httpx.Client(base_url=server.url, timeout=30) as c:
        endpoint = c.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"})
        assert endpoint.status_code == 201
        archive = h.make_zip({"inner.jpg": h.make_jpeg(13)})
        job = h.wait_job(c, h.submit(c, [("a.jpg", image), ("z.zip", archive)]).headers["location"])
        results = c.get(f"/v1/jobs/{job['id']}/results")
        ranged = c.get(f"/v1/jobs/{job['id']}/results", headers={"range": "bytes=5-24"})
        sync_answer = c.post("/v1/palette", content=h.make_png(14))
        sync = sync_answer.json()
        # The color index would keep palette colors in plain form: search is off.
        found = c.get("/v1/search", params={"color": sync["colors"][0]["hex"]})
        messages = h.wait_for(
            lambda: c.get(f"/v1/webhook-endpoints/{endpoint.json()['id']}/messages").json()
            if c.get(f"/v1/webhook-endpoints/{endpoint.json()['id']}/messages").json()["data"]
            else None
        )
    assert job["status"] == "succeeded" and job["progress"]["done"] == 2
    h.problem(found, 501, "search_unavailable")
    assert ranged.status_code == 206 and ranged.content == results.content[5:25]
    assert messages["data"], "the endpoint has a pending message"
    server.stop()  # checkpoints the WAL; the files are then all there is
    stored = every_file_under(server.data_dir)
    palettes = [item["palette"] for item in results.json()["items"]] + [sync]
    hexes = {color["hex"].encode() for p in palettes for color in p["colors"]}
    assert len(hexes) >= 10
    assert not [x for x in hexes if x in stored], "a palette color is readable at rest"
    assert results.content[:200] not in stored
    for message in messages["data"]:
        body = json.dumps(message["payload"], separators=(",", ":"), sort_keys=True).encode()
        assert body not in stored and b'"job_id":"' + job["id"].encode() not in stored
    for at in range(0, len(image) - 64, 512):
        assert image[at : at + 64] not in stored
    # Rotation: a new key first; everything re-wrapped; the old key can then go.
    new = kek("k2")
    rotate = subprocess.run(  # noqa: PLW1510 - checked below
        [sys.executable, "-m", "service", "keys", "rotate", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PALETTE_ENCRYPTION_KEYS": f"{new},{keys}"},
    )
    assert rotate.returncode == 0, rotate.stderr
    assert rotate.stdout.startswith("re-wrapped ") and "under k2" in rotate.stdout
    again = server_factory({"PALETTE_ENCRYPTION_KEYS": new}, data_dir=server.data_dir)
    after = httpx.get(f"{again.url}/v1/jobs/{job['id']}/results", timeout=30)
    assert after.status_code == 200 and after.content == results.content
    cached = httpx.get(again.url + sync_answer.headers["content-location"], timeout=30)
    assert cached.status_code == 200 and cached.json() == sync


def test_rotate_says_when_encryption_is_off(tmp_path: Path) -> None:
    out = subprocess.run(  # noqa: PLW1510 - checked below
        [sys.executable, "-m", "service", "keys", "rotate", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PALETTE_ENCRYPTION_KEYS"},
    )
    assert out.returncode == 2 and "encryption at rest is off" in out.stderr

"""The local blob store: atomic streamed writes, ranges, deletes, partial-write expiry."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from service.jobs.blobs import LocalBlobStore


def test_put_streams_and_reports_digest(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    chunks = [os.urandom(1000) for _ in range(5)]
    info = blobs.put("uploads/j/0", iter(chunks))
    data = b"".join(chunks)
    assert info.size == len(data) and info.sha256 == hashlib.sha256(data).hexdigest()
    with blobs.open("uploads/j/0") as f:
        assert f.read() == data
    assert b"".join(blobs.read_range("uploads/j/0", 10, 19, chunk_size=3)) == data[10:20]
    assert blobs.size("uploads/j/0") == len(data)


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)

    def broken() -> object:
        yield b"partial"
        raise OSError("client went away")

    with pytest.raises(OSError):
        blobs.put("uploads/j/0", broken())  # type: ignore[arg-type]
    assert not blobs.exists("uploads/j/0")
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_delete_prefix_and_bad_keys(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    blobs.put("uploads/j/0", [b"a"])
    blobs.put("uploads/j/1", [b"b"])
    blobs.delete_prefix("uploads/j")
    assert not blobs.exists("uploads/j/0") and not blobs.exists("uploads/j/1")
    for bad in ("../escape", "a//b", "/abs", ".tmp/x"):
        with pytest.raises(ValueError):
            blobs.create(bad)


def test_expire_removes_only_stale_partial_writes(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    stale = blobs.create("uploads/j/0")
    stale.write(b"abandoned")
    fresh = blobs.create("uploads/j/1")
    fresh.write(b"in progress")
    old = time.time() - 7200
    os.utime(stale._tmp, (old, old))  # as if its upload died two hours ago
    blobs.put("uploads/j/2", [b"committed"])
    assert blobs.expire(3600) == 1
    assert blobs.exists("uploads/j/2")
    assert fresh.commit().size == len(b"in progress")
    stale.abort()  # closes its file; the temp file is already gone

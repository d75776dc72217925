"""Blobs in an S3-compatible bucket (boto3).

Writes are multipart uploads started when the writer is made: parts of ``part_bytes`` are sent
as they fill, so no blob is ever whole in memory, and nothing is visible under its key until
the upload completes (all-or-nothing); an upload a crash left open is aborted by
:meth:`S3BlobStore.expire`. Reads are ranged GETs behind a buffer, so a ZIP's central
directory and one chunk's entries are read without fetching the rest of the archive.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from ..jobs.interfaces import BlobInfo

__all__ = ["S3BlobStore", "open_s3"]

_PART_BYTES = 8 * 1024 * 1024
_FIRST_READ = 4 * 1024 * 1024
_MAX_READ = 8 * 1024 * 1024
_HELD_BYTES = 16 * 1024 * 1024


def open_s3(url: str) -> S3BlobStore:
    """``s3://bucket/prefix``; endpoint, region and credentials from the standard
    ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``."""
    import boto3
    from botocore.config import Config

    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"expected s3://bucket/prefix, got {url!r}")
    config = Config(
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        # Path-style addressing: S3-compatible servers on a host name or an IP address.
        s3={"addressing_style": "path"},
        # SigV4 for presigned URLs too (boto3 would presign with the legacy SigV2 scheme,
        # which S3-compatible servers check differently once response-content-* is signed).
        signature_version="s3v4",
        # Checksums only where S3 requires them: not every S3-compatible server knows the
        # newer trailing-checksum uploads.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=32,
    )
    client = boto3.client("s3", config=config)
    return S3BlobStore(client, parts.netloc, parts.path.strip("/"))


def _missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


class _S3Writer:
    def __init__(self, store: S3BlobStore, key: str) -> None:
        self._store = store
        self._key = key
        self._object = store.object_key(key)
        self._upload = store.client.create_multipart_upload(
            Bucket=store.bucket, Key=self._object
        )["UploadId"]
        self._parts: list[dict[str, Any]] = []
        self._buffer = bytearray()
        self._hash = hashlib.sha256()
        self._size = 0
        self._open = True

    def write(self, chunk: bytes) -> None:
        assert self._open, "writer already closed"
        self._buffer += chunk
        self._hash.update(chunk)
        self._size += len(chunk)
        if len(self._buffer) >= _PART_BYTES:
            self._send_part()

    def _send_part(self) -> None:
        number = len(self._parts) + 1
        reply = self._store.client.upload_part(
            Bucket=self._store.bucket,
            Key=self._object,
            UploadId=self._upload,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"ETag": reply["ETag"], "PartNumber": number})
        self._buffer.clear()

    def commit(self) -> BlobInfo:
        assert self._open, "writer already closed"
        try:
            if self._buffer or not self._parts:
                self._send_part()
            self._store.client.complete_multipart_upload(
                Bucket=self._store.bucket,
                Key=self._object,
                UploadId=self._upload,
                MultipartUpload={"Parts": self._parts},
            )
        except BaseException:
            self.abort()
            raise
        self._open = False
        return BlobInfo(self._key, self._size, self._hash.hexdigest())

    def abort(self) -> None:
        if not self._open:
            return
        self._open = False
        self._buffer.clear()
        try:
            self._store.client.abort_multipart_upload(
                Bucket=self._store.bucket, Key=self._object, UploadId=self._upload
            )
        except Exception as exc:
            if not _missing(exc):
                raise


class _RangeReader(io.RawIOBase):
    """A seekable read-only view of one object: ranged GETs of a few MB, kept for a while.

    Each GET costs both sides far more than its bytes on loopback (request signing and parsing
    here, a filer lookup and a chunk read in the S3 server), and a chunk of a ZIP job reads its
    part twice: first the local header of each of its entries (hops forward), then each entry
    front to back. So a read outside what is held fetches ``_FIRST_READ`` bytes (a read that
    runs on from the last fetch twice the last fetch, up to ``_MAX_READ``), and the last
    ``_HELD_BYTES`` of fetches are kept: a chunk of photos costs a GET or two, the end records
    and the central directory one, and memory stays bounded.
    """

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        self._pos = 0
        self._held: list[tuple[int, bytes]] = []  # (offset, bytes), oldest first
        self._last_read = 0
        self.gets = 0
        """Ranged GETs sent so far."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        for start, data in reversed(self._held):
            if start <= self._pos < start + len(data):
                break
        else:
            start, data = self._fetch(want)
        skip = self._pos - start
        got = min(want, len(data) - skip)
        view[:got] = memoryview(data)[skip : skip + got]
        self._pos += got
        return got

    def prefetch(self, start: int, stop: int) -> None:
        """Fetch bytes ``start`` to ``stop`` in one GET now, unless they are held already or
        are more than the reader holds: a reader of a ZIP chunk knows its chunk's span from
        the central directory, and one exact GET costs far less than a fixed read-ahead that
        overshoots small chunks and splits large ones."""
        stop = min(stop, self._size)
        if not 0 <= start < stop or stop - start > _HELD_BYTES:
            return
        if any(s <= start and stop <= s + len(d) for s, d in self._held):
            return
        self._get(start, stop)

    def _fetch(self, want: int) -> tuple[int, bytes]:
        last_start, last = self._held[-1] if self._held else (-1, b"")
        if self._pos == last_start + len(last):  # runs on from the last fetch
            size = min(2 * self._last_read, _MAX_READ)
        else:
            size = _FIRST_READ
        return self._get(self._pos, min(self._size, self._pos + max(want, size)))

    def _get(self, start: int, end: int) -> tuple[int, bytes]:
        body = self._client.get_object(
            Bucket=self._bucket, Key=self._key, Range=f"bytes={start}-{end - 1}"
        )["Body"]
        with body:
            data = body.read()
        self.gets += 1
        self._last_read = len(data)
        self._held.append((start, data))
        held = sum(len(d) for _, d in self._held)
        while held > _HELD_BYTES and len(self._held) > 1:
            held -= len(self._held.pop(0)[1])
        return start, data


class _S3File(io.BufferedReader):
    """What :meth:`S3BlobStore.open` returns: a buffered file with the reader's
    ``prefetch`` (which ``palette_native.archive.ArchiveReader`` calls for each part)."""

    raw: _RangeReader

    def prefetch(self, start: int, stop: int) -> None:
        self.raw.prefetch(start, stop)


class S3BlobStore:
    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def object_key(self, key: str) -> str:
        parts = key.split("/")
        if not key or any(p in {"", ".", ".."} for p in parts):
            raise ValueError(f"bad blob key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _blob_key(self, object_key: str) -> str:
        return object_key[len(self.prefix) + 1 :] if self.prefix else object_key

    def ping(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

    def create(self, key: str) -> _S3Writer:
        return _S3Writer(self, key)

    def put(self, key: str, chunks: Iterable[bytes]) -> BlobInfo:
        writer = self.create(key)
        try:
            for chunk in chunks:
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer.commit()

    def open(self, key: str) -> BinaryIO:
        try:
            raw = _RangeReader(self.client, self.bucket, self.object_key(key))
        except Exception as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from None
            raise
        # Buffered by the reader's own read-ahead; BufferedReader adds the rest of the file API.
        return _S3File(raw, buffer_size=64 * 1024)

    @contextmanager
    def as_file(self, key: str) -> Iterator[str]:
        """A download to a temporary file, removed when the context ends."""
        fd, path = tempfile.mkstemp(prefix="palette-blob-")
        try:
            with os.fdopen(fd, "wb") as f:
                self.client.download_fileobj(self.bucket, self.object_key(key), f)
            yield path
        finally:
            os.unlink(path)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return True

    def _list(self, prefix: str) -> Iterator[str]:
        """Object keys of the blob ``prefix`` itself and of everything below it."""
        base = self.object_key(prefix.rstrip("/"))
        if self.exists(prefix.rstrip("/")):
            yield base
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=base + "/"
        )
        for page in pages:
            for entry in page.get("Contents", []):
                yield entry["Key"]

    def keys(self, prefix: str) -> Iterator[str]:
        for object_key in self._list(prefix):
            yield self._blob_key(object_key)

    def read_range(
        self, key: str, start: int, end: int, chunk_size: int = 65536
    ) -> Iterator[bytes]:
        size = self.size(key)
        end = min(end, size - 1)
        if start > end:
            return
        body = self.client.get_object(
            Bucket=self.bucket, Key=self.object_key(key), Range=f"bytes={start}-{end}"
        )["Body"]
        with body:
            yield from body.iter_chunks(chunk_size)

    def size(self, key: str) -> int:
        head = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def delete_prefix(self, prefix: str) -> None:
        batch: list[dict[str, str]] = []
        for object_key in self._list(prefix):
            batch.append({"Key": object_key})
            if len(batch) == 1000:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, batch: list[dict[str, str]]) -> None:
        self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def presigned_get(
        self, key: str, expires_in: int, *, content_type: str, content_disposition: str
    ) -> str | None:
        """A URL anyone may GET the blob with until it expires (SigV4 query signing), whose
        answer carries these headers (S3's response-content-* parameters, signed too)."""
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.object_key(key),
                "ResponseContentType": content_type,
                "ResponseContentDisposition": content_disposition,
            },
            ExpiresIn=expires_in,
        )
        return url

    def expire(self, max_age_seconds: float) -> int:
        """Abort multipart uploads (writes never committed) started over ``max_age_seconds``
        ago. Their start time is the S3 server's and "now" is this node's: the sweep uses an
        hour, far beyond any sane clock skew."""
        cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
            seconds=max_age_seconds
        )
        removed = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, **({"Prefix": self.prefix + "/"} if self.prefix else {})
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] <= cutoff:
                    try:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed += 1
                    except Exception as exc:
                        if not _missing(exc):
                            raise
        return removed

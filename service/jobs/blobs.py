"""Blobs in a local directory: streamed writes to a temp file, renamed into place on commit."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import BinaryIO

from .interfaces import BlobInfo

__all__ = ["LocalBlobStore"]


class _LocalWriter:
    def __init__(self, final: Path, tmp: Path, key: str) -> None:
        self._final = final
        self._tmp = tmp
        self._key = key
        self._file: BinaryIO | None = open(tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        self._hash = hashlib.sha256()
        self._size = 0

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "writer already closed"
        self._file.write(chunk)
        self._hash.update(chunk)
        self._size += len(chunk)

    def commit(self) -> BlobInfo:
        assert self._file is not None, "writer already closed"
        self._file.flush()
        # fsync so a blob that the store points to survives a power cut, not only kill -9.
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self._tmp, self._final)
        return BlobInfo(self._key, self._size, self._hash.hexdigest())

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in {"", ".", ".."} for p in parts) or key.startswith(".tmp"):
            raise ValueError(f"bad blob key {key!r}")
        return self.root.joinpath(*parts)

    def create(self, key: str) -> _LocalWriter:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"{uuid.uuid4().hex}.part"
        return _LocalWriter(final, tmp, key)

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
        return open(self._path(key), "rb")

    def as_file(self, key: str) -> AbstractContextManager[str | BinaryIO]:
        return nullcontext(str(self._path(key)))

    def keys(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix.rstrip("/"))
        if base.is_file():
            yield prefix.rstrip("/")
            return
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file():
                yield path.relative_to(self.root).as_posix()

    def read_range(
        self, key: str, start: int, end: int, chunk_size: int = 65536
    ) -> Iterator[bytes]:
        with self.open(key) as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = f.read(min(chunk_size, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix.rstrip("/"))
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def presigned_get(
        self, key: str, expires_in: int, *, content_type: str, content_disposition: str
    ) -> str | None:
        return None  # files on this node: only the service serves them

    def expire(self, max_age_seconds: float) -> int:
        """Remove temp files of writes that never committed (a crash mid-upload)."""
        # File times come from the operating system's clock, so the age is measured with it.
        older_than = time.time() - max_age_seconds
        removed = 0
        for path in self._tmp.iterdir():
            try:
                if path.stat().st_mtime < older_than:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

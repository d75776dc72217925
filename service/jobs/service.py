"""Job use cases behind the routes: create (streamed upload + idempotency), read, cancel, delete."""

from __future__ import annotations

import struct
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from starlette.requests import Request

from ..engine import Engine
from ..options import parse_options
from ..problems import Problem
from ..settings import Settings
from ..uploads import FilePart, read_multipart
from .interfaces import (
    JOB_STATUSES,
    BlobStore,
    BlobWriter,
    IdempotencyOutcome,
    Job,
    JobBackend,
    JobConflict,
    JobInput,
    JobNotFound,
    NewJob,
)
from .sqlite_store import decode_cursor
from .worker import WorkerPool

__all__ = ["Created", "JobService"]

JOBS_PATH = "/v1/jobs"
_EOCD = b"PK\x05\x06"


@dataclass(frozen=True)
class Created:
    status_code: int
    body: dict[str, Any]
    location: str
    replayed: bool


class _BlobSink:
    def __init__(self, writer: BlobWriter, key: str) -> None:
        self._writer = writer
        self._key = key

    def write(self, chunk: bytes) -> None:
        self._writer.write(chunk)

    def close(self) -> str:
        self._writer.commit()
        return self._key

    def abort(self) -> None:
        self._writer.abort()


def _directory_entry_count(f: Any) -> int | None:
    """Entry count from the end-of-central-directory record, read before zipfile parses it all."""
    f.seek(0, 2)
    size = f.tell()
    tail_len = min(size, 22 + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or at + 22 > len(tail):
        return None
    (count,) = struct.unpack_from("<H", tail, at + 10)
    return int(count)


class JobService:
    def __init__(
        self,
        settings: Settings,
        store: JobBackend,
        blobs: BlobStore,
        engine: Engine,
        pool: WorkerPool | None,
        draining: Any,
    ) -> None:
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.engine = engine
        self.pool = pool
        self.draining = draining

    @property
    def retry_after(self) -> dict[str, str]:
        return {"Retry-After": str(self.settings.retry_after_seconds)}

    # -- create ----------------------------------------------------------------------------
    async def create(self, request: Request, tenant: str) -> Created:
        if self.draining.is_set():
            raise Problem(
                503,
                "draining",
                "The server is shutting down; retry on another instance.",
                headers={"Retry-After": "5"},
            )
        key = request.headers.get("idempotency-key")
        if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
            raise Problem(
                400, "bad_idempotency_key", "Idempotency-Key must be 1-255 printable characters."
            )
        state: str | IdempotencyOutcome | None = None
        if key is not None:
            state = await anyio.to_thread.run_sync(
                self.store.idempotency_begin, tenant, key, "POST", JOBS_PATH
            )
            if state == "in_flight":
                raise Problem(
                    409,
                    "idempotency_key_in_use",
                    "A request with this Idempotency-Key is still being processed.",
                    headers=self.retry_after,
                )
        job_id = uuid.uuid4().hex
        prefix = f"uploads/{job_id}"
        s = self.settings
        try:
            parsed = await read_multipart(
                request,
                limit=s.max_request_bytes,
                new_sink=lambda seq, kind: _BlobSink(
                    self.blobs.create(f"{prefix}/{seq}"), f"{prefix}/{seq}"
                ),
                sniff=self.engine.sniff,
                max_files=s.max_images_per_job,
                accept_archives=True,
            )
            if isinstance(state, IdempotencyOutcome):
                await anyio.to_thread.run_sync(self.blobs.delete_prefix, prefix)
                if state.fingerprint != parsed.fingerprint:
                    raise Problem(
                        422,
                        "idempotency_key_reused",
                        "This Idempotency-Key was used with a different request body.",
                    )
                return Created(state.status_code, state.body, state.location or "", True)
            if not parsed.files:
                raise Problem(400, "no_files", "Send one or more 'file' parts (images or ZIPs).")
            options = parse_options(
                parsed.fields, max_colors=s.max_colors, default_pixel_budget=s.pixel_budget
            )
            callback_url = _callback_url(parsed.fields.get("callback_url"))
            if callback_url is not None:
                # webhooks (issue #4): the SSRF check when the URL is given (DNS: in a thread)
                await anyio.to_thread.run_sync(_vet_callback_url, callback_url)
            total = await anyio.to_thread.run_sync(self._count_images, parsed.files)
            location = f"{JOBS_PATH}/{job_id}"
            inputs = [
                JobInput(n, f.filename, f.handle, "zip" if f.kind == "archive" else "image", f.size)
                for n, f in enumerate(parsed.files)
            ]
            outcome = (
                IdempotencyOutcome(
                    tenant, key, "POST", JOBS_PATH, parsed.fingerprint, 202, location=location
                )
                if key is not None
                else None
            )
            job = await anyio.to_thread.run_sync(
                self.store.submit,
                NewJob(job_id, tenant, options, inputs, callback_url, total),
                outcome,
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.blobs.delete_prefix, prefix)
                if key is not None and state == "new":
                    await anyio.to_thread.run_sync(
                        self.store.idempotency_abort, tenant, key, "POST", JOBS_PATH
                    )
            raise
        if self.pool is not None:
            self.pool.notify()
        return Created(202, job.to_public(), location, False)

    def _count_images(self, files: list[FilePart]) -> int:
        s = self.settings
        total = 0
        for part in files:
            if part.kind != "archive":
                total += 1
                continue
            with self.blobs.open(part.handle) as f:
                declared = _directory_entry_count(f)
                if declared is not None and declared > s.zip_max_entries:
                    raise Problem(
                        422,
                        "archive_too_many_entries",
                        f"{part.filename!r} has {declared:,} entries; the limit is "
                        f"{s.zip_max_entries:,}.",
                        limit_entries=s.zip_max_entries,
                        actual_entries=declared,
                        part=part.filename,
                    )
                f.seek(0)
                try:
                    with zipfile.ZipFile(f) as zf:
                        total += sum(1 for info in zf.infolist() if not info.is_dir())
                except (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error) as exc:
                    raise Problem(
                        422,
                        "archive_corrupt",
                        f"{part.filename!r} is not a readable ZIP: {exc}",
                        part=part.filename,
                    ) from None
        if total > s.max_images_per_job:
            raise Problem(
                422,
                "too_many_images",
                f"The job has {total:,} images; the limit is {s.max_images_per_job:,}.",
                limit_images=s.max_images_per_job,
                actual_images=total,
            )
        return total

    # -- read ------------------------------------------------------------------------------
    async def get(self, job_id: str, tenant: str) -> Job:
        try:
            job: Job = await anyio.to_thread.run_sync(self.store.get, job_id, tenant)
        except JobNotFound:
            raise _not_found(job_id) from None
        return job

    async def list(
        self, tenant: str, *, status: str | None, limit: str | None, cursor: str | None
    ) -> tuple[list[Job], str | None]:
        if status is not None and status not in JOB_STATUSES:
            raise Problem(
                400,
                "bad_parameter",
                f"status must be one of {', '.join(JOB_STATUSES)}",
                parameter="status",
            )
        try:
            count = 50 if limit is None else int(limit)
        except ValueError:
            count = 0
        if not 1 <= count <= 200:
            raise Problem(
                400, "bad_parameter", "limit must be an integer from 1 to 200", parameter="limit"
            )
        if cursor is not None:
            try:
                decode_cursor(cursor)
            except ValueError:
                raise Problem(
                    400,
                    "bad_cursor",
                    "The cursor is not one this server issued.",
                    parameter="cursor",
                ) from None
        jobs, next_cursor = await anyio.to_thread.run_sync(
            lambda: self.store.list_jobs(tenant, status=status, limit=count, cursor=cursor)
        )
        return jobs, next_cursor

    # -- change ----------------------------------------------------------------------------
    async def cancel(self, job_id: str, tenant: str) -> Job:
        try:
            job: Job = await anyio.to_thread.run_sync(self.store.cancel, job_id, tenant)
        except JobNotFound:
            raise _not_found(job_id) from None
        except JobConflict as exc:
            raise Problem(
                409,
                "job_finished",
                f"The job already {exc.status}; nothing to cancel.",
                status_now=exc.status,
            ) from None
        if job.status == "canceled":
            await anyio.to_thread.run_sync(self.blobs.delete_prefix, f"uploads/{job_id}")
        elif self.pool is not None:
            self.pool.request_cancel(job_id)
        return job

    async def delete(self, job_id: str, tenant: str) -> None:
        try:
            await anyio.to_thread.run_sync(self.store.delete, job_id, tenant)
        except JobNotFound:
            raise _not_found(job_id) from None
        except JobConflict:
            raise Problem(
                409, "job_running", "The job is running; cancel it first.", status_now="running"
            ) from None

        def remove_blobs() -> None:
            self.blobs.delete_prefix(f"uploads/{job_id}")
            self.blobs.delete_prefix(f"results/{job_id}")

        await anyio.to_thread.run_sync(remove_blobs)

    def finished_result(self, job: Job) -> tuple[str, str, int]:
        if job.is_active:
            raise Problem(
                409,
                "job_not_finished",
                f"The job is {job.status}; results come when it finishes.",
                status_now=job.status,
                headers=self.retry_after,
            )
        if job.result_key is None or job.result_digest is None or job.result_size is None:
            raise Problem(
                409,
                "no_results",
                f"The job was {job.status}; it has no results.",
                status_now=job.status,
            )
        return job.result_key, '"' + job.result_digest + '"', job.result_size


def _not_found(job_id: str) -> Problem:
    return Problem(404, "job_not_found", f"No job {job_id!r} (it may have expired).")


def _vet_callback_url(url: str) -> None:
    """webhooks (issue #4): refuse private, loopback, link-local and metadata destinations."""
    from ..egress import EgressPolicy, EgressRefused

    try:
        EgressPolicy.from_env().vet_url(url)
    except EgressRefused as exc:
        raise Problem(422, exc.code, exc.detail, parameter="callback_url") from exc


def _callback_url(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(raw) > 2048:
        raise Problem(
            400,
            "bad_parameter",
            "callback_url must be an absolute http(s) URL of at most 2048 characters.",
            parameter="callback_url",
        )
    return raw

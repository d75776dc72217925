"""Job use cases behind the routes: create (uploads + idempotency), read, cancel, delete.

They take plain values (tenants, ids, parsed options, uploaded parts); the routes parse HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from palette_native.errors import PaletteError

from ..backends import Backends
from ..egress import EgressRefused
from ..engine import Engine
from ..offload import Offload
from ..problems import Problem, problem_from_library_error
from ..settings import Settings
from ..uploads import FilePart, PartSink
from .interfaces import (
    BlobWriter,
    IdempotencyOutcome,
    InvalidCursor,
    Job,
    JobConflict,
    JobInput,
    JobNotFound,
    NewJob,
)
from .worker import WorkerPool

__all__ = ["Created", "JobService", "Upload"]

JOBS_PATH = "/v1/jobs"


@dataclass(frozen=True)
class Created:
    status_code: int
    body: dict[str, Any]
    location: str
    replayed: bool


@dataclass(frozen=True)
class Upload:
    """A job being uploaded: its id (minted by the backend) and its idempotency state."""

    job_id: str
    tenant: str
    key: str | None
    replay: IdempotencyOutcome | None
    """The first response, when the key was used before: the body must match it."""

    @property
    def prefix(self) -> str:
        return f"uploads/{self.job_id}"


@dataclass(frozen=True)
class _Scan:
    """What submit learned of one part: its images, and a ZIP's checked directory."""

    images: int
    directory_entries: int = 0
    directory_bytes: int = 0


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


class JobService:
    def __init__(
        self,
        settings: Settings,
        backends: Backends,
        engine: Engine,
        pool: WorkerPool | None,
        draining: Any,
        offload: Offload,
    ) -> None:
        self.settings = settings
        self.store = backends.jobs
        self.idempotency = backends.idempotency
        self.blobs = backends.blobs
        self.search = backends.search
        self.engine = engine
        self.pool = pool
        self.draining = draining
        self.offload = offload

    @property
    def retry_after(self) -> dict[str, str]:
        return {"Retry-After": str(self.settings.retry_after_seconds)}

    # -- create ----------------------------------------------------------------------------
    async def begin(self, tenant: str, key: str | None) -> Upload:
        """Reserve the idempotency key (if any) and a job id, before the body is read."""
        if self.draining.is_set():
            raise Problem(
                503,
                "draining",
                "The server is shutting down; retry on another instance.",
                headers={"Retry-After": "5"},
            )
        quota = self.settings.security.max_active_jobs_per_tenant
        active = await self.offload(self.store.count_active, tenant)
        if active >= quota:
            raise Problem(
                429,
                "too_many_active_jobs",
                f"The tenant has {active:,} jobs queued or running; the limit is {quota:,}. "
                "Wait for some to finish.",
                limit_active_jobs=quota,
                actual_active_jobs=active,
                headers=self.retry_after,
            )
        await self.offload(self._check_backlog, tenant, 0)
        replay: IdempotencyOutcome | None = None
        if key is not None:
            state = await self.offload(
                self.idempotency.idempotency_begin, tenant, key, "POST", JOBS_PATH
            )
            if state == "in_flight":
                raise Problem(
                    409,
                    "idempotency_key_in_use",
                    "A request with this Idempotency-Key is still being processed.",
                    headers=self.retry_after,
                )
            if isinstance(state, IdempotencyOutcome):
                replay = state
        return Upload(self.store.new_job_id(tenant), tenant, key, replay)

    def sink(self, upload: Upload, seq: int) -> PartSink:
        """Where the ``seq``-th uploaded part is written as it arrives."""
        key = f"{upload.prefix}/{seq}"
        return _BlobSink(self.blobs.create(key), key)

    async def replay(self, upload: Upload, fingerprint: str) -> Created:
        """The first response again, if the body is the one it was given for."""
        assert upload.replay is not None
        await self.offload(self.blobs.delete_prefix, upload.prefix)
        if upload.replay.fingerprint != fingerprint:
            raise Problem(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request body.",
            )
        first = upload.replay
        return Created(first.status_code, first.body, first.location or "", True)

    async def submit(
        self,
        upload: Upload,
        files: Sequence[FilePart],
        options: dict[str, Any],
        callback_url: str | None,
        fingerprint: str,
    ) -> Created:
        if not files:
            raise Problem(400, "no_files", "Send one or more 'file' parts (images or ZIPs).")
        if callback_url is not None:
            # The SSRF check when the URL is given (DNS: in a thread).
            await self.offload(self._vet_callback_url, callback_url)
        scans = await self.offload(self._scan_parts, files)
        total = sum(scan.images for scan in scans)
        await self.offload(self._check_backlog, upload.tenant, total)
        location = f"{JOBS_PATH}/{upload.job_id}"
        inputs = [
            JobInput(
                n,
                f.filename,
                f.handle,
                "zip" if f.kind == "archive" else "image",
                f.size,
                scan.images,
                scan.directory_entries,
                scan.directory_bytes,
            )
            for n, (f, scan) in enumerate(zip(files, scans))
        ]
        outcome = (
            IdempotencyOutcome(
                upload.tenant, upload.key, "POST", JOBS_PATH, fingerprint, 202, location=location
            )
            if upload.key is not None
            else None
        )
        job = await self.offload(
            self.store.submit,
            NewJob(upload.job_id, upload.tenant, options, inputs, callback_url, total),
            outcome,
        )
        return Created(202, job.to_public(), location, False)

    async def abort(self, upload: Upload) -> None:
        """The upload failed: its parts and its key reservation go."""
        await self.offload(self.blobs.delete_prefix, upload.prefix)
        if upload.key is not None and upload.replay is None:
            await self.offload(
                self.idempotency.idempotency_abort, upload.tenant, upload.key, "POST", JOBS_PATH
            )

    def _vet_callback_url(self, url: str) -> None:
        """Refuse private, loopback, link-local and metadata destinations."""
        try:
            self.settings.webhooks.egress.vet_url(url)
        except EgressRefused as exc:
            raise Problem(422, exc.code, exc.detail, parameter="callback_url") from exc

    def _check_backlog(self, tenant: str, adding: int) -> None:
        """Queue-depth limits: a tenant past its own gets 429, everyone past the global 503."""
        s = self.settings
        if not (s.tenant_max_queued_images or s.max_queued_images):
            return
        mine, everyone = self.store.backlog(tenant)
        if s.tenant_max_queued_images and (
            mine + adding > s.tenant_max_queued_images or mine >= s.tenant_max_queued_images
        ):
            raise Problem(
                429,
                "tenant_queue_full",
                f"Your unfinished jobs hold {mine:,} images; the limit is "
                f"{s.tenant_max_queued_images:,}. Retry when some have finished.",
                limit_images=s.tenant_max_queued_images,
                queued_images=mine,
                adding_images=adding,
                headers=self.retry_after,
            )
        if s.max_queued_images and (
            everyone + adding > s.max_queued_images or everyone >= s.max_queued_images
        ):
            raise Problem(
                503,
                "overloaded",
                "The service has too much queued work; retry later.",
                headers=self.retry_after,
            )

    def _scan_parts(self, files: Sequence[FilePart]) -> list[_Scan]:
        """Images in each part: 1 for an image, the file entries of a ZIP (its directory
        checked against the archive limits)."""
        s = self.settings
        scans: list[_Scan] = []
        for part in files:
            if part.kind != "archive":
                scans.append(_Scan(1))
                continue
            with self.blobs.open(part.handle) as f:
                try:
                    # The library's directory check: sizes and counts from the records
                    # themselves (not the end record's claim), ZIP64 end records read. What it
                    # found goes with the input, so each chunk checks its read against it
                    # instead of walking the directory again.
                    summary = self.engine.scan_directory(f)
                except PaletteError as exc:
                    problem = problem_from_library_error(exc)
                    problem.extra["part"] = part.filename
                    problem.detail = f"{part.filename!r}: {problem.detail}"
                    raise problem from None
            scans.append(_Scan(summary.files, summary.entries, summary.directory_bytes))
        total = sum(scan.images for scan in scans)
        if total > s.max_images_per_job:
            raise Problem(
                422,
                "too_many_images",
                f"The job has {total:,} images; the limit is {s.max_images_per_job:,}.",
                limit_images=s.max_images_per_job,
                actual_images=total,
            )
        return scans

    # -- read ------------------------------------------------------------------------------
    async def get(self, job_id: str, tenant: str | None) -> Job:
        """``tenant=None``: whoever owns it (a signed link stands in for the owner)."""
        try:
            job: Job = await self.offload(self.store.get, job_id, tenant)
        except JobNotFound:
            raise _not_found(job_id) from None
        return job

    async def list(
        self, tenant: str, *, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Job], str | None]:
        def page() -> tuple[list[Job], str | None]:
            return self.store.list_jobs(tenant, status=status, limit=limit, cursor=cursor)

        try:
            return await self.offload(page)
        except InvalidCursor:
            raise Problem(
                400, "bad_cursor", "The cursor is not one this server issued.", parameter="cursor"
            ) from None

    # -- change ----------------------------------------------------------------------------
    async def cancel(self, job_id: str, tenant: str) -> Job:
        try:
            job: Job = await self.offload(self.store.cancel, job_id, tenant)
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
            await self.offload(self.blobs.delete_prefix, f"uploads/{job_id}")
        elif self.pool is not None:
            self.pool.request_cancel(job_id)
        return job

    async def delete(self, job_id: str, tenant: str) -> None:
        try:
            await self.offload(self.store.delete, job_id, tenant)
        except JobNotFound:
            raise _not_found(job_id) from None
        except JobConflict:
            raise Problem(
                409, "job_running", "The job is running; cancel it first.", status_now="running"
            ) from None

        def remove_blobs() -> None:
            self.search.remove_job(tenant, job_id)
            self.blobs.delete_prefix(f"uploads/{job_id}")
            self.blobs.delete_prefix(f"results/{job_id}")

        await self.offload(remove_blobs)

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

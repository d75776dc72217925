"""The seams of the job layer. A second backend (Redis + S3) implements these and nothing else.

Times are seconds since the epoch from one :class:`~service.clock.Clock`, so leases and expiry
can be tested with a fake clock. ``tests/conformance`` is the contract every backend passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal, Protocol

from ..clock import Clock, SystemClock, iso_time

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "JOB_STATUSES",
    "BlobInfo",
    "BlobStore",
    "BlobWriter",
    "Chunk",
    "Clock",
    "IdempotencyOutcome",
    "EventLog",
    "IdempotencyStore",
    "InvalidCursor",
    "ItemKey",
    "ItemResult",
    "Job",
    "JobBackend",
    "JobConflict",
    "JobEvent",
    "JobInput",
    "JobNotFound",
    "JobQueue",
    "JobStore",
    "Lease",
    "LeaseState",
    "LockLease",
    "Locks",
    "NewJob",
    "PaletteCache",
    "Progress",
    "ResultInfo",
    "SecretStore",
    "SystemClock",
]

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
JOB_STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "canceled")
ACTIVE_STATUSES = frozenset({"queued", "running"})
FINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})
ItemStatus = Literal["succeeded", "failed", "skipped"]

ItemKey = tuple[int, int]
"""An image of a job: (input seq, entry index); an upload is entry 0."""


class JobNotFound(LookupError):
    """No such job for this tenant (or it expired)."""


class InvalidCursor(ValueError):
    """A list cursor this backend did not issue."""


class JobConflict(Exception):
    """The job is in a state that does not allow the operation."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class JobInput:
    """One uploaded part of a job, stored as a blob."""

    seq: int
    name: str
    blob_key: str
    kind: Literal["image", "zip"]
    size: int
    images: int = 1
    """Images in it: 1 for an upload, the file entries of a ZIP (what chunks are cut from)."""
    directory_entries: int = 0
    directory_bytes: int = 0
    """A ZIP's central directory as submit checked it (records, folders included, and bytes;
    0 when not known): a chunk reading part of the ZIP checks against these instead of
    walking the directory again."""


@dataclass(frozen=True)
class NewJob:
    id: str
    tenant: str
    options: dict[str, Any]
    inputs: list[JobInput]
    callback_url: str | None = None
    total: int = 0
    """Images known at submit time (uploads plus ZIP entries); refined while working."""


@dataclass(frozen=True)
class Progress:
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Job:
    id: str
    tenant: str
    status: str
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None
    options: dict[str, Any]
    progress: Progress
    error: dict[str, Any] | None = None
    callback_url: str | None = None
    cancel_requested: bool = False
    result_key: str | None = None
    result_digest: str | None = None
    result_size: int | None = None
    attempts: int = 0

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def to_public(self) -> dict[str, Any]:
        """The JSON a client sees (also what transition hooks receive, plus tenant)."""
        p = self.progress
        return {
            "id": self.id,
            "status": self.status,
            "progress": {
                "total": p.total,
                "done": p.done,
                "failed": p.failed,
                "skipped": p.skipped,
            },
            "options": self.options,
            "callback_url": self.callback_url,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "expires_at": _iso(self.expires_at),
            "cancel_requested": self.cancel_requested,
            "error": self.error,
            "results_url": f"/v1/jobs/{self.id}/results"
            if self.status in FINAL_STATUSES and self.result_key
            else None,
        }


def _iso(ts: float | None) -> str | None:
    return None if ts is None else iso_time(ts)


Span = tuple[int, int, int]
"""Part of one input: (input seq, first entry index, end entry index exclusive)."""


@dataclass(frozen=True)
class Chunk:
    """The part of a large job one lease covers: ``index`` of ``count``, these spans only."""

    index: int
    count: int
    spans: tuple[Span, ...]

    def covers(self, seq: int) -> range | None:
        """The entries of input ``seq`` in this chunk (None: none of them)."""
        for span_seq, first, end in self.spans:
            if span_seq == seq:
                return range(first, end)
        return None


@dataclass(frozen=True)
class Lease:
    """A worker's claim on a job, or on one chunk of it. ``token`` fences late writers: it
    grows on every claim of the job."""

    job_id: str
    owner: str
    token: int
    expires_at: float
    attempts: int = 0
    """Claims of this job that ended in a crash or a worker error, since its last progress."""
    suspects: frozenset[ItemKey] = frozenset()
    """Images in flight when an earlier claim crashed: run them one at a time."""
    chunk: Chunk | None = None
    """None: the whole job (run every image, then complete or fail it). Else only these
    images, then :meth:`JobQueue.finish_chunk`."""
    assemble: bool = False
    """Every chunk is done: write the results document and complete the job, nothing else."""


@dataclass(frozen=True)
class LeaseState:
    alive: bool
    cancel_requested: bool


@dataclass(frozen=True)
class ItemResult:
    """The outcome for one image: an upload (entry_index 0) or one archive entry."""

    input_seq: int
    entry_index: int
    name: str
    status: ItemStatus
    palette: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class ResultInfo:
    key: str
    digest: str
    size: int


@dataclass(frozen=True)
class JobEvent:
    """One entry of the event log, written in the same atomic step as the change it reports.

    ``id`` is stable: every read of the event gives the same one, so consumers dedupe on it.
    ``job`` is the public job document (as ``GET /v1/jobs/{id}`` renders it) plus ``tenant``;
    for ``job.deleted`` only ``id`` and ``tenant``.
    """

    id: str
    type: str
    """``job.progress``, ``job.succeeded``, ``job.failed``, ``job.canceled`` or ``job.deleted``."""
    job: dict[str, Any]
    at: float


class EventLog(Protocol):
    """Job events in the order they happened, consumed at least once per named consumer."""

    def read(self, consumer: str, limit: int = 100) -> list[JobEvent]:
        """The oldest events ``consumer`` has not acknowledged (again, after a crash)."""
        ...

    def ack(self, consumer: str, events: Sequence[JobEvent]) -> None:
        """``consumer`` is done with ``events`` (and everything before them)."""
        ...


class JobStore(Protocol):
    """Job records, scoped by tenant. Every state change appends to the :class:`EventLog`."""

    def new_job_id(self, tenant: str = "") -> str:
        """An id for a job ``tenant`` is about to submit (the backend may put its partition
        in it)."""
        ...

    def submit(self, job: NewJob, idempotency: IdempotencyOutcome | None = None) -> Job: ...
    def get(self, job_id: str, tenant: str | None = None) -> Job: ...
    def list_jobs(
        self, tenant: str, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        """Newest first; raises :class:`InvalidCursor` for a cursor it did not issue."""
        ...

    def cancel(self, job_id: str, tenant: str) -> Job: ...
    def delete(self, job_id: str, tenant: str) -> Job: ...
    def inputs(self, job_id: str) -> list[JobInput]: ...
    def iter_items(self, job_id: str) -> Iterator[ItemResult]: ...
    def expire(self, limit: int = 500) -> list[Job]:
        """Delete finished jobs past their ``expires_at``; return them so blobs can follow."""
        ...

    def counts(self) -> dict[str, int]: ...
    def backlog(self, tenant: str) -> tuple[int, int]:
        """Images in unfinished jobs: (this tenant's, everyone's), for the queue-depth limits."""
        ...

    def count_active(self, tenant: str) -> int:
        """The tenant's queued plus running jobs (the per-tenant quota)."""
        ...

    def ping(self) -> None: ...


class JobQueue(Protocol):
    """Dispatch with leases: every accepted job is worked until it is final.

    A crash (a lease that expired) counts against the images that were in flight: an image in
    flight during ``max_crashes`` crashed claims is given up (failed, ``internal_error``).
    """

    def claim(self, owner: str, lease_seconds: float, wait: float = 0.0) -> Lease | None:
        """Lease the oldest claimable job, waiting up to ``wait`` seconds for one."""
        ...

    def renew(self, lease: Lease, lease_seconds: float) -> LeaseState: ...
    def cancel_requested(self, job_ids: Sequence[str]) -> set[str]: ...
    def done_items(self, job_id: str) -> set[ItemKey]: ...
    def start_items(self, lease: Lease, items: Mapping[ItemKey, str]) -> bool:
        """These images (key -> name) are being worked on now: what a crash counts against."""
        ...

    def progress(
        self,
        lease: Lease,
        items: Sequence[ItemResult],
        total: int | None,
        *,
        notify: bool = False,
        lease_seconds: float | None = None,
        started: Mapping[ItemKey, str] | None = None,
    ) -> bool:
        """Record finished images (idempotent per image) if ``lease`` still owns the job;
        ``notify`` appends ``job.progress``; ``lease_seconds`` also extends the lease;
        ``started`` marks more images as being worked on, as ``start_items`` does, in the same
        write (a worker reports one image done and starts the next in one round trip)."""
        ...

    def finish_chunk(self, lease: Lease, lease_seconds: float) -> Lease | bool:
        """A chunk lease's images are all recorded. False: the lease was lost; True: other
        chunks are still to finish; a Lease: this was the last chunk, and the caller now holds
        the job's assembly (``assemble=True``)."""
        ...

    def complete(self, lease: Lease, result: ResultInfo) -> bool: ...
    def fail(self, lease: Lease, error: dict[str, Any], result: ResultInfo | None) -> bool: ...
    def acknowledge_cancel(self, lease: Lease) -> bool: ...
    def release(self, lease: Lease, *, crashed: bool = False) -> bool:
        """Hand the job back to the queue. A drain hand-back (``crashed=False``) uses no
        attempt; a worker error counts like a crash."""
        ...

    def reap_expired(self) -> int:
        """Jobs whose lease expired (their worker died) go back to the queue, crash counted."""
        ...


@dataclass(frozen=True)
class IdempotencyOutcome:
    """A finished idempotent request: what to replay, and the body fingerprint to compare."""

    tenant: str
    key: str
    method: str
    path: str
    fingerprint: str = ""
    status_code: int = 0
    body: dict[str, Any] = field(default_factory=dict)
    location: str | None = None


class IdempotencyStore(Protocol):
    def idempotency_begin(
        self, tenant: str, key: str, method: str, path: str
    ) -> Literal["new", "in_flight"] | IdempotencyOutcome:
        """Reserve a key, or report it is in flight, or return the stored outcome."""
        ...

    def idempotency_abort(self, tenant: str, key: str, method: str, path: str) -> None: ...


class PaletteCache(Protocol):
    def cache_get(self, key: str) -> bytes | None: ...
    def cache_put(self, entries: Mapping[str, bytes]) -> None:
        """Store several rendered palettes at once (one transaction where the backend has them)."""
        ...

    def cache_keys(self) -> Iterable[str] | None:
        """Every key stored now, when a process can track them itself from here on (so a key it
        never saw is a miss without asking); None where lookups must always ask."""
        ...


class JobBackend(JobStore, JobQueue, Protocol):
    """Job records and their dispatch: one object, since a claim changes a record."""


class SecretStore(Protocol):
    """Secrets every node of a deployment must share (URL signing, callback signing), when
    settings do not give them: made once, then the same on every node."""

    def get_or_create(self, name: str, make: Callable[[], str]) -> str: ...
    def set(self, name: str, value: str) -> None:
        """Replace a secret (a data key re-wrapped under a new key-encryption key)."""
        ...


@dataclass(frozen=True)
class LockLease:
    """A lock granted to one holder until ``until`` (the backend's clock)."""

    name: str
    owner: str
    token: int
    """The fencing token: larger for every new grant of the lock, so a holder that stalled
    past its lease cannot renew or release the lock of the one that came after it."""
    until: float


class Locks(Protocol):
    """Mutual exclusion between every process of a deployment, for work that must run in one
    place at a time (the retention sweep). A lease, not a mutex: a holder that stops renewing
    loses the lock after ``ttl`` seconds without anyone releasing it."""

    def acquire(self, name: str, owner: str, ttl: float) -> LockLease | None:
        """The lock, when it is free or its lease ran out; None while another holder has it."""
        ...

    def renew(self, lease: LockLease, ttl: float) -> LockLease | None:
        """The same grant for ``ttl`` more seconds; None when it was lost (expired and granted
        to another holder, or released)."""
        ...

    def release(self, lease: LockLease) -> bool:
        """Free the lock if this grant still holds it; False when it had been lost."""
        ...


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    sha256: str


class BlobWriter(Protocol):
    def write(self, chunk: bytes) -> None: ...
    def commit(self) -> BlobInfo: ...
    def abort(self) -> None: ...


class BlobStore(Protocol):
    """Opaque bytes by key (``uploads/<id>/...``); writes are all-or-nothing."""

    def create(self, key: str) -> BlobWriter: ...
    def put(self, key: str, chunks: Iterable[bytes]) -> BlobInfo: ...
    def open(self, key: str) -> BinaryIO:
        """Streaming and seekable."""
        ...

    def as_file(self, key: str) -> AbstractContextManager[str | BinaryIO]:
        """A path on this machine holding the blob while the context lasts, so the library can
        stream it from disk (a local store gives its own file; a remote one a download), or an
        open file where the bytes must not lie on disk in the clear (encryption at rest)."""
        ...

    def exists(self, key: str) -> bool: ...
    def keys(self, prefix: str) -> Iterator[str]:
        """Committed keys under ``prefix``."""
        ...

    def read_range(
        self, key: str, start: int, end: int, chunk_size: int = 65536
    ) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive, in chunks."""
        ...

    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def presigned_get(
        self, key: str, expires_in: int, *, content_type: str, content_disposition: str
    ) -> str | None:
        """A URL anyone may GET the blob from for ``expires_in`` seconds, answered with these
        headers; None where the store cannot give one (files on a node; encrypted objects,
        whose stored bytes are not the content)."""
        ...

    def expire(self, max_age_seconds: float) -> int:
        """Remove partial writes (never committed) older than ``max_age_seconds``."""
        ...

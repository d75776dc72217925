"""Worker threads: claim a job's lease, extract every image, write results, finish.

Each image's outcome is committed as soon as it is known (in the same write as the next
image's start), so a job picked up again after a crash (its lease expired) skips the images
already done. A monitor thread renews leases and polls cancel flags every ``poll_seconds``;
``should_cancel`` passed to the library reads those flags, so a running job stops within one
poll plus one strip of work.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, ExitStack, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from palette_native.errors import CanceledError, PaletteError

from ..errors import error_fields
from .interfaces import (
    BlobStore,
    ItemKey,
    ItemResult,
    JobBackend,
    JobInput,
    JobNotFound,
    Lease,
    ResultInfo,
)

__all__ = ["AnalyseFn", "ExtractFn", "WorkerPool", "count_archive_entries", "write_results"]

logger = logging.getLogger("service.worker")

ExtractFn = Callable[..., Any]
AnalyseFn = Callable[[Any, Callable[[], bool]], dict[str, Any]]
"""``(source, should_cancel) -> analysis document``, for jobs with the ``analyze`` option."""


@dataclass
class _HeldArchive:
    blob_key: str
    reader: Any
    resources: ExitStack


class _Stop(Exception):
    """Unwinds a job that must stop: ``reason`` is cancel, lost (lease) or drain."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Active:
    lease: Lease
    cancel: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    timed_out: threading.Event = field(default_factory=threading.Event)
    renewed_at: float = field(default_factory=time.monotonic)
    deadline: float = float("inf")
    """When the job's wall-clock limit runs out (``time.monotonic``)."""


@dataclass(frozen=True)
class _Image:
    """One image to extract: where it is, and what it is called."""

    key: ItemKey
    name: str
    source: AbstractContextManager[str | bytes | BinaryIO]


def count_archive_entries(f: BinaryIO) -> int:
    """Files listed in a ZIP's central directory (cheap: nothing is inflated)."""
    with zipfile.ZipFile(f) as zf:
        return sum(1 for info in zf.infolist() if not info.is_dir())


def write_results(
    blobs: BlobStore,
    key: str,
    job_id: str,
    items: Iterator[dict[str, Any]],
    error: dict[str, Any] | None = None,
) -> ResultInfo:
    """Stream the results document into a blob; its SHA-256 becomes the results ETag."""
    writer = blobs.create(key)
    try:
        head = {"job_id": job_id, "error": error}
        writer.write(json.dumps(head)[:-1].encode() + b', "items": [')
        first = True
        count = 0
        for item in items:
            writer.write((b"" if first else b", ") + json.dumps(item).encode())
            first = False
            count += 1
        writer.write(f'], "count": {count}}}'.encode())
    except BaseException:
        writer.abort()
        raise
    info = writer.commit()
    return ResultInfo(key, info.sha256, info.size)


class WorkerPool:
    """N worker threads plus one monitor thread, all against the JobQueue/JobStore seams."""

    def __init__(
        self,
        store: JobBackend,
        blobs: BlobStore,
        *,
        extract: ExtractFn,
        threads: int,
        lease_seconds: float,
        extract_kwargs: Callable[[dict[str, Any]], dict[str, Any]],
        analysis_for: Callable[[dict[str, Any]], AnalyseFn | None] = lambda options: None,
        open_archive: Callable[[BinaryIO, JobInput | None], Any] | None = None,
        max_images_per_job: int = 10_000,
        max_attempts: int = 5,
        claim_wait: float = 0.5,
        poll_seconds: float = 0.1,
        on_item: Callable[[str], None] | None = None,
        on_job: Callable[[str], None] | None = None,
        job_timeout_seconds: float = float("inf"),
        on_results: Callable[[str, list[tuple[int, dict[str, Any]]]], None] | None = None,
    ) -> None:
        self.store = store
        self.job_timeout_seconds = job_timeout_seconds
        self.blobs = blobs
        self.extract = extract
        self.extract_kwargs = extract_kwargs
        self.analysis_for = analysis_for
        self.open_archive = open_archive
        """``(file, scanned input or None) -> ArchiveReader``: a context manager whose
        ``entries(part=None)`` yields the archive's entries."""
        self._held = threading.local()
        """Per worker thread: the archive its last chunk read (``_HeldArchive``), kept open
        for the next chunk of the same archive."""
        self.threads_wanted = threads
        self.lease_seconds = lease_seconds
        self.max_images_per_job = max_images_per_job
        self.max_attempts = max_attempts
        self.claim_wait = claim_wait
        self.poll_seconds = poll_seconds
        self.on_item = on_item or (lambda status: None)
        self.on_job = on_job or (lambda status: None)
        self.on_results = on_results
        """Told each finished job's succeeded palettes (results index, palette): the search
        index."""
        self.node = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._threads: list[threading.Thread] = []
        self._cpu: ThreadPoolExecutor | None = None
        self._monitor: threading.Thread | None = None
        self._active: dict[tuple[str, int], _Active] = {}  # by (job, token): chunks of one job
        self._active_lock = threading.Lock()
        self.draining = threading.Event()
        self.hard_stop = threading.Event()
        self._stopped = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.store.reap_expired()
        self._cpu = ThreadPoolExecutor(self.threads_wanted, thread_name_prefix="palette-cpu")
        for n in range(self.threads_wanted):
            t = threading.Thread(
                target=self._run,
                args=(f"{self.node}:w{n}",),
                name=f"palette-worker-{n}",
                daemon=True,
            )
            t.start()
            self._threads.append(t)
        self._monitor = threading.Thread(target=self._watch, name="palette-monitor", daemon=True)
        self._monitor.start()

    def request_cancel(self, job_id: str) -> None:
        """Same-process shortcut for a cancel the store has recorded: stop now, not at the
        next poll (other processes still learn it from the store)."""
        with self._active_lock:
            running = [a for a in self._active.values() if a.lease.job_id == job_id]
        for active in running:
            active.cancel.set()

    def alive(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def busy(self) -> int:
        with self._active_lock:
            return len(self._active)

    def drain(self, grace_seconds: float) -> None:
        """Stop claiming; let running images finish within the grace period; hand back the rest."""
        self.draining.set()
        deadline = time.monotonic() + grace_seconds
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            logger.warning("grace period over: stopping the images still running")
            self.hard_stop.set()
            for t in self._threads:
                t.join(5.0)
        self._stopped.set()
        if self._monitor is not None:
            self._monitor.join(2.0)
        if self._cpu is not None:
            self._cpu.shutdown(wait=True, cancel_futures=True)

    # -- monitor: renew leases, read cancel flags, reap dead workers' leases -----------------
    def _watch(self) -> None:
        last_reap = 0.0
        while not self._stopped.wait(self.poll_seconds):
            try:
                with self._active_lock:
                    active = list(self._active.values())
                if active:
                    flagged = self.store.cancel_requested([a.lease.job_id for a in active])
                    for a in active:
                        if a.lease.job_id in flagged:
                            a.cancel.set()
                now = time.monotonic()
                for a in active:
                    if now >= a.deadline:
                        a.timed_out.set()
                    if now - a.renewed_at >= self.lease_seconds / 3:
                        state = self.store.renew(a.lease, self.lease_seconds)
                        a.renewed_at = now
                        if not state.alive:
                            a.lost.set()
                        elif state.cancel_requested:
                            a.cancel.set()
                if now - last_reap >= max(1.0, self.lease_seconds / 3):
                    last_reap = now
                    self.store.reap_expired()
            except Exception:  # keep watching: a transient store error must not stop renewals
                logger.exception("lease monitor error")

    # -- workers ---------------------------------------------------------------------------
    def _run(self, owner: str) -> None:
        try:
            while not self.draining.is_set():
                try:
                    lease = self.store.claim(owner, self.lease_seconds, wait=self.claim_wait)
                except Exception:
                    logger.exception("claim failed")
                    self.draining.wait(self.claim_wait)
                    continue
                if lease is None:
                    self._drop_reader()  # idle: let go of the last chunk's archive
                    continue
                active = self._track(lease)
                try:
                    self._work(active)
                except Exception as exc:  # noqa: BLE001 - logged in _give_up_or_release
                    self._give_up_or_release(active, exc)
                finally:
                    self._untrack(lease)
        finally:
            self._drop_reader()

    def _track(self, lease: Lease) -> _Active:
        active = _Active(lease)
        with self._active_lock:
            self._active[(lease.job_id, lease.token)] = active
        return active

    def _untrack(self, lease: Lease) -> None:
        with self._active_lock:
            self._active.pop((lease.job_id, lease.token), None)

    def _give_up_or_release(self, active: _Active, exc: Exception) -> None:
        """A job that keeps failing its worker fails after ``max_attempts`` claims without
        progress; before that it goes back to the queue (the fault may have been this node's)."""
        lease = active.lease
        attempts = lease.attempts + 1
        if attempts < self.max_attempts:
            logger.exception("job %s: worker error; lease released", lease.job_id)
            self.store.release(lease, crashed=True)
            return
        logger.exception("job %s: failed on %d attempts; giving up", lease.job_id, attempts)
        self._give_up(active, attempts, type(exc).__name__)

    def _give_up(self, active: _Active, attempts: int, what: str) -> None:
        error = {
            "code": "internal_error",
            "detail": f"processing failed {attempts} times ({what})",
            "attempts": attempts,
        }
        try:
            self._finish(active, error=error)
        except Exception:  # the store or blobs are failing: leave it to a later claim
            logger.exception("job %s: could not record the failure", active.lease.job_id)
            self.store.release(active.lease, crashed=True)

    def _check(self, active: _Active) -> None:
        if active.lost.is_set():
            raise _Stop("lost")
        if active.cancel.is_set():
            raise _Stop("cancel")
        if active.timed_out.is_set():
            raise _Stop("timeout")
        if self.draining.is_set():
            raise _Stop("drain")

    def _work(self, active: _Active) -> None:
        lease = active.lease
        if lease.attempts >= self.max_attempts:
            # Earlier claims crashed (or failed) without moving the job forward.
            logger.error("job %s: %d claims ended without progress", lease.job_id, lease.attempts)
            self._give_up(active, lease.attempts, "its worker stopped")
            return
        if lease.assemble:  # every chunk is done: only the results document is left
            self._finish(active, error=None)
            return
        try:
            job = self.store.get(lease.job_id)
        except JobNotFound:
            return
        done = self.store.done_items(lease.job_id)
        kwargs = self.extract_kwargs(job.options)
        analyse = self.analysis_for(job.options)
        # The limit counts from the job's first start, across claims (time.time: the store's
        # times are wall-clock seconds).
        ran = time.time() - job.started_at if job.started_at is not None else 0.0
        active.deadline = time.monotonic() + self.job_timeout_seconds - max(0.0, ran)

        def should_cancel() -> bool:
            return (
                active.cancel.is_set()
                or active.lost.is_set()
                or active.timed_out.is_set()
                or self.hard_stop.is_set()
            )

        last_notify = 0.0
        # Images finished but not yet recorded: they go to the store with the next image's
        # start, one write for both (a moment later: the next entry is read in between), or
        # on their own when nothing starts next.
        pending: list[ItemResult] = []

        def record(started: dict[ItemKey, str] | None = None) -> None:
            nonlocal last_notify
            if not pending:
                if started and not self.store.start_items(lease, started):
                    raise _Stop("lost")
                return
            now = time.monotonic()
            notify = now - last_notify >= 1.0
            if notify:
                last_notify = now
            if not self.store.progress(
                lease,
                pending,
                None,
                notify=notify,
                lease_seconds=self.lease_seconds,
                started=started,
            ):
                raise _Stop("lost")
            active.renewed_at = now
            for item in pending:
                self.on_item(item.status)
            pending.clear()

        def settle_until(limit: int) -> None:
            while len(window) > limit:
                item = self._wait(window[0], active)
                # An image that finished after the job had to stop is recorded only by a drain
                # (it stays in the window for the unwinding below), so what a cancel or the time
                # limit keeps does not depend on when this thread woke.
                self._check(active)
                window.popleft()
                pending.append(item)

        # Images of one job are extracted on the shared CPU pool, up to ``threads`` at once,
        # while this thread reads the next archive entries and commits finished ones in order.
        # An image that was in flight when an earlier claim crashed runs on its own, so a crash
        # now is counted against it alone.
        window: deque[Future[ItemResult] | ItemResult] = deque()
        try:
            if active.cancel.is_set():
                raise _Stop("cancel")
            for inp in self.store.inputs(lease.job_id):
                entries = None if lease.chunk is None else lease.chunk.covers(inp.seq)
                if lease.chunk is not None and entries is None:
                    continue  # another chunk's input
                for task in self._tasks(inp, done, active, entries):
                    if isinstance(task, ItemResult):
                        window.append(task)
                        settle_until(self.threads_wanted)
                        continue
                    alone = task.key in lease.suspects
                    if alone:
                        settle_until(0)
                    record(started={task.key: task.name})
                    window.append(self._submit(task, kwargs, analyse, should_cancel))
                    settle_until(0 if alone else self.threads_wanted)
            settle_until(0)
            record()
        except _Stop as stop:
            # Images queued behind other jobs' images never start; those already running finish
            # (a drain keeps them; a cancel throws them away).
            for queued in window:
                if isinstance(queued, Future):
                    queued.cancel()
            self._settle(window, pending.append if stop.reason == "drain" else None)
            try:
                record()  # what finished before the stop, as if recorded at once
            except _Stop:
                stop = _Stop("lost")
            if stop.reason == "timeout" or (stop.reason == "interrupted" and active.timed_out.is_set()):
                self._finish(active, error=self._timeout_error())
                return
            self._stop(active, stop.reason)
            return
        except Exception as exc:
            if not isinstance(exc, PaletteError):
                self._settle(window, None)
                with suppress(Exception):  # keep what finished; the error below is the news
                    record()
                raise
            # The archive itself failed (a limit, corruption): keep what finished, fail the job.
            try:
                self._settle(window, pending.append)
                record()
            except _Stop as stop:
                self._stop(active, stop.reason)
                return
            self._finish(active, error=error_fields(exc))
            return
        if lease.chunk is None:
            self._finish(active, error=None)
        else:
            self._finish_chunk(active)

    def _finish_chunk(self, active: _Active) -> None:
        """This chunk's images are recorded; whoever finishes the last chunk assembles the job."""
        outcome = self.store.finish_chunk(active.lease, self.lease_seconds)
        if outcome is False:
            logger.warning("job %s: chunk lease lost", active.lease.job_id)
            return
        if isinstance(outcome, Lease):
            assembly = self._track(outcome)
            try:
                self._finish(assembly, error=None)
            finally:
                self._untrack(outcome)

    @staticmethod
    def _settle(
        window: deque[Future[ItemResult] | ItemResult],
        record: Callable[[ItemResult], None] | None,
    ) -> None:
        """Wait for every image still in flight; record the ones that finished when asked."""
        while window:
            task = window.popleft()
            try:
                item = _resolve(task)
            except (_Stop, CancelledError):
                continue
            if record is not None:
                record(item)

    def _wait(self, task: Future[ItemResult] | ItemResult, active: _Active) -> ItemResult:
        """The image's result. The image may sit queued behind other jobs' images in the shared
        pool, so the wait ends as soon as this job must stop (cancel, lost lease, drain)."""
        while isinstance(task, Future):
            try:
                return task.result(timeout=self.poll_seconds)
            except FutureTimeout:
                self._check(active)
        return task

    def _submit(
        self,
        image: _Image,
        kwargs: dict[str, Any],
        analyse: AnalyseFn | None,
        should_cancel: Callable[[], bool],
    ) -> Future[ItemResult]:
        assert self._cpu is not None, "pool not started"
        held = ExitStack()
        source = held.enter_context(image.source)
        seq, index = image.key
        future = self._cpu.submit(
            self._extract_one, seq, index, image.name, source, kwargs, analyse, should_cancel
        )
        future.add_done_callback(lambda _: held.close())
        return future

    def _tasks(
        self, inp: JobInput, done: set[ItemKey], active: _Active, entries: range | None = None
    ) -> Iterator[_Image | ItemResult]:
        """The images of one input not done yet (only ``entries`` of it, for a chunk)."""
        if inp.kind == "image":
            if (inp.seq, 0) in done or (entries is not None and 0 not in entries):
                return
            self._check(active)
            # A file on this machine: the library streams it instead of holding a copy.
            yield _Image((inp.seq, 0), inp.name, self.blobs.as_file(inp.blob_key))
            return
        if self.open_archive is None:
            raise RuntimeError("archive support is not available")
        if entries is None:  # a whole job is one read, and checks the directory itself
            with self.blobs.open(inp.blob_key) as f, self.open_archive(f, None) as reader:
                yield from self._entries(inp, reader.entries(), 0, done, active)
            return
        # A chunk reads its part against the directory submit checked. The archive stays open
        # for this thread's next chunk of it, so a job of many chunks loads its directory once
        # per thread rather than once per chunk (53-73 ms a chunk for 10,000 entries, as measured).
        reader = self._reader(inp)
        try:
            yield from self._entries(inp, reader.entries(entries), entries.start, done, active)
        except BaseException:  # an error or a stop part way: open it afresh next time
            self._drop_reader()
            raise

    def _entries(
        self, inp: JobInput, parts: Iterator[Any], first: int, done: set[ItemKey], active: _Active
    ) -> Iterator[_Image | ItemResult]:
        for index, entry in enumerate(parts, start=first):
            if (inp.seq, index) in done:
                continue
            self._check(active)
            if entry.data is None:
                yield ItemResult(
                    inp.seq,
                    index,
                    entry.name,
                    "skipped",
                    error={"code": "skipped", "detail": str(entry.skipped_reason)},
                )
                continue
            yield _Image((inp.seq, index), entry.name, nullcontext(entry.data))

    def _reader(self, inp: JobInput) -> Any:
        held: _HeldArchive | None = getattr(self._held, "archive", None)
        if held is not None and held.blob_key == inp.blob_key:
            return held.reader
        self._drop_reader()
        assert self.open_archive is not None
        with ExitStack() as resources:
            f = resources.enter_context(self.blobs.open(inp.blob_key))
            reader = resources.enter_context(self.open_archive(f, inp))
            self._held.archive = _HeldArchive(inp.blob_key, reader, resources.pop_all())
        return reader

    def _drop_reader(self) -> None:
        held: _HeldArchive | None = getattr(self._held, "archive", None)
        self._held.archive = None
        if held is not None:
            held.resources.close()

    def _extract_one(
        self,
        seq: int,
        index: int,
        name: str,
        data: str | bytes | BinaryIO,
        kwargs: dict[str, Any],
        analyse: AnalyseFn | None,
        should_cancel: Callable[[], bool],
    ) -> ItemResult:
        analysis = None
        try:
            palette = self.extract(data, should_cancel=should_cancel, **kwargs)
            if analyse is not None:
                if not isinstance(data, (str, bytes)):
                    data.seek(0)  # a stream: extract read it to the end
                analysis = analyse(data, should_cancel)
        except CanceledError:
            raise _Stop("interrupted") from None
        except PaletteError as exc:
            error = error_fields(exc)
            if isinstance(data, str):
                error = _without_path(error, data, name)
            return ItemResult(seq, index, name, "failed", error=error)
        except Exception as exc:  # one bad image must not poison its whole job
            logger.exception("unexpected error extracting %r", name)
            error = {"code": "internal_error", "detail": f"{type(exc).__name__} while decoding"}
            return ItemResult(seq, index, name, "failed", error=error)
        stored = _stored(palette.to_dict(), analysis)
        return ItemResult(seq, index, name, "succeeded", palette=stored)

    def _timeout_error(self) -> dict[str, Any]:
        return {
            "code": "job_timeout",
            "detail": f"the job ran longer than {self.job_timeout_seconds:g} s; images not "
            "finished by then were not processed",
            "limit_seconds": self.job_timeout_seconds,
        }

    def _stop(self, active: _Active, reason: str) -> None:
        lease = active.lease
        if reason == "interrupted":
            # The library stopped mid-image: tell apart a cancel, a lost lease and a hard stop.
            if active.lost.is_set():
                reason = "lost"
            elif active.cancel.is_set():
                reason = "cancel"
            else:
                reason = "drain"
        if reason == "lost":
            logger.warning("job %s: lease lost; another worker owns it now", lease.job_id)
            return
        if reason == "drain":
            if self.store.release(lease):
                logger.info("job %s: handed back to the queue (draining)", lease.job_id)
            return
        if self.store.acknowledge_cancel(lease):
            self.blobs.delete_prefix(f"uploads/{lease.job_id}")
            self.on_job("canceled")
            logger.info("job %s: canceled", lease.job_id)

    def _finish(self, active: _Active, *, error: dict[str, Any] | None) -> None:
        lease = active.lease
        inputs = {i.seq: i.name for i in self.store.inputs(lease.job_id)}
        palettes: list[tuple[int, dict[str, Any]]] = []

        def documents() -> Iterator[dict[str, Any]]:
            for n, item in enumerate(self.store.iter_items(lease.job_id)):
                palette, analysis = _unstored(item.palette)
                if palette is not None and item.status == "succeeded":
                    palettes.append((n, palette))
                document = {
                    "index": n,
                    "input": inputs.get(item.input_seq, ""),
                    "name": item.name,
                    "status": item.status,
                    "palette": palette,
                    "error": item.error,
                }
                if analysis is not None:
                    document["analysis"] = analysis
                yield document

        key = f"results/{lease.job_id}/{lease.token}.json"
        result = write_results(self.blobs, key, lease.job_id, documents(), error)
        finished = (
            self.store.complete(lease, result)
            if error is None
            else self.store.fail(lease, error, result)
        )
        if finished:
            self.blobs.delete_prefix(f"uploads/{lease.job_id}")
            self.on_job("succeeded" if error is None else "failed")
            if self.on_results is not None and palettes:
                try:
                    self.on_results(lease.job_id, palettes)
                except Exception:  # the job is done; only its search entries are missing
                    logger.exception("job %s: palettes not indexed for search", lease.job_id)
            return
        self.blobs.delete(key)
        if self.store.renew(lease, self.lease_seconds).alive:
            # Only a cancel request blocks completion for the lease owner.
            self._stop(active, "cancel")


# An image's analysis (jobs with ``analyze``) is kept in the store with its palette, under a
# key no palette document has, so every backend keeps it without a schema change; the results
# document lists it beside the palette.
_ANALYSIS_KEY = "analysis"


def _stored(palette: dict[str, Any], analysis: dict[str, Any] | None) -> dict[str, Any]:
    return palette if analysis is None else {**palette, _ANALYSIS_KEY: analysis}


def _unstored(
    stored: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(palette, analysis) of what ``_stored`` kept."""
    if stored is None or _ANALYSIS_KEY not in stored:
        return stored, None
    palette = dict(stored)
    analysis = palette.pop(_ANALYSIS_KEY)
    return palette, analysis


def _resolve(task: Future[ItemResult] | ItemResult) -> ItemResult:
    return task.result() if isinstance(task, Future) else task


def _without_path(error: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    """The library names the file it read; the client knows it by its upload name, and the
    server's directory layout is none of its business."""
    return {
        key: value.replace(path, name) if isinstance(value, str) else value
        for key, value in error.items()
    }

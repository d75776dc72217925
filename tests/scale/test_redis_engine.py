"""What only the Redis engine promises, on real Redis servers: one Cluster slot per partition,
chunks that different workers run at once, crash re-runs of one chunk, round-robin across
tenants with a cap, and dead letters decided in the claim."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conformancetools import FakeClock, distributed, item
from scaletools import keys_with_slots

from service.backends import Backends
from service.jobs.interfaces import ItemResult, JobInput, Lease, NewJob, ResultInfo
from service.redis.keys import partition_of
from service.settings import Settings


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["redis", "cluster"])
def open_redis(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[..., Backends]]:
    factory = distributed(request.param, "local")
    opened: list[Backends] = []

    def open_one(**overrides: object) -> Backends:
        values: dict[str, object] = {"data_dir": tmp_path / "data", "retention_seconds": 100.0}
        values.update(overrides)
        backends = factory(Settings(**values), clock)  # type: ignore[arg-type]
        opened.append(backends)
        return backends

    yield open_one
    for backends in opened:
        backends.close()


def big_job(backend: Backends, tenant: str = "t1", zip_entries: int = 5) -> NewJob:
    """An upload, a ZIP of ``zip_entries`` files and another upload."""
    job_id = backend.jobs.new_job_id(tenant)
    inputs = [
        JobInput(0, "a.jpg", f"uploads/{job_id}/0", "image", 10, 1),
        JobInput(1, "b.zip", f"uploads/{job_id}/1", "zip", 10, zip_entries),
        JobInput(2, "c.jpg", f"uploads/{job_id}/2", "image", 10, 1),
    ]
    return NewJob(job_id, tenant, {"colors": 4}, inputs, None, zip_entries + 2)


def done(seq: int, index: int) -> ItemResult:
    return ItemResult(seq, index, f"{seq}-{index}", "succeeded", palette={"colors": []})


def test_every_key_of_a_partition_lives_in_its_slot(open_redis: Callable[..., Backends]) -> None:
    backend = open_redis(chunk_images=2, redis_partitions=4)
    jobs = backend.jobs
    for tenant in ("t1", "t2", "t3", "t4", "t5"):
        keys = backend.idempotency
        assert keys.idempotency_begin(tenant, "k", "POST", "/v1/jobs") == "new"
        job = jobs.submit(big_job(backend, tenant))
        lease = jobs.claim("w", 10)
        assert lease is not None
        assert jobs.start_items(lease, {(0, 0): "a.jpg"})
        assert jobs.progress(lease, [done(0, 0)], None, notify=True)
        jobs.cancel(job.id, tenant)
    backend.palette_cache.cache_put({"k": b"body"})
    backend.secrets.get_or_create("s", lambda: "v")
    names = keys_with_slots(backend)
    assert len(names) > 40  # the workload wrote a real spread of keys
    by_tag: dict[str, set[int]] = {}
    for name, slot in names.items():
        assert name.startswith("pe:{"), name
        by_tag.setdefault(name[4 : name.index("}")], set()).add(slot)
    assert all(len(slots) == 1 for slots in by_tag.values()), by_tag
    partitions = {tag for tag in by_tag if tag.startswith("p")}
    assert partitions == {f"p{partition_of(t, 4)}" for t in ("t1", "t2", "t3", "t4", "t5")}


def test_chunks_run_on_different_workers_and_assemble_once(
    open_redis: Callable[..., Backends],
) -> None:
    backend = open_redis(chunk_images=3)
    jobs = backend.jobs
    job_id = jobs.submit(big_job(backend)).id  # 7 images -> chunks of 3, 3, 1
    leases = [jobs.claim(f"w{n}", 10) for n in range(4)]
    assert leases[3] is None  # three chunks, three claims
    chunks = [lease.chunk for lease in leases[:3] if lease is not None]
    assert [c.index for c in chunks if c] == [0, 1, 2]
    assert [c.spans for c in chunks if c] == [
        ((0, 0, 1), (1, 0, 2)),
        ((1, 2, 5),),
        ((2, 0, 1),),
    ]
    assert len({lease.token for lease in leases if lease}) == 3
    first, second, third = (lease for lease in leases if lease is not None)
    assert jobs.progress(third, [done(2, 0)], None)
    assert jobs.finish_chunk(third, 10) is True  # others still running
    assert jobs.progress(first, [done(0, 0), done(1, 0), done(1, 1)], None)
    assert jobs.finish_chunk(first, 10) is True
    assert not jobs.complete(first, ResultInfo("k", "d", 1))  # a chunk lease is spent
    assert jobs.progress(second, [done(1, 2), done(1, 3), done(1, 4)], None)
    assembly = jobs.finish_chunk(second, 10)
    assert isinstance(assembly, Lease) and assembly.assemble and assembly.chunk is None
    assert jobs.finish_chunk(second, 10) is False  # once only
    assert jobs.get(job_id).status == "running"
    assert [(i.input_seq, i.entry_index) for i in jobs.iter_items(job_id)] == [
        (0, 0), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 0)
    ]  # input order, whatever order the chunks finished in
    assert jobs.complete(assembly, ResultInfo("k", "d", 1))
    job = jobs.get(job_id)
    assert job.status == "succeeded" and job.progress.done == 7
    assert jobs.claim("w", 10) is None and jobs.counts() == {"succeeded": 1}


def test_a_dead_worker_reruns_its_chunk_only(
    open_redis: Callable[..., Backends], clock: FakeClock
) -> None:
    backend = open_redis(chunk_images=3)
    jobs = backend.jobs
    job_id = jobs.submit(big_job(backend)).id
    a, b = jobs.claim("wa", 10), jobs.claim("wb", 10)
    assert a is not None and b is not None and a.chunk and b.chunk
    assert jobs.start_items(b, {(1, 2): "x", (1, 3): "y"})
    assert jobs.progress(b, [done(1, 2)], None)  # then wb is killed mid-chunk
    clock.advance(6)
    assert jobs.renew(a, 10).alive  # wa is fine
    clock.advance(5)
    rerun = jobs.claim("wc", 10)  # back in its place in the queue: before chunk 2
    assert rerun is not None and rerun.chunk is not None and rerun.chunk.index == 1
    assert rerun.suspects == {(1, 3)}  # only the image in flight, (1, 2) is done
    last = jobs.claim("wc", 10)
    assert last is not None and last.chunk is not None and last.chunk.index == 2
    assert jobs.done_items(job_id) == {(1, 2)}
    assert not jobs.progress(b, [done(1, 3)], None)  # the dead worker's lease is fenced
    assert jobs.renew(a, 10).alive and jobs.get(job_id).status == "running"


def test_tenants_are_served_round_robin_with_a_cap(open_redis: Callable[..., Backends]) -> None:
    backend = open_redis(redis_partitions=1, tenant_max_running=2)
    jobs = backend.jobs

    def submit(tenant: str) -> str:
        job_id = jobs.new_job_id(tenant)
        made = NewJob(job_id, tenant, {}, [JobInput(0, "a", f"uploads/{job_id}/0", "image", 1)], None, 1)
        return jobs.submit(made).id

    heavy = [submit("heavy") for _ in range(10)]
    light = submit("light")
    first = jobs.claim("w", 10)
    second = jobs.claim("w", 10)
    assert first is not None and second is not None
    assert {first.job_id, second.job_id} == {heavy[0], light}  # one each, light not behind 10
    third = jobs.claim("w", 10)
    assert third is not None and third.job_id == heavy[1]
    assert jobs.claim("w", 10) is None  # heavy is at its cap of 2 running; light has none queued
    assert jobs.release(third)
    fourth = jobs.claim("w", 10)
    assert fourth is not None and fourth.job_id == heavy[1]


def test_a_tenant_of_the_next_partition_gets_the_next_claim(
    open_redis: Callable[..., Backends],
) -> None:
    """Across partitions too, a light tenant waits one claim, not one per busy partition."""
    backend = open_redis(redis_partitions=8)
    jobs = backend.jobs
    heavy_tenant, light_tenant = "tenant-a", "tenant-d"
    assert partition_of(light_tenant, 8) == partition_of(heavy_tenant, 8) + 1  # the worst case

    def submit(tenant: str) -> str:
        job_id = jobs.new_job_id(tenant)
        one = [JobInput(0, "a", f"uploads/{job_id}/0", "image", 1)]
        return jobs.submit(NewJob(job_id, tenant, {}, one, None, 1)).id

    heavy = [submit(heavy_tenant) for _ in range(4)]
    first = jobs.claim("w", 10)
    assert first is not None and first.job_id == heavy[0]
    light = submit(light_tenant)
    after = [jobs.claim("w", 10) for _ in range(2)]
    assert [lease.job_id if lease else None for lease in after] == [light, heavy[1]]


def test_a_claim_runs_the_claim_script_only_in_partitions_with_work(
    open_redis: Callable[..., Backends], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pipelined probe, then the script where it can find something: a queued task, or a
    lease that has run out (the claim reaps it first)."""
    backend = open_redis(redis_partitions=8)
    jobs = backend.jobs
    calls: list[tuple[str, str]] = []
    run = jobs.run

    def counted(tag: str, op: str, **args: Any) -> Any:
        calls.append((tag, op))
        return run(tag, op, **args)

    monkeypatch.setattr(jobs, "run", counted)
    job_id = jobs.submit(big_job(backend, "tenant-a")).id
    tag = jobs.tag_of_job(job_id)
    calls.clear()
    assert jobs.claim("w", 5) is not None
    assert calls == [(tag, "claim")]  # not one script per partition
    calls.clear()
    assert jobs.claim("w", 5) is None
    assert calls == []  # nothing queued and no lease out of time: no script at all
    clock.advance(6)  # the lease runs out: the claim reaps it and hands the job out again
    lease = jobs.claim("w", 5)
    assert lease is not None and lease.job_id == job_id and calls == [(tag, "claim")]


def test_a_task_that_keeps_dying_is_a_dead_letter_at_claim(
    open_redis: Callable[..., Backends], clock: FakeClock
) -> None:
    backend = open_redis()
    jobs = backend.jobs
    job_id = jobs.submit(big_job(backend)).id
    for _ in range(5):
        assert jobs.claim("w", 5) is not None
        clock.advance(6)  # the worker died each time before doing anything
    assert jobs.claim("w", 5) is None  # the claim gave it up instead of handing it out
    job = jobs.get(job_id)
    assert job.status == "failed" and job.error is not None
    assert job.error["code"] == "internal_error" and job.error["attempts"] == 5
    events = [e.type for e in backend.events.read("t")]
    assert events[-1] == "job.failed"


def test_backlog_counts_images_of_unfinished_jobs(open_redis: Callable[..., Backends]) -> None:
    backend = open_redis()
    jobs = backend.jobs
    jobs.submit(big_job(backend, "t1"))
    other = jobs.submit(big_job(backend, "t2", zip_entries=1)).id
    assert jobs.backlog("t1") == (7, 10)
    jobs.cancel(other, "t2")
    assert jobs.backlog("t1") == (7, 7) and jobs.backlog("t2") == (0, 7)


def test_a_chunk_reads_its_part_against_the_directory_submit_checked(
    open_redis: Callable[..., Backends], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submit walks a ZIP's directory once (``scan_directory``); what it found is stored with
    the input, and each chunk's read is checked against it instead of walking it again."""
    import dataclasses
    import io
    import zipfile

    from palette_native import archive as library
    from palette_native.errors import ArchiveError

    from service.engine import Engine

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("dir/", b"")
        for n in range(5):
            zf.writestr(f"dir/{n}.txt", b"not an image %d" % n)
    data = buffer.getvalue()
    settings = Settings(data_dir=tmp_path / "engine")
    engine = Engine(settings, extract=lambda *a, **k: None)
    summary = engine.scan_directory(io.BytesIO(data))
    backend = open_redis(chunk_images=2)
    job_id = backend.jobs.new_job_id("t1")
    zipped = JobInput(
        0, "a.zip", f"uploads/{job_id}/0", "zip", len(data), summary.files,
        summary.entries, summary.directory_bytes,
    )
    backend.jobs.submit(NewJob(job_id, "t1", {}, [zipped], None, summary.files))
    (stored,) = backend.jobs.inputs(job_id)
    assert stored == zipped and stored.directory_entries == 6  # the folder is a record too

    walks: list[int] = []
    real_walk = library._scan_directory
    monkeypatch.setattr(
        library, "_scan_directory", lambda fp, limits: walks.append(1) or real_walk(fp, limits)
    )
    def names(reader: Any, part: range | None = None) -> list[str]:
        return [e.name for e in reader.entries(part)]

    with engine.open_archive(io.BytesIO(data), stored) as reader:  # one reader, three chunks
        parts = [names(reader, range(n, n + 2)) for n in (0, 2, 4)]
    assert parts == [["dir/0.txt", "dir/1.txt"], ["dir/2.txt", "dir/3.txt"], ["dir/4.txt"]]
    assert walks == []
    with engine.open_archive(io.BytesIO(data)) as reader:
        assert names(reader) == [f"dir/{n}.txt" for n in range(5)]
    assert walks == [1]  # a whole read walks it itself
    unknown = dataclasses.replace(stored, directory_entries=0, directory_bytes=0)
    with engine.open_archive(io.BytesIO(data), unknown) as reader:
        names(reader, range(0, 1))
    assert walks == [1, 1]  # an input stored without the scan: the chunk walks it
    wrong = dataclasses.replace(stored, directory_entries=7)
    with pytest.raises(ArchiveError, match="scanned before"):
        engine.open_archive(io.BytesIO(data), wrong)

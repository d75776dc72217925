"""The service under load: ``python -m service serve`` (what ``palette serve`` runs) in one
process, a load generator in another, the library called directly as the baseline.

* ``test_sync_palette_under_load``: ``POST /v1/palette`` with the 1-3 MP corpus JPEGs from 8
  concurrent keep-alive clients. Bar: p95 < 100 ms and throughput >= 85 % of calling
  ``palette_native.extract`` from two threads on the same bytes in the same run. The run also
  reports the CPU per request of the server, the library and the load generator, and of the
  HTTP floor (``http_floor.py``: uvicorn and Starlette reading and hashing the same bodies
  with no engine behind them) under the same load.
  The server runs as exposed to many tenants: every request carries a product API key
  (``pal_live_...``, checked against its stored HMAC) and counts against per-client rate limits
  (set above this one client's load).
* ``test_gate_cost_per_request``: the server CPU one request costs at the gate (route match,
  policy row, API key or OIDC token, rate-limit counters, RateLimit headers), from a cheap
  request answered from memory, open and unlimited against each kind of credential.
* ``test_one_gigabyte_zip_job_memory`` (slow): a 1 GB stored ZIP of photos as one job, with
  encryption at rest off and on; the server's peak RSS (VmHWM) stays under 300 MB.

Every request carries distinct bytes (a counter after the JPEG's end marker, which decoders
never read), so the content-addressed cache never answers for the library and both sides do the
same work. Run as a script with
``loadgen`` to get the load generator on its own.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]

CLIENTS = 8
DURATION_S = float(os.environ.get("PALETTE_BENCH_SERVICE_SECONDS", "20"))
P95_BAR_S = 0.100
THROUGHPUT_BAR = 0.85
CI_THROUGHPUT_GUARD = 0.40
"""Under --benchmark-disable (CI) the server runs under coverage tracing while the library's
hot loops are C++ and untraced, so the ratio there says little about the bar: 0.56 in CI
against 0.66 timed on 2026-12-02 (the bar itself is reported and not met). CI asserts this
guard instead, which a service twice as slow per request would fail."""
RSS_BAR_MB = 300.0


# -- inputs ---------------------------------------------------------------------------------
def photo_bytes() -> list[bytes]:
    """1-3 MP JPEG photographs from the shared corpus.

    A missing or broken corpus is an error (``CorpusMissingError`` says which package to
    install), never a quiet switch to other pictures: the bars are stated for these photos.
    """
    from benchmarks.corpus import corpus_paths

    paths = corpus_paths(1.0, 3.0)
    assert len(paths) >= 4, f"the corpus has {len(paths)} photos of 1-3 MP; the load test needs 4"
    return [p.read_bytes() for p in paths]


def variant_parts(jpeg: bytes, n: int) -> tuple[memoryview, bytes]:
    """The same picture followed by unique bytes after its end marker, as (the original, the
    trailer): new bytes, identical decode work, and no copy of the megabytes."""
    return memoryview(jpeg), b"palette-bench-%d" % n


def variant(jpeg: bytes, n: int) -> bytes:
    return jpeg + variant_parts(jpeg, n)[1]


# -- the load generator (runs in its own process) --------------------------------------------
class _Connection:
    """A minimal HTTP/1.1 keep-alive client on a raw socket.

    The load generator shares the two cores with the server, so it must cost as little CPU as
    possible per request (httpx costs about ten times more); it still checks every status line
    and reads every body to the last byte.
    """

    def __init__(self, host: str, port: int, credential: str = "") -> None:
        # The credential (an API key or a token) from PALETTE_BENCH_CREDENTIAL when not given.
        credential = credential or os.environ.get("PALETTE_BENCH_CREDENTIAL", "")
        self.auth = f"Authorization: Bearer {credential}\r\n" if credential else ""
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def post(self, path: str, body: tuple[memoryview, bytes]) -> tuple[int, bytes]:
        length = sum(len(part) for part in body)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: image/jpeg\r\n"
            f"{self.auth}Content-Length: {length}\r\n\r\n"
        ).encode()
        self.sock.sendall(head)
        for part in body:
            self.sock.sendall(part)
        return self._answer()

    def get(self, path: str) -> tuple[int, bytes]:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{self.auth}\r\n".encode())
        return self._answer()

    def _answer(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        header, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = header.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            self._fill()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, payload

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def loadgen(
    url: str, clients: int, seconds: float, files: list[str], offset: int
) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    photos = [Path(f).read_bytes() for f in files]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(offset, 10**9))
    deadline = time.perf_counter() + seconds

    def client() -> None:
        conn = _Connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                with lock:
                    n = next(counter)
                body = variant_parts(photos[n % len(photos)], n)
                started = time.perf_counter()
                status, payload = conn.post("/v1/palette?colors=8", body)
                elapsed = time.perf_counter() - started
                with lock:
                    if status == 200 and payload.startswith(b'{"colors":[{'):
                        latencies.append(elapsed)
                    else:
                        errors.append(f"{status}: {payload[:200]!r}")
        finally:
            conn.close()

    began = time.perf_counter()
    cpu_began = time.process_time()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    # Its own CPU while it ran (not its start-up): it shares the cores with the server.
    cpu = time.process_time() - cpu_began
    return {"latencies": latencies, "errors": errors, "wall": wall, "cpu": cpu}


# -- helpers for the tests -------------------------------------------------------------------
def start_server(tmp_path: Path, env: dict[str, str] | None = None) -> Any:
    """``palette serve`` on a free loopback port with the tests' network guard (imported here:
    this file also runs as a plain script, the load generator, without the tests on its path)."""
    from servertools import ServiceProcess, write_guard

    return ServiceProcess(tmp_path / "data", write_guard(tmp_path / "netguard"), env).start(60)


def start_http_floor(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``benchmarks/http_floor.py`` under uvicorn as ``palette serve`` runs it (httptools, one
    event loop), on a free loopback port; returns the process and its URL once it answers."""
    from servertools import free_port, guarded_env, write_guard

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "benchmarks.http_floor:app", "--host", "127.0.0.1",
         "--port", str(port), "--http", "httptools", "--log-level", "warning",
         "--no-access-log"],
        cwd=REPO,
        # glibc's thresholds as `palette serve` sets them (service/cli.py): request-sized
        # buffers from the heap, not fresh mappings that fault in on every request.
        env=guarded_env(
            write_guard(tmp_path / "netguard-floor"),
            {"MALLOC_MMAP_THRESHOLD_": str(16 << 20), "MALLOC_TRIM_THRESHOLD_": str(32 << 20)},
        ),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the HTTP floor server exited"
        try:
            httpx.get(url + "/", timeout=1.0)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the HTTP floor server did not answer")


def mint_key(data_dir: Path, role: str = "member") -> str:
    """A product API key made with ``palette keys create`` (before the server starts)."""
    out = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-m", "service", "keys", "create", "--data-dir", str(data_dir),
         "--tenant", "bench", "--role", role],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def direct_throughput(photos: list[bytes], rounds: int, offset: int) -> tuple[float, float]:
    """Images per second from palette_native.extract on two threads (the baseline), and the
    CPU seconds it spent per image."""
    import palette_native

    bodies = [variant(photos[n % len(photos)], offset + n) for n in range(rounds * len(photos))]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(palette_native.extract, bodies[:4]))  # warm up
        started = time.perf_counter()
        cpu_started = time.process_time()
        palettes = list(pool.map(lambda b: palette_native.extract(b, colors=8), bodies))
        cpu = time.process_time() - cpu_started
        elapsed = time.perf_counter() - started
    assert all(len(p.colors) == 8 for p in palettes)
    return len(bodies) / elapsed, cpu / len(bodies)


def run_loadgen(
    url: str, files: list[Path], seconds: float, offset: int, credential: str = ""
) -> dict[str, Any]:
    out = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [
            sys.executable,
            __file__,
            "loadgen",
            url,
            str(CLIENTS),
            str(seconds),
            str(offset),
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=seconds + 120,
        env={**os.environ, "PALETTE_BENCH_CREDENTIAL": credential},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# -- benchmarks ------------------------------------------------------------------------------
@pytest.mark.e2e
def test_sync_palette_under_load(tmp_path: Path, report: Any, enforce_timing_bars: bool) -> None:
    photos = photo_bytes()
    files = []
    for n, data in enumerate(photos):
        path = tmp_path / f"photo{n}.jpg"
        path.write_bytes(data)
        files.append(path)
    key = mint_key(tmp_path / "data")  # auth and rate limits on, as exposed
    # One client sends all of this load: its limits are set above it (two windows, as the
    # default), so every request is counted and none is refused.
    server = start_server(tmp_path, {"PALETTE_RATE_LIMITS": "1000/second;60000/minute"})
    # The machine is shared, so the two sides alternate in short phases and are compared on
    # their medians: a burst of outside load then hits both, not one.
    phases = 3
    rounds = max(1, int(DURATION_S / phases * 30 / len(photos)))
    direct: list[float] = []
    direct_cpu: list[float] = []
    served: list[float] = []
    served_cpu = 0.0
    loadgen_cpu = 0.0
    latencies: list[float] = []
    errors: list[str] = []
    try:
        run_loadgen(server.url, files, 2.0, offset=10**6, credential=key)  # warm up
        for phase in range(phases):
            rate, cpu = direct_throughput(photos, rounds, offset=phase * 10**5)
            direct.append(rate)
            direct_cpu.append(cpu)
            cpu_before = server.cpu_seconds()
            result = run_loadgen(
                server.url, files, DURATION_S / phases, offset=(phase + 2) * 10**6, credential=key
            )
            served_cpu += server.cpu_seconds() - cpu_before
            loadgen_cpu += result["cpu"]
            served.append(len(result["latencies"]) / result["wall"])
            latencies += result["latencies"]
            errors += result["errors"]
        metrics = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    # The HTTP floor under the same load: what uvicorn and Starlette cost per request alone.
    from servertools import process_cpu_seconds

    floor, floor_url = start_http_floor(tmp_path)
    try:
        run_loadgen(floor_url, files, 1.0, offset=10**7)  # warm up
        cpu_before = process_cpu_seconds(floor.pid)
        floor_result = run_loadgen(floor_url, files, DURATION_S / phases, offset=2 * 10**7)
        floor_cpu = process_cpu_seconds(floor.pid) - cpu_before
    finally:
        floor.terminate()
        floor.wait(30)
    assert floor_result["errors"] == []
    floor_count = len(floor_result["latencies"])
    assert floor_count >= 50, f"only {floor_count} requests reached the HTTP floor server"
    assert errors == []
    # Every request was computed: distinct bytes, so the cache never answered.
    assert 'palette_palette_cache_total{result="hit"}' not in metrics
    latencies.sort()
    count = len(latencies)
    assert count >= 50, f"only {count} requests completed"
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (count - 1))]
    service_rps = statistics.median(served)
    direct_ips = statistics.median(direct)
    ratio = service_rps / direct_ips
    direct_phases = ", ".join(f"{d:.1f}" for d in direct)
    served_phases = ", ".join(f"{d:.1f}" for d in served)
    lines = [
        (
            f"- {len(photos)} photos of 1-3 MP, {CLIENTS} concurrent clients, {DURATION_S:.0f} s, "
            "server workers=2, load generator in a separate process; every request with a "
            "product API key and counted by per-client rate limits"
        ),
        (
            f"- service: {service_rps:.1f} req/s, p50 {p50 * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms (bar < {P95_BAR_S * 1000:.0f} ms), {count} requests"
        ),
        (
            f"- library direct, 2 threads: {direct_ips:.1f} img/s "
            f"(phases: {direct_phases}; service phases: {served_phases})"
        ),
        (
            f"- Little's law floor for the mean latency at {CLIENTS} clients: "
            f"{CLIENTS / direct_ips * 1000:.0f} ms"
        ),
        f"- service / direct = {ratio:.0%} (bar >= {THROUGHPUT_BAR:.0%})",
        (
            f"- CPU time per image (less sensitive to other load): server "
            f"{served_cpu / count * 1000:.1f} ms per request, library "
            f"{statistics.median(direct_cpu) * 1000:.1f} ms; the load generator "
            f"{loadgen_cpu / count * 1000:.2f} ms per request on the same cores"
        ),
        (
            f"- HTTP floor (benchmarks/http_floor.py: uvicorn + Starlette reading, hashing and "
            f"joining the same bodies, no engine, no gate): server "
            f"{floor_cpu / floor_count * 1000:.2f} ms per request "
            f"({floor_count / floor_result['wall']:.0f} req/s)"
        ),
    ]
    report.add("Service: POST /v1/palette under load", lines)
    from .conftest import CI_SLACK  # here, not at the top: this file also runs as a script

    # The bars as written in timed runs (meant for a quiet machine); loosened under
    # --benchmark-disable (CI), where every request must still succeed and be computed.
    slack = 1.0 if enforce_timing_bars else CI_SLACK
    guard = THROUGHPUT_BAR if enforce_timing_bars else CI_THROUGHPUT_GUARD
    assert ratio >= guard, f"service reached {ratio:.0%} of the library"
    if enforce_timing_bars:
        assert p95 < P95_BAR_S, f"p95 {p95 * 1000:.0f} ms"
    else:  # 8 clients queue on 2 cores: p95 tracks the per-image time more than the service
        assert p95 < CLIENTS * 2 * (1 / direct_ips) * slack, f"p95 {p95 * 1000:.0f} ms"


GATE_REQUESTS = 1500
GATE_BAR_MS = 0.5
"""The gate may add at most this much server CPU per request (measured 2-core shared box)."""
# Under --benchmark-disable (CI) the server runs under coverage tracing, which multiplies the
# cost of Python lines, and the gate is nothing but Python lines: 547 us for the API key in a
# CI run of 2026-12-03 against 120 us timed. CI asserts instead that the gate costs less than
# the rest of the cheapest request does (timed: 120 against 453 us; CI: 547 against 1093 us):
# a gate that costs twice what it does under tracing today fails it.


def _cpu_per_request(server: Any, path: str, credential: str) -> float:
    """Server CPU seconds per ``GET path`` over two keep-alive connections."""
    host, port = server.url.removeprefix("http://").split(":")
    conns = [_Connection(host, int(port), credential) for _ in range(2)]
    for conn in conns:  # warm: the key or token is verified once and then cached
        status, _ = conn.get(path)
        assert status == 200, status

    def run(conn: _Connection) -> None:
        for _ in range(GATE_REQUESTS // 2):
            status, _ = conn.get(path)
            assert status == 200, status

    before = server.cpu_seconds()
    threads = [threading.Thread(target=run, args=(conn,)) for conn in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = server.cpu_seconds() - before
    for conn in conns:
        conn.close()
    return cpu / GATE_REQUESTS


@pytest.mark.e2e
def test_gate_cost_per_request(tmp_path: Path, report: Any, enforce_timing_bars: bool) -> None:
    """What authentication, the policy table and rate limits cost the server per request.

    A palette answered from memory (``GET /v1/palettes/{digest}``) is the cheapest gated
    request, so the gate's share shows most. Each server is measured in three alternating
    rounds and compared on medians (the machine is shared with other work)."""
    from servertools import LoopbackIdP

    photo = photo_bytes()[0]
    idp = LoopbackIdP()
    limits = "100000/second;6000000/minute"  # two windows, as the default, never reached
    configs = {
        "open, no rate limit": ({"PALETTE_RATE_LIMITS": ""}, None),
        "product API key + rate limits": ({"PALETTE_RATE_LIMITS": limits}, "key"),
        "OIDC token + rate limits": (
            {
                "PALETTE_RATE_LIMITS": limits,
                "PALETTE_OIDC_ISSUER": idp.issuer,
                "PALETTE_OIDC_AUDIENCE": "palette-api",
            },
            "token",
        ),
    }
    servers: dict[str, tuple[Any, str, str]] = {}
    try:
        for n, (name, (env, kind)) in enumerate(configs.items()):
            folder = tmp_path / f"s{n}"
            credential = ""
            if kind == "key":
                credential = mint_key(folder / "data")
            elif kind == "token":
                credential = idp.token(tenant="bench", roles=["member"], expires_in=3600)
            server = start_server(folder, env)
            answer = httpx.post(
                server.url + "/v1/palette?colors=8",
                content=photo,
                headers={"authorization": f"Bearer {credential}"} if credential else {},
                timeout=60,
            )
            assert answer.status_code == 200, answer.text
            servers[name] = (server, answer.headers["content-location"], credential)
        costs: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(3):
            for name, (server, path, credential) in servers.items():
                costs[name].append(_cpu_per_request(server, path, credential))
    finally:
        for server, _, _ in servers.values():
            server.stop()
        idp.close()
    median = {name: statistics.median(values) for name, values in costs.items()}
    base = median["open, no rate limit"]
    lines = [
        (
            f"- {GATE_REQUESTS} x GET /v1/palettes/{{digest}} (answered from memory) per round, "
            "2 keep-alive clients, 3 alternating rounds, server CPU per request (median):"
        )
    ]
    for name, cost in median.items():
        extra = "" if name == "open, no rate limit" else f" (+{(cost - base) * 1e6:.0f} µs)"
        rounds = ", ".join(f"{v * 1e6:.0f}" for v in costs[name])
        lines.append(f"  - {name}: {cost * 1e6:.0f} µs{extra}; rounds {rounds} µs")
    report.add("Service: the gate's cost per request", lines)
    for name, cost in median.items():
        bar = GATE_BAR_MS / 1000 if enforce_timing_bars else base
        assert cost - base < bar, f"{name} adds {(cost - base) * 1e6:.0f} µs to {base * 1e6:.0f}"


def _zip_stream(photos: list[bytes], target_bytes: int, path: Path) -> int:
    count = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        while path.stat().st_size < target_bytes:
            zf.writestr(f"photos/{count:05d}.jpg", variant(photos[count % len(photos)], count))
            count += 1
    return count


@pytest.fixture(scope="module")
def gigabyte_zip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    archive = tmp_path_factory.mktemp("zip") / "big.zip"
    return archive, _zip_stream(photo_bytes(), 1_000_000_000, archive)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_one_gigabyte_zip_job_memory(
    tmp_path: Path, report: Any, gigabyte_zip: tuple[Path, int], encrypted: bool
) -> None:
    archive, entries = gigabyte_zip
    size = archive.stat().st_size
    key = base64.b64encode(os.urandom(32)).decode()
    server = start_server(tmp_path, {"PALETTE_ENCRYPTION_KEYS": f"k1:{key}"} if encrypted else {})
    try:
        started = time.monotonic()
        with open(archive, "rb") as f:
            r = httpx.post(server.url + "/v1/jobs", files={"file": ("big.zip", f)}, timeout=600)
        assert r.status_code == 202, r.text
        uploaded = time.monotonic() - started
        location = server.url + r.headers["location"]
        while True:
            job = httpx.get(location, timeout=10).json()
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(1)
        elapsed = time.monotonic() - started
        peak = server.peak_rss_mb()
        results = httpx.get(location + "/results", timeout=60)
    finally:
        server.stop()
    assert job["status"] == "succeeded", job
    assert job["progress"]["done"] == entries
    assert results.json()["count"] == entries
    if encrypted:  # the upload is at rest encrypted: no photo's bytes in the blob
        stored = b"".join(p.read_bytes()[:4096] for p in (tmp_path / "data").rglob("*") if p.is_file())
        assert archive.read_bytes()[:64] not in stored
    line = (
        f"- {size / 1e9:.2f} GB stored ZIP, {entries} photos, one job, encryption at rest "
        f"{'on' if encrypted else 'off'}: upload {uploaded:.0f} s, total {elapsed:.0f} s; "
        f"server peak RSS {peak:.0f} MB (bar < {RSS_BAR_MB:.0f} MB)"
    )
    report.add("Service: 1 GB ZIP job", [line])
    assert peak < RSS_BAR_MB


def _main(argv: list[str]) -> int:
    if len(argv) >= 5 and argv[0] == "loadgen":
        url, clients, seconds, offset, *files = argv[1:]
        result = loadgen(url, int(clients), float(seconds), files, int(offset))
        json.dump(result, sys.stdout)
        return 0
    print("usage: bench_service.py loadgen URL CLIENTS SECONDS OFFSET FILE...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))

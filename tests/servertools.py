"""A real ``palette serve`` on a free loopback port, for the service, UI and benchmark suites.

The child process carries a loopback-only network guard (its ``sitecustomize``): any name
lookup or connection that is not loopback is refused before a packet leaves.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from signal import SIGINT
from typing import Any

import httpx

__all__ = [
    "NETWORK_GUARD",
    "LoopbackIdP",
    "ServiceProcess",
    "free_port",
    "guarded_env",
    "process_cpu_seconds",
    "stat_cpu_seconds",
    "write_guard",
]

REPO_ROOT = Path(__file__).resolve().parents[1]

# Installed in server processes as their ``sitecustomize`` (the test process has the stricter
# guard in tests/conftest.py). Job callbacks make the webhooks package resolve and call whatever
# URL a test or a fuzzer puts in ``callback_url``: this refuses it unless it is loopback.
NETWORK_GUARD = """
import ipaddress as _ip
import socket as _socket

_real_getaddrinfo = _socket.getaddrinfo
_real_connect = _socket.socket.connect
_real_connect_ex = _socket.socket.connect_ex


def _is_loopback(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or host == "localhost":
        return True
    try:
        return _ip.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _is_loopback(host):
        raise _socket.gaierror(_socket.EAI_NONAME, f"test network guard: {host!r} is not loopback")
    return _real_getaddrinfo(host, *args, **kwargs)


def _check(sock, address):
    if sock.family in (_socket.AF_INET, _socket.AF_INET6) and not _is_loopback(address[0]):
        raise ConnectionRefusedError(f"test network guard: {address!r} is not loopback")


def _guarded_connect(self, address):
    _check(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check(self, address)
    return _real_connect_ex(self, address)


def install():
    _socket.getaddrinfo = _guarded_getaddrinfo
    _socket.socket.connect = _guarded_connect
    _socket.socket.connect_ex = _guarded_connect_ex


def uninstall():
    _socket.getaddrinfo = _real_getaddrinfo
    _socket.socket.connect = _real_connect
    _socket.socket.connect_ex = _real_connect_ex
"""


def write_guard(folder: Path) -> Path:
    """Make ``folder`` a ``sitecustomize`` folder that installs the guard; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(NETWORK_GUARD + "\ninstall()\n")
    return folder


def guarded_env(guard: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(guard), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used so far (Linux ``/proc``)."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def stat_cpu_seconds(stat: Path) -> float:
    """User + system CPU time in a ``/proc`` ``stat`` file: a process's, or one thread's
    (``/proc/PID/task/TID/stat``)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServiceProcess:
    """``python -m service serve`` as a child process; ``start`` returns once ``/readyz`` is 200."""

    def __init__(
        self,
        data_dir: Path,
        guard: Path,
        env: dict[str, str] | None = None,
        *,
        args: list[str] | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """``args``: more ``serve`` flags; with ``--ssl-certfile`` the server speaks HTTPS and
        ``verify`` (a context trusting its CA) checks its certificate."""
        self.data_dir = data_dir
        self.guard = guard
        self.env = {"PALETTE_LOG_LEVEL": "warning", **(env or {})}
        self.args = list(args or [])
        self.verify = verify
        self.scheme = "https" if "--ssl-certfile" in self.args else "http"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None  # set by start(), once the port is known

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        self.port = free_port()
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        # A node on Redis and S3 writes nothing to its data directory: make the folder the log
        # goes to here.
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "service",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    *self.args,
                ],
                cwd=REPO_ROOT,
                env=guarded_env(self.guard, self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                ready = httpx.get(self.url + "/readyz", timeout=1.0, verify=self.verify)
                if ready.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, sig: int = SIGINT) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far."""
        assert self.proc is not None
        return process_cpu_seconds(self.proc.pid)

    def peak_rss_mb(self) -> float:
        """The server's peak resident memory (VmHWM) so far."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc/PID/status")


class LoopbackIdP:
    """An OpenID provider on a loopback port: a discovery document and a JWKS, keys it can
    rotate, and real RS256 tokens signed with them (PyJWT). ``hits`` counts JWKS fetches;
    ``down`` makes it answer 503 (an outage)."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._jwt = jwt
        self._rsa = rsa
        self.keys: list[tuple[str, Any]] = []
        self.hits = 0
        self.down = False
        self.rotate()
        idp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if idp.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": idp.issuer, "jwks_uri": idp.issuer + "/jwks"}
                elif self.path == "/jwks":
                    idp.hits += 1
                    body = {"keys": [idp._public_jwk(kid, key) for kid, key in idp.keys]}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def rotate(self, keep_old: bool = False) -> str:
        """A new signing key (the old one stays published when ``keep_old``); its kid."""
        kid = f"k{len(self.keys) + 1}-{os.urandom(3).hex()}"
        key = self._rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys = [(kid, key), *(self.keys if keep_old else [])]
        return kid

    def _public_jwk(self, kid: str, key: Any) -> dict[str, Any]:
        import json

        jwk: dict[str, Any] = json.loads(self._jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}

    def token(
        self,
        *,
        tenant: str = "tenant-a",
        roles: Any = ("member",),
        audience: str = "palette-api",
        issuer: str | None = None,
        expires_in: float = 300,
        subject: str = "user-1",
        kid: str | None = None,
        key: Any = None,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": issuer or self.issuer,
            "aud": audience,
            "sub": subject,
            "iat": now,
            "exp": now + int(expires_in),
            "tenant": tenant,
            "roles": list(roles),
        }
        signing_kid, signing_key = self.keys[0]
        token: str = self._jwt.encode(
            claims, key or signing_key, algorithm="RS256", headers={"kid": kid or signing_kid}
        )
        return token

    def unsigned_token(self, **claims: Any) -> str:
        """``alg: none``: no signature at all."""
        import base64
        import json

        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        now = int(time.time())
        body = {"iss": self.issuer, "aud": "palette-api", "sub": "user-1", "exp": now + 300,
                "tenant": "tenant-a", "roles": ["admin"], **claims}
        return part({"alg": "none", "typ": "JWT", "kid": self.keys[0][0]}) + "." + part(body) + "."

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""Real Redis (standalone and Cluster) and a real S3 server (SeaweedFS) on loopback, for the
tests of the distributed backend. Nothing here is mocked: each helper starts the real program
on free 127.0.0.1 ports and stops it again."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RedisCluster",
    "RedisServer",
    "SeaweedS3",
    "free_port",
    "keys_with_slots",
    "redis_available",
    "scratch_dir",
    "s3_available",
]

ACCESS_KEY = "palette-test"
SECRET_KEY = "palette-test-secret-key"
REGION = "us-east-1"


def redis_available() -> bool:
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


def s3_available() -> bool:
    return shutil.which("weed") is not None


def free_port(below: int = 65536) -> int:
    """A free loopback port under ``below`` (a cluster node also needs port + 10000)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port < below:
            return port


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


@dataclass
class RedisServer:
    """``redis-server`` on a free loopback port; ``aof=True`` makes it durable across restarts."""

    directory: Path
    port: int = field(default_factory=free_port)
    aof: bool = False
    cluster: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.cluster and self.port >= 55536:
            self.port = free_port(below=55536)  # its cluster bus listens on port + 10000
        args = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.aof else "no",
            "--appendfsync", "everysec",
            "--logfile", str(self.directory / "redis.log"),
        ]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.process, "redis-server", 10.0)
        return self

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, check=True, text=True
        )
        return out.stdout

    def stop(self, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(10)
        self.process = None


@dataclass
class RedisCluster:
    """Three primaries, no replicas, made a cluster with ``redis-cli --cluster create``."""

    directory: Path
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self, size: int = 3) -> RedisCluster:
        self.nodes = [
            RedisServer(self.directory / f"node{n}", cluster=True).start() for n in range(size)
        ]
        subprocess.run(
            ["redis-cli", "--cluster", "create"]
            + [f"127.0.0.1:{n.port}" for n in self.nodes]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            check=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in n.cli("cluster", "info") for n in self.nodes):
                return self
            time.sleep(0.1)
        raise RuntimeError("the Redis cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@dataclass
class SeaweedS3:
    """SeaweedFS ``weed mini`` (master, volume, filer and S3 gateway in one process), bound to
    127.0.0.1, checking SigV4 signatures against one configured identity."""

    directory: Path
    bucket: str = "palette"
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        """What a process needs to reach it: the standard AWS variables."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }

    def start(self) -> SeaweedS3:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "palette",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        self.port = free_port()
        ports = {name: free_port() for name in (
            "master.port", "volume.port", "filer.port", "admin.port", "webdav.port",
        )}
        grpc = {f"{name}.grpc": free_port() for name in ("master.port", "volume.port", "filer.port", "s3.port", "admin.port")}
        args = [
            "weed", "mini",
            f"-dir={self.directory / 'data'}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}",
            f"-s3.config={config}",
            f"-bucket={self.bucket}",
            "-admin.ui=false", "-webdav=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]
        args += [f"-{name}={port}" for name, port in {**ports, **grpc}.items()]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with open(self.directory / "weed.log", "wb") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.directory
            )
        _wait_port(self.port, self.process, "weed mini", 60.0)
        self._wait_ready()
        return self

    def client(self) -> object:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}),
        )

    def _wait_ready(self) -> None:
        """The port opens before the filer and volumes are up: wait for a real write."""
        client = self.client()
        deadline = time.monotonic() + 60
        while True:
            try:
                client.put_object(Bucket=self.bucket, Key="ready", Body=b"ok")  # type: ignore[attr-defined]
                client.delete_object(Bucket=self.bucket, Key="ready")  # type: ignore[attr-defined]
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


def scratch_dir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"palette-{name}-"))


def keys_with_slots(backend: Any) -> dict[str, int]:
    """Every key on every primary of the Redis behind ``backend`` (a ``Backends``), with its
    slot: the node's own answer in a cluster (CLUSTER KEYSLOT), else the slot Redis would give
    it (CRC16 of the hash tag)."""
    import redis
    from redis.crc import key_slot

    client = backend.jobs.redis
    primaries = getattr(client, "get_primaries", None)
    if primaries is None:
        kwargs = client.connection_pool.connection_kwargs
        with redis.Redis(host=kwargs["host"], port=kwargs["port"]) as one:
            return {n.decode(): int(key_slot(n)) for n in one.scan_iter(count=1000)}
    found: dict[str, int] = {}
    for node in primaries():
        with redis.Redis(host=node.host, port=node.port) as one:
            for name in one.scan_iter(count=1000):
                found[name.decode()] = int(one.execute_command("CLUSTER KEYSLOT", name))
    return found

"""What the conformance suite (tests/conformance) builds on: the backends under test, a fake
clock and job builders. Importable from test modules (importlib mode: no conftest imports)."""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import os
from collections.abc import Callable
from typing import Any

import redis

from scaletools import RedisCluster, RedisServer, SeaweedS3, scratch_dir
from service.backends import Backends, open_backends
from service.jobs.interfaces import ItemResult, JobInput, NewJob
from service.settings import Settings

__all__ = ["FACTORIES", "FakeClock", "item", "new_job"]


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class _Servers:
    """The real servers the distributed backends run on: started on first use, once per test
    process, stopped at exit."""

    def __init__(self) -> None:
        self.started: dict[str, Any] = {}
        self.last_data_dir: dict[str, object] = {}

    def get(self, name: str) -> Any:
        if name not in self.started:
            made: Any = {
                "redis": lambda: RedisServer(scratch_dir("redis")).start(),
                "cluster": lambda: RedisCluster(scratch_dir("cluster")).start(),
                "s3": lambda: SeaweedS3(scratch_dir("s3")).start(),
            }[name]()
            self.started[name] = made
            atexit.register(made.stop)
        return self.started[name]

    def fresh(self, name: str, settings: Settings) -> bool:
        """True the first time a test (its own data dir) opens this server."""
        if self.last_data_dir.get(name) == settings.data_dir:
            return False
        self.last_data_dir[name] = settings.data_dir
        return True


SERVERS = _Servers()
def distributed(store: str, blobs: str) -> Callable[[Settings, FakeClock], Backends]:
    """A factory for Redis (``redis`` or ``cluster``) with S3 or local blobs; every test starts
    from an empty Redis and its own S3 prefix."""

    def open_distributed(settings: Settings, clock: FakeClock) -> Backends:
        server = SERVERS.get(store)
        if SERVERS.fresh(store, settings):
            nodes = server.nodes if store == "cluster" else [server]
            for node in nodes:
                redis.Redis(port=node.port).flushall()
        changes: dict[str, Any] = {
            "store": server.url,
            "url_signing_keys": "k1:" + "a" * 43,
            "webhooks": dataclasses.replace(settings.webhooks, callback_secret="whsec_" + "b" * 32),
        }
        if blobs == "s3":
            s3 = SERVERS.get("s3")
            os.environ.update(s3.environ())
            test = hashlib.sha256(str(settings.data_dir).encode()).hexdigest()[:16]
            changes["blobs"] = f"s3://{s3.bucket}/{test}"
        return open_backends(dataclasses.replace(settings, **changes), clock)

    return open_distributed


FACTORIES: dict[str, Callable[[Settings, FakeClock], Backends]] = {
    "sqlite+local": open_backends,
    "redis+s3": distributed("redis", "s3"),
    "redis-cluster+s3": distributed("cluster", "s3"),
    "redis+local": distributed("redis", "local"),
}
"""Every backend ``service.backends`` can open: each must pass the whole suite."""

def new_job(backend: Backends, tenant: str = "t1", images: int = 2) -> NewJob:
    job_id = backend.jobs.new_job_id(tenant)
    inputs = [
        JobInput(n, f"img{n}.jpg", f"uploads/{job_id}/{n}", "image", 10) for n in range(images)
    ]
    return NewJob(job_id, tenant, {"colors": 4}, inputs, None, images)


def item(seq: int, status: str = "succeeded", index: int = 0) -> ItemResult:
    return ItemResult(
        seq,
        index,
        f"img{seq}.jpg",
        status,  # type: ignore[arg-type]
        palette={"colors": []} if status == "succeeded" else None,
        error=None if status == "succeeded" else {"code": "decode_error"},
    )

"""The event log on Redis: one stream per partition, appended by the engine script in the same
step as the change. A consumer's position per partition is kept beside the stream."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..jobs.interfaces import JobEvent
from .connection import RedisConnection
from .jobs import EngineScript, job_from_fields
from .keys import key, partition_tag

__all__ = ["RedisEventLog"]


def _order(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq)


class RedisEventLog:
    """Event ids are ``<partition>/<stream id>``: stable, and they say where to acknowledge."""

    def __init__(self, conn: RedisConnection, partitions: int, keep_seconds: float) -> None:
        self.redis = conn.text
        self.run = EngineScript(conn)
        self.partitions = partitions
        self.keep_seconds = keep_seconds

    def read(self, consumer: str, limit: int = 100) -> list[JobEvent]:
        tags = [partition_tag(p) for p in range(self.partitions)]
        pipe = self.redis.pipeline(transaction=False)
        for tag in tags:
            pipe.hget(key(tag, "consumers"), consumer)
        positions = pipe.execute()
        for tag, position in zip(tags, positions):
            pipe.xrange(key(tag, "events"), f"({position}" if position else "-", "+", count=limit)
        merged: list[tuple[tuple[int, int], int, JobEvent]] = []
        for partition, entries in enumerate(pipe.execute()):
            for stream_id, fields in entries:
                snapshot = json.loads(fields["job"])
                if fields["type"] == "job.deleted":
                    job = snapshot
                else:
                    job = {**job_from_fields(snapshot).to_public(), "tenant": snapshot["tenant"]}
                event = JobEvent(f"{partition}/{stream_id}", fields["type"], job, float(fields["at"]))
                merged.append((_order(stream_id), partition, event))
        merged.sort(key=lambda row: (row[0], row[1]))
        return [event for _, _, event in merged[:limit]]

    def ack(self, consumer: str, events: Sequence[JobEvent]) -> None:
        latest: dict[int, str] = {}
        for event in events:
            partition_text, _, stream_id = event.id.partition("/")
            partition = int(partition_text)
            if partition not in latest or _order(stream_id) > _order(latest[partition]):
                latest[partition] = stream_id
        for partition, stream_id in latest.items():
            self.run(partition_tag(partition), "ack", consumer=consumer, position=stream_id)

    def trim(self) -> None:
        for partition in range(self.partitions):
            self.run(partition_tag(partition), "trim_events", keep=self.keep_seconds)

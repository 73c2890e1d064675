"""Where events go: Kafka topics (batched JSON arrays, one topic per kind) or a JSON-lines file.

Also finds Kafka: `settings.kafka.bootstrap`, or the address the local stack wrote to
`<data_dir>/stack.json` when the setting was left at its default.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import IO, Any, Protocol

from adapters.kafka_topics import ensure_topics as create_topics
from adapters.kafka_topics import project_specs
from cityscreen.errors import CityScreenError
from cityscreen.events import INGEST_TOPICS, RawEvent, encode_many
from cityscreen.settings import KafkaSettings, Settings
from services.generator.fixtures import encode_line, open_write

MAX_REQUEST_BYTES = 8 * 1024 * 1024


def kafka_bootstrap(settings: Settings) -> str:
    """The configured bootstrap, falling back to the running local stack's when left at the default."""
    default = KafkaSettings().bootstrap
    if settings.kafka.bootstrap != default or "CITY_KAFKA__BOOTSTRAP" in os.environ:
        return settings.kafka.bootstrap
    stack = settings.data_dir / "stack.json"
    try:
        info = json.loads(stack.read_text())
    except (OSError, ValueError):
        return settings.kafka.bootstrap
    found = info.get("kafka_bootstrap") or info.get("bootstrap") or (info.get("kafka") or {}).get("bootstrap")
    return str(found) if found else settings.kafka.bootstrap


class Sink(Protocol):
    """Receives events in event-time order; `flush` pushes out whatever is buffered."""

    async def start(self) -> None: ...
    async def add(self, event: RawEvent) -> None: ...
    async def flush(self) -> None: ...
    async def stop(self) -> None: ...


class KafkaSink:
    """Sends each batch as one record (a JSON array) to the kind's `city.ingest.*` topic."""

    lines = False  # takes records (services.generator.feed)

    def __init__(
        self, bootstrap: str, partitions: int, batch_events: int, topics: dict[str, str] | None = None
    ) -> None:
        self.bootstrap, self.partitions, self.batch_events = bootstrap, partitions, batch_events
        self.topics = topics or INGEST_TOPICS
        self._buffers: dict[str, list[RawEvent]] = {}
        self._pending: list[asyncio.Future[Any]] = []
        self._producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaConnectionError

        await ensure_topics(self.bootstrap, list(self.topics.values()), self.partitions)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, linger_ms=5, max_batch_size=1_048_576,
            max_request_size=MAX_REQUEST_BYTES, acks="all", enable_idempotence=True,
            request_timeout_ms=30_000,
        )  # fmt: skip
        try:
            await self._producer.start()
        except KafkaConnectionError as exc:
            raise CityScreenError(
                f"cannot reach Kafka at {self.bootstrap}: start it (`cityscreen stack start`) "
                "or set CITY_KAFKA__BOOTSTRAP"
            ) from exc

    async def send_bytes(self, topic: str, value: bytes) -> None:
        assert self._producer is not None
        # no key and no partition: the producer spreads records over however many partitions the topic
        # has (one for the raw topics, see cityscreen.events.INGEST_TOPIC_PARTITIONS)
        self._pending.append(await self._producer.send(topic, value))
        if len(self._pending) >= 200:
            await self.drain()

    async def add(self, event: RawEvent) -> None:
        kind = str(event.__struct_config__.tag)
        buf = self._buffers.get(kind)
        if buf is None:
            buf = self._buffers[kind] = []
        buf.append(event)
        if len(buf) >= self.batch_events:
            self._buffers[kind] = []
            await self.send_bytes(self.topics[kind], encode_many(buf))

    async def send_records(self, kind: str, records: list[bytes]) -> None:
        """Records already encoded as JSON arrays (the columnar engine's)."""
        for record in records:
            await self.send_bytes(self.topics[kind], record)

    async def write_lines(self, data: bytes) -> None:
        raise TypeError("KafkaSink takes records, not lines")

    async def flush(self) -> None:
        for kind, buf in self._buffers.items():
            if buf:
                self._buffers[kind] = []
                await self.send_bytes(self.topics[kind], encode_many(buf))

    async def drain(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)

    async def stop(self) -> None:
        if self._producer is not None:
            try:
                await self.flush()
                await self.drain()
            finally:
                await self._producer.stop()


class FileSink:
    """Writes events as JSON lines (gzip when the name ends in .gz), in the order they are sent."""

    lines = True  # takes JSON lines (services.generator.feed)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out: IO[bytes] | None = None

    async def start(self) -> None:
        self._out = open_write(self.path)

    async def add(self, event: RawEvent) -> None:
        assert self._out is not None
        self._out.write(encode_line(event) + b"\n")

    async def write_lines(self, data: bytes) -> None:
        assert self._out is not None
        self._out.write(data)

    async def send_records(self, kind: str, records: list[bytes]) -> None:
        raise TypeError("FileSink takes lines, not records")

    async def flush(self) -> None:
        return None

    async def stop(self) -> None:
        if self._out is not None:
            self._out.close()


async def ensure_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    """Create missing topics with the project's partition count (the stack may have done it already)."""
    await create_topics(bootstrap, project_specs(topics, partitions), timeout_s=10.0)

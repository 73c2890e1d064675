"""Record from Kafka: consume topics and write every event (array elements split out) as a JSON line."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from cityscreen.events import INGEST_TOPICS, topic_partitions
from services.generator.fixtures import open_write

_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])


def split_record(value: bytes) -> list[bytes]:
    """The events of one record: the elements of a JSON array, or the record itself."""
    if value.lstrip()[:1] == b"[":
        try:
            return [bytes(e) for e in _ELEMENTS.decode(value)]
        except msgspec.DecodeError:
            pass
    return [value.strip()]


async def record_from_kafka(
    bootstrap: str,
    topics: list[str],
    out: Path,
    *,
    from_beginning: bool,
    max_events: int,
    idle_s: float,
    progress: bool,
) -> int:
    from aiokafka import AIOKafkaConsumer
    from tqdm import tqdm

    consumer = AIOKafkaConsumer(
        *(topics or INGEST_TOPICS.values()),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    n = 0
    bar = tqdm(unit="ev", disable=not progress, file=sys.stderr)
    try:
        with open_write(out) as f:
            last = time.monotonic()
            while time.monotonic() - last < idle_s and not (max_events and n >= max_events):
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                for records in batches.values():
                    last = time.monotonic()
                    for record in records:
                        for line in split_record(record.value or b""):
                            if max_events and n >= max_events:
                                break
                            f.write(line + b"\n")
                            n += 1
                            bar.update(1)
    finally:
        bar.close()
        await consumer.stop()
    return n


async def read_to_end(
    bootstrap: str, topics: Iterable[str], partitions: int, timeout_ms: int = 2000
) -> list[Any]:
    """Every record with a value now on `topics`, from the beginning to their current ends (no consumer
    group), topic by topic and partition by partition; aiokafka ConsumerRecords (topic, key, value)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024)  # fmt: skip
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in topics for p in range(topic_partitions(t, partitions))]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: list[Any] = []
        for tp in parts:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=timeout_ms)
                out.extend(m for m in batch.get(tp, []) if m.value is not None)
        return out
    finally:
        await consumer.stop()

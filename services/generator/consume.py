"""Record from Kafka: consume topics and write every event (array elements split out) as a JSON line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import msgspec

from cityscreen.events import INGEST_TOPICS
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

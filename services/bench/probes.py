"""What the benchmarks observe from outside: a decode-only consumer, consumer-group state and lag, and the
frames the release sink has written to Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cityscreen import store_keys
from cityscreen.clean_batch import decode_batch, is_batch
from cityscreen.events import decode_clean_many
from cityscreen.frames import decode_frame, decode_now


async def limit_consume(
    bootstrap: str, topics: list[str], expected_events: int, progress: Callable[[int], None]
) -> tuple[int, float]:
    """Read `topics` from the beginning with a plain aiokafka consumer, decoding every record and doing
    nothing else, until `expected_events` are decoded. Returns (events, seconds). JSON records are
    decoded event by event; a clean batch decodes to column views, without a step per event."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        parts = []
        for topic in topics:
            for p in consumer.partitions_for_topic(topic) or await _partitions(consumer, topic):
                parts.append(TopicPartition(topic, p))
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        events, t0 = 0, time.monotonic()
        deadline = t0 + 600
        while events < expected_events and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    value = record.value
                    events += decode_batch(value).n if is_batch(value) else len(decode_clean_many(value))
            progress(events)
        return events, time.monotonic() - t0
    finally:
        await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


async def group_members(bootstrap: str, group: str) -> tuple[str, int]:
    """(state, members) of a consumer group, e.g. ("Stable", 2)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        _, _, state, _, _, members = response.groups[0][:6]
        return str(state), len(members)
    finally:
        await admin.close()


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> tuple[int, int]:
    """(lag, end): records not yet committed by `group` on `topics` (end offset - committed, summed),
    and the sum of the end offsets (the records written so far)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        parts = [TopicPartition(t, p) for t in topics for p in (await _partitions(consumer, t))]
        ends = await consumer.end_offsets(parts)
        lag = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            lag += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lag, sum(ends.values())
    finally:
        await consumer.stop()
        await admin.close()


def published_windows(redis: Any, res: int) -> list[int]:
    """Window starts with a frame at `res` (the release sink's frame index), oldest first."""
    return [int(m) for m in redis.zrange(store_keys.frame_index_key(res), 0, -1)]


def published_ms(redis: Any, res: int, window_start_ms: int) -> int | None:
    data = redis.get(store_keys.frame_key(res, window_start_ms))
    return decode_frame(data).published_ms if data else None


def now_tick(redis: Any, res: int) -> tuple[int, int] | None:
    """(tick_ms, published_ms) of the now layer's newest frame at `res`, or None before its first."""
    data = redis.get(store_keys.now_key(res))
    if not data:
        return None
    frame = decode_now(data)
    return frame.tick_ms, frame.published_ms


def stats(redis: Any) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in redis.hgetall(store_keys.STATS_KEY).items()}

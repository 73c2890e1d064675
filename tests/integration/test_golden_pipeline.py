"""Golden test: the frames the real aggregate worker publishes equal the gate applied to the plain
reference aggregates of the same events, and a second run publishes byte-identical frames. Two clean
records that are not clean events of their topic (garbage, and a SIM batch on the payment topic) are
dead-lettered with the reason, and cost nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import redis

from cityscreen.clean_batch import encode_batch
from cityscreen.events import CLEAN_TOPICS, DEADLETTER_TOPIC, RawSim
from services.generator.consume import read_to_end
from streams.aggregate_agent import UNDECODABLE
from tests.support.reference_aggregates import reference_window_aggregates
from tests.support.streams_support import (
    expected_frames,
    frames_diff,
    idle_phones,
    make_raw_events,
    persons_total,
    produce_clean,
    published_frames,
    to_clean,
    windows_published,
)

pytestmark = pytest.mark.integration


def test_worker_frames_equal_reference_twice(
    stack_factory: Callable[..., Any], spawn: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    stack = stack_factory()
    settings = stack.settings
    raw = idle_phones(make_raw_events(persons=400, minutes=4), every=3)  # most persons known from the carry
    reference = reference_window_aggregates(raw, settings)
    assert persons_total(reference[-1]) > 2 * persons_total(reference[-1], "active.persons")
    expected = expected_frames(reference, settings)
    a_sim = to_clean(next(r for r in raw if isinstance(r, RawSim)), settings)
    poison = [(CLEAN_TOPICS["sim"], 0, b"not a clean record"),
              (CLEAN_TOPICS["payment"], 1, encode_batch("sim", [a_sim], settings.window.h3_res))]  # fmt: skip
    asyncio.run(_send(settings.kafka.bootstrap, poison))
    asyncio.run(produce_clean(settings.kafka.bootstrap, [to_clean(r, settings) for r in raw],
                              settings.kafka.partitions))  # fmt: skip
    client = redis.Redis.from_url(settings.redis.url)
    windows = len({w for _, w in expected})
    assert windows >= 4
    assert any(v is not None for v in _values(expected)), "the fixture must release something"

    runs = []
    for group in ("golden-a", "golden-b"):
        client.flushdb()
        worker = spawn("worker", "--role", "aggregate", "--group", group, settings=settings, name=group)
        wait_for(lambda: windows_published(client) >= windows, timeout_s=120, what=f"{windows} windows")
        runs.append(published_frames(client, settings))
        worker.stop()
    assert not (diff := frames_diff(runs[0], expected)), diff
    assert not (diff := frames_diff(runs[1], runs[0])), diff
    records = asyncio.run(
        read_to_end(settings.kafka.bootstrap, [DEADLETTER_TOPIC], settings.kafka.partitions)
    )
    dead = [msgspec.json.decode(r.value) for r in records]
    undecodable = sorted(
        (d["topic"], d["partition"], d["offset"]) for d in dead if d["reason"] == UNDECODABLE
    )
    assert undecodable == sorted([(t, p, 0) for t, p, _ in poison] * 2)  # once per group


async def _send(bootstrap: str, records: list[tuple[str, int, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, partition, value in records:
            await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()


def _values(frames: dict[tuple[int, int], bytes]) -> list[float | None]:
    out: list[float | None] = []
    for body in frames.values():
        for stats in msgspec.json.decode(body)["cells"].values():
            out.extend(stats.values())
    return out

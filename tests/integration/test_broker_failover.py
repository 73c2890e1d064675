"""Broker failure: on a three-broker cluster (topics replicated 3x, 2 in sync), the broker leading a clean
partition is killed with SIGKILL while the aggregate worker is mid-stream, the rest of the stream is
written while it is down, and the broker is restarted. Every acknowledged record is consumed and the
frames equal the golden frames (Kafka's own replication tests check the same: acked equals consumed).

The worker that lives through the failure is patient (it never closes a window on idleness, so the
failover's pause cannot make on-time events late); once it has consumed every acknowledged record it
stops, and a worker with the default settings resumes from its state and closes the last windows.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any, cast

import pytest
import redis

from cityscreen.events import CLEAN_TOPICS
from cityscreen.settings import KafkaSettings
from cityscreen.store_keys import LAG_KEY, STATS_KEY
from tests.support.reference_aggregates import reference_window_aggregates
from tests.support.streams_support import (
    START_MS,
    expected_frames,
    frames_diff,
    idle_phones,
    make_raw_events,
    produce_clean,
    published_frames,
    to_clean,
    windows_published,
)

pytestmark = pytest.mark.integration

DURABLE: dict[str, Any] = {"acks": "all", "enable_idempotence": True}


def test_leader_sigkill_mid_stream_loses_no_acknowledged_event(
    stack_factory: Callable[..., Any], spawn: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    stack = stack_factory(kafka=KafkaSettings(brokers=3, heap_mb=256))
    settings = stack.settings
    assert settings.kafka.replication_factor == 3 and len(stack.brokers) == 3
    raw = idle_phones(make_raw_events(persons=400, minutes=4), every=3)
    expected = expected_frames(reference_window_aggregates(raw, settings), settings)
    windows = len({w for _, w in expected})
    clean = [to_clean(r, settings) for r in raw]
    cut_ms = START_MS + 170_000  # in the third window, whose first two have closed by then
    first = [e for e in clean if e.ts_ms < cut_ms]
    second = [e for e in clean if e.ts_ms >= cut_ms]
    client = redis.Redis.from_url(settings.redis.url)
    bootstrap, partitions = settings.kafka.bootstrap, settings.kafka.partitions

    acked = asyncio.run(produce_clean(bootstrap, first, partitions, **DURABLE))
    patient = settings.model_copy(
        update={"window": settings.window.model_copy(update={"idle_close_s": 600.0})}
    )
    worker = spawn("worker", "--role", "aggregate", settings=patient, name="through-failover")
    wait_for(lambda: windows_published(client) >= 2, timeout_s=180, what="the first two windows")

    leader = asyncio.run(_leader(bootstrap, CLEAN_TOPICS["sim"], 0))
    victim = stack.brokers[leader - 1]
    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: not victim.is_alive(), what=f"broker {leader} to die")
    # written while the leader is dead: acks=all succeeds on the two replicas left in sync
    acked += asyncio.run(produce_clean(bootstrap, second, partitions, **DURABLE))
    stack.restart_broker(leader)
    wait_for(lambda: _consumed(client) >= acked, timeout_s=180, what=f"{acked} acknowledged records")
    assert worker.is_alive()
    assert _consumed(client) == acked  # none lost, none counted twice
    # the lag the worker reports for /metrics: every clean partition, read to its end
    clean_partitions = len(CLEAN_TOPICS) * partitions
    lag = wait_for(lambda: _lag(client) if set(_lag(client).values()) == {0} else None, what="zero lag")
    assert len(lag) == clean_partitions
    worker.stop()

    spawn("worker", "--role", "aggregate", settings=settings, name="after-failover")
    wait_for(lambda: windows_published(client) >= windows, timeout_s=180, what=f"all {windows} windows")
    assert not (diff := frames_diff(published_frames(client, settings), expected)), diff
    assert windows_published(client) == windows
    assert asyncio.run(_in_sync(bootstrap, CLEAN_TOPICS["sim"], 0)) >= 2


def _lag(client: redis.Redis) -> dict[bytes, int]:
    return {k: int(v) for k, v in cast(dict[bytes, bytes], client.hgetall(LAG_KEY)).items()}


def _consumed(client: redis.Redis) -> int:
    return int(client.hget(STATS_KEY, "records") or 0)  # records the worker applied


async def _partition(bootstrap: str, topic: str, partition: int) -> dict[str, Any]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return next(p for p in described["partitions"] if p["partition"] == partition)
    finally:
        await admin.close()


async def _leader(bootstrap: str, topic: str, partition: int) -> int:
    return int((await _partition(bootstrap, topic, partition))["leader"])


async def _in_sync(bootstrap: str, topic: str, partition: int) -> int:
    return len((await _partition(bootstrap, topic, partition))["isr"])

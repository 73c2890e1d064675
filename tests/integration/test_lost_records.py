"""Records that faust-streaming fetches and then loses (around rebalances) are read again: the worker
still publishes exactly the golden frames, whether later records of the partition follow the loss (a
hole in the offsets) or not (the partition's last record: nothing ever arrives after it), and whether
the record is a clean one, one of the changelog its table recovery restores, or one of the partials
topic (the first a restarted worker reads: lost in CI, it released a window without a partition)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition

from cityscreen.events import CLEAN_TOPICS
from streams.internal_topics import STATE_TABLE, changelog_topic, partials_topic
from tests.support.faults_support import AGGREGATE_GROUP, caught_up, golden_feed, quick_failover
from tests.support.reference_aggregates import reference_window_aggregates
from tests.support.streams_support import (
    START_MS,
    expected_frames,
    frames_diff,
    make_raw_events,
    produce_clean,
    published_frames,
    to_clean,
    windows_published,
)

pytestmark = pytest.mark.integration


async def _end_offsets(bootstrap: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def test_records_lost_after_the_fetch_are_read_again(
    stack_factory: Callable[..., Any], spawn: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    stack = stack_factory()
    settings = stack.settings
    raw = make_raw_events(persons=400, minutes=4)
    expected = expected_frames(reference_window_aggregates(raw, settings), settings)
    windows = len({w for _, w in expected})
    # as JSON arrays: the aggregators still read clean records in the JSON format, end to end
    asyncio.run(produce_clean(settings.kafka.bootstrap, [to_clean(r, settings) for r in raw],
                              settings.kafka.partitions, as_json=True))  # fmt: skip
    sim, transit = TopicPartition(CLEAN_TOPICS["sim"], 1), TopicPartition(CLEAN_TOPICS["transit"], 0)
    ends = asyncio.run(_end_offsets(settings.kafka.bootstrap, [sim, transit]))
    assert ends[sim] > 4 and ends[transit] > 1
    partials = TopicPartition(partials_topic(AGGREGATE_GROUP), 0)
    # a hole mid-stream, a partition's last record, and a hole in the partials the release agent books
    drops = [(sim, 3), (transit, ends[transit] - 1), (partials, 2)]
    lossy = ",".join(f"{tp.topic}:{tp.partition}:{offset}" for tp, offset in drops)

    worker = spawn("worker", "--role", "aggregate", settings=settings, module="tests.support.lossy_worker",
                   env={"LOSSY_DROP": lossy})  # fmt: skip
    client = redis.Redis.from_url(settings.redis.url)
    wait_for(lambda: windows_published(client) >= windows, timeout_s=120, what=f"all {windows} windows")
    assert not (diff := frames_diff(published_frames(client, settings), expected)), diff
    log = worker.log_path.read_text()
    assert log.count("lossy: dropped") == 3, "the fault was not injected: the test proves nothing"
    assert "seeking back to 3" in log and f"seeking back to {ends[transit] - 1}" not in log
    assert "partials topic: offset 3 arrived but 2 was never delivered" in log
    assert "Seeking these partitions back" in log  # the lost last record: found by the stall watch
    assert "positions unavailable" not in log  # the warning's diagnostics read the client's state


@pytest.mark.faults
def test_a_changelog_record_lost_in_recovery_is_read_again(
    stack_factory: Callable[..., Any], spawn: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    stack = stack_factory()
    settings = quick_failover(stack.settings, idle_close_s=45.0)
    bootstrap, partitions = settings.kafka.bootstrap, settings.kafka.partitions
    feed = golden_feed(settings)
    before, after = feed.stages([START_MS + 160_000])  # the third window is open at the restart
    asyncio.run(produce_clean(bootstrap, before, partitions))
    first = spawn("worker", "--role", "aggregate", settings=settings, name="first")
    wait_for(lambda: caught_up(settings, AGGREGATE_GROUP, list(CLEAN_TOPICS.values())), timeout_s=180,
             what="the first stage applied")  # fmt: skip
    first.stop()
    changelog = [TopicPartition(changelog_topic(AGGREGATE_GROUP, STATE_TABLE), p) for p in range(partitions)]
    partials = TopicPartition(partials_topic(AGGREGATE_GROUP), 0)
    ends = asyncio.run(_end_offsets(bootstrap, [*changelog, partials]))
    tp = max(changelog, key=lambda t: ends[t])
    assert ends[tp] > 0, "the first worker wrote no state: nothing to restore"
    # the last record of a changelog partition: nothing arrives after it, and the recovery waits for it;
    # and the first partials record the restarted worker reads (a partial of the open window)
    lossy = f"{tp.topic}:{tp.partition}:{ends[tp] - 1},{partials.topic}:0:{ends[partials]}"

    asyncio.run(produce_clean(bootstrap, after, partitions))
    worker = spawn("worker", "--role", "aggregate", settings=settings, name="restarted",
                   module="tests.support.lossy_worker", env={"LOSSY_DROP": lossy})  # fmt: skip
    client = redis.Redis.from_url(settings.redis.url)
    wait_for(lambda: windows_published(client) >= feed.windows, timeout_s=240,
             what=f"all {feed.windows} windows")  # fmt: skip
    assert not (diff := frames_diff(published_frames(client, settings), feed.expected)), diff
    log = worker.log_path.read_text()
    assert log.count("lossy: dropped") == 2, "the fault was not injected: the test proves nothing"
    assert "table recovery stalled" in log  # found by the recovery guard
    assert f"partials topic: offset {ends[partials] + 1} arrived but {ends[partials]} was never" in log
    assert "positions unavailable" not in log  # the warning's diagnostics read the client's state

"""Scale-out: two aggregate worker processes in one consumer group publish the same frames (and the same
exact aggregates) as one worker, and as the gate applied to the plain reference.

Each run has its own stack, so the two runs share nothing: not the clean topics, not the group's
internal topics, not Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import redis

from cityscreen.events import CLEAN_TOPICS
from cityscreen.settings import Settings, WindowSettings
from tests.support.faults_support import caught_up, golden_feed, quick_failover
from tests.support.pipeline_capture import exact_aggregates, group_assignment
from tests.support.reference_aggregates import reference_window_aggregates
from tests.support.streams_support import (
    START_MS,
    base_windows,
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

GROUP = "cityscreen-aggregate"  # the worker's default group


def _clean_partitions(assignment: dict[str, dict[str, list[int]]]) -> dict[str, set[int]]:
    """member -> clean-topic partitions it holds (the same partition number on all three topics)."""
    return {
        member: {p for topic, parts in topics.items() if topic in CLEAN_TOPICS.values() for p in parts}
        for member, topics in assignment.items()
    }


def _settled(settings: Settings, workers: int) -> dict[str, set[int]] | None:
    """The group's clean partitions by member once `workers` members share all of them, else None."""
    held = _clean_partitions(group_assignment(settings, GROUP))
    spread = len(held) == workers and all(held.values())
    return held if spread and set().union(*held.values()) == set(range(settings.kafka.partitions)) else None


def _run(
    workers: int,
    stack_factory: Callable[..., Any],
    spawn: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> dict[str, Any]:
    # idle_close_s: a topic quiet this long stops holding the watermark; generous so that a busy box
    # (rebalance, recovery) cannot turn on-time events late
    stack = stack_factory(window=WindowSettings(idle_close_s=15.0))
    settings = stack.settings
    client = redis.Redis.from_url(settings.redis.url)
    procs: list[Any] = []
    try:
        for i in range(workers):
            procs.append(spawn("worker", "--role", "aggregate", settings=settings, name=f"w{workers}-{i}"))

        before = wait_for(lambda: _settled(settings, workers), timeout_s=120,
                          what=f"{workers} group members sharing the partitions")  # fmt: skip
        raw = idle_phones(make_raw_events(persons=400, minutes=4), every=3)  # most persons from the carry
        clean = [to_clean(r, settings) for r in raw]
        asyncio.run(produce_clean(settings.kafka.bootstrap, clean, settings.kafka.partitions))
        reference = reference_window_aggregates(raw, settings)
        assert persons_total(reference[-1]) > 2 * persons_total(reference[-1], "active.persons")
        windows = base_windows(reference, settings)
        wait_for(lambda: windows_published(client) >= windows, timeout_s=180, what=f"{windows} windows")
        return {
            "before": before,
            "after": _clean_partitions(group_assignment(settings, GROUP)),
            "reference": reference,
            "expected": expected_frames(reference, settings),
            "frames": published_frames(client, settings),
            "aggregates": exact_aggregates(settings),
            "windows_published": windows_published(client),
            "base_windows": windows,
        }
    finally:
        client.close()
        for proc in procs:  # while their broker still runs, so they shut down cleanly
            proc.stop()
        stack.stop()


def test_two_workers_publish_the_same_frames_as_one(
    stack_factory: Callable[..., Any], spawn: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    one = _run(1, stack_factory, spawn, wait_for)
    two = _run(2, stack_factory, spawn, wait_for)

    # both workers held clean partitions while the events were processed, and still do
    for held in (two["before"], two["after"]):
        assert len(held) == 2 and all(held.values()), held
        assert sorted(p for ps in held.values() for p in ps) == list(range(4)), held

    assert not (diff := frames_diff(one["frames"], one["expected"])), diff
    assert not (diff := frames_diff(two["frames"], one["frames"])), diff
    assert two["aggregates"] == one["aggregates"] == one["reference"]
    assert [msgspec.json.encode(a) for a in two["aggregates"]] == [
        msgspec.json.encode(a) for a in one["aggregates"]
    ]
    assert two["windows_published"] == one["windows_published"] == one["base_windows"]


@pytest.mark.faults
def test_rebalance_from_one_to_two_workers_and_back_mid_stream_yields_golden_frames(
    stack_factory: Callable[..., Any], spawn: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    stack = stack_factory()
    # idle_close_s longer than a rebalance: the open window must not close while the group settles
    settings = quick_failover(stack.settings, idle_close_s=45.0)
    feed = golden_feed(settings)
    # cuts inside the third window: it is open through both rebalances
    alone, shared, alone_again = feed.stages([START_MS + 160_000, START_MS + 170_000])
    client = redis.Redis.from_url(settings.redis.url)
    bootstrap, partitions, clean = (
        settings.kafka.bootstrap,
        settings.kafka.partitions,
        list(CLEAN_TOPICS.values()),
    )

    def feed_stage(events: list[Any], what: str) -> None:
        asyncio.run(produce_clean(bootstrap, events, partitions))
        wait_for(lambda: caught_up(settings, GROUP, clean), timeout_s=180, what=what)

    spawn("worker", "--role", "aggregate", settings=settings, name="first")
    wait_for(lambda: _settled(settings, 1), timeout_s=120, what="the first worker holding every partition")
    feed_stage(alone, "the first stage applied by one worker")
    second = spawn("worker", "--role", "aggregate", settings=settings, name="second")
    wait_for(lambda: _settled(settings, 2), timeout_s=120, what="two workers sharing the partitions")
    feed_stage(shared, "the second stage applied by two workers")
    second.stop()  # a clean leave: its partitions (and their state) go back to the first worker
    wait_for(lambda: _settled(settings, 1), timeout_s=120, what="one worker holding every partition again")
    asyncio.run(produce_clean(bootstrap, alone_again, partitions))
    wait_for(lambda: windows_published(client) >= feed.windows, timeout_s=300,
             what=f"all {feed.windows} windows")  # fmt: skip
    assert not (diff := frames_diff(published_frames(client, settings), feed.expected)), diff
    assert windows_published(client) == feed.windows

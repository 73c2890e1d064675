"""State recovery: an aggregate worker SIGKILLed three times inside one window (each time after it applied
more of that window's events), then restarted, still publishes exactly the golden frames: nothing lost,
nothing counted twice, no window published twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis

from cityscreen.events import CLEAN_TOPICS
from tests.support.faults_support import AGGREGATE_GROUP, caught_up, golden_feed, quick_failover, sigkill
from tests.support.streams_support import (
    START_MS,
    frames_diff,
    produce_clean,
    published_frames,
    windows_published,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_sigkill_three_times_within_one_window_then_restart_yields_golden_frames(
    stack_factory: Callable[..., Any], spawn: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    stack = stack_factory()
    settings = quick_failover(stack.settings)
    # the killed workers must not close the open window on idleness before they are killed
    patient = quick_failover(stack.settings, idle_close_s=600.0)
    feed = golden_feed(settings)
    # three cuts in the third window (minute 2 from START_MS): past the second window's end + grace_s
    # (150 s), so the first two windows close in the first stage, and before the third's (210 s)
    *killed_stages, last = feed.stages([START_MS + 160_000, START_MS + 167_000, START_MS + 174_000])
    assert all(killed_stages) and last
    client = redis.Redis.from_url(settings.redis.url)
    bootstrap, partitions = settings.kafka.bootstrap, settings.kafka.partitions

    for kill, stage in enumerate(killed_stages):
        asyncio.run(produce_clean(bootstrap, stage, partitions))
        worker = spawn("worker", "--role", "aggregate", settings=patient, name=f"killed-{kill}")
        if kill == 0:
            wait_for(lambda: windows_published(client) >= 2, timeout_s=180, what="the first two windows")
        wait_for(lambda: caught_up(settings, AGGREGATE_GROUP, list(CLEAN_TOPICS.values())),
                 timeout_s=180, what=f"worker {kill} to apply and commit its stage")  # fmt: skip
        sigkill(worker, wait_for)
        assert windows_published(client) == 2, "the third window closed before the kill: no fault tested"

    asyncio.run(produce_clean(bootstrap, last, partitions))
    spawn("worker", "--role", "aggregate", settings=settings, name="after-kills")
    wait_for(lambda: windows_published(client) >= feed.windows, timeout_s=240,
             what=f"all {feed.windows} windows")  # fmt: skip
    assert not (diff := frames_diff(published_frames(client, settings), feed.expected)), diff
    assert windows_published(client) == feed.windows  # no window published twice

"""Fault suite (issue 16): the servers under the pipeline go away mid-stream and come back, one after the
other, on one stack and one feed (the third window open throughout):

- the Kafka broker is stopped and started again: the aggregate worker rides it out;
- the gateway is restarted: its websocket clients reconnect and get the newest window as a snapshot;
- Redis is restarted: the worker writes on, the gateway resubscribes and resyncs, every client ends on
  the newest window, and a client that connects afterwards gets it as a fresh snapshot.

In the end Redis holds exactly the golden frames, each window published once. idle_close_s is longer
than any outage here: a worker that saw its topics quiet for that long would close the open window
early and turn the rest of its events late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from cityscreen.events import CLEAN_TOPICS
from tests.support.faults_support import AGGREGATE_GROUP, LiveClient, caught_up, golden_feed, quick_failover
from tests.support.streams_support import (
    START_MS,
    frames_diff,
    produce_clean,
    published_frames,
    windows_published,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE_PROOF_IDLE_S = 45.0


def test_broker_gateway_and_redis_restarted_mid_stream(
    stack_factory: Callable[..., Any],
    spawn: Callable[..., Any],
    free_port: Callable[[], int],
    wait_for: Callable[..., Any],
) -> None:
    stack = stack_factory()
    settings = quick_failover(stack.settings, idle_close_s=OUTAGE_PROOF_IDLE_S)
    settings = settings.model_copy(
        update={"gateway": settings.gateway.model_copy(update={"port": free_port(), "update_hz": 10.0})}
    )
    feed = golden_feed(settings)
    # the first two windows close in the first stage (past the second's end + grace_s, 150 s); the
    # third (closing at 210 s) stays open through every restart
    first, second, third = feed.stages([START_MS + 160_000, START_MS + 170_000])
    res, second_window = settings.window.h3_res, START_MS + 60_000
    last_window = max(w for _, w in feed.expected)
    client = redis.Redis.from_url(settings.redis.url)
    bootstrap, partitions, clean = (
        settings.kafka.bootstrap,
        settings.kafka.partitions,
        list(CLEAN_TOPICS.values()),
    )
    worker = spawn("worker", "--role", "aggregate", settings=settings, name="through-restarts")

    def start_api() -> Any:
        api = spawn("api", settings=settings, name="gateway")
        health = f"http://{settings.gateway.host}:{settings.gateway.port}/api/v1/health/ready"
        api.wait_ready(lambda: httpx.get(health).status_code == 200, timeout_s=60)
        return api

    api = start_api()
    clients = [LiveClient(settings, res) for _ in range(3)]
    try:
        asyncio.run(produce_clean(bootstrap, first, partitions))
        wait_for(lambda: windows_published(client) >= 2, timeout_s=180, what="the first two windows")
        wait_for(lambda: all(c.latest_window() == second_window for c in clients), timeout_s=60,
                 what="every client on the second window")  # fmt: skip
        wait_for(lambda: caught_up(settings, AGGREGATE_GROUP, clean), timeout_s=120,
                 what="the first stage applied and committed")  # fmt: skip

        stack.restart_kafka()
        asyncio.run(produce_clean(bootstrap, second, partitions))
        wait_for(lambda: caught_up(settings, AGGREGATE_GROUP, clean), timeout_s=180,
                 what="the second stage applied after the broker restart")  # fmt: skip
        assert worker.is_alive(), worker.failure_message("died with the broker")

        api.stop()
        api = start_api()
        # >= 2: a client may also have reached the old gateway while it was shutting down
        wait_for(lambda: all(c.connections >= 2 for c in clients), timeout_s=60, what="clients reconnected")
        wait_for(lambda: all(c.first_message(c.connections) for c in clients), timeout_s=60,
                 what="a first message on each new socket")  # fmt: skip
        assert all(c.first_message(c.connections) == ("snapshot", second_window) for c in clients)

        stack.restart_redis()
        asyncio.run(produce_clean(bootstrap, third, partitions))
        wait_for(lambda: windows_published(client) >= feed.windows, timeout_s=300,
                 what=f"all {feed.windows} windows after the restarts")  # fmt: skip
        wait_for(lambda: all(c.latest_window() == last_window for c in clients), timeout_s=60,
                 what="every client on the newest window after the Redis restart")  # fmt: skip
        late = LiveClient(settings, res)
        clients.append(late)
        wait_for(lambda: late.first_message(1), timeout_s=60, what="a message to a client connecting later")
        assert late.first_message(1) == ("snapshot", last_window)
    finally:
        for c in clients:
            c.close()
    assert worker.is_alive(), worker.failure_message("died during the restarts")
    assert not (diff := frames_diff(published_frames(client, settings), feed.expected)), diff
    assert windows_published(client) == feed.windows

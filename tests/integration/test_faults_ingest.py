"""Fault suite (issue 16): the ingest worker SIGKILLed mid-stream three times.

The shipped fixture is replayed at ten times its recorded pace while ingest workers are started and
each is SIGKILLed as soon as it has published its first batch (no cleanup, no commit of what it was
doing). A fourth ingest worker then finishes the feed and one aggregate worker aggregates it. Every
event the replay had acknowledged reaches a clean topic, the aggregator counts each of them exactly once
(the killed workers' successors wrote some again: the edge is at-least-once, and the aggregators skip
what they already counted by the events' raw keys), and the frames are the golden ones.

The aggregate worker starts only after ingest has caught up: its idle close (5 s) would otherwise
close windows during the ingest outages this test makes on purpose, and turn later events late.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis

from cityscreen.city import load_city
from cityscreen.clean_batch import decode_batch
from cityscreen.events import CLEAN_TOPICS, INGEST_TOPICS
from services.generator.consume import read_to_end
from services.generator.fixtures import read_events
from tests.support.faults_support import INGEST_GROUP, caught_up, quick_failover, sigkill, stat
from tests.support.fixture_expected import FIXTURE, inside_city, load_expected, skew_for_fixture
from tests.support.streams_support import (
    base_windows,
    expected_frames,
    frames_diff,
    published_frames,
    windows_published,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

KILLS = 3
ACCEPTED = "ingest.accepted"
COUNTED, REPEATED = "events_counted", "events_repeated"  # the aggregate workers' counters


def clean_event_ids(bootstrap: str, partitions: int) -> Counter[str]:
    """How often each event id is on the clean topics (the ingest edge writes clean batches only)."""
    records = asyncio.run(read_to_end(bootstrap, list(CLEAN_TOPICS.values()), partitions))
    return Counter(i for r in records for i in decode_batch(r.value).event_ids())


def test_ingest_sigkilled_mid_stream_three_times_loses_nothing_and_yields_golden_frames(
    stack_factory: Callable[..., Any], spawn: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    expected = load_expected()
    stack = stack_factory(max_event_skew_s=skew_for_fixture(expected[0].window_start_ms))
    settings = quick_failover(stack.settings)
    client = redis.Redis.from_url(settings.redis.url)
    replay = spawn("replay", str(FIXTURE), "--speed", "10", "--shift-days", "0", "--no-progress",
                   settings=settings, name="replay")  # fmt: skip
    accepted_at_kill = []
    for kill in range(KILLS):
        before = stat(client, ACCEPTED)
        worker = spawn("worker", "--role", "ingest", settings=settings, name=f"ingest-killed-{kill}")
        wait_for(lambda b=before: stat(client, ACCEPTED) > b, timeout_s=120,
                 what=f"ingest worker {kill} to publish a batch")  # fmt: skip
        sigkill(worker, wait_for)
        accepted_at_kill.append(stat(client, ACCEPTED))
    print(f"ingest.accepted at each kill: {accepted_at_kill}; replay still running: {replay.is_alive()}")

    spawn("worker", "--role", "ingest", settings=settings, name="ingest-last")
    wait_for(lambda: not replay.is_alive(), timeout_s=180, what="the replay to finish")
    assert replay.returncode == 0, replay.tail()
    ingest_topics = list(INGEST_TOPICS.values())
    wait_for(lambda: caught_up(settings, INGEST_GROUP, ingest_topics), timeout_s=180,
             what="ingest to commit every raw record")  # fmt: skip

    # nothing lost: every event the replay wrote (and Kafka acknowledged) is on a clean topic
    accepted_ids = {e.event_id for e in inside_city(read_events(FIXTURE), load_city(None).bbox)}
    on_clean = clean_event_ids(settings.kafka.bootstrap, settings.kafka.partitions)
    assert accepted_ids - set(on_clean) == set(), "events lost by a killed ingest worker"
    assert set(on_clean) <= accepted_ids
    repeated = sum(n - 1 for n in on_clean.values())
    print(f"clean events repeated by the at-least-once edge after the kills: {repeated}")

    spawn("worker", "--role", "aggregate", settings=settings, name="aggregate")
    windows = base_windows(expected, settings)
    wait_for(lambda: windows_published(client) >= windows, timeout_s=240,
             what=f"all {windows} windows")  # fmt: skip
    # the counters reach Redis at the worker's next timer tick: wait until it has read every record
    wait_for(lambda: stat(client, COUNTED) + stat(client, REPEATED) >= on_clean.total(), timeout_s=60,
             what="the aggregator's counters of every clean event")  # fmt: skip
    counted, skipped = stat(client, COUNTED), stat(client, REPEATED)
    print(f"aggregator: {counted} events counted, {skipped} skipped as repeats")
    # nothing counted twice: each acknowledged event exactly once, every repeat on the clean topics skipped
    assert (counted, skipped) == (len(accepted_ids), repeated)
    golden = expected_frames(expected, settings)
    assert not (diff := frames_diff(published_frames(client, settings), golden)), diff
    assert windows_published(client) == windows

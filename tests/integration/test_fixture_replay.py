"""The whole replay path on real processes: `cityscreen replay <shipped fixture> --asap` -> ingest worker
-> aggregate worker -> Redis and the frames topic, twice, each time on a fresh stack.

The pipeline's exact aggregates (rebuilt from the internal partials topic: Redis and the frames topic
hold only gated frames) equal the committed expected file, the frames in Redis and on the frames
topic equal the gate applied to it, and the second run is byte-identical to the first.

The stack has the default partitions: one per raw topic (so each kind reaches the ingest edge in the
fixture's order, see cityscreen.events.INGEST_TOPIC_PARTITIONS) and four per clean topic, so the
aggregates are merged from four partitions' partials. No event may be late.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import redis

from cityscreen.city import load_city
from cityscreen.frames import encode_frame
from cityscreen.privacy.gate import release_series
from services.generator.fixtures import read_events
from tests.support.fixture_expected import FIXTURE, inside_city, load_expected, skew_for_fixture
from tests.support.pipeline_capture import exact_aggregates, topic_frames
from tests.support.reference_aggregates import reference_window_aggregates
from tests.support.streams_support import (
    base_windows,
    expected_frames,
    frames_diff,
    published_frames,
    windows_published,
)

pytestmark = pytest.mark.integration


def _replay_once(
    stack_factory: Callable[..., Any], spawn: Callable[..., Any], wait_for: Callable[..., Any], run: str
) -> dict[str, Any]:
    expected = load_expected()
    stack = stack_factory(
        max_event_skew_s=skew_for_fixture(expected[0].window_start_ms),
    )
    settings = stack.settings
    client = redis.Redis.from_url(settings.redis.url)
    workers: list[Any] = []
    try:
        workers.append(spawn("worker", "--role", "ingest", settings=settings, name=f"ingest-{run}"))
        workers.append(spawn("worker", "--role", "aggregate", settings=settings, name=f"aggregate-{run}"))
        replay = spawn("replay", str(FIXTURE), "--asap", "--shift-days", "0", "--no-progress",
                       settings=settings, name=f"replay-{run}")  # fmt: skip
        wait_for(lambda: not replay.is_alive(), timeout_s=120, what="the replay to finish")
        assert replay.returncode == 0, replay.tail()
        windows = base_windows(expected, settings)
        wait_for(lambda: windows_published(client) >= windows, timeout_s=180, what=f"{windows} windows")
        raw_stats: dict[bytes, bytes] = client.hgetall("city:stats")  # type: ignore[assignment]
        stats = {k.decode(): int(v) for k, v in raw_stats.items()}
        return {
            "stats": stats,
            "aggregates": exact_aggregates(settings),
            "redis": published_frames(client, settings),
            "topic": topic_frames(settings),
            "settings": settings,
        }
    finally:
        client.close()
        for worker in workers:  # while their broker still runs, so they shut down cleanly
            worker.stop()
        stack.stop()  # before the second run's stack starts: two brokers at once crowd a 2-core box


def test_replaying_the_fixture_twice_gives_the_expected_and_identical_aggregates(
    stack_factory: Callable[..., Any], spawn: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    expected = load_expected()
    first = _replay_once(stack_factory, spawn, wait_for, "a")
    settings = first["settings"]

    accepted = inside_city(read_events(FIXTURE), load_city(None).bbox)
    assert reference_window_aggregates(accepted, settings) == expected

    # (a) every event passed the edge, and the aggregates are the reference's
    assert first["stats"]["ingest.accepted"] == 26_348
    assert first["stats"].get("deadletter.out_of_city", 0) == 0
    assert first["stats"].get("late_events", 0) == 0
    assert first["aggregates"] == expected
    gated = expected_frames(expected, settings)
    assert len(gated) == base_windows(expected, settings) * len(settings.window.resolutions)
    assert not (diff := frames_diff(first["redis"], gated)), diff
    # the frames topic also carries each longer window's own frames (spend, transit, flows)
    longer = [
        (f"{f.res}:{f.window_start_ms}:{f.window_s}".encode(), encode_frame(f))
        for a, frames in release_series(sorted(expected, key=lambda a: a.window_start_ms), settings.privacy)
        if a.window_s != settings.window.window_s
        for f in frames
    ]
    assert longer, "the fixture's quarter hour of spend must be released on its own too"
    minutes = [(f"{r}:{w}".encode(), body) for (r, w), body in gated.items()]
    assert sorted(newest(first["topic"]).items()) == sorted(minutes + longer)
    # a minute is sent twice only when its frame went out before the longer window ending with it
    ends = {int(k.split(b":")[1]) + int(k.split(b":")[2]) * 1000 for k, _ in longer}
    sent = Counter(k for k, _ in first["topic"])
    window_ms = settings.window.window_s * 1000
    assert all(n == 1 or int(k.split(b":")[1]) + window_ms in ends for k, n in sent.items()), sent
    assert windows_published_once(first)

    # (b) a second, independent run: byte-identical exact aggregates and frames
    second = _replay_once(stack_factory, spawn, wait_for, "b")
    counted = ("ingest.accepted", "deadletter.out_of_city", "windows_published", "late_events")
    assert {k: second["stats"].get(k) for k in counted} == {k: first["stats"].get(k) for k in counted}
    assert [msgspec.json.encode(a) for a in second["aggregates"]] == [
        msgspec.json.encode(a) for a in first["aggregates"]
    ]
    assert not (diff := frames_diff(second["redis"], first["redis"])), diff
    assert newest(second["topic"]) == newest(first["topic"])


def newest(topic: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The newest frame per key, as a reader of the frames topic (or its compaction) keeps it."""
    return dict(topic)


def windows_published_once(run: dict[str, Any]) -> bool:
    published: int = run["stats"]["windows_published"]
    return published == base_windows(run["aggregates"], run["settings"])

"""Golden test: the frames the real aggregate worker publishes equal the gate applied to the plain
reference aggregates of the same events, and a second run publishes byte-identical frames."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.reference_aggregates import reference_window_aggregates
from tests.streams_support import (
    expected_frames,
    make_raw_events,
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
    raw = make_raw_events(persons=400, minutes=4)
    expected = expected_frames(reference_window_aggregates(raw, settings), settings)
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
    assert runs[0] == expected
    assert runs[1] == runs[0]


def _values(frames: dict) -> list:
    import msgspec

    out = []
    for body in frames.values():
        for stats in msgspec.json.decode(body)["cells"].values():
            out.extend(stats.values())
    return out

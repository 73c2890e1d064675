"""State recovery: a worker killed with SIGKILL in the middle of a window, then restarted, still
publishes exactly the golden frames (nothing lost, nothing counted twice)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
import redis

from services.stack.procs import pid_alive
from tests.reference_aggregates import reference_window_aggregates
from tests.streams_support import (
    START_MS,
    expected_frames,
    idle_phones,
    make_raw_events,
    persons_total,
    produce_clean,
    published_frames,
    to_clean,
    windows_published,
)

pytestmark = pytest.mark.integration


def test_sigkill_mid_window_then_restart_yields_golden_frames(
    stack_factory: Callable[..., Any], spawn: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    stack = stack_factory()
    settings = stack.settings
    raw = idle_phones(make_raw_events(persons=400, minutes=4), every=3)  # most persons known from the carry
    reference = reference_window_aggregates(raw, settings)
    assert persons_total(reference[-1]) > 2 * persons_total(reference[-1], "active.persons")
    expected = expected_frames(reference, settings)
    windows = len({w for _, w in expected})
    clean = [to_clean(r, settings) for r in raw]
    cut_ms = START_MS + 170_000  # in the third window, whose first two have closed by then
    first = [e for e in clean if e.ts_ms < cut_ms]
    second = [e for e in clean if e.ts_ms >= cut_ms]
    assert first and second
    client = redis.Redis.from_url(settings.redis.url)

    # the first worker must not close the open window on idleness before it is killed
    patient = settings.model_copy(
        update={"window": settings.window.model_copy(update={"idle_close_s": 600.0})}
    )
    asyncio.run(produce_clean(settings.kafka.bootstrap, first, settings.kafka.partitions))
    worker = spawn("worker", "--role", "aggregate", settings=patient, name="before-kill")
    wait_for(lambda: windows_published(client) >= 2, timeout_s=120, what="the first two windows")
    children = _children(worker.pid)
    assert children, "the worker runs its gate in a child process"
    os.kill(worker.pid, signal.SIGKILL)
    wait_for(lambda: not worker.is_alive(), what="the worker to die")
    wait_for(lambda: not any(pid_alive(c) for c in children), what="the worker's children to end with it")
    assert windows_published(client) < windows

    asyncio.run(produce_clean(settings.kafka.bootstrap, second, settings.kafka.partitions))
    spawn("worker", "--role", "aggregate", settings=settings, name="after-kill")
    wait_for(lambda: windows_published(client) >= windows, timeout_s=180, what=f"all {windows} windows")
    assert published_frames(client, settings) == expected
    assert windows_published(client) == windows  # no window published twice


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as fh:
                if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
        except (ValueError, OSError, IndexError):
            continue
    return out

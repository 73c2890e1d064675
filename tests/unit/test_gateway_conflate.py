"""The latest-wins queue."""

import asyncio

import pytest

from services.gateway.conflate import LatestQueue


def test_full_queue_drops_oldest_and_counts() -> None:
    q: LatestQueue[int] = LatestQueue(2)
    for i in range(5):
        q.put(i)
    assert len(q) == 2
    assert q.dropped == 3
    assert [q.get_nowait(), q.get_nowait(), q.get_nowait()] == [3, 4, None]


def test_maxlen_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LatestQueue(0)


async def test_get_waits_for_put() -> None:
    q: LatestQueue[str] = LatestQueue(1)
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.put("x")
    assert await getter == "x"


async def test_clear_empties_and_rearms() -> None:
    q: LatestQueue[str] = LatestQueue(3)
    q.put("a")
    q.clear()
    assert q.get_nowait() is None
    q.put("b")
    assert await q.get() == "b"

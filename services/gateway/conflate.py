"""A bounded per-client queue where the latest frame wins, so a slow client never slows the others."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestQueue(Generic[T]):
    """Holds at most `maxlen` items; putting into a full queue drops the oldest (counted in `dropped`).

    Beside it, one side slot (`put_side`, latest wins, also counted in `dropped`) for a second kind of
    message, the provisional now frames: a burst of them replaces only the one before, never a final
    frame still waiting in the queue, and the side item goes out only once the queue is empty.

    `put` never blocks and never awaits, so the fan-out loop's cost does not depend on any client.
    """

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, got {maxlen}")
        self._items: deque[T] = deque(maxlen=maxlen)
        self._side: T | None = None
        self._ready = asyncio.Event()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items) + (self._side is not None)

    def put(self, item: T) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1  # the deque discards the oldest itself
        self._items.append(item)
        self._ready.set()

    def put_side(self, item: T) -> None:
        if self._side is not None:
            self.dropped += 1
        self._side = item
        self._ready.set()

    def clear(self) -> None:
        self._items.clear()
        self._side = None
        self._ready.clear()

    def get_nowait(self) -> T | None:
        if self._items:
            item = self._items.popleft()
        elif self._side is not None:
            item, self._side = self._side, None
        else:
            return None
        if not len(self):
            self._ready.clear()
        return item

    async def get(self) -> T:
        """The oldest kept item, then the side item, waiting for one (no timer: heartbeats are queued
        like any message)."""
        while not len(self):
            await self._ready.wait()
        item = self.get_nowait()
        assert item is not None  # the queue was not empty and nothing else takes from it
        return item

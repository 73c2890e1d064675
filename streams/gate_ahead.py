"""Windows gated ahead of their close, from speculative partials, so the gate's seconds fall in the grace.

A window's final frame waits for the grace (late events may still come), then for the close, the gate
and the store. At a megacity's morning peak the gate alone takes seconds. A few seconds after a live
window's end, the aggregate workers compute the partials its close will send if no event of it arrives
later (cityscreen/aggregate/partition.py: `speculate`), marked speculative. The release agent collects
them like the book does (streams/release_agent.py) and hands complete ones here, and they are gated
at once. Nothing is stored from them: when the window comes complete, its frames are taken from here
only if its partials are the same bytes, and the gate turns the same partials into the same frames (it
is deterministic: suppression is computed, DP noise is keyed by coordinates). Otherwise, for example
after a late event, the window is gated as any other. What is released is the same either way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cityscreen.frames import Frame
from cityscreen.release_book import Release

Gated = tuple[list[Frame], bytes | None]  # frames, and the gate's memory of the window (None here)
GateOf = Callable[[list[bytes]], Awaitable[Gated]]  # a window's partials -> gated
Count = Callable[..., Awaitable[None]]  # worker counters (ReleaseSink.count)
KEPT = 16  # windows gated ahead and not yet taken, at most (a live feed has one or two)


class GateAhead:
    def __init__(self, gate: GateOf, count: Count, kept: int = KEPT) -> None:
        self.gate, self.count, self.kept = gate, count, kept
        self._ahead: dict[Release, tuple[list[bytes], asyncio.Future[Gated]]] = {}

    def __len__(self) -> int:
        return len(self._ahead)

    def start(self, windows: Sequence[tuple[Release, Sequence[bytes]]]) -> None:
        """Gate each window's speculative partials now (in the gate pool, as any window), base windows
        first: a minute's gate must not queue behind the quarter hour's that ends with it."""
        for rel, blobs in sorted(windows, key=lambda window: window[0].span_s != 0):
            parts = list(blobs)
            gating = asyncio.ensure_future(self._gated(parts))
            gating.add_done_callback(_retrieved)  # a failed one is gated again when complete
            self._ahead[rel] = (parts, gating)
        while len(self._ahead) > self.kept:
            del self._ahead[next(iter(self._ahead))]  # the oldest: replayed, or never complete here

    async def take_or_gate(
        self, rel: Release, partials: object, gate_now: Callable[[], Awaitable[Gated]]
    ) -> tuple[Gated, dict[str, int]]:
        """The complete window's gate: taken from here if gated ahead from the same partials, else
        `gate_now()`; and counters saying which (the stats hash)."""
        ahead = self._ahead.pop(rel, None)
        if ahead is not None and ahead[0] == partials:
            try:
                return await ahead[1], {"windows_taken_ahead": 1}
            except Exception:  # gated again now, where a failure stops the agent
                pass
        missed = {} if ahead is None else {"windows_missed_ahead": 1}
        return await gate_now(), missed

    async def settled(self) -> None:
        """Wait until every gating started here has finished (tests, shutdown)."""
        await asyncio.gather(*(gating for _, gating in self._ahead.values()), return_exceptions=True)

    def clear(self) -> None:
        self._ahead.clear()

    async def _gated(self, parts: list[bytes]) -> Gated:
        started_s = time.monotonic()
        gated = await self.gate(parts)
        await self.count(gate_ahead_ms=round((time.monotonic() - started_s) * 1000), windows_gated_ahead=1)
        return gated


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved here: the window's own gate raises it again if it recurs

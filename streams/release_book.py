"""The release agent's book-keeping: which windows every partition has finished, and their merged aggregate.

A window is complete when every partition of the clean topics has closed it (closed-through >= window).
Partials are first-wins per (window, partition): after a crash a partition may send a window again, and
the first copy is the one computed from the complete input. Pure: the worker persists `dump()`.
"""

from __future__ import annotations

import msgspec

from cityscreen.aggregates import WindowAggregate
from cityscreen.settings import Settings
from streams.aggregate.partial import Partial, PartialMessage, finalize, merge_partials


def finalize_window(merged: Partial, settings: Settings) -> WindowAggregate:
    w = settings.window
    return finalize(merged, window_s=w.window_s, base_res=w.h3_res, flow_res=w.flow_res)


class BookState(msgspec.Struct):
    closed_through: dict[int, int] = {}
    partials: dict[int, dict[int, Partial]] = {}  # window -> partition -> partial
    released_through: int | None = None


_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(BookState)


class ReleaseBook:
    def __init__(self, partitions: int, state: BookState | None = None) -> None:
        self.partitions = partitions
        self.state = state or BookState()

    def add(self, message: PartialMessage) -> None:
        st = self.state
        p = message.partition
        st.closed_through[p] = max(
            message.closed_through_ms, st.closed_through.get(p, message.closed_through_ms)
        )
        part = message.partial
        if part is None:
            return
        w = part.window_start_ms
        if st.released_through is not None and w <= st.released_through:
            return  # a replayed partial of a window already released
        st.partials.setdefault(w, {}).setdefault(p, part)

    def complete_through(self) -> int | None:
        if len(self.state.closed_through) < self.partitions:
            return None
        return min(self.state.closed_through.values())

    def take_complete(self) -> list[Partial]:
        """Merged partials of every complete window not yet released, oldest first."""
        through = self.complete_through()
        if through is None:
            return []
        out = []
        for w in sorted(x for x in self.state.partials if x <= through):
            parts = self.state.partials.pop(w)
            merged = merge_partials(parts[p] for p in sorted(parts))
            if merged is not None:
                out.append(merged)
            self.state.released_through = w
        return out

    def dump(self) -> bytes:
        return _ENC.encode(self.state)

    @classmethod
    def load(cls, partitions: int, data: bytes | None) -> ReleaseBook:
        return cls(partitions, _DEC.decode(data) if data else None)

"""The release agent's book-keeping: which windows every partition has finished, and their merged aggregate.

A window is complete when every partition of the clean topics has closed it (closed-through >= window).
Partials are first-wins per (window, partition): after a crash a partition may send a window again, and
the first copy is the one computed from the complete input. The book holds partials as the compressed
bytes they arrived in; merging them is the gate process's job (`merge_window`). Pure: the worker
persists `dump()`.
"""

from __future__ import annotations

import msgspec

from cityscreen.aggregates import WindowAggregate
from cityscreen.settings import Settings
from streams.aggregate.partial import MessageHeader, Partial, decode_partial, finalize, merge_partials


def finalize_window(merged: Partial, settings: Settings) -> WindowAggregate:
    w = settings.window
    return finalize(merged, window_s=w.window_s, base_res=w.h3_res, flow_res=w.flow_res)


def merge_window(blobs: list[bytes], settings: Settings) -> WindowAggregate:
    """A complete window's exact aggregate from its partials (as `take_complete` returns them)."""
    merged = merge_partials(decode_partial(b) for b in blobs)
    if merged is None:
        raise ValueError("a complete window has at least one partial")
    return finalize_window(merged, settings)


class BookState(msgspec.Struct):
    closed_through: dict[int, int] = {}
    partials: dict[int, dict[int, bytes]] = {}  # window -> partition -> partial (compressed)
    released_through: int | None = None


_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(BookState)


class ReleaseBook:
    def __init__(self, partitions: int, state: BookState | None = None) -> None:
        self.partitions = partitions
        self.state = state or BookState()

    def add(self, message: MessageHeader) -> None:
        st = self.state
        p = message.partition
        st.closed_through[p] = max(
            message.closed_through_ms, st.closed_through.get(p, message.closed_through_ms)
        )
        w, blob = message.window_start_ms, message.blob
        if w is None or blob is None:
            return
        if st.released_through is not None and w <= st.released_through:
            return  # a replayed partial of a window already released
        st.partials.setdefault(w, {}).setdefault(p, blob)

    def complete_through(self) -> int | None:
        if len(self.state.closed_through) < self.partitions:
            return None
        return min(self.state.closed_through.values())

    def take_complete(self) -> list[tuple[int, list[bytes]]]:
        """(window, its partials in partition order) of every complete window not yet released, oldest
        first."""
        through = self.complete_through()
        if through is None:
            return []
        out = []
        for w in sorted(x for x in self.state.partials if x <= through):
            parts = self.state.partials.pop(w)
            out.append((w, [parts[p] for p in sorted(parts)]))
            self.state.released_through = w
        return out

    def dump(self) -> bytes:
        return _ENC.encode(self.state)

    @classmethod
    def load(cls, partitions: int, data: bytes | None) -> ReleaseBook:
        return cls(partitions, _DEC.decode(data) if data else None)

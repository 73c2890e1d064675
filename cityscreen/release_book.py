"""The release agent's book-keeping: which windows every partition has finished, and their merged aggregate.

A window is complete when every partition of the clean topics has closed it (closed-through >= window).
A release is a base window or a longer span window (`span_s`, cityscreen/aggregate/spans.py), keyed
`Release(start, span_s)`; a span window is complete once its last base window (its "due") is.
Partials are first-wins per (window, partition): after a crash a partition may send a window again, and
the first copy is the one computed from the complete input. The book holds partials as the compressed
bytes they arrived in; merging them is the gate process's job (`merge_window`).

`StoredBook` keeps a book in a key-value log (`BookLog`: the single-partition, changelog-backed
`release-book` table in the worker, `DictBookLog` in tests), so the release agent's state survives a
SIGKILL and moves with its partition on a rebalance. Layout: `meta` (msgpack `{"closed": {partition:
closed-through}, "released": released-through}`), `part/<start>:<span_s>/<partition>` (each kept
partial as the partials-topic record it arrived in) until its window is stored, and `read` (the offset
of the last partials-topic record booked: a restarted agent sees a record lost before it, see
streams/release_agent.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

import msgspec

from cityscreen.aggregate.partial import (
    MessageHeader,
    Partial,
    decode_header,
    decode_partial,
    finalize,
    merge_partials,
)
from cityscreen.aggregates import WindowAggregate
from cityscreen.settings import Settings


class Release(NamedTuple):
    start_ms: int
    span_s: int  # 0: a base window

    def book_key(self) -> str:
        return f"{self.start_ms}:{self.span_s}"

    @classmethod
    def parse(cls, key: str) -> Release:
        start, span = key.split(":")
        return cls(int(start), int(span))


def finalize_window(merged: Partial, settings: Settings) -> WindowAggregate:
    w = settings.window
    layers = tuple(sorted(w.spans_s[merged.span_s or w.window_s]))
    return finalize(merged, window_s=w.window_s, base_res=w.h3_res, flow_res=w.flow_res, layers=layers)


def merge_window(blobs: list[bytes], settings: Settings) -> WindowAggregate:
    """A complete window's exact aggregate from its partials (as `take_complete` returns them)."""
    merged = merge_partials(decode_partial(b) for b in blobs)
    if merged is None:
        raise ValueError("a complete window has at least one partial")
    return finalize_window(merged, settings)


class BookState(msgspec.Struct):
    closed_through: dict[int, int] = {}
    partials: dict[str, dict[int, bytes]] = {}  # Release.book_key -> partition -> partial (compressed)
    due: dict[str, int] = {}  # Release.book_key -> the base window whose close completes it
    released_through: int | None = None  # a due


_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(BookState)


class ReleaseBook:
    def __init__(self, partitions: int, state: BookState | None = None, *, window_s: int) -> None:
        self.partitions = partitions
        self.state = state or BookState()
        self.window_ms = window_s * 1000  # the base window: a span is due at its last one

    def add(self, message: MessageHeader) -> bool:
        """Take a partition's progress and maybe a partial; True when the partial is kept (the first
        copy of a window not yet released)."""
        st = self.state
        p = message.partition
        st.closed_through[p] = max(
            message.closed_through_ms, st.closed_through.get(p, message.closed_through_ms)
        )
        w, blob = message.window_start_ms, message.blob
        if w is None or blob is None:
            return False
        due = w + message.span_s * 1000 - self.window_ms if message.span_s else w
        if st.released_through is not None and due <= st.released_through:
            return False  # a replayed partial of a window already released
        key = Release(w, message.span_s).book_key()
        kept = st.partials.setdefault(key, {})
        if p in kept:
            return False
        kept[p] = blob
        st.due.setdefault(key, due)
        return True

    def complete_through(self) -> int | None:
        if len(self.state.closed_through) < self.partitions:
            return None
        return min(self.state.closed_through.values())

    def take_complete(self) -> list[tuple[Release, list[bytes]]]:
        """(release, its partials in partition order) of every complete release not yet released, by
        due, a span window before the base window of the same due (a frame of that base window shows
        the span that ended with it)."""
        through = self.complete_through()
        if through is None:
            return []
        st = self.state
        ready = [(st.due[k], -Release.parse(k).span_s, k) for k in st.partials if st.due[k] <= through]
        out = []
        for due, _, key in sorted(ready):
            parts = st.partials.pop(key)
            del st.due[key]
            out.append((Release.parse(key), [parts[p] for p in sorted(parts)]))
            st.released_through = due
        return out

    def drop_through(self, due_ms: int | None) -> None:
        """Forget the partials of every release due at or before `due_ms` (released another way)."""
        st = self.state
        if due_ms is None or (st.released_through is not None and due_ms <= st.released_through):
            return
        st.released_through = due_ms
        for key in [k for k, due in st.due.items() if due <= due_ms]:
            del st.partials[key], st.due[key]

    def dump(self) -> bytes:
        return _ENC.encode(self.state)

    @classmethod
    def load(cls, partitions: int, data: bytes | None, *, window_s: int) -> ReleaseBook:
        return cls(partitions, _DEC.decode(data) if data else None, window_s=window_s)


class BookLog(Protocol):
    """Where a StoredBook keeps itself: one flat key-value log (None deletes a key)."""

    def put(self, key: str, value: bytes | None) -> None: ...
    def items(self) -> list[tuple[str, bytes]]: ...


class DictBookLog:
    """In-memory BookLog (tests)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def put(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value

    def items(self) -> list[tuple[str, bytes]]:
        return sorted(self.data.items())


META = "meta"
READ = "read"
PART = "part/"  # + Release.book_key + "/" + partition


class StoredBook:
    """A ReleaseBook and its log. A kept partial is written when it arrives; once a batch's complete
    windows are stored, `settle` drops their partials and then records what was released: a crash
    in between replays them, which the sink's frame index turns into no second publication."""

    def __init__(self, log: BookLog, partitions: int, *, window_s: int) -> None:
        self.log = log
        self.book = ReleaseBook(partitions, window_s=window_s)
        items = log.items()
        stored = dict(items)
        meta = stored.get(META)
        if meta:
            m = msgspec.msgpack.decode(meta)
            self.book.state.closed_through = {int(k): v for k, v in m["closed"].items()}
            self.book.state.released_through = m["released"]
        for key, value in items:
            if key.startswith(PART):
                self.book.add(decode_header(value))
        read = stored.get(READ)
        self.read_offset: int = -1 if read is None else int(msgspec.msgpack.decode(read))

    def mark_read(self, offset: int) -> None:
        """Record that the partials-topic records up to `offset` are booked (after `add`)."""
        if offset > self.read_offset:
            self.read_offset = offset
            self.log.put(READ, msgspec.msgpack.encode(offset))

    def add(self, values: Iterable[bytes]) -> list[MessageHeader]:
        """Partials-topic records in arrival order; the partial itself stays compressed. Speculative
        partials are left out, and returned: they are final only if the close sends the same
        (streams/gate_ahead.py)."""
        speculative = []
        for value in values:
            head = decode_header(value)
            if head.speculative:
                speculative.append(head)
            elif self.book.add(head) and head.window_start_ms is not None:
                rel = Release(head.window_start_ms, head.span_s)
                self.log.put(f"{PART}{rel.book_key()}/{head.partition}", value)
        return speculative

    def take_complete(self) -> tuple[list[tuple[Release, list[bytes]]], bytes]:
        """The complete windows (ReleaseBook.take_complete) and the meta to `settle` once they are stored."""
        complete = self.book.take_complete()
        st = self.book.state
        return complete, msgspec.msgpack.encode(
            {"closed": st.closed_through, "released": st.released_through}
        )

    def settle(self, releases: Sequence[Release], meta: bytes) -> None:
        """After `releases` are stored: drop their partials, then record the meta (never before)."""
        prefixes = tuple(f"{PART}{rel.book_key()}/" for rel in releases)
        if prefixes:
            for key in [k for k, _ in self.log.items() if k.startswith(prefixes)]:
                self.log.put(key, None)
        self.log.put(META, meta)


KEPT = "kept/"  # + span_s: what the gate kept of the last window of that span it released


class GateMemory:
    """The gate's memory per span (cityscreen.privacy.temporal.Memory, packed), in the release book's
    log beside the book, so that it survives a SIGKILL and moves with the release partition. Read
    from the log on first use (after Faust's recovery) and again after `forget` (a rebalance)."""

    def __init__(self, log: BookLog | None) -> None:
        self.log = log
        self._kept: dict[int, bytes] | None = None

    def _all(self) -> dict[int, bytes]:
        if self._kept is None:
            items = [] if self.log is None else self.log.items()
            self._kept = {int(k[len(KEPT) :]): v for k, v in items if k.startswith(KEPT)}
        return self._kept

    def get(self, span_s: int) -> bytes | None:
        return self._all().get(span_s)

    def put(self, span_s: int, packed: bytes) -> None:
        self._all()[span_s] = packed
        if self.log is not None:
            self.log.put(f"{KEPT}{span_s}", packed)

    def forget(self) -> None:
        self._kept = None

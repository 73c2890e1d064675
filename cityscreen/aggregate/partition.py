"""One clean-topic partition's open windows: event-time watermarks, late events, closing, and durability.

Watermarks are kept per topic of the partition. An event is late when its window ended more than the
grace period before the watermark of its own topic, or when its window is already closed: that rule
depends only on the order of that topic-partition, and it can never reopen a closed window. Windows
close when every topic's watermark has passed end + grace (or the partition went idle).

Durability: everything applied since the last persist is returned by `take_delta` as bytes, and a
snapshot (closed-through, watermarks, offsets) by `snapshot` after a close, the carry by
`take_carry_delta`. `restore` rebuilds the state
from the latest snapshot plus later deltas; records at or below the applied offsets are then skipped, so
a replay after a crash never counts an event twice. Events the ingest edge wrote twice (in two records)
are skipped by their raw keys (cityscreen/aggregate/repeats.py), which the deltas and snapshots keep too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import msgspec
import numpy as np

from cityscreen.aggregate.close import AggConfig, Carry, close_chunks
from cityscreen.aggregate.codec import FORMAT, StateFormatError, check_format, delta_chunks, encode_chunk
from cityscreen.aggregate.flows import Candidates
from cityscreen.aggregate.partial import Partial
from cityscreen.aggregate.repeats import Seen, encode_seen, merge_seen, take_fresh
from cityscreen.aggregate.rows import KINDS, Chunk, chunk_of, window_of
from cityscreen.aggregate.spans import OpenSpans
from cityscreen.clean_batch import CleanBatch

_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder()
_NEVER = -(2**62)
COUNTED, REPEATED = "events_counted", "events_repeated"  # `PartitionState.tally` keys (worker counters)
__all__ = ["PartitionState", "StateFormatError", "WindowRows"]


@dataclass
class WindowRows:
    """A window's rows: per kind, the chunks of the records that fell into it, in arrival order."""

    parts: dict[str, list[Chunk]] = field(default_factory=lambda: {k: [] for k in KINDS})
    late_events: int = 0

    def chunk(self, kind: str) -> Chunk:
        return Chunk.concat(self.parts[kind])


@dataclass
class PartitionState:
    partition: int
    cfg: AggConfig
    windows: dict[int, WindowRows] = field(default_factory=dict)
    watermark_ms: dict[str, int] = field(default_factory=dict)
    applied_offset: dict[str, int] = field(default_factory=dict)
    closed_through_ms: int | None = None
    carry: Carry = field(default_factory=Carry)
    seen: dict[str, dict[str, Seen]] = field(default_factory=dict)  # kind -> raw source -> keys counted
    tally: Counter[str] = field(default_factory=Counter)  # events counted and repeats skipped (not kept)
    spans: OpenSpans = field(init=False)
    _delta: list[tuple[str, int, Chunk]] = field(default_factory=list)
    _delta_late: dict[int, int] = field(default_factory=dict)
    _dirty: bool = False  # offsets or watermarks changed since the last take_delta
    speculated_through_ms: int | None = None  # the latest window `speculate` computed (not kept)
    # (through, the twin after its close, its partials) until the close, or until a row or late event of
    # those windows arrives: the close then takes the twin's state and partials (`_adopt`)
    _ahead: tuple[int, PartitionState, list[Partial]] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.spans = OpenSpans(self.cfg)

    # ------------------------------------------------------------ applying
    def skip(self, kind: str, offset: int) -> None:
        """Count a record as applied without rows (empty, or dead-lettered as undecodable)."""
        self.applied_offset[kind] = max(offset, self.applied_offset.get(kind, -1))
        self._dirty = True

    def add_record(self, kind: str, offset: int, batch: CleanBatch) -> np.ndarray:
        """Apply one Kafka record's events; returns the indexes of the late ones (for dead letters)."""
        if offset <= self.applied_offset.get(kind, -1):
            return np.empty(0, np.int64)  # already reflected in the restored state
        self.applied_offset[kind] = offset
        self._dirty = True
        if not batch.n:
            return np.empty(0, np.int64)
        cfg = self.cfg
        rows = chunk_of(batch, cfg.base_res, cfg.clip_cny)
        fresh = (
            None if batch.provenance is None else take_fresh(self.seen.setdefault(kind, {}), batch.provenance)
        )
        if fresh is not None and len(fresh) < batch.n:  # the ingest edge wrote some of these before
            self.tally[REPEATED] += batch.n - len(fresh)
            rows = rows.take(fresh)
            if not len(fresh):
                return np.empty(0, np.int64)
        self.tally[COUNTED] += len(rows)
        late = self._add_chunk(kind, rows)
        return late if fresh is None else fresh[late]

    def _add_chunk(self, kind: str, rows: Chunk) -> np.ndarray:
        """Window the rows of one record; returns the indexes (into `rows`) of the late ones."""
        cfg = self.cfg
        win_ms, span_ms = cfg.window_ms, cfg.window_ms + cfg.grace_ms
        wm = self.watermark_ms.get(kind, _NEVER)
        closed = self.closed_through_ms if self.closed_through_ms is not None else _NEVER
        ts = rows.ts
        lo, hi = int(ts.min()), int(ts.max())
        w = lo - lo % win_ms
        # the usual record: every event in one open window, none late (the watermark only grows
        # inside the record, and never past this window's end + grace)
        if hi < w + win_ms and w > closed and w + span_ms > wm:
            self._add_rows(kind, w, rows)
            self.watermark_ms[kind] = max(wm, hi)
            return np.empty(0, np.int64)
        windows = ts - ts % win_ms
        # late: the window is closed, or it ended more than the grace before the topic's watermark as
        # it stood when the event arrived. Late events never raise the watermark: those of closed
        # windows are left out of it, and the others lie below it anyway.
        in_closed = windows <= closed
        running = np.maximum.accumulate(np.where(in_closed, _NEVER, ts))
        before = np.concatenate(([wm], np.maximum(running[:-1], wm)))
        late = in_closed | (windows + span_ms <= before)
        late_at = np.flatnonzero(late)
        for b in before[late_at].tolist():
            # reported with the open window at its topic's watermark (never a closed one)
            self._count_late(max(window_of(b, win_ms), closed + win_ms))
        on_time = np.flatnonzero(~late)
        if len(on_time):
            self.watermark_ms[kind] = max(wm, int(ts[on_time].max()))
            kept = rows.take(on_time)
            kept_windows = windows[on_time]
            for wv in np.unique(kept_windows).tolist():
                self._add_rows(kind, wv, kept.take(np.flatnonzero(kept_windows == wv)))
        return late_at

    def _add_rows(self, kind: str, w: int, rows: Chunk) -> None:
        if self._ahead is not None and w <= self._ahead[0]:
            self._ahead = None  # the speculation lacks these rows
        wr = self.windows.get(w)
        if wr is None:
            wr = self.windows[w] = WindowRows()
        wr.parts[kind].append(rows)
        self._delta.append((kind, w, rows))

    def _count_late(self, w: int) -> None:
        if self._ahead is not None and w <= self._ahead[0]:
            self._ahead = None
        wr = self.windows.get(w)
        if wr is None:
            wr = self.windows[w] = WindowRows()
        wr.late_events += 1
        self._delta_late[w] = self._delta_late.get(w, 0) + 1

    # ------------------------------------------------------------ closing
    def due_through_ms(self, quiet: frozenset[str] = frozenset()) -> int | None:
        """The latest window start whose end + grace every topic's watermark has passed.

        Topics in `quiet` (no record for a while, e.g. transit at 3 a.m.) do not hold the watermark
        back; anything they deliver later for a closed window is late, like any late event.
        """
        considered = [k for k in KINDS if k not in quiet]
        if not considered or any(k not in self.watermark_ms for k in considered):
            return None  # a topic not yet seen may still hold events of the oldest window
        wm = min(self.watermark_ms[k] for k in considered)
        return window_of(wm - self.cfg.grace_ms, self.cfg.window_ms) - self.cfg.window_ms

    def due(self) -> bool:
        """Whether `close_due()` (not idle) closes a window now: its watermarks passed an end + grace."""
        return self._advances(self.due_through_ms())

    def _advances(self, through_ms: int | None) -> TypeGuard[int]:
        closed = self.closed_through_ms
        return through_ms is not None and (closed is None or through_ms > closed)

    def close_due(
        self,
        *,
        idle: bool = False,
        quiet: frozenset[str] = frozenset(),
        floor_ms: int | None = None,
        wall_ms: float | None = None,
    ) -> list[Partial]:
        """Close every due window (all open ones when idle), oldest first; advances closed-through.

        An idle partition also moves its closed-through up to `floor_ms` (what the busiest partitions
        have closed): a partition with no events for a while, or none ever, must not hold back the
        release of windows the others have finished. What it receives later for those windows is late,
        as for any closed window.

        A window without rows in this partition still has a partial while someone's last known
        position here is recent enough: people present do not vanish in a quiet minute. Once nobody
        is present, the windows up to the next one with rows are skipped (nothing changes the stock).

        With `wall_ms` (the worker's clock), idleness closes only windows that ended, with their grace,
        before that time. A feed paused upstream (an ingest worker starved of CPU for a few seconds) looks
        idle too: closing the open minute and the open quarter hour then made the rest of their events
        late (up to a quarter of each window's events in a soak on a loaded box). A replay of past events
        still closes everything at once."""
        through: int | None
        if idle and (self.windows or self.spans.open):
            # every open window closes, and so does every span window holding one
            ends = [due for due, _ in self.spans.open]
            through = max(ends + ([self.cfg.close_point_ms(max(self.windows))] if self.windows else []))
            if wall_ms is not None:
                ended = window_of(int(wall_ms) - self.cfg.grace_ms - self.cfg.window_ms, self.cfg.window_ms)
                through = min(through, ended)
        else:
            through = self.due_through_ms(quiet)
        if idle and floor_ms is not None and (through is None or floor_ms > through):
            through = floor_ms
        if not self._advances(through):
            return []
        return self._close_through(through)

    def _close_through(self, through: int) -> list[Partial]:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == through:
            return self._adopt(*ahead)
        out: list[Partial] = []
        previous = self.closed_through_ms
        for w in [*sorted(x for x in self.windows if x <= through), None]:
            if previous is not None:  # windows without rows here that still have people present
                gap = previous + self.cfg.window_ms
                last_gap = through if w is None else w - self.cfg.window_ms
                while gap <= last_gap and self.carry.holds_presence(self.cfg.presence_since_ms(gap)):
                    out += self._close(gap)
                    gap += self.cfg.window_ms
            if w is not None:
                out += self._close(w)
                previous = w
        out += self.spans.close_through(through, self.partition, self.carry)
        self.closed_through_ms = through
        return out

    def speculate(self, wall_ms: float) -> tuple[int, list[Partial]] | None:
        """The partials the next close will send, if no event of its windows arrives after now: computed
        on a twin of the state once every topic's watermark has passed a window's end by
        `cfg.speculate_ms`, once per window, and only while the feed is live (its watermark within a
        grace of `wall_ms`: in a replay or a catch-up the close itself comes within seconds). Returns
        (the window closed through, its partials), or None; the state itself is unchanged."""
        cfg = self.cfg
        if cfg.speculate_ms is None or any(k not in self.watermark_ms for k in KINDS):
            return None
        wm = min(self.watermark_ms.values())
        through = window_of(wm - cfg.speculate_ms, cfg.window_ms) - cfg.window_ms
        done = self.speculated_through_ms
        if wm < wall_ms - cfg.grace_ms or self.due() or not self._advances(through):
            return None
        if done is not None and through <= done:
            return None
        self.speculated_through_ms = through
        twin = self._twin(through)
        partials = twin._close_through(through)
        self._ahead = (through, twin, partials)
        return through, partials

    def _adopt(self, through: int, twin: PartitionState, partials: list[Partial]) -> list[Partial]:
        """The close, when nothing of its windows arrived since `speculate`: the twin's carry and spans
        are what this close would make of this state's (closes alone change them), so they are taken,
        with what this state has not yet written to its deltas. Saves the close's seconds after the
        grace; `tests/unit/test_aggregate_speculate.py` compares the state with a close's."""
        for w in [w for w in self.windows if w <= through]:
            del self.windows[w]
        twin.carry.pending_from(self.carry)
        twin.spans.pending_from(self.spans)
        self.carry, self.spans = twin.carry, twin.spans
        self.closed_through_ms = through
        return partials

    def _twin(self, through: int) -> PartitionState:
        """A copy that a close changes without changing this state: the windows to close (their rows are
        only read), the carry's columns copied, the open spans' lists copied (their chunks are shared)."""
        twin = PartitionState(
            self.partition,
            self.cfg,
            windows={w: rows for w, rows in self.windows.items() if w <= through},
            closed_through_ms=self.closed_through_ms,
            carry=self.carry.twin(),
        )
        twin.spans = self.spans.twin()
        return twin

    def _close(self, w: int) -> list[Partial]:
        """The base window's partial, after those of span windows that ended before it (in order: the
        carried open trips pair tap-outs of one flow window before the next's)."""
        out = self.spans.close_through(w - self.cfg.window_ms, self.partition, self.carry)
        wr = self.windows.pop(w, None) or WindowRows()
        sims, pays, transits = (wr.chunk(k) for k in KINDS)
        moves: list[Candidates] = []
        base = close_chunks(
            w, self.partition, sims, pays, transits, self.carry, self.cfg, wr.late_events, moves
        )
        self.spans.add_window(w, wr.parts, moves)
        # spans ending with w go out before w's partial, whose message says w is final here: a crash
        # between the two sends must not let the release book complete a span without this partition
        return [*out, *self.spans.close_through(w, self.partition, self.carry), base]

    # ------------------------------------------------------------ durability
    def take_delta(self) -> tuple[bytes, int] | None:
        """What was applied since the last call and its newest window, or None; persist it before
        offsets are committed."""
        if not self._dirty:
            return None
        newest = max([self.cfg.newest_use_ms(k, w) for k, w, _ in self._delta] + list(self._delta_late),
                     default=_NEVER)  # fmt: skip
        data = _ENC.encode(
            {
                "format": FORMAT,
                "chunks": [encode_chunk(kind, w, rows) for kind, w, rows in self._delta],
                "late": self._delta_late,
                "wm": self.watermark_ms,
                "off": self.applied_offset,
                "seen": encode_seen(self.seen),
            }
        )
        self._delta, self._delta_late, self._dirty = [], {}, False
        return data, newest

    def snapshot(self) -> bytes:
        """Everything but the open windows' rows (those live in the deltas) and the carry (in its
        own deltas, `take_carry_delta`)."""
        return _ENC.encode(
            {
                "format": FORMAT,
                "closed": self.closed_through_ms,
                "wm": self.watermark_ms,
                "off": self.applied_offset,
                "seen": encode_seen(self.seen),
            }
        )

    def take_carry_delta(self) -> bytes:
        """The carry entries of every person whose carry changed since the last call (their absence
        when removed). Only the persons of the closed windows, not the whole carry: a megacity's carry
        holds every person seen within the presence and trip TTLs. Entries the carry pruned are not
        removed here: a stale entry and a missing one count the same (every use checks times)."""
        return self.carry.take_delta()

    @classmethod
    def restore(
        cls,
        partition: int,
        cfg: AggConfig,
        snapshot: bytes | None,
        deltas: Sequence[bytes],
        carry_deltas: Sequence[tuple[int, bytes]] = (),
        moves: Sequence[tuple[int, bytes]] = (),
    ) -> PartitionState:
        """The state from the latest snapshot, the carry deltas of closes it covers (in order) and the
        row deltas of windows still open."""
        state = cls(partition, cfg)
        if snapshot is not None:
            snap: Mapping[str, Any] = _DEC.decode(snapshot)
            check_format(snap, "snapshot")
            state.closed_through_ms = snap["closed"]
            state.watermark_ms = dict(snap["wm"])
            state.applied_offset = dict(snap["off"])
            merge_seen(state.seen, snap.get("seen", {}))  # state written before provenance has none
        closed = state.closed_through_ms if state.closed_through_ms is not None else _NEVER
        for through, raw in sorted(carry_deltas):
            if through <= closed:  # later ones were written by a close whose snapshot never landed
                state.carry.apply_delta(raw)
        for through, raw in sorted(moves):
            if through <= closed:
                state.spans.apply_moves(raw, closed)
        for raw in deltas:
            d: Mapping[str, Any] = _DEC.decode(raw)
            check_format(d, "delta")
            for kind, w, rows in delta_chunks(d):
                if w > closed:
                    state.windows.setdefault(w, WindowRows()).parts[kind].append(rows)
                elif cfg.newest_use_ms(kind, w) > closed:  # a closed base window of a span still open
                    state.spans.add_chunk(kind, w, rows)
            for w, n in d["late"].items():
                if w > closed:
                    state.windows.setdefault(w, WindowRows()).late_events += n
            for k, v in d["wm"].items():
                state.watermark_ms[k] = max(v, state.watermark_ms.get(k, v))
            for k, v in d["off"].items():
                state.applied_offset[k] = max(v, state.applied_offset.get(k, v))
            merge_seen(state.seen, d.get("seen", {}))
        return state

"""One clean-topic partition's open windows: event-time watermarks, late events, closing, and durability.

Watermarks are kept per topic of the partition. An event is late when its window ended more than the
grace period before the watermark of its own topic, or when its window is already closed: that rule
depends only on the order of that topic-partition, and it can never reopen a closed window. Windows
close when every topic's watermark has passed end + grace (or the partition went idle).

Durability: everything applied since the last persist is returned by `take_delta` as bytes, and a
snapshot (closed-through, carry, watermarks) by `snapshot` after a close. `restore` rebuilds the state
from the latest snapshot plus later deltas; records at or below the applied offsets are then skipped, so
a replay after a crash never counts an event twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import msgspec

from cityscreen.events import CleanEvent
from streams.aggregate.close import AggConfig, Carry, close_columns
from streams.aggregate.codec import delta_chunks, encode_chunk
from streams.aggregate.partial import Partial
from streams.aggregate.rows import KINDS, Row, columns_of, window_of

Part = tuple[tuple[Any, ...], ...]  # seven columns of one record's rows in one window
_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder()


@dataclass
class WindowRows:
    """A window's rows: per kind, a list of record parts, each seven column tuples (tuples of plain
    values are left alone by the cyclic garbage collector; long lists would be traversed at every
    full collection)."""

    parts: dict[str, list[Part]] = field(default_factory=lambda: {k: [] for k in KINDS})
    late_events: int = 0

    def columns(self, kind: str) -> list[list[Any]]:
        parts = self.parts[kind]
        if len(parts) == 1:
            return [list(c) for c in parts[0]]
        return [list(chain.from_iterable(p[j] for p in parts)) for j in range(7)]

    @property
    def rows(self) -> dict[str, list[Row]]:
        return {k: list(zip(*self.columns(k), strict=True)) for k in KINDS}


@dataclass
class PartitionState:
    partition: int
    cfg: AggConfig
    windows: dict[int, WindowRows] = field(default_factory=dict)
    watermark_ms: dict[str, int] = field(default_factory=dict)
    applied_offset: dict[str, int] = field(default_factory=dict)
    closed_through_ms: int | None = None
    carry: Carry = field(default_factory=Carry)
    _delta: list[tuple[str, int, Part]] = field(default_factory=list)
    _delta_late: dict[int, int] = field(default_factory=dict)
    _carry_touched: set[str] = field(default_factory=set)  # persons whose carry changed since the last take

    # ------------------------------------------------------------ applying
    def add_record(self, kind: str, offset: int, events: Sequence[CleanEvent]) -> list[CleanEvent]:
        """Apply one Kafka record's events; returns the late ones (for the dead-letter topic)."""
        if offset <= self.applied_offset.get(kind, -1):
            return []  # already reflected in the restored state
        self.applied_offset[kind] = offset
        cfg = self.cfg
        win_ms, span_ms = cfg.window_ms, cfg.window_ms + cfg.grace_ms
        wm = self.watermark_ms.get(kind, -(2**62))
        closed = self.closed_through_ms if self.closed_through_ms is not None else -(2**62)
        if events:
            times = [e.ts_ms for e in events]
            lo, hi = min(times), max(times)
            w = lo - lo % win_ms
            # the usual record: every event in one open window, none late (the watermark only grows
            # inside the record, and never past this window's end + grace)
            if hi < w + win_ms and w > closed and w + span_ms > wm:
                self._add_rows(kind, w, columns_of(kind, events, cfg.base_res, cfg.clip_cny, times))
                self.watermark_ms[kind] = max(wm, hi)
                return []
        late: list[CleanEvent] = []
        groups: dict[int, list[CleanEvent]] = {}
        for event in events:
            ts = event.ts_ms
            w = ts - ts % win_ms
            if w <= closed or w + span_ms <= wm:
                late.append(event)
                # reported with the open window at its topic's watermark (never a closed one)
                home = max(window_of(wm, win_ms), closed + win_ms)
                self._count_late(home)
                continue
            if ts > wm:
                wm = ts
            groups.setdefault(w, []).append(event)
        for w, evs in groups.items():
            self._add_rows(kind, w, columns_of(kind, evs, cfg.base_res, cfg.clip_cny))
        self.watermark_ms[kind] = wm
        return late

    def _add_rows(self, kind: str, w: int, cols: list[list[Any]]) -> None:
        part = tuple(map(tuple, cols))
        wr = self.windows.get(w)
        if wr is None:
            wr = self.windows[w] = WindowRows()
        wr.parts[kind].append(part)
        self._delta.append((kind, w, part))

    def _count_late(self, w: int) -> None:
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

    def close_due(self, *, idle: bool = False, quiet: frozenset[str] = frozenset()) -> list[Partial]:
        """Close every due window (all open ones when idle), oldest first; advances closed-through."""
        through = max(self.windows) if idle and self.windows else self.due_through_ms(quiet)
        if through is None or (self.closed_through_ms is not None and through <= self.closed_through_ms):
            return []
        out = []
        for w in sorted(x for x in self.windows if x <= through):
            wr = self.windows.pop(w)
            pays, transits = (list(zip(*wr.columns(k), strict=True)) for k in ("payment", "transit"))
            sims = wr.columns("sim")
            # closing sets (or pops) the carry of exactly these persons: SIM cells and transit trips
            self._carry_touched.update(sims[2])
            self._carry_touched.update(r[2] for r in transits)
            out.append(
                close_columns(w, self.partition, sims, pays, transits, self.carry, self.cfg, wr.late_events)
            )
        self.closed_through_ms = through
        return out

    # ------------------------------------------------------------ durability
    def take_delta(self) -> tuple[bytes, int] | None:
        """What was applied since the last call and its newest window, or None; persist it before
        offsets are committed."""
        if not self._delta and not self._delta_late:
            return None
        newest = max([w for _, w, _ in self._delta] + list(self._delta_late))
        data = _ENC.encode(
            {
                "chunks": [encode_chunk(kind, w, cols) for kind, w, cols in self._delta],
                "late": self._delta_late,
                "wm": self.watermark_ms,
                "off": self.applied_offset,
            }
        )
        self._delta, self._delta_late = [], {}
        return data, newest

    def snapshot(self) -> bytes:
        """Everything but the open windows' rows (those live in the deltas) and the carry (in its
        own deltas, `take_carry_delta`)."""
        return _ENC.encode(
            {"closed": self.closed_through_ms, "wm": self.watermark_ms, "off": self.applied_offset}
        )

    def take_carry_delta(self) -> bytes:
        """The carry entries of every person whose carry changed since the last call (None = removed).

        Only the persons of the closed windows, not the whole carry: a megacity's carry holds every
        person seen within the trip TTL, and rewriting all of it at every close was most of the
        changelog's bytes. Entries the carry pruned are not removed here: a stale entry and a missing
        one give the same flows (every use checks the TTL)."""
        last, trip = self.carry.last_cell, self.carry.open_trip
        touched, self._carry_touched = list(self._carry_touched), set()
        # built by zip/map, not a comprehension: a close touches ~100k persons per partition
        return _ENC.encode(
            {
                "last": dict(zip(touched, map(last.get, touched), strict=True)),
                "trip": dict(zip(touched, map(trip.get, touched), strict=True)),
            }
        )

    @classmethod
    def restore(
        cls,
        partition: int,
        cfg: AggConfig,
        snapshot: bytes | None,
        deltas: Sequence[bytes],
        carry_deltas: Sequence[tuple[int, bytes]] = (),
    ) -> PartitionState:
        """The state from the latest snapshot, the carry deltas of closes it covers (in order) and the
        row deltas of windows still open."""
        state = cls(partition, cfg)
        if snapshot is not None:
            snap: Mapping[str, Any] = _DEC.decode(snapshot)
            state.closed_through_ms = snap["closed"]
            state.watermark_ms = dict(snap["wm"])
            state.applied_offset = dict(snap["off"])
            # snapshots written before carry deltas existed hold the whole carry: it goes into the
            # next carry delta, since the next snapshot no longer holds it
            state.carry = Carry(
                {p: (c, t) for p, (c, t) in snap.get("last", {}).items()},
                {p: (c, t) for p, (c, t) in snap.get("trip", {}).items()},
            )
            state._carry_touched = set(state.carry.last_cell) | set(state.carry.open_trip)
        closed = state.closed_through_ms if state.closed_through_ms is not None else -(2**62)
        for through, raw in sorted(carry_deltas):
            if through > closed:
                continue  # written by a close whose snapshot never landed: that close is redone
            c: Mapping[str, Any] = _DEC.decode(raw)
            for name, target in (("last", state.carry.last_cell), ("trip", state.carry.open_trip)):
                for p, entry in c[name].items():
                    if entry is None:
                        target.pop(p, None)
                    else:
                        target[p] = (entry[0], entry[1])
        for raw in deltas:
            d: Mapping[str, Any] = _DEC.decode(raw)
            for kind, w, cols in delta_chunks(d):
                if w > closed:
                    state.windows.setdefault(w, WindowRows()).parts[kind].append(tuple(map(tuple, cols)))
            for w, n in d["late"].items():
                if w > closed:
                    state.windows.setdefault(w, WindowRows()).late_events += n
            for k, v in d["wm"].items():
                state.watermark_ms[k] = max(v, state.watermark_ms.get(k, v))
            for k, v in d["off"].items():
                state.applied_offset[k] = max(v, state.applied_offset.get(k, v))
        return state
